"""Every solver feature against brute force: random small problems, every pipeline scored.

The full run (1,000 cases) is benchmarks/oracle_bench.py; this runs a seeded share of it.
"""

from __future__ import annotations

import pytest

from benchmarks.oracle import brute_force, check, random_case
from chipcut.compiler.solver.engine import NoFit, solve
from chipcut.compiler.solver.problem import AffineLink, PartitionProblem
from chipcut.core.vocab import Status, Topology


@pytest.mark.parametrize("seed", range(200))
def test_solver_agrees_with_brute_force(seed: int) -> None:
    case = random_case(seed)
    try:
        solution = solve(case.problem, time_limit_s=5)
    except NoFit:
        assert brute_force(case.problem) is None, f"{case.features}: NoFit, but a pipeline fits"
        return
    assert check(case, solution) is None, f"{case.features}: {check(case, solution)}"


def test_the_cases_cover_every_feature() -> None:
    seen = {f for seed in range(200) for f in random_case(seed).features}
    assert seen == {"mixed", "capacity", "no-overlap", "host", "ring", "switch", "throughput",
                    "latency", "replicate", "residency"}


def _ring_with_a_long_skip(link_bytes_per_s: float) -> PartitionProblem:
    """Six equal 1 ms units in a row and a 4 kB skip from the first to the last, on a ring of
    three chips: the skip goes back over the wrap link, which the lattice program does not
    route."""
    tensors = tuple((u, (u + 1,), 1000) for u in range(5)) + ((0, (5,), 4000),)
    return PartitionProblem(((1e-3,) * 3,) * 6, tensors, 3,
                            (AffineLink(link_bytes_per_s, 0.0),) * 3, topology=Topology.RING)


def test_a_ring_plan_is_proven_optimal_by_the_link_free_bound() -> None:
    # Fast links do not decide the optimum: the program with free links bounds every ring
    # pipeline from below and its plan meets that bound.
    problem = _ring_with_a_long_skip(1e12)
    solution = solve(problem, time_limit_s=5)
    best, _ = brute_force(problem)
    assert solution.status == Status.OPTIMAL and solution.gap == 0
    assert solution.bottleneck_s == pytest.approx(best) == pytest.approx(2e-3)
    assert "fewest bytes not proven on a ring" in solution.method


def test_a_ring_plan_whose_links_decide_is_proven_by_cp_sat() -> None:
    # Slow links (1 MB/s): the wrap link carries the skip's 4 kB in 4 ms, twice a stage's
    # compute, so the link-free bound (2 ms) is not met; CP-SAT, which routes the ring's
    # tensors either way round, proves the 4 ms plan optimal. It may route a tensor the long
    # way where the plan takes the fewest hops, so it claims nothing about bytes.
    problem = _ring_with_a_long_skip(1e6)
    solution = solve(problem, time_limit_s=5)
    best, _ = brute_force(problem)
    assert solution.bottleneck_s == pytest.approx(best) == pytest.approx(4e-3)
    assert solution.bound_s == pytest.approx(4e-3, rel=1e-6)
    assert solution.status == Status.OPTIMAL
    assert solution.method == "lattice DP (7 ideals), CP-SAT; fewest bytes not proven on a ring"
