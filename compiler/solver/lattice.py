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
from dataclasses import dataclass

import numpy as np

from chipcut.core.vocab import Objective

INF = np.inf
MAX_PAIRS = 20_000_000  # (I, J) pairs held at once: about 1 GB of working arrays


class OutOfTime(Exception):
    """The program ran past its deadline (or past MAX_PAIRS pairs)."""


def enumerate_ideals(preds: list[int], limit: int) -> list[int] | None:
    """Every ideal as a bitset over units (``preds[u]``: bitset of u's direct predecessors),
    or None when there are more than ``limit``.

    Each ideal is generated once, from the ideal without its highest-numbered maximal
    unit; ``frontier`` holds the units whose predecessors are all inside.
    """
    n = len(preds)
    succ: list[list[int]] = [[] for _ in range(n)]
    for v in range(n):
        for u in _bits(preds[v]):
            succ[u].append(v)
    out: list[int] = []
    start = tuple(u for u in range(n) if not preds[u])
    stack: list[tuple[int, tuple[int, ...], tuple[int, ...]]] = [(0, (), start)]
    while stack:
        ideal, maxes, frontier = stack.pop()
        out.append(ideal)
        if len(out) > limit:
            return None
        for u in frontier:
            rest = tuple(m for m in maxes if not preds[u] >> m & 1)
            if rest and max(rest) > u:
                continue
            grown = ideal | 1 << u
            opened = tuple(v for v in succ[u] if not preds[v] & ~grown)
            stack.append((grown, rest + (u,), tuple(f for f in frontier if f != u) + opened))
    return out


def _bits(x: int) -> list[int]:
    out = []
    while x:
        low = x & -x
        out.append(low.bit_length() - 1)
        x ^= low
    return out


def prefix_ideals(n: int) -> list[int]:
    """The n + 1 prefixes of the unit order (ideals when units are in a topological order)."""
    return [(1 << i) - 1 for i in range(n + 1)]


@dataclass(frozen=True)
class StageModel:
    """What the program needs, per chip position k and per unit u.

    time_s: (N, n) seconds; weight_bytes, live_bytes: (n,) weights a unit keeps on its
    chip and the activation bytes live while it runs; memory_bytes: (N,) capacity (0:
    unchecked); links: (N,) the link-time function of the link out of chip k; overlap:
    (N,) whether chip k's transfers overlap its compute; max_replicas: (N,) how many
    identical chips starting at k may share one stage; tensors: (producer, consumers, bytes).
    """

    time_s: np.ndarray
    tensors: tuple[tuple[int, tuple[int, ...], int], ...]
    weight_bytes: np.ndarray
    live_bytes: np.ndarray
    memory_bytes: np.ndarray
    links: tuple
    overlap: np.ndarray
    max_replicas: np.ndarray
    residency: tuple = ()  # per chip, chipcut.compiler.solver.problem.Residency (or none)
    switch: object = None  # seconds for b bytes through a shared switch (switch topology)


@dataclass(frozen=True)
class Chain:
    """A chosen chain of ideals: lead chip and replica count of every stage, and the units."""

    chip_of_unit: tuple[int, ...]
    replicas: tuple[int, ...]  # per chip: r for a stage's first chip, 0 for its other chips
    value: float
    bytes_moved: int


