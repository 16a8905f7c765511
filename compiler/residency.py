"""Residency-aware partitioning: solve, derive each chip's SRAM residency, re-solve to a fixed point.

A chip keeps its weights in SRAM only when all of them fit, which depends on
the cut; the cut depends on the times, which depend on residency. Starting
from an even split, each round costs units under the previous round's
residency and re-solves; it stops when residency no longer changes (then the
solver's bound holds for the plan) or after a few rounds, keeping the best plan
as costed under its own residency.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from backends.protocol import Backend, Work
from compiler import capabilities
from compiler.costing import ChipState, chip_state, unit_times
from compiler.errors import ChipcutError
from compiler.partition import PartitionProblem, Solution, evaluate, lower_bound_s, solve
from compiler.units import UnitGraph

MAX_ROUNDS = 3


@dataclass(frozen=True)
class Partitioned:
    solution: Solution
    problem: PartitionProblem
    states: tuple[ChipState, ...]
    lower_bound_s: float
    notes: tuple[str, ...] = ()


def make_problem(units: UnitGraph, times: list[list[float]], backends: list[Backend],
                 banned: set[tuple[int, int]] = frozenset()) -> PartitionProblem:
    times = capabilities.apply([list(row) for row in times], banned)
    return PartitionProblem(
        unit_time_s=tuple(tuple(row) for row in times),
        tensors=tuple((p, c, b) for p, c, b, _ in units.tensors),
        n_chips=len(backends),
        link_bytes_per_s=tuple(b.spec.link.bytes_per_s for b in backends[:-1]),
        link_latency_s=tuple(b.spec.link.latency_s for b in backends[:-1]),
    )


def states_of(works: list[Work], chip_of_unit: tuple[int, ...], backends: list[Backend]) -> tuple[ChipState, ...]:
    weights = [0] * len(backends)
    for u, chip in enumerate(chip_of_unit):
        weights[chip] += works[u].weight_bytes
    return tuple(chip_state(b.spec, w) for b, w in zip(backends, weights, strict=True))


def partition(units: UnitGraph, works: list[Work], backends: list[Backend], time_limit_s: float,
              progress: Callable[[str], None] | None = None) -> Partitioned:
    """The best pipeline found within ``time_limit_s``, costed under its own residency."""
    start = time.perf_counter()
    restricted = capabilities.restrictions(units, works, backends)
    banned = set(restricted)
    even = sum(w.weight_bytes for w in works) // len(backends)
    states = tuple(chip_state(b.spec, even) for b in backends)
    best: Partitioned | None = None
    for round_ in range(MAX_ROUNDS):
        remaining = time_limit_s - (time.perf_counter() - start)
        if best is not None and remaining < 0.05:
            break
        problem = make_problem(units, unit_times(works, backends, list(states)), backends, banned)
        share = remaining / (MAX_ROUNDS - round_) if round_ < MAX_ROUNDS - 1 else remaining
        solution = solve(problem, time_limit_s=max(share, 0.05), progress=progress)
        own = states_of(works, solution.chip_of_unit, backends)
        if own == states:  # consistent: the solver's bound is a bound for this plan
            found = Partitioned(solution, problem, own, lower_bound_s(problem))
            if best is None or found.solution.bottleneck_s <= best.solution.bottleneck_s:
                best = found
            break
        found = _recost(units, works, backends, solution, own, banned)
        if best is None or found.solution.bottleneck_s < best.solution.bottleneck_s:
            best = found
        states = own
    wall = time.perf_counter() - start
    for u, k in capabilities.violations(best.solution.chip_of_unit, banned):
        raise ChipcutError(f"node {units.units[u][0]} ({works[u].op}, {works[u].dtype}) was placed on "
                           f"chip {k} ({backends[k].name}), which cannot run it, because no valid "
                           "pipeline avoids it; reorder the chips or give a longer --time-limit")
    return replace(best, solution=replace(best.solution, wall_s=wall),
                   notes=capabilities.notes(restricted))


def _recost(units: UnitGraph, works: list[Work], backends: list[Backend], solution: Solution,
            states: tuple[ChipState, ...], banned: set[tuple[int, int]]) -> Partitioned:
    """An assignment costed under its own residency; its bound is only the trivial one."""
    problem = make_problem(units, unit_times(works, backends, list(states)), backends, banned)
    bottleneck, moved = evaluate(problem, solution.chip_of_unit)
    optimistic = make_problem(units, unit_times(works, backends, _optimistic(works, backends)),
                              backends, banned)
    bound = min(lower_bound_s(optimistic), bottleneck)
    gap = (bottleneck - bound) / bottleneck if bottleneck > 0 else 0.0
    status = "OPTIMAL" if gap <= 1e-6 else "FEASIBLE"
    return Partitioned(replace(solution, status=status, bottleneck_s=bottleneck, bound_s=bound,
                               gap=gap, bytes_moved=moved), problem, states, bound)


def _optimistic(works: list[Work], backends: list[Backend]) -> list[ChipState]:
    """Every chip with its weights resident and all of its SRAM free: no plan does better."""
    return [ChipState(True, b.spec.sram_bytes) for b in backends]
