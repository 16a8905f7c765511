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

from chipcut.backends.protocol import Backend, Work
from chipcut.compiler.lowering.costing import ChipState, chip_state, unit_times
from chipcut.compiler.lowering.units import UnitGraph
from chipcut.compiler.solver import capabilities
from chipcut.compiler.solver.engine import NoFit, solve
from chipcut.compiler.solver.fit import live_bytes, memory_of, no_fit_error
from chipcut.compiler.solver.problem import (
    CHAIN,
    Interconnect,
    PartitionProblem,
    Solution,
    evaluate,
    host_link_s,
    lower_bound_s,
)
from chipcut.core.errors import ChipcutError

MAX_ROUNDS = 3


@dataclass(frozen=True)
class Partitioned:
    solution: Solution
    problem: PartitionProblem
    states: tuple[ChipState, ...]
    lower_bound_s: float
    notes: tuple[str, ...] = ()


def make_problem(units: UnitGraph, times: list[list[float]], backends: list[Backend],
                 banned: set[tuple[int, int]] = frozenset(), works: list[Work] | None = None,
                 net: Interconnect = CHAIN, io_bytes: tuple[int, int] = (0, 0)) -> PartitionProblem:
    """The solver's input: unit times, tensors, memory per chip, links and topology."""
    times = capabilities.apply([list(row) for row in times], banned)
    links = [b.spec.link for b in backends]
    in_bytes, out_bytes = io_bytes
    switch_bw, switch_lat = net.switch(links[0])
    host_in = host_link_s(in_bytes, net, links[0].bytes_per_s, links[0].latency_s)
    host_out = host_link_s(out_bytes, net, links[-1].bytes_per_s, links[-1].latency_s)
    return PartitionProblem(
        unit_time_s=tuple(tuple(row) for row in times),
        tensors=tuple((p, c, b) for p, c, b, _ in units.tensors),
        n_chips=len(backends),
        link_bytes_per_s=tuple(link.bytes_per_s for link in links),
        link_latency_s=tuple(link.latency_s for link in links),
        weight_bytes=tuple(w.weight_bytes for w in works) if works else (),
        live_bytes=live_bytes(units, works) if works else (),
        memory_bytes=tuple(memory_of(b)[1] for b in backends) if works else (),
        overlap=tuple(link.overlap for link in links),
        max_replicas=identical_runs(backends) if net.replicate else (),
        topology=net.topology,
        switch_bytes_per_s=switch_bw,
        switch_latency_s=switch_lat,
        host_in_s=host_in, host_out_s=host_out, objective=net.objective,
    )


def identical_runs(backends: list[Backend]) -> tuple[int, ...]:
    """For each chip, how many chips from it on run the same backend."""
    out = [1] * len(backends)
    for k in range(len(backends) - 2, -1, -1):
        if backends[k + 1].name == backends[k].name:
            out[k] = out[k + 1] + 1
    return tuple(out)


def states_of(works: list[Work], chip_of_unit: tuple[int, ...], backends: list[Backend]) -> tuple[ChipState, ...]:
    weights = [0] * len(backends)
    for u, chip in enumerate(chip_of_unit):
        weights[chip] += works[u].weight_bytes
    return tuple(chip_state(b.spec, w) for b, w in zip(backends, weights, strict=True))


def partition(units: UnitGraph, works: list[Work], backends: list[Backend], time_limit_s: float,
              progress: Callable[[str], None] | None = None, net: Interconnect = CHAIN,
              io_bytes: tuple[int, int] = (0, 0)) -> Partitioned:
    """The best pipeline found within ``time_limit_s``, costed under its own residency."""
    start = time.perf_counter()
    restricted = capabilities.restrictions(units, works, backends)
    banned = set(restricted)
    even = sum(w.weight_bytes for w in works) // len(backends)
    states = tuple(chip_state(b.spec, even) for b in backends)
    best: Partitioned | None = None

    def problem_for(states) -> PartitionProblem:
        return make_problem(units, unit_times(works, backends, list(states)), backends, banned,
                            works, net, io_bytes)
    for round_ in range(MAX_ROUNDS):
        remaining = time_limit_s - (time.perf_counter() - start)
        if best is not None and remaining < 0.05:
            break
        problem = problem_for(states)
        share = remaining / (MAX_ROUNDS - round_) if round_ < MAX_ROUNDS - 1 else remaining
        try:
            solution = solve(problem, time_limit_s=max(share, 0.05), progress=progress)
        except NoFit:
            raise no_fit_error(units, works, backends) from None
        own = states_of(works, solution.chip_of_unit, backends)
        if own == states:  # consistent: the solver's bound is a bound for this plan
            found = Partitioned(solution, problem, own, lower_bound_s(problem))
            if best is None or found.solution.bottleneck_s <= best.solution.bottleneck_s:
                best = found
            break
        left = time_limit_s - (time.perf_counter() - start)
        found = _recost(solution, own, problem_for(own), problem_for(_optimistic(backends)), left)
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


def _recost(solution: Solution, states: tuple[ChipState, ...], problem: PartitionProblem,
            optimistic: PartitionProblem, time_left_s: float) -> Partitioned:
    """An assignment costed under its own residency. Its bound is the optimum (or bound) of
    the optimistic problem, where every unit is as fast as any residency makes it."""
    bottleneck, moved = evaluate(problem, solution.chip_of_unit, solution.replicas)
    bound = lower_bound_s(optimistic)
    if time_left_s > 0.05:
        bound = max(bound, solve(optimistic, time_limit_s=time_left_s * 0.5).bound_s)
    bound = min(bound, bottleneck)
    gap = (bottleneck - bound) / bottleneck if bottleneck > 0 else 0.0
    status = "OPTIMAL" if gap <= 1e-6 else "FEASIBLE"
    return Partitioned(replace(solution, status=status, bottleneck_s=bottleneck, bound_s=bound,
                               gap=gap, bytes_moved=moved), problem, states, bound)


def _optimistic(backends: list[Backend]) -> list[ChipState]:
    """Every chip with its weights resident and all of its SRAM free: no plan does better."""
    return [ChipState(True, b.spec.sram_bytes) for b in backends]