class Lattice:
    """Per-ideal sums of an ideal family, and the (I, J) pairs with I <= J the program may use.

    The prefixes of the unit order (``prefix=True``, ideals ``prefix_ideals(n)``) need no
    membership matrix: ideal i holds units 0..i-1, sums are cumulative sums and I <= J is
    i <= j, so the chain DP runs in memory linear in the pairs it keeps.
    """

    def __init__(self, ideals: list[int], model: StageModel, prefix: bool = False) -> None:
        n = model.time_s.shape[1]
        self.ideals = ideals
        self.prefix = prefix
        if prefix:
            self.packed = self.members = self._weights = None
            self.size = np.arange(len(ideals))
        else:
            words = max((n + 63) // 64, 1)
            raw = b"".join(i.to_bytes(words * 8, "little") for i in ideals)
            self.packed = np.frombuffer(raw, dtype=np.uint64).reshape(len(ideals), words)
            members = np.unpackbits(self.packed.view(np.uint8), axis=1, bitorder="little")[:, :n]
            self.members = members.astype(bool)
            self._weights = self.members.astype(np.float64)
            self.size = self.members.sum(axis=1)
        self.time_s = self.sums(model.time_s.T)  # (M, N)
        self.fastest_s = self.sums(model.time_s.min(axis=0))  # (M,)
        self.weight_bytes = self.sums(model.weight_bytes)
        self.cut_bytes = _prefix_cut_bytes(n, model.tensors) if prefix else _cut_bytes(
            self.members, model.tensors)
        # Per distinct residency table: per-ideal sums streamed (M,) and per free level (M, L).
        self.resident_sums = {}
        for r in model.residency:
            if id(r) not in self.resident_sums:
                self.resident_sums[id(r)] = (self.sums(np.asarray(r.streamed_s)),
                                             self.sums(np.asarray(r.resident_s).T))
        self.full = int(np.argmax(self.size))
        self.empty = int(np.argmin(self.size))

    def sums(self, per_unit: np.ndarray) -> np.ndarray:
        """Per-ideal sums of ``per_unit`` ((n,) or (n, K) values)."""
        values = np.asarray(per_unit, dtype=np.float64)
        if self.prefix:
            return np.concatenate([np.zeros((1, *values.shape[1:])), np.cumsum(values, axis=0)])
        return self._weights @ values

    def in_stage(self, u: int, pi: np.ndarray, pj: np.ndarray) -> np.ndarray:
        """Whether unit u is in J - I, per pair."""
        if self.prefix:
            return (self.size[pi] <= u) & (u < self.size[pj])
        return self.members[pj, u] & ~self.members[pi, u]

    def contains(self, u: int, ideals: np.ndarray) -> np.ndarray:
        """Whether unit u is in each of ``ideals``."""
        return u < self.size[ideals] if self.prefix else self.members[ideals, u]

    def units_between(self, i: int, j: int) -> np.ndarray:
        """The units of J - I."""
        if self.prefix:
            return np.arange(self.size[i], self.size[j])
        return np.flatnonzero(self.members[j] & ~self.members[i])

    def stage_s(self, model: StageModel, k: int, pi: np.ndarray, pj: np.ndarray) -> np.ndarray:
        """Seconds of the stage J - I on chip k for each pair, under the stage's own residency
        when the model has it (weights resident when they fit, activations in what is left)."""
        if not model.residency:
            return self.time_s[pj, k] - self.time_s[pi, k]
        r = model.residency[k]
        streamed, resident = self.resident_sums[id(r)]
        weights = self.weight_bytes[pj] - self.weight_bytes[pi]
        levels = np.asarray(r.free_levels, dtype=np.float64)
        level = np.searchsorted(levels, r.sram_bytes - weights, side="right") - 1
        level = np.clip(level, 0, len(levels) - 1)
        kept = resident[pj, level] - resident[pi, level]
        return np.where(weights <= r.resident_bytes, kept, streamed[pj] - streamed[pi])

    def pairs(self, window_s: float, deadline: float) -> tuple[np.ndarray, np.ndarray]:
        """All (I, J) with I a subset of J and the work of J - I (fastest chip) within ``window_s``,
        grouped by J; every J has at least (J, J)."""
        # Each unit at its fastest chip: work[J] - work[I] bounds J - I's time on every chip
        # (the fastest chip of a whole ideal would not: chips can be fast on different units).
        work = self.fastest_s
        order = np.lexsort((self.size, work))
        sorted_work = work[order]
        pi, pj, count = [], [], 0
        for j in order:
            if time.perf_counter() > deadline or count > MAX_PAIRS:
                raise OutOfTime
            lo = np.searchsorted(sorted_work, work[j] - window_s * (1 + 1e-9) - 1e-300, "left")
            hi = np.searchsorted(sorted_work, work[j] * (1 + 1e-12) + 1e-300, "right")
            cand = order[lo:hi]
            cand = cand[self.size[cand] <= self.size[j]]
            if self.prefix:  # a shorter prefix is a subset
                chosen = cand
            else:
                chosen = cand[~np.any(self.packed[cand] & ~self.packed[j], axis=1)]
            pi.append(chosen)
            pj.append(np.full(len(chosen), j))
            count += len(chosen)
        return np.concatenate(pi), np.concatenate(pj)


def _prefix_cut_bytes(n: int, tensors) -> np.ndarray:
    """Bytes crossing the cut after each prefix: a tensor crosses cuts p+1 .. its last reader."""
    diff = np.zeros(n + 2)
    for producer, consumers, nbytes in tensors:
        diff[producer + 1] += nbytes
        diff[max(consumers) + 1] -= nbytes
    return np.cumsum(diff)[: n + 1]


def _cut_bytes(members: np.ndarray, tensors) -> np.ndarray:
    """Bytes of the tensors produced inside each ideal and used outside it."""
    out = np.zeros(members.shape[0])
    for producer, consumers, nbytes in tensors:
        inside = members[:, producer]
        outside = ~np.all(members[:, list(consumers)], axis=1)
        out += nbytes * (inside & outside)
    return out


def _live_max(lattice: Lattice, model: StageModel, pi: np.ndarray, pj: np.ndarray) -> np.ndarray:
    """Largest live_bytes of a unit in J - I, per pair."""
    out = np.zeros(len(pi))
    ranked = np.argsort(model.live_bytes, kind="stable")[::-1]
    remaining = np.ones(len(pi), dtype=bool)
    for u in ranked:
        if not remaining.any() or model.live_bytes[u] <= 0:
            break
        hit = remaining & lattice.in_stage(u, pi, pj)
        out[hit] = model.live_bytes[u]
        remaining &= ~hit
    return out


def _link_s(model: StageModel, k: int, nbytes: np.ndarray) -> np.ndarray:
    """Seconds of each byte count on the link out of chip k, by the link's own function
    (called once per distinct count)."""
    values, inverse = np.unique(nbytes, return_inverse=True)
    link = model.links[k]
    return np.array([link(int(b)) for b in values], dtype=np.float64)[inverse.reshape(-1)]


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
    links = [np.zeros(len(cuts)) if switched else _link_s(model, k, cuts) for k in range(chips)]

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
        into = _switch_in_bytes(lattice, model, pi, pj)

        def fewest_bytes(limit: float):
            def bytes_pass(reach, _link_in, stage, _k, _pi, _limit):
                return np.where(stage <= limit, reach + into, INF)
            best2, how2 = run(bytes_pass, limit)
            return best2[chips, lattice.full], how2
        stages = np.unique(np.concatenate([c[np.isfinite(c)] for c in (
            stage_cost(k, r) for k in range(chips)
            for r in range(1, min(int(model.max_replicas[k]), chips - k) + 1))]))
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
                     pj: np.ndarray) -> np.ndarray:
    """Bytes the switch carries into each pair's stage: every tensor made before it and read
    in it, once (the switch carries a tensor once per stage that reads it)."""
    out = np.zeros(len(pi))
    for producer, consumers, nbytes in model.tensors:
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
    need[unsure] += _live_max(lattice, model, pi[unsure], pj[unsure])
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
