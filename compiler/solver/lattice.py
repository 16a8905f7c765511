"""Exact pipeline cuts over the lattice of ideals of the unit graph (no OR-Tools).

An assignment is a pipeline (chip(producer) <= chip(consumer) on every edge)
exactly when I_k = {units on chips before k} is an ideal (a set closed under
predecessors) for every k. So the pipelines of N chips are the chains of
ideals {} = I_0 <= I_1 <= ... <= I_N = all units, and a dynamic program over
(chips used, ideal) finds the best one exactly. Stage k costs the time of
I_{k+1} - I_k on chip k (divided by r when r identical chips take alternate
frames); the link into chip k carries the bytes crossing the boundary of I_k.

Chain-like graphs have few ideals (ResNet-50: 56 for 55 units; LLaMA-7B: 1808
for 337), so the exact program is fast; wide graphs can have exponentially
many, and ``enumerate_ideals`` gives up past a limit (the caller then falls
back to CP-SAT). The ideals along one topological order (its prefixes) give
the classic chain DP, used as a baseline and as CP-SAT's warm start.
"""

from __future__ import annotations

import time

import numpy as np

from chipcut.compiler.solver.ideals import (
    INF,
    MAX_PAIRS,
    Chain,
    Lattice,
    OutOfTime,
    StageModel,
    enumerate_ideals,
    link_s,
    live_max,
    prefix_ideals,
)
from chipcut.compiler.solver.problem import PartitionProblem
from chipcut.core.vocab import Objective, Topology

__all__ = ["INF", "MAX_PAIRS", "Chain", "Lattice", "OutOfTime", "StageModel", "chain_dp",
           "enumerate_ideals", "predecessors", "prefix_ideals", "solve_chain", "stage_model"]


def stage_model(problem: PartitionProblem, replicate: bool = True) -> StageModel:
    """The program's per-chip tables of a problem (replicas only when ``replicate``)."""
    n, chips = len(problem.unit_time_s), problem.n_chips
    times = np.asarray(problem.unit_time_s, dtype=np.float64).reshape(n, chips).T
    reps = problem.max_replicas if (replicate and problem.max_replicas) else (1,) * chips
    return StageModel(
        time_s=times, tensors=problem.tensors,
        weight_bytes=np.asarray(problem.weight_bytes or (0,) * n, dtype=np.float64),
        live_bytes=np.asarray(problem.live_bytes or (0,) * n, dtype=np.float64),
        memory_bytes=np.asarray(problem.memory_bytes or (0,) * chips, dtype=np.float64),
        links=tuple(problem.link(k) for k in range(chips)),
        overlap=np.asarray([problem.overlaps(k) for k in range(chips)]),
        max_replicas=np.asarray(reps, dtype=np.int64),
        residency=problem.residency,
        switch=problem.switch if problem.topology == Topology.SWITCH else None,
    )


def predecessors(problem: PartitionProblem) -> list[int]:
    """Per unit, the bitset of its direct predecessors."""
    preds = [0] * len(problem.unit_time_s)
    for p, consumers, _ in problem.tensors:
        for c in consumers:
            preds[c] |= 1 << p
    return preds


def chain_dp(problem: PartitionProblem, deadline: float = float("inf"),
             replicate: bool = True, upper_s: float = np.inf) -> Chain | None:
    """The exact program over the prefixes of the unit order (one topological order).
    ``upper_s``: a known plan's value; only stages within it are considered."""
    model = stage_model(problem, replicate)
    chain = Lattice(prefix_ideals(len(problem.unit_time_s)), model, prefix=True)
    return solve_chain(chain, model, problem.objective, upper_s, deadline,
                       max(problem.host_in_s, problem.host_out_s))


