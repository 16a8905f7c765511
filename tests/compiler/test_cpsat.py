"""The CP-SAT model: residency per stage (a unit's time by its stage's weights) exact in ticks,
and the window a known plan puts on the search."""

from __future__ import annotations

import bisect
import math
import random
import time

import numpy as np
import pytest
from ortools.sat.python import cp_model

from benchmarks.oracle import brute_force, pipelines, random_case
from chipcut.compiler.solver.cpsat import search, states
from chipcut.compiler.solver.engine import solve
from chipcut.compiler.solver.evaluate import evaluate
from chipcut.compiler.solver.problem import AffineLink, PartitionProblem, Residency
from chipcut.core.vocab import Status, Topology


def _table(rng: random.Random, units: int) -> Residency:
    levels = sorted(rng.sample(range(1, 100), 4))
    return Residency(
        streamed_s=tuple(rng.uniform(1, 3) for _ in range(units)),
        resident_bytes=rng.choice([-1, 40, 80, 120]), sram_bytes=100,
        free_levels=(0, *levels),
        resident_s=tuple(tuple(rng.uniform(0.5, 3) for _ in range(units)) for _ in range(5)))


@pytest.mark.parametrize("seed", range(20))
def test_the_states_give_each_weight_its_stage_time(seed: int) -> None:
    # At every stage weight, the state the thresholds pick has the table's own unit times
    # (streamed past resident_bytes, else the row of the SRAM left free), rounded down.
    rng = random.Random(seed)
    table, tick_s = _table(rng, 6), 1e-3
    thresholds, rows = states(table, tick_s, 150)
    assert thresholds == sorted(thresholds) and len(rows) == len(thresholds) + 1
    for weight in range(0, 150):
        row = rows[bisect.bisect_left(thresholds, weight)]
        times = (table.streamed_s if weight > table.resident_bytes
                 else table.resident_s[table.level(weight)])
        assert list(row) == [math.floor(t / tick_s) for t in times], weight


def _slow_when_heavy() -> PartitionProblem:
    """A diamond of six 1 s units on two chips whose stage runs unit 1 three times slower
    once the stage holds more than 25 bytes of weights (its activations no longer fit): the
    best cut keeps unit 1 away from units 3 and 4's weights."""
    weights = (0, 5, 10, 10, 10, 0)
    fast, slow = (1.0,) * 6, (1.0, 3.0, 1.0, 1.0, 1.0, 1.0)
    table = Residency(streamed_s=fast, resident_bytes=100, sram_bytes=100,
                      free_levels=(0, 75), resident_s=(slow, fast))
    tensors = ((0, (1, 2), 1), (1, (3,), 1), (2, (4,), 1), (3, (5,), 1), (4, (5,), 1))
    return PartitionProblem(((1.0,) * 2,) * 6, tensors, 2, (AffineLink(1e9, 0.0),) * 2,
                            weight_bytes=weights, residency=(table, table))


def test_cp_sat_proves_a_plan_that_depends_on_the_stage_weights() -> None:
    # From a start that puts unit 1 with 25+ bytes of weights (slow), CP-SAT finds and proves
    # the optimum: the lower bound it starts from (every unit at its fastest) is below it.
    problem = _slow_when_heavy()
    best, _ = brute_force(problem)
    start = [0, 0, 0, 0, 1, 1]
    assert evaluate(problem, start)[0] > best
    found, bound, _ = search(problem, start, 3.0, time.perf_counter() + 10, None)
    assert evaluate(problem, found)[0] == pytest.approx(best) == pytest.approx(bound, rel=1e-6)
    solution = solve(problem, time_limit_s=5, max_ideals=0)
    assert solution.status == Status.OPTIMAL and solution.bottleneck_s == pytest.approx(best)


def test_one_chip_is_one_pipeline() -> None:
    # Everything on the one chip: optimal whatever its residency slows, with or without the
    # lattice program.
    problem = PartitionProblem(((1.0,),) * 6, _slow_when_heavy().tensors, 1,
                               (AffineLink(1e9, 0.0),), weight_bytes=_slow_when_heavy().weight_bytes,
                               residency=_slow_when_heavy().residency[:1])
    for max_ideals in (0, 20_000):
        solution = solve(problem, time_limit_s=5, max_ideals=max_ideals)
        assert solution.status == Status.OPTIMAL and solution.gap == 0
        assert solution.bottleneck_s == pytest.approx(8.0)  # unit 1 slow: 35 bytes held
        assert np.all(np.asarray(solution.chip_of_unit) == 0)


def _random_pipeline(problem: PartitionProblem, rng: random.Random) -> list[int]:
    """Contiguous stages in a random layout: each unit on its producers' last chip or later."""
    chip = [0] * len(problem.unit_time_s)
    for p, consumers, _ in sorted(problem.tensors):
        for c in consumers:
            chip[c] = max(chip[c], chip[p])
    for u in range(len(chip)):  # units are in a topological order
        chip[u] = max([chip[u]] + [chip[p] for p, cs, _ in problem.tensors if u in cs])
        chip[u] = rng.randint(chip[u], problem.n_chips - 1) if rng.random() < 0.4 else chip[u]
    return chip


