"""Every solver feature against brute force: random small problems, every pipeline scored.

The full run (1,000 cases) is benchmarks/oracle_bench.py; this runs a seeded share of it.
"""

from __future__ import annotations

import pytest

from benchmarks.oracle import brute_force, check, random_case
from chipcut.compiler.solver.engine import NoFit, solve


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
