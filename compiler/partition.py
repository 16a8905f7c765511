"""Partitioner: CP-SAT assigns every unit to a chip of a pipeline (the only OR-Tools import).

Variables y[u][k] = [chip(u) >= k] for k = 1..N-1 make stages contiguous
(y[p][k] <= y[c][k] along every edge, so no cycle between chips) and keep the
model linear: load_k = sum_u t[u][k] (y[u][k] - y[u][k+1]); a tensor crosses
link k when y[c][k] - y[p][k] = 1 for some consumer c. Phase 1 minimizes the
bottleneck (slowest chip or link), phase 2 the bytes moved at that bottleneck.
Both are warm-started from the exact chain DP (``compiler.dp``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model

from compiler import dp

TICKS = 1_000_000  # the bottleneck of the warm start is ~TICKS integer time units


@dataclass(frozen=True)
class PartitionProblem:
    """Pure solver input. Units are in a topological order.

    unit_time_s[u][k]: seconds of unit u on chip k; tensors: (producer, consumers,
    bytes) between units; link_bytes_per_s[k-1], link_latency_s[k-1]: the link
    from chip k-1 to chip k (per direction).
    """

    unit_time_s: tuple[tuple[float, ...], ...]
    tensors: tuple[tuple[int, tuple[int, ...], int], ...]
    n_chips: int
    link_bytes_per_s: tuple[float, ...]
    link_latency_s: tuple[float, ...]


@dataclass(frozen=True)
class Solution:
    chip_of_unit: tuple[int, ...]
    status: str  # OPTIMAL, FEASIBLE (time limit hit with a plan)
    bottleneck_s: float
    bound_s: float
    gap: float
    bytes_moved: int
    wall_s: float


def evaluate(problem: PartitionProblem, chip_of_unit: list[int] | tuple[int, ...]) -> tuple[float, int]:
    """(bottleneck seconds, bytes moved) of an assignment on a chain of links."""
    loads = [0.0] * problem.n_chips
    for u, k in enumerate(chip_of_unit):
        loads[k] += problem.unit_time_s[u][k]
    link_bytes = [0] * max(problem.n_chips - 1, 0)
    for p, consumers, nbytes in problem.tensors:
        last = max(chip_of_unit[c] for c in consumers)
        for k in range(chip_of_unit[p] + 1, last + 1):
            link_bytes[k - 1] += nbytes
    links = [problem.link_latency_s[k] + b / problem.link_bytes_per_s[k] if b else 0.0
             for k, b in enumerate(link_bytes)]
    return max(loads + links), sum(link_bytes)


def lower_bound_s(problem: PartitionProblem) -> float:
    """max(total work / N, heaviest unit), each unit at its fastest chip."""
    fastest = [min(t) for t in problem.unit_time_s]
    return max(sum(fastest) / problem.n_chips, max(fastest, default=0.0))


def warm_start(problem: PartitionProblem) -> list[int]:
    """Exact DP along the given topological order: least bottleneck, then fewest bytes."""
    costs = _chain_costs(problem)
    best, _ = dp.min_bottleneck(costs)
    _, bounds = dp.min_bytes_within(costs, best)
    return dp.assignment_from_boundaries(bounds)


def _chain_costs(problem: PartitionProblem) -> dp.ChainCosts:
    n = len(problem.unit_time_s)
    return dp.ChainCosts(
        unit_time_s=np.asarray(problem.unit_time_s, dtype=np.float64).reshape(n, problem.n_chips),
        cut_bytes=dp.cut_bytes_along(list(range(n)), list(problem.tensors), n),
        link_bytes_per_s=np.asarray(problem.link_bytes_per_s, dtype=np.float64),
        link_latency_s=np.asarray(problem.link_latency_s, dtype=np.float64),
    )


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
    ticks = [[round(problem.unit_time_s[u][k] / tick_s) for k in range(chips)] for u in range(n)]
    horizon = sum(max(row) for row in ticks) + 1
    link_ticks = []
    for k in range(1, chips):
        bw, lat = problem.link_bytes_per_s[k - 1], problem.link_latency_s[k - 1]
        coef = [round(nbytes / bw / tick_s) for _, _, nbytes in problem.tensors]
        link_ticks.append((round(lat / tick_s), coef))
        horizon = max(horizon, round(lat / tick_s) + sum(coef) + 1)
    bottleneck = m.new_int_var(0, horizon, "bottleneck")
    for k in range(chips):
        m.add(sum(ticks[u][k] * (ge(u, k) - ge(u, k + 1)) for u in range(n)) <= bottleneck)
    for k, (lat, coef) in enumerate(link_ticks, start=1):
        used = [coef[t] * crossings[t, k] for t in range(len(problem.tensors)) if coef[t]]
        if used:
            m.add(lat + sum(used) <= bottleneck)
    bytes_expr = sum(nbytes * crossings[t, k] for t, (_, _, nbytes) in enumerate(problem.tensors)
                     for k in range(1, chips))
    return m, y, bottleneck, bytes_expr


def _hint(m: cp_model.CpModel, y, assignment: list[int], chips: int) -> None:
    m.clear_hints()
    for u, chip in enumerate(assignment):
        for k in range(1, chips):
            m.add_hint(y[u][k], chip >= k)


def _read(solver: cp_model.CpSolver, y, n: int, chips: int) -> list[int]:
    return [sum(solver.boolean_value(y[u][k]) for k in range(1, chips)) for u in range(n)]


def solve(problem: PartitionProblem, time_limit_s: float = 10.0,
          progress: Callable[[str], None] | None = None) -> Solution:
    """Best pipeline assignment found within ``time_limit_s`` (never longer), with its bound and gap.

    Same problem, same answer: the search runs with a deterministic time limit
    and deterministic parallelism.
    """
    start = time.perf_counter()
    n, chips = len(problem.unit_time_s), problem.n_chips
    best = warm_start(problem)
    bound = lower_bound_s(problem)
    value, _ = evaluate(problem, best)
    status = "OPTIMAL" if value <= bound * (1 + 1e-9) or chips == 1 else "FEASIBLE"
    if status != "OPTIMAL":
        tick_s = max(value, 1e-30) / TICKS
        m, y, bottleneck, bytes_expr = _build(problem, tick_s)
        budget = time_limit_s - (time.perf_counter() - start)
        # Phase 1: the bottleneck.
        m.minimize(bottleneck)
        _hint(m, y, best, chips)
        solver = _solver(budget * 0.7)
        cb = _Progress(progress, "bottleneck", tick_s * 1e3, "ms") if progress else None
        code = solver.solve(m, cb)
        if code in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            found = _read(solver, y, n, chips)
            found_value, _ = evaluate(problem, found)
            if found_value < value * (1 - 1e-12):
                best, value = found, found_value
            # Optimal at tick resolution (1e-6 of the bottleneck) counts as optimal.
            optimal = code == cp_model.OPTIMAL
            bound = value if optimal else max(bound, solver.best_objective_bound * tick_s)
            status = "OPTIMAL" if optimal else "FEASIBLE"
        # Phase 2: bytes moved at (no worse than) that bottleneck.
        m.add(bottleneck <= round(value / tick_s))
        m.minimize(bytes_expr)
        _hint(m, y, best, chips)
        remaining = time_limit_s - (time.perf_counter() - start)
        if remaining > 0.05:
            solver = _solver(remaining * 0.9)
            cb = _Progress(progress, "bytes", 1 / 1e6, "MB") if progress else None
            code = solver.solve(m, cb)
            if code in (cp_model.OPTIMAL, cp_model.FEASIBLE):
                found = _read(solver, y, n, chips)
                found_value, found_bytes = evaluate(problem, found)
                if found_value <= value * (1 + 1e-9) and found_bytes < evaluate(problem, best)[1]:
                    best = found
    value, moved = evaluate(problem, best)
    bound = min(bound, value)
    gap = (value - bound) / value if value > 0 else 0.0
    if gap <= 1e-6:
        status = "OPTIMAL"
    return Solution(tuple(best), status, value, bound, gap, moved, time.perf_counter() - start)


def _solver(limit_s: float) -> cp_model.CpSolver:
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(limit_s, 0.01)
    solver.parameters.num_workers = 2
    solver.parameters.interleave_search = True
    solver.parameters.random_seed = 0
    return solver