@pytest.mark.parametrize("seed", [s for s in range(160) if random_case(s).problem.n_chips > 1
                                  and brute_force(random_case(s).problem) is not None])
def test_the_model_costs_a_pipeline_as_the_plan_does(seed: int) -> None:
    # For a random pipeline of an oracle case (residency, host links, mixed chips, overlap
    # off, chain, switch, ring, both objectives), the model with the chips fixed: its hint is
    # feasible, and its optimum is the plan's own cost in ticks (on a ring, where the model
    # may route either way round, no more than it).
    from chipcut.compiler.solver import cpsat
    from chipcut.compiler.solver.packing import overfull_chip

    case = random_case(seed)
    problem = case.problem
    chip = _random_pipeline(problem, random.Random(seed))
    if overfull_chip(problem, chip) is not None:
        chip = list(solve(problem, time_limit_s=5).chip_of_unit)
    value = evaluate(problem, chip)[0]
    tick_s = value / cpsat.TICKS
    model = cpsat._build(problem, tick_s)
    cpsat._hint(model, problem, chip, tick_s)
    for u, k in enumerate(chip):
        for j in range(1, problem.n_chips):
            model.cp.add(model.y[u][j] == int(k >= j))
    model.cp.minimize(model.objective)
    solver = cpsat._solver(10)
    solver.parameters.debug_crash_on_bad_hint = True
    assert solver.solve(model.cp) == cp_model.OPTIMAL
    found_s = solver.objective_value * tick_s
    slack = (len(chip) + 2 * len(problem.tensors) + 4) * tick_s  # a tick per rounded term
    if problem.topology == Topology.RING and problem.n_chips > 2:
        assert found_s <= value + slack
    else:
        assert value - slack <= found_s <= value + slack, (case.features, found_s, value)


def test_a_tensor_of_no_bytes_costs_no_link_latency() -> None:
    # A 0-byte tensor crosses for free (AffineLink(0) is 0 s): the model must not charge the
    # link's latency for it, or its bound rises above the optimum (links not overlapping).
    times = (0.4218, 0.4288, 0.2592, 0.4035, 0.6317, 0.4023)
    problem = PartitionProblem(tuple((t,) * 4 for t in times),
                               ((0, (3, 4), 0), (1, (5,), 1000), (2, (4,), 1000), (3, (4,), 100)),
                               4, (AffineLink(1000.0, 0.5),) * 4, overlap=(False,) * 4)
    solution = solve(problem, time_limit_s=5, max_ideals=0)
    assert solution.bound_s <= brute_force(problem)[0] * (1 + 1e-9)
    assert solution.bottleneck_s == pytest.approx(brute_force(problem)[0])


def test_a_switch_carrying_only_empty_tensors_takes_no_time() -> None:
    problem = PartitionProblem(((1.0, 1.0),) * 2, ((0, (1,), 0),), 2, (AffineLink(1e3, 0.0),) * 2,
                               topology=Topology.SWITCH, switch=AffineLink(1e3, 0.1))
    assert evaluate(problem, (0, 1)) == (1.0, 0)
    assert solve(problem, time_limit_s=5).bottleneck_s == 1.0


def test_a_known_plan_is_kept_where_the_programs_cost_another_topology() -> None:
    # On a ring the lattice program costs links along the chain: its plan is a candidate, and
    # a better start (here the brute-force optimum) is kept, not replaced by it.
    problem = PartitionProblem(
        unit_time_s=((0.2471, 0.6251, 0.3995, 0.2083), (0.6838, 1.5977, 2.4073, 0.4587),
                     (0.3430, 0.6098, 1.1781, 0.2542), (0.5958, 1.1133, 1.5011, 0.1656),
                     (0.7294, 2.2031, 1.9416, 0.4702), (0.0011, 0.0019, 0.0021, 0.0005)),
        tensors=((0, (2,), 2060), (0, (1, 2, 3, 4), 1000), (1, (4,), 3000), (3, (5,), 500),
                 (3, (5,), 1000)),
        n_chips=4, links=(AffineLink(3000.0, 0.2), AffineLink(10000.0, 0.2),
                          AffineLink(1e6, 1e-4), AffineLink(1000.0, 0.0)),
        overlap=(False, False, True, False), topology=Topology.RING)
    best = min((a for a, _ in pipelines(problem)), key=lambda a: evaluate(problem, a))
    solution = solve(problem, time_limit_s=2, hint=best)
    assert solution.bottleneck_s == pytest.approx(evaluate(problem, best)[0]) == pytest.approx(1.1781)
