"""Partitioner properties on random DAGs: exact optimum by brute force, never worse than the chain DP."""

from __future__ import annotations

import itertools
import random

import pytest

from chipcut.compiler.solver import lattice
from chipcut.compiler.solver.engine import NoFit, solve
from chipcut.compiler.solver.evaluate import evaluate, lower_bound_s, measure
from chipcut.compiler.solver.lattice import chain_dp, predecessors
from chipcut.compiler.solver.problem import AffineLink, PartitionProblem


def random_problem(rng: random.Random, n: int, chips: int, **extra) -> PartitionProblem:
    """A random DAG in topological order: unit times, and tensors to 1-3 later units."""
    times = tuple(tuple([rng.uniform(0.1, 1.0)] * chips) for _ in range(n))
    tensors = []
    for p in range(n - 1):
        consumers = {c for c in range(p + 1, n) if rng.random() < 0.3}
        if rng.random() < 0.8:
            consumers.add(p + 1)
        if consumers:
            tensors.append((p, tuple(sorted(consumers)), rng.randint(1, 1000)))
    return PartitionProblem(times, tuple(tensors), chips, (AffineLink(1e3, 1e-4),) * chips, **extra)


def pipelines(problem: PartitionProblem):
    for a in itertools.product(range(problem.n_chips), repeat=len(problem.unit_time_s)):
        if all(a[p] <= a[c] for p, cs, _ in problem.tensors for c in cs):
            yield a


def fits(problem: PartitionProblem, assignment) -> bool:
    for k, capacity in enumerate(problem.memory_bytes):
        mine = [u for u, chip in enumerate(assignment) if chip == k]
        need = sum(problem.weight_bytes[u] for u in mine) + max(
            (problem.live_bytes[u] for u in mine), default=0)
        if capacity and need > capacity:
            return False
    return True


def brute_force(problem: PartitionProblem) -> tuple[float, int] | None:
    values = [evaluate(problem, a) for a in pipelines(problem) if fits(problem, a)]
    return min(values) if values else None


@pytest.mark.parametrize("seed", range(30))
def test_exact_optimum_matches_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    problem = random_problem(rng, rng.randint(2, 8), rng.randint(1, 3))
    solution = solve(problem, time_limit_s=5)
    best_value, best_bytes = brute_force(problem)
    assert solution.status == "OPTIMAL" and solution.gap == 0
    assert solution.bottleneck_s == pytest.approx(best_value, rel=1e-9)
    assert solution.bytes_moved == best_bytes
    assert evaluate(problem, solution.chip_of_unit) == (solution.bottleneck_s, solution.bytes_moved)


