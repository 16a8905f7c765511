"""The out-of-time fallback: balanced along the order, never over a chip's memory."""

from __future__ import annotations

import itertools
import random

import pytest

from chipcut.compiler.solver.engine import NoFit, solve
from chipcut.compiler.solver.packing import overfull_chip, packed_split
from chipcut.compiler.solver.problem import AffineLink, PartitionProblem


def chain_problem(rng: random.Random, n: int, chips: int, memory: int) -> PartitionProblem:
    times = tuple(tuple(rng.uniform(0.1, 1.0) * (1 + k) for k in range(chips)) for _ in range(n))
    tensors = tuple((u, (u + 1,), rng.randint(1, 100)) for u in range(n - 1))
    weights = tuple(rng.randint(0, 40) for _ in range(n))
    live = tuple(rng.randint(1, 20) for _ in range(n))
    return PartitionProblem(times, tensors, chips, (AffineLink(1e9, 0.0),) * chips,
                            weights, live, (memory,) * chips)


def contiguous_splits(n: int, chips: int):
    """Every assignment of the order to chips 0..chips-1 in order (chips may stay empty)."""
    for cuts in itertools.combinations_with_replacement(range(n + 1), chips - 1):
        bounds = (0, *cuts, n)
        yield tuple(k for k in range(chips) for _ in range(bounds[k], bounds[k + 1]))


def slowest_stage_s(problem: PartitionProblem, assignment) -> float:
    loads = [0.0] * problem.n_chips
    for u, k in enumerate(assignment):
        loads[k] += problem.unit_time_s[u][k]
    return max(loads)


@pytest.mark.parametrize("seed", range(40))
def test_packed_split_is_the_most_balanced_contiguous_split_that_fits(seed: int) -> None:
    rng = random.Random(seed)
    n, chips = rng.randint(1, 9), rng.randint(1, 4)
    problem = chain_problem(rng, n, chips, memory=rng.choice([0, 60, 90, 150]))
    fitting = [a for a in contiguous_splits(n, chips) if overfull_chip(problem, a) is None]
    found = packed_split(problem)
    if not fitting:
        assert found is None
        return
    assert found is not None and overfull_chip(problem, found) is None
    assert list(found) == sorted(found)  # contiguous along the order
    best = min(slowest_stage_s(problem, a) for a in fitting)
    assert slowest_stage_s(problem, found) == pytest.approx(best, rel=1e-9)


def test_overfull_chip_names_the_first_chip_over_its_memory() -> None:
    def problem(memory: tuple[int, int]) -> PartitionProblem:
        return PartitionProblem(((1.0,) * 2,) * 3, ((0, (1,), 1), (1, (2,), 1)), 2,
                                (AffineLink(1e9, 0.0),) * 2, (50, 50, 50), (10, 10, 10), memory)

    assert overfull_chip(problem((100, 100)), (0, 1, 1)) == 1  # 50 + 50 + 10 > 100
    assert overfull_chip(problem((100, 100)), (0, 0, 1)) == 0
    assert overfull_chip(problem((100, 110)), (0, 1, 1)) is None
    assert overfull_chip(problem((0, 0)), (0, 0, 0)) is None  # 0: unchecked


@pytest.mark.parametrize("seed", range(10))
def test_out_of_time_plans_fit_or_the_model_does_not(seed: int) -> None:
    """With no time to solve, the plan still fits every chip (an even split of the work would
    not: the weights sit at the end of the order), or the solver says nothing fits."""
    rng = random.Random(seed)
    n, chips = 300, 4
    times = tuple((1.0,) * chips for _ in range(n))
    weights = tuple(0 if u < n - 40 else 100 for u in range(n))  # 4,000 B in the last 40 units
    memory = rng.choice([1_200, 2_000, 4_000])
    problem = PartitionProblem(times, tuple((u, (u + 1,), 8) for u in range(n - 1)), chips,
                               (AffineLink(1e9, 0.0),) * chips, weights, (1,) * n, (memory,) * chips)
    try:
        solution = solve(problem, time_limit_s=0.0)
    except NoFit:
        assert memory * chips < sum(weights) + chips  # nothing fits indeed
        return
    assert overfull_chip(problem, solution.chip_of_unit) is None
    assert solution.method.startswith("time limit: packed split")


@pytest.mark.parametrize("seed", range(20))
def test_more_chips_never_give_a_worse_plan_given_the_smaller_plan(seed: int) -> None:
    """The plan for N chips, padded with an empty chip, is a plan for N + 1: solving N + 1 from
    it never does worse, even when no time is left to search (as chipcut sweep does)."""
    from chipcut.compiler.solver.evaluate import evaluate

    rng = random.Random(seed)
    n, chips = rng.randint(3, 40), rng.randint(1, 5)
    small = chain_problem(rng, n, chips, memory=0)
    big = PartitionProblem(tuple(row + (row[-1],) for row in small.unit_time_s), small.tensors,
                           chips + 1, small.links + small.links[-1:], small.weight_bytes,
                           small.live_bytes, (0,) * (chips + 1))
    fewer = solve(small, time_limit_s=5)
    for limit in (0.0, 5.0):
        more = solve(big, time_limit_s=limit, hint=fewer.chip_of_unit)
        assert more.bottleneck_s <= fewer.bottleneck_s * (1 + 1e-12)
        assert evaluate(big, more.chip_of_unit, more.replicas)[0] == more.bottleneck_s


def test_an_invalid_start_is_ignored() -> None:
    rng = random.Random(1)
    problem = chain_problem(rng, 6, 2, memory=0)
    backwards = (1, 1, 1, 0, 0, 0)  # a tensor would go back to an earlier chip
    assert solve(problem, time_limit_s=5, hint=backwards).chip_of_unit != backwards
    assert solve(problem, time_limit_s=5, hint=(0, 7, 7, 7, 7, 7)).status == "OPTIMAL"
