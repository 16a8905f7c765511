"""The ideal family the exact program runs over: the ideals of the unit graph (or the prefixes
of one topological order), per-ideal sums of unit times, weights and cut bytes, and the
(I, J) pairs a stage may span (see chipcut.compiler.solver.lattice for the program)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

INF = np.inf
MAX_PAIRS = 20_000_000  # (I, J) pairs held at once: about 1 GB of working arrays


class OutOfTime(Exception):
    """The program ran past its deadline (or past MAX_PAIRS pairs)."""


_ENUMERATED: dict[tuple[tuple[int, ...], int], list[int] | None] = {}  # the last few graphs


def enumerate_ideals(preds: list[int], limit: int, deadline: float = float("inf")) -> list[int] | None:
    """Every ideal as a bitset over units (``preds[u]``: bitset of u's direct predecessors),
    or None when there are more than ``limit`` or the deadline passes first.

    Each ideal is generated once, from the ideal without its highest-numbered maximal
    unit; ``frontier`` holds the units whose predecessors are all inside. A finished answer
    is kept for the graph (the chip orders of one model ask for the same lattice).
    """
    key = (tuple(preds), limit)
    if key in _ENUMERATED:
        return _ENUMERATED[key]
    n = len(preds)
    succ: list[list[int]] = [[] for _ in range(n)]
    for v in range(n):
        for u in _bits(preds[v]):
            succ[u].append(v)
    out: list[int] | None = []
    start = tuple(u for u in range(n) if not preds[u])
    stack: list[tuple[int, tuple[int, ...], tuple[int, ...]]] = [(0, (), start)]
    while stack:
        ideal, maxes, frontier = stack.pop()
        out.append(ideal)
        if len(out) > limit:
            out = None
            break
        if len(out) % 4096 == 0 and time.perf_counter() > deadline:
            return None  # not kept: another call may have the time
        for u in frontier:
            rest = tuple(m for m in maxes if not preds[u] >> m & 1)
            if rest and max(rest) > u:
                continue
            grown = ideal | 1 << u
            opened = tuple(v for v in succ[u] if not preds[v] & ~grown)
            stack.append((grown, rest + (u,), tuple(f for f in frontier if f != u) + opened))
    if len(_ENUMERATED) >= 4:
        _ENUMERATED.pop(next(iter(_ENUMERATED)))
    _ENUMERATED[key] = out
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
        level = r.levels(weights)
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


def live_max(lattice: Lattice, model: StageModel, pi: np.ndarray, pj: np.ndarray) -> np.ndarray:
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


def link_s(model: StageModel, k: int, nbytes: np.ndarray) -> np.ndarray:
    """Seconds of each byte count on the link out of chip k, by the link's own function
    (called once per distinct count)."""
    values, inverse = np.unique(nbytes, return_inverse=True)
    link = model.links[k]
    return np.array([link(int(b)) for b in values], dtype=np.float64)[inverse.reshape(-1)]
