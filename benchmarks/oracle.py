"""Brute-force oracle for the partitioner: random small problems with every solver feature, and
every valid pipeline enumerated and scored.

Features drawn per case: mixed chips (per-chip speeds), capacity (weights + live activations
against each chip's memory), residency (a stage's unit times depend on its own weights: kept
in SRAM when they fit, activations in the SRAM left), replication of a stage over identical chips, links that overlap
compute or not, host links, chain / ring / switch topologies, and both objectives. A case
checks the solver's plan against the best of every pipeline: a plan marked OPTIMAL must
equal the optimum (then the fewest bytes), every plan must fit, and every bound must be a
bound.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

from chipcut.compiler.solver.evaluate import evaluate
from chipcut.compiler.solver.packing import overfull_chip
from chipcut.compiler.solver.problem import AffineLink, PartitionProblem, Residency
from chipcut.core.vocab import Objective, Status, Topology

REL = 1e-9  # ties and float summation order


@dataclass(frozen=True)
class Case:
    seed: int
    problem: PartitionProblem
    features: tuple[str, ...]


def random_case(seed: int) -> Case:
    """A random DAG of 2-6 units on 1-4 chips with a random subset of the solver's features."""
    rng = random.Random(seed)
    n, chips = rng.randint(2, 6), rng.randint(1, 4)
    features = []
    mixed = rng.random() < 0.3
    speeds = [rng.choice([1.0, 2.0, 0.5]) if mixed else 1.0 for _ in range(chips)]
    if mixed:
        features.append("mixed")
    # Mixed chips differ per unit too (one is better at convolutions, another at GEMMs).
    times = tuple(tuple(w / s * (rng.uniform(0.6, 1.4) if mixed else 1.0) for s in speeds)
                  for w in (rng.uniform(0.1, 1.0) for _ in range(n)))
    tensors = []
    for p in range(n - 1):
        consumers = {c for c in range(p + 1, n) if rng.random() < 0.3}
        if rng.random() < 0.8:
            consumers.add(p + 1)
        if consumers:
            tensors.append((p, tuple(sorted(consumers)), rng.randint(1, 1000)))
    links = tuple(AffineLink(rng.choice([1e3, 3e3]), rng.choice([0.0, 1e-4, 0.05]))
                  for _ in range(chips))
    extra: dict = {}
    if rng.random() < 0.4:
        features.append("capacity")
        weights = tuple(rng.randint(0, 50) for _ in range(n))
        live = tuple(rng.randint(1, 30) for _ in range(n))
        extra.update(weight_bytes=weights, live_bytes=live,
                     memory_bytes=tuple(rng.choice([60, 100, 200]) for _ in range(chips)))
    if rng.random() < 0.4:
        features.append("no-overlap")
        extra["overlap"] = tuple(rng.random() < 0.5 for _ in range(chips))
    if rng.random() < 0.3:
        features.append("host")
        extra.update(host_in_s=rng.uniform(0.0, 2.0), host_out_s=rng.uniform(0.0, 2.0))
    topology = rng.choice([Topology.CHAIN, Topology.CHAIN, Topology.RING, Topology.SWITCH])
    if topology != Topology.CHAIN:
        features.append(topology.value)
        extra["topology"] = topology
        if topology == Topology.SWITCH:
            extra["switch"] = AffineLink(rng.choice([1e3, 5e3]), 1e-4)
    objective = rng.choice([Objective.THROUGHPUT, Objective.LATENCY])
    features.append(objective.value)
    extra["objective"] = objective
    if not mixed and objective == Objective.THROUGHPUT and chips > 1 and rng.random() < 0.3:
        features.append("replicate")
        extra["max_replicas"] = tuple(chips - k for k in range(chips))
    if rng.random() < 0.35:
        features.append("residency")
        extra.setdefault("weight_bytes", tuple(rng.randint(0, 50) for _ in range(n)))
        tables = [_residency(rng, [row[k] for row in times]) for k in range(chips)]
        if not mixed:  # identical chips share one table, as the compiler builds them
            tables = [tables[0]] * chips
        extra["residency"] = tuple(tables)
        times = tuple(tuple(min(r.streamed_s[u], *(row[u] for row in r.resident_s))
                            for r in tables) for u in range(n))
    return Case(seed, PartitionProblem(times, tuple(tensors), chips, links, **extra), tuple(features))


