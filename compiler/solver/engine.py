"""Partitioner: the exact lattice program, and where the lattice is too large the cut bound,
balanced orders and CP-SAT (the only OR-Tools import: CP-SAT and the bound's minimum cuts).

``solve`` first runs the exact program over the prefixes of the unit order (the
classic chain DP: a plan and an upper bound). When the unit graph has at most
``MAX_IDEALS`` ideals, the program over all of them is exact for every pipeline
(``chipcut.compiler.solver.lattice``): status OPTIMAL, no search. Otherwise
(``chipcut.compiler.solver.wide``) a bound that sees the links and plans cut along orders
that fill each stage come first; CP-SAT then searches from the best plan:
variables y[u][k] = [chip(u) >= k] for k = 1..N-1 make stages contiguous
(y[p][k] <= y[c][k] along every edge, so no cycle between chips) and keep the model
linear: load_k = sum_u t[u][k] (y[u][k] - y[u][k+1]); a tensor crosses link k when
y[c][k] - y[p][k] = 1 for some consumer c. Phase 1 minimizes the bottleneck (slowest
chip or link; skipped when the plan meets the bound), phase 2 the bytes moved at it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
from ortools.graph.python import max_flow
from ortools.sat.python import cp_model

from chipcut.compiler.solver import lattice, wide
from chipcut.compiler.solver.evaluate import evaluate, lower_bound_s
from chipcut.compiler.solver.packing import overfull_chip, packed_split, valid_start
from chipcut.compiler.solver.problem import AffineLink, PartitionProblem, Solution, as_affine
from chipcut.core.vocab import Objective, Status, Topology

# The bottleneck of the warm start is ~TICKS integer time units. Times are rounded down, so the
# model's optimum never exceeds the problem's (its bound is a bound), and a plan it proves is
# within a tick per unit of a stage of it (about 1e-6 for a thousand units).
TICKS = 1_000_000_000
MAX_IDEALS = 20_000
FALLBACK = "time limit: packed split"


class NoFit(Exception):
    """No pipeline keeps every chip's weights and live activations within its memory."""


class NotFound(Exception):
    """No pipeline that fits memory was found within the time limit (none is proven absent)."""


def _packed_upper(problem: PartitionProblem) -> tuple[tuple[int, ...] | None, float]:
    """The packed split and its value where that bounds the chain DP's stages (a chain,
    the throughput objective), else inf: the DP then holds only pairs within it."""
    packed = packed_split(problem)
    if packed is None or problem.topology != Topology.CHAIN or problem.objective != Objective.THROUGHPUT:
        return packed, np.inf
    return packed, evaluate(problem, packed)[0] * (1 + 1e-9)


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


