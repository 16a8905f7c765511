"""CP-SAT, the search where the lattice program cannot run or leaves a gap, and the minimum
cuts of the cut bound: the only module that imports OR-Tools.

The model: variables y[u][k] = [chip(u) >= k] for k = 1..N-1 make stages contiguous
(y[p][k] <= y[c][k] along every edge, so no cycle between chips) and keep it linear:
load_k = sum_u t[u][k] (y[u][k] - y[u][k+1]). The topology's links come from
chipcut.compiler.solver.cplinks (chain, switch, ring); a chip that does not overlap its
transfers also carries its links' times. Where a chip's unit times depend on its stage's
weights (residency), the stage's weights are a variable, a Boolean per threshold says
whether they exceed it, and each threshold passed adds what it changes of the units on the
chip: the model holds the state of every stage exactly, per pipeline. The objective is
the bottleneck (slowest chip, link or switch) or one frame's latency (every stage and link
once). Phase 1 minimizes it (skipped when the start already meets the bound), phase 2 the
bytes moved at it. Times are integer ticks rounded down, so the model is a relaxation and
its bound a bound. A start's value caps the search: for throughput the first k chips do
at most k times it, which pins most units of a long graph to a few chips.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from ortools.graph.python import max_flow
from ortools.sat.python import cp_model

from chipcut.compiler.solver.cplinks import Links, OutOfTime, build_links, on_time
from chipcut.compiler.solver.evaluate import evaluate
from chipcut.compiler.solver.problem import NoFit, NotFound, PartitionProblem, Residency
from chipcut.compiler.solver.wide import closure_work
from chipcut.core.vocab import Objective, Status

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


@dataclass
class _Stage:
    """One chip's residency in the model: its stage's weights, and its unit times by them.

    ``thresholds``: the weights at which the stage's state (streamed, or resident with so much
    SRAM free) changes, ascending; above[j] = [weight > thresholds[j]]. A unit's ticks are
    base below the first threshold and gain steps[j] = (extra, units, ticks) past the j-th:
    extra >= sum of ticks[i] over those units on the chip when above[j], else extra >= 0.
    Ticks are each state's times rounded down, so the sum at any weight is that state's.
    """

    weight: cp_model.IntVar
    thresholds: list[int]
    above: list[cp_model.IntVar]
    base: np.ndarray
    steps: list[tuple[int, cp_model.IntVar, np.ndarray, np.ndarray]]


@dataclass
class _Model:
    cp: cp_model.CpModel
    y: list  # y[u][k] = [chip(u) >= k], k = 1..N-1
    links: Links  # which tensors cross which link, the links' times, the bytes moved
    objective: cp_model.IntVar  # the bottleneck (throughput) or one frame's latency, in ticks
    stages: dict[int, _Stage]  # chip: its residency, where it has one


def states(table: Residency, tick_s: float, most_bytes: int) -> tuple[list[int], np.ndarray]:
    """(thresholds, ticks): the stage weights in [0, most_bytes) past which a stage's state
    changes, and each state's unit times in ticks (rounded down), the first for weights up to
    thresholds[0]: states between equal neighbours merged."""
    cuts = {table.sram_bytes - free for free in table.free_levels[1:]}
    cuts.add(table.resident_bytes)
    thresholds = sorted(c for c in cuts if 0 <= c < most_bytes)
    rows = []
    for weight in [0] + [c + 1 for c in thresholds]:
        times = (table.streamed_s if weight > table.resident_bytes
                 else table.resident_s[table.level(weight)])
        rows.append(np.floor(np.asarray(times, dtype=np.float64) / tick_s).astype(np.int64))
    kept = [0] + [j for j in range(1, len(rows)) if (rows[j] != rows[j - 1]).any()]
    return [thresholds[j - 1] for j in kept[1:]], np.asarray([rows[j] for j in kept])


def _build(problem: PartitionProblem, tick_s: float, cap_s: float = math.inf,
           deadline: float = math.inf) -> _Model:
    """The model; with ``cap_s`` (a known plan's value) only pipelines no slower than it.
    Raises OutOfTime past ``deadline``."""
    n, chips = len(problem.unit_time_s), problem.n_chips
    m = cp_model.CpModel()
    y = [[None] + [m.new_bool_var(f"y{u}_{k}") for k in range(1, chips)] for u in range(n)]

    def ge(u: int, k: int):  # [chip(u) >= k] as a literal or a constant
        return 1 if k == 0 else (0 if k >= chips else y[u][k])

    for u in range(n):
        for k in range(1, chips - 1):
            m.add_implication(y[u][k + 1], y[u][k])
    for p, consumers, _ in problem.tensors:
        on_time(deadline)
        for c in consumers:
            for k in range(1, chips):
                m.add_implication(y[p][k], y[c][k])
    links = build_links(m, problem, y, tick_s, deadline)
    ticks = [[math.floor(problem.unit_time_s[u][k] / tick_s) for k in range(chips)]
             for u in range(n)]
    slowest = max((max(t.streamed_s + sum(t.resident_s, ())) for t in problem.residency), default=0.0)
    host = math.floor((problem.host_in_s + problem.host_out_s) / tick_s)
    horizon = (sum(max(row) for row in ticks) + n * math.floor(slowest / tick_s)
               + 2 * sum(link.top for link in links.links) + host + 1)
    objective = m.new_int_var(0, horizon, problem.objective)
    stages, loads, ons = {}, [], []
    for k in range(chips):
        on_time(deadline)
        on = [ge(u, k) - ge(u, k + 1) for u in range(n)]  # [chip(u) == k]
        ons.append(on)
        if problem.residency:
            stages[k] = _stage(m, problem, k, on, tick_s)
            loads.append(_stage_load(stages[k], on))
        else:
            loads.append(sum(ticks[u][k] * on[u] for u in range(n)))
    if problem.objective == Objective.LATENCY:  # every stage and link once, one frame
        m.add(sum(loads) + sum(link.expr for link in links.links) + host <= objective)
    else:
        for k, load in enumerate(loads):
            if not problem.overlaps(k):  # busy for its transfers in and out too
                load += sum(link.expr for link in links.links if link.ends and k in link.ends)
            m.add(load <= objective)
        for link in links.links:
            m.add(link.expr <= objective)
        m.add(objective >= math.floor(max(problem.host_in_s, problem.host_out_s) / tick_s))
    for k, capacity in enumerate(problem.memory_bytes):
        if capacity > 0:
            on_k = ons[k]
            live = m.new_int_var(0, max(problem.live_bytes, default=0), f"live{k}")
            for u in range(n):
                if problem.live_bytes[u]:
                    m.add(live >= problem.live_bytes[u] * on_k[u])
            m.add(sum(problem.weight_bytes[u] * on_k[u] for u in range(n) if problem.weight_bytes[u])
                  + live <= capacity)
    if math.isfinite(cap_s):
        m.add(objective <= math.floor(cap_s / tick_s))
        if problem.objective == Objective.THROUGHPUT:
            _within(m, problem, y, objective, tick_s, cap_s)
    return _Model(m, y, links, objective, stages)


def _stage(m: cp_model.CpModel, problem: PartitionProblem, k: int, on: list, tick_s: float) -> _Stage:
    """Chip k's residency (see _Stage)."""
    weights = problem.weight_bytes or (0,) * len(on)
    most = sum(weights)
    weight = m.new_int_var(0, most, f"weight{k}")
    m.add(weight == sum(w * on[u] for u, w in enumerate(weights) if w))
    thresholds, rows = states(problem.residency[k], tick_s, most)
    above = [m.new_bool_var(f"above{k}_{j}") for j in range(len(thresholds))]
    for j, (limit, flag) in enumerate(zip(thresholds, above, strict=True)):
        m.add(weight >= limit + 1).only_enforce_if(flag)
        m.add(weight <= limit).only_enforce_if(~flag)
        if j:
            m.add_implication(flag, above[j - 1])
    steps = []
    for j, flag in enumerate(above):
        added = rows[j + 1] - rows[j]
        units = np.flatnonzero(added)
        if not len(units):
            continue
        delta = added[units]
        extra = m.new_int_var(int(np.minimum(delta, 0).sum()), int(np.maximum(delta, 0).sum()),
                              f"extra{k}_{j}")
        m.add(extra >= sum(int(d) * on[u] for u, d in zip(units, delta, strict=True))
              ).only_enforce_if(flag)
        m.add(extra >= 0).only_enforce_if(~flag)
        steps.append((j, extra, units, delta))
    return _Stage(weight, thresholds, above, rows[0], steps)


def _stage_load(stage: _Stage, on: list):
    return (sum(int(t) * on[u] for u, t in enumerate(stage.base) if t)
            + sum(extra for _, extra, _, _ in stage.steps))


def _within(m: cp_model.CpModel, problem: PartitionProblem, y, bottleneck, tick_s: float,
            cap_s: float) -> None:
    """Only pipelines no slower than ``cap_s``: the first k chips do at most k times the
    bottleneck's work and the rest at most (N - k) times it (each unit at its fastest), so a
    unit whose ancestors alone do more than k cap_s lies past chip k, and one whose
    descendants do more than (N - k) cap_s before it. This fixes most of y on a long graph."""
    chips = problem.n_chips
    work = np.asarray([min(t) for t in problem.unit_time_s], dtype=np.float64)
    ticks = [math.floor(w / tick_s) for w in work]
    ancestors, descendants = closure_work(problem, work)
    margin = 1 + 1e-9  # rounding in the sums of work
    for k in range(1, chips):
        m.add(sum(t * (1 - y[u][k]) for u, t in enumerate(ticks) if t) <= k * bottleneck)
        m.add(sum(t * y[u][k] for u, t in enumerate(ticks) if t) <= (chips - k) * bottleneck)
        for u in range(len(work)):
            if ancestors[u] > k * cap_s * margin:
                m.add(y[u][k] == 1)
            elif descendants[u] > (chips - k) * cap_s * margin:
                m.add(y[u][k] == 0)


def _hint(model: _Model, problem: PartitionProblem, assignment: list[int], tick_s: float,
          deadline: float = math.inf) -> None:
    """Every variable's value under ``assignment``, so that CP-SAT starts from it at once.
    Raises OutOfTime past ``deadline``."""
    m, chips = model.cp, problem.n_chips
    m.clear_hints()
    for u, chip in enumerate(assignment):
        for k in range(1, chips):
            m.add_hint(model.y[u][k], chip >= k)
    for i, (var, value) in enumerate(model.links.hints):
        if i % 1024 == 0:
            on_time(deadline)
        m.add_hint(var, value(assignment))
    weights = problem.weight_bytes or (0,) * len(assignment)
    for k, stage in model.stages.items():
        on = np.asarray(assignment) == k
        held = int(sum(w for w, here in zip(weights, on, strict=True) if here))
        m.add_hint(stage.weight, held)
        for limit, flag in zip(stage.thresholds, stage.above, strict=True):
            m.add_hint(flag, held > limit)
        for j, extra, units, delta in stage.steps:
            m.add_hint(extra, int(delta[on[units]].sum()) if held > stage.thresholds[j] else 0)
    m.add_hint(model.objective, math.floor(evaluate(problem, assignment)[0] / tick_s))


def _read(solver: cp_model.CpSolver, y, n: int, chips: int) -> list[int]:
    return [sum(solver.boolean_value(y[u][k]) for k in range(1, chips)) for u in range(n)]


def search(problem: PartitionProblem, best: list[int] | None, bound: float, deadline: float,
            progress: Callable[[str], None] | None,
            bottleneck_proven: bool = False) -> tuple[list[int] | None, float, bool]:
    """CP-SAT from the warm start ``best`` (None: none known): (the best assignment, a proven
    bound, whether its bytes are proven the fewest at its bottleneck). Phase 1 (the
    bottleneck) is skipped when ``best`` already meets ``bound``. Without a start, raises
    NoFit when the model has no solution and NotFound when none turned up in time; with
    one, a model not built by the deadline leaves it as it is."""
    try:
        return _search(problem, best, bound, deadline, progress, bottleneck_proven)
    except OutOfTime:
        if best is None:
            raise NotFound from None
        return best, bound, False


def _search(problem: PartitionProblem, best: list[int] | None, bound: float, deadline: float,
            progress: Callable[[str], None] | None,
            bottleneck_proven: bool) -> tuple[list[int] | None, float, bool]:
    n, chips = len(problem.unit_time_s), problem.n_chips
    value = evaluate(problem, best)[0] if best else np.inf
    tick_s = max(value if best else bound, 1e-30) / TICKS
    model = _build(problem, tick_s, value, deadline)
    m, y, bottleneck = model.cp, model.y, model.objective
    m.add(bottleneck >= math.floor(bound / tick_s))  # no pipeline is better: prunes the search
    # Replicas serve throughput only; the model has none.
    replicable = problem.objective == Objective.THROUGHPUT and problem.most_replicas > 1
    if not bottleneck_proven:
        m.minimize(bottleneck)
        if best:
            _hint(model, problem, best, tick_s, deadline)
        solver = _solver((deadline - time.perf_counter()) * 0.7)
        cb = _Progress(progress, problem.objective, tick_s * 1e3, "ms") if progress else None
        code = solver.solve(m, cb)
        if code in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            found = _read(solver, y, n, chips)
            found_value, _ = evaluate(problem, found)
            if found_value < value * (1 - 1e-12):
                best, value = found, found_value
            # Times rounded down, a link left out: the model is a relaxation and its bound a
            # bound (of the pipelines no slower than the start, the only ones it holds); but
            # it has no replicas, so where a stage may have them it bounds nothing.
            if not replicable:
                bound = max(bound, min(solver.best_objective_bound * tick_s, value))
        elif best is None:
            # The memory model is exact: no solution, no pipeline that fits (a replicated one
            # holds on each chip what one of its stages would).
            raise NoFit if code == cp_model.INFEASIBLE else NotFound
    if best is None:
        raise NotFound
    # Phase 2: bytes moved at (no worse than) that bottleneck.
    bytes_proven = False
    # Presolve takes time of its own, which the solver's limit does not hold back: a search
    # left less than that would run past the deadline.
    if deadline - time.perf_counter() > max(0.05, 4e-6 * len(m.proto.variables)):
        m.add(bottleneck <= math.floor(value / tick_s))
        m.minimize(model.links.bytes_expr)
        try:
            _hint(model, problem, best, tick_s, deadline)
        except OutOfTime:
            return best, bound, False
        solver = _solver((deadline - time.perf_counter()) * 0.8)
        cb = _Progress(progress, "bytes", 1 / 1e6, "MB") if progress else None
        code = solver.solve(m, cb)
        if code in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            found = _read(solver, y, n, chips)
            found_value, found_bytes = evaluate(problem, found)
            if found_value <= value * (1 + 1e-9) and found_bytes < evaluate(problem, best)[1]:
                best = found
            bytes_proven = (code == cp_model.OPTIMAL and model.links.exact and not replicable
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
    # The LP with the linear constraints' cuts proves a cut search's optimum far sooner, and
    # presolve's probing cost more than it saved: on the NASNet-like net x8 (557 units, the
    # residency model) the bottleneck proof took 3.8 s with the defaults and 0.9 s so.
    solver.parameters.linearization_level = 2
    solver.parameters.cp_model_probing_level = 0
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