def _residency(rng: random.Random, streamed: list[float]) -> Residency:
    """Random residency for one chip: resident weights speed units up, more free SRAM more so."""
    levels = sorted({0, *(rng.randint(1, 60) for _ in range(rng.randint(0, 3)))})
    rows, current = [], [t * rng.uniform(0.3, 1.0) for t in streamed]
    for _ in levels:  # non-increasing in free SRAM
        rows.append(tuple(current))
        current = [t * rng.uniform(0.6, 1.0) for t in current]
    return Residency(tuple(streamed), rng.choice([-1, 20, 60, 100]), 80, tuple(levels), tuple(rows))


def _replica_layouts(problem: PartitionProblem):
    """Every per-chip replica vector: r on a stage's first chip, 0 on the chips it spans."""
    chips = problem.n_chips
    limits = problem.max_replicas or (1,) * chips

    def walk(k: int):
        if k == chips:
            yield ()
            return
        for r in range(1, min(limits[k], chips - k) + 1):
            for rest in walk(k + r):
                yield (r,) + (0,) * (r - 1) + rest
    yield from walk(0)


def pipelines(problem: PartitionProblem):
    """Every (chip_of_unit, replicas) with no tensor going back to an earlier stage."""
    n = len(problem.unit_time_s)
    for replicas in _replica_layouts(problem):
        leads = [k for k, r in enumerate(replicas) if r > 0]
        for a in itertools.product(leads, repeat=n):
            if all(a[p] <= a[c] for p, cs, _ in problem.tensors for c in cs):
                yield a, replicas


def brute_force(problem: PartitionProblem) -> tuple[float, int] | None:
    """(the optimum, the fewest bytes among plans within REL of it), or None when none fits.

    Replication is used only when strictly faster than every plan without it (so that no
    chip holds a copy of a stage for nothing): at a tie, the fewest bytes are those of the
    plans without replicas.
    """
    scored = [(*evaluate(problem, a, r), max(r) > 1) for a, r in pipelines(problem)
              if overfull_chip(problem, a) is None]
    if not scored:
        return None
    best = min(value for value, _, _ in scored)
    tied = [(b, replicated) for value, b, replicated in scored if value <= best * (1 + REL) + 1e-15]
    plain = [b for b, replicated in tied if not replicated]
    return best, min(plain) if plain else min(b for b, _ in tied)


def check(case: Case, solution) -> str | None:
    """What is wrong with ``solution`` for ``case`` (None when nothing is)."""
    problem = case.problem
    truth = brute_force(problem)
    if truth is None:
        return "solver returned a plan where no pipeline fits"
    best, fewest = truth
    value, moved = evaluate(problem, solution.chip_of_unit, solution.replicas)
    if overfull_chip(problem, solution.chip_of_unit) is not None:
        return "plan over capacity"
    if abs(value - solution.bottleneck_s) > REL * value + 1e-15 or moved != solution.bytes_moved:
        return f"reported {solution.bottleneck_s}/{solution.bytes_moved} B, costs {value}/{moved} B"
    if solution.bound_s > best * (1 + REL) + 1e-15:
        return f"bound {solution.bound_s} above the optimum {best}"
    if solution.status == Status.OPTIMAL:
        if value > best * (1 + REL) + 1e-15:
            return f"OPTIMAL at {value}, optimum {best}"
        proven_bytes = "fewest bytes not proven" not in solution.method
        if moved > fewest and proven_bytes:
            return f"OPTIMAL moves {moved} B, {fewest} B possible"
    return None
