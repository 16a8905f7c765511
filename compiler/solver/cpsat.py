"""CP-SAT, the search where the lattice program cannot run, and the minimum cuts of the cut
bound: the only module that imports OR-Tools.

The model: variables y[u][k] = [chip(u) >= k] for k = 1..N-1 make stages contiguous
(y[p][k] <= y[c][k] along every edge, so no cycle between chips) and keep it linear:
load_k = sum_u t[u][k] (y[u][k] - y[u][k+1]); a tensor crosses link k when
y[c][k] - y[p][k] = 1 for some consumer c; a chip that does not overlap its transfers also
carries its links' times. Phase 1 minimizes the bottleneck (slowest chip or link; skipped
when the start already meets the bound), phase 2 the bytes moved at it. Times are integer
ticks rounded down, so the model is a relaxation and its bound a bound.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
from ortools.graph.python import max_flow
from ortools.sat.python import cp_model

from chipcut.compiler.solver.evaluate import evaluate
from chipcut.compiler.solver.problem import NoFit, NotFound, PartitionProblem, as_affine
from chipcut.core.vocab import Status

# The bottleneck of the warm start is ~TICKS integer time units. Times are rounded down, so the
# model's optimum never exceeds the problem's (its bound is a bound), and a plan it proves is
# within a tick per unit of a stage of it (about 1e-6 for a thousand units).
TICKS = 1_000_000_000

class _Progress(cp_model.CpSolverSolutionCallback):
    def __init__(self, report: Callable[[str], None], phase: str, scale: float, unit: str) -> None:
        super().__init__()
        self._report, self._phase, self._scale, self._unit = report, phase, scale, unit

    def on_solution_callback(self) -> None:
        self._report(f"{self._phase}: best {self.objective_value * self._scale:.4g} {self._unit}, "
                     f"bound {self.best_objective_bound * self._scale:.4g} {self._unit}")


def _build(problem: PartitionProblem, tick_s: float):
    n, chips = len(problem.unit_time_s), problem.n_chips
    m = cp_model.CpModel()
    y = [[None] + [m.new_bool_var(f"y{u}_{k}") for k in range(1, chips)] for u in range(n)]

    def ge(u: int, k: int):  # [chip(u) >= k] as a literal or a constant
        return 1 if k == 0 else (0 if k >= chips else y[u][k])

    for u in range(n):
        for k in range(1, chips - 1):
            m.add_implication(y[u][k + 1], y[u][k])
    crossings = {}
    for t, (p, consumers, _) in enumerate(problem.tensors):
        for c in consumers:
            for k in range(1, chips):
                m.add_implication(y[p][k], y[c][k])
        for k in range(1, chips):
            z = m.new_bool_var(f"z{t}_{k}")
            for c in consumers:
                m.add(z >= y[c][k] - y[p][k])
            crossings[t, k] = z
    ticks = [[math.floor(problem.unit_time_s[u][k] / tick_s) for k in range(chips)]
             for u in range(n)]
    links = {}  # k: ticks of the link from chip k - 1 to chip k, linear in the crossings
    for k in range(1, chips):
        # A link CP-SAT cannot encode exactly (not affine in bytes) is left out: the model is
        # then a relaxation, so its bound stays a bound; plans are costed exactly after.
        affine = as_affine(problem.link(k - 1))
        if affine is None:
            continue
        coef = [math.floor(nbytes / affine.bytes_per_s / tick_s) for _, _, nbytes in problem.tensors]
        terms = [c * crossings[t, k] for t, c in enumerate(coef) if c]
        latency = math.floor(affine.latency_s / tick_s)
        if latency:  # paid only when something is sent
            sent = m.new_bool_var(f"sent{k}")
            for t in range(len(problem.tensors)):
                m.add_implication(crossings[t, k], sent)
            terms.append(latency * sent)
        if terms:
            links[k] = (sum(terms), latency + sum(coef))
    longest = max((top for _, top in links.values()), default=0)
    horizon = sum(max(row) for row in ticks) + 2 * longest + 1
    bottleneck = m.new_int_var(0, horizon, "bottleneck")
    for k in range(chips):
        load = sum(ticks[u][k] * (ge(u, k) - ge(u, k + 1)) for u in range(n))
        if not problem.overlaps(k):  # busy for its transfers in and out too
            load += sum(links[j][0] for j in (k, k + 1) if j in links)
        m.add(load <= bottleneck)
    for expr, _ in links.values():
        m.add(expr <= bottleneck)
    for k, capacity in enumerate(problem.memory_bytes):
        if capacity > 0:
            on_k = [ge(u, k) - ge(u, k + 1) for u in range(n)]
            live = m.new_int_var(0, max(problem.live_bytes, default=0), f"live{k}")
            for u in range(n):
                if problem.live_bytes[u]:
                    m.add(live >= problem.live_bytes[u] * on_k[u])
            m.add(sum(problem.weight_bytes[u] * on_k[u] for u in range(n) if problem.weight_bytes[u])
                  + live <= capacity)
    bytes_expr = sum(nbytes * crossings[t, k] for t, (_, _, nbytes) in enumerate(problem.tensors)
                     for k in range(1, chips))
    # With residency per stage the model holds each unit's fastest time: a relaxation too.
    exact = not problem.residency and all(as_affine(problem.link(k - 1)) is not None
                                          for k in range(1, chips))
    return m, y, bottleneck, bytes_expr, exact


def _hint(m: cp_model.CpModel, y, assignment: list[int], chips: int) -> None:
    m.clear_hints()
    for u, chip in enumerate(assignment):
        for k in range(1, chips):
            m.add_hint(y[u][k], chip >= k)


def _read(solver: cp_model.CpSolver, y, n: int, chips: int) -> list[int]:
    return [sum(solver.boolean_value(y[u][k]) for k in range(1, chips)) for u in range(n)]


def search(problem: PartitionProblem, best: list[int] | None, bound: float, deadline: float,
            progress: Callable[[str], None] | None,
            bottleneck_proven: bool = False) -> tuple[list[int] | None, float, bool]:
    """CP-SAT from the warm start ``best`` (None: none known): (the best assignment, a proven
    bound, whether its bytes are proven the fewest at its bottleneck). Phase 1 (the
    bottleneck) is skipped when ``best`` already meets ``bound``. Without a start, raises
    NoFit when the model has no solution and NotFound when none turned up in time."""
    n, chips = len(problem.unit_time_s), problem.n_chips
    value = evaluate(problem, best)[0] if best else np.inf
    tick_s = max(value if best else bound, 1e-30) / TICKS
    m, y, bottleneck, bytes_expr, exact = _build(problem, tick_s)
    replicable = problem.most_replicas > 1
    if not bottleneck_proven:
        m.minimize(bottleneck)
        if best:
            _hint(m, y, best, chips)
        solver = _solver((deadline - time.perf_counter()) * 0.7)
        cb = _Progress(progress, "bottleneck", tick_s * 1e3, "ms") if progress else None
        code = solver.solve(m, cb)
        if code in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            found = _read(solver, y, n, chips)
            found_value, _ = evaluate(problem, found)
            if found_value < value * (1 - 1e-12):
                best, value = found, found_value
            # Times rounded down, a link left out, the fastest residency: the model is a
            # relaxation and its bound a bound; but it has no replicas, so where a stage may
            # have them it bounds nothing.
            if not replicable:
                bound = max(bound, min(solver.best_objective_bound * tick_s, value))
        elif best is None:
            # The memory model is exact: no solution, no pipeline that fits (a replicated one
            # holds on each chip what one of its stages would).
            raise NoFit if code == cp_model.INFEASIBLE else NotFound
    if best is None:
        raise NotFound
    # Phase 2: bytes moved at (no worse than) that bottleneck.
    m.add(bottleneck <= math.floor(value / tick_s))
    m.minimize(bytes_expr)
    _hint(m, y, best, chips)
    remaining = deadline - time.perf_counter()
    bytes_proven = False
    if remaining > 0.05:
        solver = _solver(remaining * 0.9)
        cb = _Progress(progress, "bytes", 1 / 1e6, "MB") if progress else None
        code = solver.solve(m, cb)
        if code in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            found = _read(solver, y, n, chips)
            found_value, found_bytes = evaluate(problem, found)
            if found_value <= value * (1 + 1e-9) and found_bytes < evaluate(problem, best)[1]:
                best = found
            bytes_proven = (code == cp_model.OPTIMAL and exact and not replicable
                            and found_value <= value * (1 + 1e-9))
    return best, bound, bytes_proven


def _solver(limit_s: float) -> cp_model.CpSolver:
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(limit_s, 0.01)
    # One worker with a fixed seed is deterministic. Parallel workers are not, and their
    # deterministic mode (interleave_search) aborted the process (SIGABRT in a CHECK) on
    # encoder-decoder graphs at long limits.
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = 0
    return solver


def choose_replicas(chips: list[int], kinds: list[str], values: list[float], total_chips: int,
                    limit_s: float = 10.0) -> tuple[list[int], str]:
    """How many replicas of each option to run on ``total_chips`` chips for the most served
    value, with the fewest chips among equals; (counts, status).

    ``kinds[i]`` is "prefill", "decode" or "shared"; ``values[i]`` is what one replica of
    option i serves in one unit (requests/s): disaggregated replicas serve the least of their
    prefill and decode sums, shared ones add their own. Values are rounded to 1e-6 relative to
    the largest for the integer program; the counts are exact for the rounded values.
    """
    m = cp_model.CpModel()
    scale = 1e6 / max(max(values, default=0.0), 1e-300)
    ticks = [int(round(v * scale)) for v in values]
    count = [m.NewIntVar(0, total_chips // c, f"r{i}") for i, c in enumerate(chips)]
    used = sum(c * r for c, r in zip(chips, count, strict=True))
    m.Add(used <= total_chips)
    top = sum(t * (total_chips // c) for t, c in zip(ticks, chips, strict=True))
    paired = m.NewIntVar(0, top, "disaggregated")
    for kind in ("prefill", "decode"):
        m.Add(paired <= sum(t * r for t, r, k in zip(ticks, count, kinds, strict=True) if k == kind))
    shared = sum(t * r for t, r, k in zip(ticks, count, kinds, strict=True) if k == "shared")
    m.Maximize((paired + shared) * (total_chips + 1) - used)
    solver = _solver(limit_s)
    status = solver.Solve(m)  # no replicas at all is feasible: the search always has a point
    counts = [solver.Value(r) for r in count]
    return counts, (Status.OPTIMAL if status == cp_model.OPTIMAL else Status.FEASIBLE).value


def min_cut(tails: np.ndarray, heads: np.ndarray, caps: np.ndarray, source: int, sink: int) -> int:
    """The least cut between source and sink (0 when the solve fails: still a bound)."""
    flow = max_flow.SimpleMaxFlow()
    flow.add_arcs_with_capacity(tails, heads, caps)
    return flow.optimal_flow() if flow.solve(source, sink) == flow.OPTIMAL else 0