def solve(problem: PartitionProblem, time_limit_s: float = 10.0,
          progress: Callable[[str], None] | None = None, max_ideals: int = MAX_IDEALS,
          hint: tuple[int, ...] | None = None) -> Solution:
    """Best pipeline assignment found within ``time_limit_s`` (never longer), with its bound and gap;
    never worse than ``hint`` (a known assignment, e.g. a plan for fewer chips) when it is valid.

    Same problem, same answer: the programs are exact and CP-SAT runs with fixed seed
    and deterministic parallelism. Raises NoFit when no pipeline fits in memory, and NotFound
    when none that fits was found in time (none proven absent).
    """
    start = time.perf_counter()
    deadline = start + time_limit_s
    say = progress or (lambda _msg: None)
    chips = problem.n_chips
    method = "chain DP"
    packed, upper = _packed_upper(problem)
    try:
        base = lattice.chain_dp(problem, deadline, replicate=False, upper_s=upper)
    except lattice.OutOfTime:
        base, method = None, FALLBACK
        say("chain DP: out of time, falling back to the packed split of the unit order")
    best = (base.chip_of_unit, base.replicas) if base else None
    timed_out = base is None and time.perf_counter() > deadline
    if timed_out:
        if packed is None and not valid_start(problem, hint):
            raise NoFit if _one_order(problem) else NotFound  # along the unit order
        best = (packed, None) if packed is not None else None
    if valid_start(problem, hint) and (best is None or evaluate(problem, hint)[0] <
                                  evaluate(problem, *best)[0] * (1 - 1e-12)):
        best = (tuple(hint), None)
        method = "time limit: the given start" if timed_out else "chain DP, bettered by the given start"
    bound = lower_bound_s(problem)
    exact = False
    ideals = None if timed_out else lattice.enumerate_ideals(lattice.predecessors(problem),
                                                              max_ideals, deadline)
    if ideals is not None:
        say(f"lattice: {len(ideals)} ideals of {len(problem.unit_time_s)} units")
        try:
            # The programs cost along the chain: another topology's value bounds nothing there.
            chain = problem.topology == Topology.CHAIN
            upper = evaluate(problem, *best)[0] if best and chain else np.inf
            # When the ideals are the prefixes (the unit graph is a chain), the chain DP already
            # ran over every pipeline; only replication is left to try.
            prefixes = len(ideals) == len(problem.unit_time_s) + 1
            found = _lattice_best(problem, ideals, upper, deadline, prefixes,
                                  base if prefixes else None)
            best, exact = (found.chip_of_unit, found.replicas), _lattice_exact(problem)
            method = f"lattice DP ({len(ideals)} ideals)"
            if not exact:
                best, bound = _linkless(problem, ideals, best, bound, deadline, prefixes)
        except lattice.OutOfTime:
            say("lattice: out of time or too many pairs, keeping the chain DP plan")
            if _cp_sat_applies(problem, deadline):
                best, bound, method = _wide(problem, best, bound, deadline, progress,
                                            f"lattice of {len(ideals)} ideals too large")
            elif best is None:
                raise NotFound from None
    elif _cp_sat_applies(problem, deadline):
        best, bound, method = _wide(problem, best, bound, deadline, progress,
                                    f"more than {max_ideals} ideals")
    elif best is None:  # only the unit order was tried
        raise NoFit if chips == 1 or _one_order(problem) else NotFound
    elif chips > 1:
        method += ("; the time limit left no time to search past the unit order"
                   if _cp_sat_applies(problem, np.inf) else
                   f"; only the unit order searched (more than {max_ideals} ideals; CP-SAT "
                   f"models the chain at the throughput objective)")
    if overfull_chip(problem, best[0]) is not None:  # no engine returns one; never let it out
        raise NoFit
    value, moved = evaluate(problem, *best)
    if exact:
        bound = value
    bound = min(bound, value)
    gap = (value - bound) / value if value > 0 else 0.0
    status = Status.OPTIMAL if gap <= 1e-6 else Status.FEASIBLE
    if not _lattice_exact(problem):
        # The programs count bytes along the chain; this topology routes them otherwise.
        method += f"; fewest bytes not proven on a {problem.topology}"
    say(f"{method}: {status}, objective {value * 1e3:.4g} ms, bound {bound * 1e3:.4g} ms, "
        f"gap {100 * gap:.2f}%")
    replicas = tuple(best[1]) if best[1] else (1,) * chips
    return Solution(tuple(best[0]), status, value, bound, gap, moved, time.perf_counter() - start,
                    replicas, method)


def _lattice_exact(problem: PartitionProblem) -> bool:
    """Whether the lattice program's optimum is the problem's: on a chain, and on a switch
    for throughput (the switch's bytes per stage are additive); a ring routes otherwise."""
    return problem.topology == Topology.CHAIN or (problem.topology == Topology.SWITCH and
                                                  problem.objective == Objective.THROUGHPUT)


def _linkless(problem: PartitionProblem, ideals: list[int], best: tuple, bound: float,
              deadline: float, prefixes: bool) -> tuple[tuple, float]:
    """On a topology the lattice program does not route exactly (a ring; a switch for
    latency): the same program with every link free, whose optimum bounds every pipeline's
    value from below (links only add resources and time), and whose plan is a candidate.

    (the better of ``best`` and that plan, the larger of ``bound`` and that optimum). When
    the best plan's value meets the bound it is proven optimal, which it is whenever links
    do not decide the optimum."""
    free = AffineLink(np.inf, 0.0)
    relaxed = replace(problem, topology=Topology.CHAIN, links=(free,) * problem.n_chips,
                      switch=None)
    try:
        found = _lattice_best(relaxed, ideals, np.inf, deadline, prefixes)
    except (lattice.OutOfTime, NoFit):
        return best, bound
    plan = (found.chip_of_unit, found.replicas)
    if evaluate(problem, *plan)[0] < evaluate(problem, *best)[0] * (1 - 1e-12):
        best = plan
    return best, max(bound, evaluate(relaxed, *plan)[0])


def _one_order(problem: PartitionProblem) -> bool:
    """Whether the unit order is the graph's only topological order (each unit feeds the next),
    so that searching along it searches every pipeline."""
    feeds = {(p, c) for p, consumers, _ in problem.tensors for c in consumers}
    return all((u - 1, u) in feeds for u in range(1, len(problem.unit_time_s)))