@pytest.mark.parametrize("seed", range(15))
def test_plan_is_a_pipeline_never_worse_than_the_chain_dp(seed: int) -> None:
    rng = random.Random(100 + seed)
    problem = random_problem(rng, rng.randint(10, 40), rng.choice((2, 3, 4)))
    solution = solve(problem, time_limit_s=5)
    assert len(solution.chip_of_unit) == len(problem.unit_time_s)  # every unit on one chip
    assert all(0 <= k < problem.n_chips for k in solution.chip_of_unit)
    assert all(solution.chip_of_unit[p] <= solution.chip_of_unit[c]  # no cycle between chips
               for p, cs, _ in problem.tensors for c in cs)
    assert solution.bottleneck_s <= chain_dp(problem).value * (1 + 1e-9)
    assert solution.bottleneck_s >= lower_bound_s(problem) * (1 - 1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_cp_sat_fallback_is_never_worse_than_the_chain_dp(seed: int) -> None:
    rng = random.Random(200 + seed)
    problem = random_problem(rng, rng.randint(8, 20), 3)
    solution = solve(problem, time_limit_s=3, max_ideals=1)
    assert "CP-SAT" in solution.method
    assert solution.bottleneck_s <= chain_dp(problem).value * (1 + 1e-9)
    assert solution.bound_s <= solution.bottleneck_s


@pytest.mark.parametrize("seed", range(15))
def test_capacity_is_respected_and_optimal(seed: int) -> None:
    rng = random.Random(300 + seed)
    n, chips = rng.randint(3, 7), rng.randint(2, 3)
    weights = tuple(rng.randint(1, 10) for _ in range(n))
    live = tuple(rng.randint(0, 5) for _ in range(n))
    capacity = rng.randint(max(w + a for w, a in zip(weights, live, strict=True)), sum(weights))
    problem = random_problem(rng, n, chips, weight_bytes=weights, live_bytes=live,
                             memory_bytes=(capacity,) * chips)
    best = brute_force(problem)
    if best is None:
        with pytest.raises(NoFit):
            solve(problem, time_limit_s=5)
        return
    solution = solve(problem, time_limit_s=5)
    assert fits(problem, solution.chip_of_unit)
    assert solution.bottleneck_s == pytest.approx(best[0], rel=1e-9)


def test_capacity_in_cp_sat() -> None:
    rng = random.Random(7)
    weights = tuple(rng.randint(1, 10) for _ in range(12))
    problem = random_problem(rng, 12, 3, weight_bytes=weights, live_bytes=(2,) * 12,
                             memory_bytes=(sum(weights) // 2,) * 3)
    solution = solve(problem, time_limit_s=3, max_ideals=1)
    assert fits(problem, solution.chip_of_unit)


def test_ideals_of_a_diamond_and_a_chain() -> None:
    # 0 -> {1, 2} -> 3: {}, {0}, {0,1}, {0,2}, {0,1,2}, all.
    diamond = lattice.enumerate_ideals([0, 0b1, 0b1, 0b110], limit=100)
    assert sorted(diamond) == [0b0, 0b1, 0b11, 0b101, 0b111, 0b1111]
    assert sorted(lattice.enumerate_ideals([0, 1, 2, 4], 100)) == lattice.prefix_ideals(4)
    assert lattice.enumerate_ideals([0, 0, 0, 0], limit=15) is None  # 16 ideals


@pytest.mark.parametrize("seed", range(10))
def test_ideal_count_matches_brute_force(seed: int) -> None:
    rng = random.Random(400 + seed)
    problem = random_problem(rng, rng.randint(1, 9), 1)
    n, preds = len(problem.unit_time_s), predecessors(problem)
    closed = [s for s in range(1 << n)
              if all(not (s >> u & 1) or (preds[u] & ~s) == 0 for u in range(n))]
    assert sorted(lattice.enumerate_ideals(preds, 1 << n)) == closed


def test_latency_objective_adds_stages_and_links() -> None:
    # Two units on identical chips: latency is least on one chip (a link only adds time).
    problem = PartitionProblem(((1.0, 1.0), (1.0, 1.0)), ((0, (1,), 500),), 2, (AffineLink(1e3, 0.0),) * 2,
                               objective="latency", host_in_s=0.25)
    solution = solve(problem, time_limit_s=2)
    assert solution.chip_of_unit in ((0, 0), (1, 1))
    assert solution.bottleneck_s == pytest.approx(2.25)
    m = measure(problem, (0, 1))
    assert m.latency_s == pytest.approx(1 + 1 + 0.5 + 0.25)
    assert m.bottleneck_s == pytest.approx(1.0)


def test_ring_takes_the_short_way_back_and_switch_shares_one_uplink() -> None:
    # Unit 0 on chip 0 feeds units 1 and 3 on chips 1 and 3 of 4: a chain loads links
    # 0-1, 1-2, 2-3; a ring sends it forwards to chip 1 and backwards over the wrap link
    # 0->3 (one hop each).
    tensors = ((0, (1, 3), 100), (1, (2,), 10), (2, (3,), 10))
    base = dict(unit_time_s=((1.0,) * 4,) * 4, tensors=tensors, n_chips=4,
                links=(AffineLink(100.0, 0.0),) * 4)
    chain = measure(PartitionProblem(**base), (0, 1, 2, 3))
    assert chain.bytes_moved == 3 * 100 + 10 + 10
    assert chain.bottleneck_s == pytest.approx(1.1)  # links 1->2 and 2->3 carry 110 bytes
    ring = measure(PartitionProblem(**base, topology="ring"), (0, 1, 2, 3))
    assert ring.bytes_moved == 100 + 10 + 10 + 100  # 0->1 forward, 0->3 backward
    assert ring.bottleneck_s == pytest.approx(1.0)
    switch = measure(PartitionProblem(**base, topology="switch",
                                      switch=AffineLink(50.0, 0.5)), (0, 1, 2, 3))
    assert switch.bytes_moved == 2 * 100 + 10 + 10  # once per reading stage
    assert switch.bottleneck_s == pytest.approx(0.5 + 220 / 50)


def test_replication_beats_cutting_a_heavy_unit() -> None:
    # Units of 4 s and 1 s on 3 identical chips: cutting gives 4 s. With replication the
    # heavy unit on 2 chips and the light one on the third gives 2 s per frame, and both
    # units on all 3 chips 5/3 s: the best.
    times = ((4.0,) * 3, (1.0,) * 3)
    problem = PartitionProblem(times, ((0, (1,), 1),), 3, (AffineLink(1e9, 0.0),) * 3,
                               max_replicas=(3, 2, 1))
    solution = solve(problem, time_limit_s=2)
    assert solution.replicas == (3, 0, 0) and solution.chip_of_unit == (0, 0)
    assert solution.bottleneck_s == pytest.approx(5 / 3) and solution.status == "OPTIMAL"
    assert evaluate(problem, (0, 2), (2, 0, 1))[0] == pytest.approx(2.0)
    plain = solve(PartitionProblem(times, ((0, (1,), 1),), 3, (AffineLink(1e9, 0.0),) * 3), 2)
    assert plain.bottleneck_s == pytest.approx(4.0)


def test_time_limit_is_respected_with_a_plan() -> None:
    rng = random.Random(9)
    problem = random_problem(rng, 400, 8)
    solution = solve(problem, time_limit_s=0.001)
    assert solution.wall_s < 0.5
    assert all(solution.chip_of_unit[p] <= solution.chip_of_unit[c]
               for p, cs, _ in problem.tensors for c in cs)
    assert 0 < solution.gap < 1 and solution.status == "FEASIBLE"