def solve_chain(lattice: Lattice, model: StageModel, objective: str, upper_s: float,
                deadline: float, floor_s: float = 0.0) -> Chain | None:
    """The best chain of ideals: least bottleneck then fewest bytes (``throughput``), or least
    batch-1 latency then fewest bytes (``latency``); None when no chain fits in memory.

    ``upper_s`` bounds the optimum (a known plan's value): stages slower than it are skipped.
    ``floor_s`` is a bottleneck no plan avoids (the host links); the stages are still balanced
    as if it were not there, so only the pruning window uses it.
    """
    chips = model.time_s.shape[0]
    rmax = int(model.max_replicas.max(initial=1))
    window = INF if objective == Objective.LATENCY else max(upper_s, floor_s) * rmax
    pi, pj = lattice.pairs(window, deadline)
    starts = np.flatnonzero(np.r_[True, pj[1:] != pj[:-1]])
    group_j = pj[starts]
    fits = _fits(lattice, model, pi, pj)
    cuts = lattice.cut_bytes
    switched = model.switch is not None
    # Through a switch no chip link is a resource of its own: the shared switch is.
    links = [np.zeros(len(cuts)) if switched else link_s(model, k, cuts) for k in range(chips)]

    def stage_cost(k: int, r: int) -> np.ndarray:
        cost = lattice.stage_s(model, k, pi, pj)
        # A chip that does not overlap its transfers is busy for them too: that slows the
        # pipeline (throughput), but a frame's latency already counts each transfer once.
        if not model.overlap[k] and objective != Objective.LATENCY:
            cost = cost + (links[k - 1][pi] if k else 0.0) + links[k + r - 1][pj]
        # r replicas take alternate frames, each busy for its frame's compute and transfers.
        return np.where(fits[k], cost / r, INF)

    def run(combine, limit: float | None):
        best = np.full((chips + 1, len(lattice.ideals)), INF)
        best[0, lattice.empty] = 0.0
        how: dict[tuple[int, int], tuple[int, int]] = {}
        for k in range(chips):
            if time.perf_counter() > deadline:
                raise OutOfTime
            reach = best[k][pi]
            if not np.isfinite(reach).any():
                continue
            link_in = links[k - 1][pi] if k else np.zeros(len(pi))
            for r in range(1, min(int(model.max_replicas[k]), chips - k) + 1):
                vals = combine(reach, link_in, stage_cost(k, r), k, pi, limit)
                if r > 1:
                    vals = np.where(pi == pj, INF, vals)
                mins = np.minimum.reduceat(vals, starts)
                better = mins < best[k + r, group_j]
                if not better.any():
                    continue
                first = _first_argmin(vals, starts, mins)
                for j, i in zip(group_j[better], pi[first[better]], strict=True):
                    how[k + r, int(j)] = (r, int(i))
                best[k + r, group_j[better]] = mins[better]
        return best, how

    if objective == Objective.LATENCY:
        def first_pass(reach, link_in, stage, k, _pi, _limit):
            return reach + link_in + stage
    else:
        def first_pass(reach, link_in, stage, k, _pi, _limit):
            return np.maximum(np.maximum(reach, link_in), stage)
    best, how = run(first_pass, None)
    value = best[chips, lattice.full]
    if not np.isfinite(value):
        return None
    chain = _trace(how, chips, lattice)
    if switched and objective == Objective.THROUGHPUT:
        into = _switch_in_bytes(lattice, model, pi, pj, deadline)

        def fewest_bytes(limit: float):
            def bytes_pass(reach, _link_in, stage, _k, _pi, _limit):
                return np.where(stage <= limit, reach + into, INF)
            best2, how2 = run(bytes_pass, limit)
            return best2[chips, lattice.full], how2
        costs = []
        for k in range(chips):
            if time.perf_counter() > deadline:
                raise OutOfTime
            costs += [stage_cost(k, r) for r in range(1, min(int(model.max_replicas[k]), chips - k) + 1)]
        stages = np.unique(np.concatenate([c[np.isfinite(c)] for c in costs]))
        value = _switch_optimum(stages[stages >= value * (1 - 1e-12)], fewest_bytes, model.switch)
        _, how2 = fewest_bytes(max(value, floor_s) * (1 + 1e-9) + 1e-15)
        return _as_chain(_trace(how2, chips, lattice), lattice, chips, float(value))
    if objective == Objective.THROUGHPUT:
        # Every plan whose stages and links stay within the bottleneck ties; when a host
        # link is the bottleneck (floor_s), that is every plan within the floor.
        limit = max(value, floor_s) * (1 + 1e-9) + 1e-15

        def bytes_pass(reach, link_in, stage, k, _pi, _limit):
            ok = (link_in <= limit) & (stage <= limit)
            return np.where(ok, reach + (cuts[_pi] if k else 0.0), INF)
        best2, how2 = run(bytes_pass, limit)
        if np.isfinite(best2[chips, lattice.full]):
            chain = _trace(how2, chips, lattice)
    return _as_chain(chain, lattice, chips, float(value))