def _cp_sat_applies(problem: PartitionProblem, deadline: float) -> bool:
    """CP-SAT models the chain and the throughput objective, given time to search."""
    return (problem.objective == Objective.THROUGHPUT and problem.topology == Topology.CHAIN
            and problem.n_chips > 1 and deadline - time.perf_counter() > 0.1)


def _lattice_best(problem: PartitionProblem, ideals: list[int], upper: float, deadline: float,
                  prefixes: bool = False, plain_found: lattice.Chain | None = None) -> lattice.Chain:
    """The exact plan without replication (``plain_found`` when already known), or with it
    when that is strictly better."""
    plain = lattice.stage_model(problem, replicate=False)
    model = lattice.stage_model(problem)
    replicable = problem.objective == Objective.THROUGHPUT and model.max_replicas.max(initial=1) > 1
    if plain_found is not None and not replicable:
        return plain_found
    ideal_sets = lattice.Lattice(lattice.prefix_ideals(len(problem.unit_time_s)) if prefixes
                                 else ideals, plain, prefix=prefixes)
    floor = max(problem.host_in_s, problem.host_out_s)
    found = plain_found or lattice.solve_chain(ideal_sets, plain, problem.objective, upper,
                                               deadline, floor)
    if found is None:
        raise NoFit
    if replicable:
        replicated = lattice.solve_chain(ideal_sets, model, problem.objective, found.value, deadline,
                                         floor)
        if replicated is not None and max(replicated.value, floor) < max(found.value, floor) * (1 - 1e-9):
            return replicated
    return found


def _wide(problem: PartitionProblem, best: tuple | None, bound: float, deadline: float,
          progress: Callable[[str], None] | None, why: str) -> tuple[tuple, float, str]:
    """A graph too wide for the lattice program: the cut bound, plans along balanced orders
    (with replicas where stages may have them), then CP-SAT from the best plain one; (the
    best plan, its proven bound, the method). ``best``: the chain DP plan, None when no cut
    of the unit order fits memory. Raises NoFit when CP-SAT proves no pipeline fits, and
    NotFound when none that fits turned up in time."""
    say = progress or (lambda _msg: None)
    share = time.perf_counter() + (deadline - time.perf_counter()) / 4
    bound = max(bound, wide.cut_bound(problem, _min_cut, share))
    replicable = max(problem.max_replicas, default=1) > 1
    candidates = [best] if best else []
    if replicable:
        try:
            along = lattice.chain_dp(problem, deadline, replicate=True)
        except lattice.OutOfTime:
            along = None
        if along is not None:
            candidates.append((along.chip_of_unit, along.replicas))
    value = min((evaluate(problem, *c)[0] for c in candidates), default=np.inf)
    say(f"cut bound {bound * 1e3:.4g} ms; along the unit order {value * 1e3:.4g} ms")
    method = f"CP-SAT ({why})"
    for found in wide.balanced_plans(problem, bound, value, deadline, replicable):
        candidates.append(found)
        method = f"balanced orders, CP-SAT ({why})"
    plain = [c for c in candidates if not c[1] or max(c[1]) <= 1]
    start = min(plain, key=lambda c: evaluate(problem, *c)[0], default=None)
    value = min((evaluate(problem, *c)[0] for c in candidates), default=np.inf)
    if start is not None:
        say(f"best so far {value * 1e3:.4g} ms")
    assignment, bound, bytes_proven = _cp_sat(problem, list(start[0]) if start else None, bound,
                                              deadline, progress,
                                              bottleneck_proven=value <= bound * (1 + 1e-9))
    if assignment is not None:
        candidates.append((tuple(assignment), None))
    # The fastest, then the fewest bytes among those as fast (to rounding).
    scored = [(evaluate(problem, *c), c) for c in candidates]
    fastest = min(v for (v, _), _ in scored)
    moved, _, chosen = min((b, i, c) for i, ((v, b), c) in enumerate(scored)
                           if v <= fastest * (1 + 1e-9))
    proven = bytes_proven and moved <= evaluate(problem, assignment)[1]
    if not proven:
        method += "; fewest bytes not proven"
    return (tuple(chosen[0]), chosen[1]), bound, method


def _min_cut(tails: np.ndarray, heads: np.ndarray, caps: np.ndarray, source: int, sink: int) -> int:
    """The least cut between source and sink (0 when the solve fails: still a bound)."""
    flow = max_flow.SimpleMaxFlow()
    flow.add_arcs_with_capacity(tails, heads, caps)
    return flow.optimal_flow() if flow.solve(source, sink) == flow.OPTIMAL else 0


def _cp_sat(problem: PartitionProblem, best: list[int] | None, bound: float, deadline: float,
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
    replicable = max(problem.max_replicas, default=1) > 1
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
