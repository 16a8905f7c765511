"""Residency-aware partitioning: weights stay in a chip's SRAM when its stage's weights fit.

Unit times depend on the stage: a chip keeps its weights in SRAM only when all of them fit,
and its activations get the SRAM left. The exact programs decide this per stage, for every
pair of cuts (chipcut.compiler.solver.problem.Residency), so their optimum holds for the plan
as costed under its own residency. Only when those tables would be too large does this fall
back to rounds: start from an even share, cost units under the previous round's residency,
re-solve, and stop when residency no longer changes or after a few rounds, keeping the best
plan as costed under its own residency.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from chipcut.backends.protocol import Backend, Work
from chipcut.compiler.lowering.costing import ChipState, chip_state
from chipcut.compiler.lowering.units import UnitGraph
from chipcut.compiler.solver import capabilities
from chipcut.compiler.solver.build import (
    make_problem,
    optimistic_states,
    residency_problem,
    states_of,
)
from chipcut.compiler.solver.engine import NoFit, NotFound, solve
from chipcut.compiler.solver.evaluate import evaluate, lower_bound_s
from chipcut.compiler.solver.fit import no_fit_error
from chipcut.compiler.solver.problem import CHAIN, Interconnect, PartitionProblem, Solution
from chipcut.core.errors import ChipcutError, NoPlanInTime
from chipcut.core.vocab import Status

MAX_ROUNDS = 3


@dataclass(frozen=True)
class Partitioned:
    """A plan's assignment and the problem it is costed in (under its own residency)."""

    solution: Solution
    problem: PartitionProblem
    states: tuple[ChipState, ...]
    lower_bound_s: float
    notes: tuple[str, ...] = ()


def partition(units: UnitGraph, works: list[Work], backends: list[Backend], time_limit_s: float,
              progress: Callable[[str], None] | None = None, net: Interconnect = CHAIN,
              io_bytes: tuple[int, int] = (0, 0),
              hint: tuple[int, ...] | None = None) -> Partitioned:
    """The best pipeline found within ``time_limit_s``, costed under its own residency, and no
    worse than ``hint`` (a known assignment) when one is given."""
    start = time.perf_counter()
    restricted = capabilities.restrictions(units, works, backends)
    banned = set(restricted)
    exact = residency_problem(units, works, backends, net, io_bytes, banned)
    if exact is not None:
        try:
            # Building the problem is part of the budget (its residency tables take 0.15 s on
            # LLaMA-3-405B x64).
            left = max(time_limit_s - (time.perf_counter() - start), 0.0)
            solution = solve(exact, time_limit_s=left, progress=progress, hint=hint)
        except NoFit:
            raise no_fit_error(units, works, backends) from None
        except NotFound:
            raise _not_found(len(backends), time_limit_s) from None
        own = states_of(works, solution.chip_of_unit, backends)
        found = Partitioned(solution, make_problem(units, works, backends, own, net, io_bytes,
                                                   banned), own, lower_bound_s(exact))
        return _checked(found, units, works, backends, banned, restricted, start)
    even = sum(w.weight_bytes for w in works) // len(backends)
    states = tuple(chip_state(b, even) for b in backends)
    best: Partitioned | None = None

    def problem_for(states) -> PartitionProblem:
        return make_problem(units, works, backends, states, net, io_bytes, banned)
    for round_ in range(MAX_ROUNDS):
        remaining = time_limit_s - (time.perf_counter() - start)
        if best is not None and remaining < 0.05:
            break
        problem = problem_for(states)
        share = remaining / (MAX_ROUNDS - round_) if round_ < MAX_ROUNDS - 1 else remaining
        try:
            solution = solve(problem, time_limit_s=max(share, 0.05), progress=progress,
                             hint=hint if round_ == 0 else None)
        except NoFit:
            raise no_fit_error(units, works, backends) from None
        except NotFound:
            raise _not_found(len(backends), time_limit_s) from None
        own = states_of(works, solution.chip_of_unit, backends)
        if own == states:  # consistent: the solver's bound is a bound for this plan
            found = Partitioned(solution, problem, own, lower_bound_s(problem))
            if best is None or found.solution.bottleneck_s <= best.solution.bottleneck_s:
                best = found
            break
        left = time_limit_s - (time.perf_counter() - start)
        found = _recost(solution, own, problem_for(own), problem_for(optimistic_states(backends)), left)
        if best is None or found.solution.bottleneck_s < best.solution.bottleneck_s:
            best = found
        states = own
    return _checked(best, units, works, backends, banned, restricted, start)


def _not_found(chips: int, time_limit_s: float) -> NoPlanInTime:
    return NoPlanInTime(f"no pipeline over {chips} chips that fits their memory turned up within "
                        f"the time limit ({time_limit_s:.3g} s), though none is proven impossible "
                        "(the graph is too wide to search it all); give a longer --time-limit, "
                        "more chips, or chips with more memory")


def _checked(best: Partitioned, units: UnitGraph, works: list[Work], backends: list[Backend],
             banned: set, restricted: dict, start: float) -> Partitioned:
    """The plan with its wall time and notes, unless it had to use a chip that cannot run a unit."""
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
    status = Status.OPTIMAL if gap <= 1e-6 else Status.FEASIBLE
    return Partitioned(replace(solution, status=status, bottleneck_s=bottleneck, bound_s=bound,
                               gap=gap, bytes_moved=moved), problem, states, bound)