def _switch_in_bytes(lattice: Lattice, model: StageModel, pi: np.ndarray,
                     pj: np.ndarray, deadline: float) -> np.ndarray:
    """Bytes the switch carries into each pair's stage: every tensor made before it and read
    in it, once (the switch carries a tensor once per stage that reads it)."""
    out = np.zeros(len(pi))
    for producer, consumers, nbytes in model.tensors:
        if time.perf_counter() > deadline:
            raise OutOfTime
        before = lattice.contains(producer, pi)
        if not before.any():
            continue
        read = np.zeros(len(pi), dtype=bool)
        for c in consumers:
            read |= lattice.in_stage(c, pi, pj)
        out += nbytes * (before & read)
    return out


def _switch_optimum(stages: np.ndarray, fewest_bytes, switch) -> float:
    """min over stage caps T of max(T, switch(fewest bytes with every stage within T)).

    Both terms are monotone in T (the bytes only fall as T grows), so the optimum sits where
    they cross: bisection over the distinct stage times finds it with O(log) byte programs.
    """
    def switch_s(cap: float) -> float:
        total, _ = fewest_bytes(cap * (1 + 1e-12))
        return float(switch(int(round(total)))) if np.isfinite(total) else INF
    lo, hi = 0, len(stages) - 1
    if switch_s(stages[hi]) > stages[hi]:
        return switch_s(stages[hi])
    while lo < hi:  # the first cap whose switch time is within it
        mid = (lo + hi) // 2
        if switch_s(stages[mid]) <= stages[mid]:
            hi = mid
        else:
            lo = mid + 1
    return float(min(stages[lo], switch_s(stages[lo - 1]) if lo > 0 else INF))


def _fits(lattice: Lattice, model: StageModel, pi: np.ndarray, pj: np.ndarray) -> list[np.ndarray]:
    """Per chip, whether each pair's stage (weights plus peak live activations) fits in memory.
    The peak is looked up only for pairs where it decides."""
    chips = model.time_s.shape[0]
    weights = lattice.weight_bytes[pj] - lattice.weight_bytes[pi]
    caps = model.memory_bytes[model.memory_bytes > 0]
    if not len(caps):
        return [np.ones(len(pi), dtype=bool)] * chips
    need = weights.copy()
    unsure = (weights + model.live_bytes.max(initial=0) > caps.min()) & (weights <= caps.max())
    need[unsure] += live_max(lattice, model, pi[unsure], pj[unsure])
    return [need <= m if m > 0 else np.ones(len(pi), dtype=bool) for m in model.memory_bytes]


def _first_argmin(vals: np.ndarray, starts: np.ndarray, mins: np.ndarray) -> np.ndarray:
    """Index of the first minimum of each group (groups start at ``starts``)."""
    group = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(vals)]))
    hits = np.flatnonzero(vals == mins[group])
    _, first = np.unique(group[hits], return_index=True)
    return hits[first]


def _trace(how: dict[tuple[int, int], tuple[int, int]], chips: int,
           lattice: Lattice) -> list[tuple[int, int, int]]:
    """(first chip, replicas, ideal after the stage) for each stage, first to last."""
    out = []
    k, j = chips, lattice.full
    while k > 0:
        r, i = how[k, j]
        out.append((k - r, r, j))
        k, j = k - r, i
    return out[::-1]


def _as_chain(stages: list[tuple[int, int, int]], lattice: Lattice, chips: int, value: float) -> Chain:
    n = len(lattice.ideals) - 1 if lattice.prefix else lattice.members.shape[1]
    chip_of = [0] * n
    replicas = [0] * chips
    before = lattice.empty
    moved = 0
    for lead, r, j in stages:
        for u in lattice.units_between(before, j):
            chip_of[u] = lead
        replicas[lead] = r
        if lead > 0:
            moved += int(lattice.cut_bytes[before])
        before = j
    return Chain(tuple(chip_of), tuple(replicas), value, moved)
