"""Graphs whose lattice of ideals is too large to enumerate: a lower bound that sees the links,
and plans cut along orders that fill each stage.

**The cut bound.** A pipeline's cut after chip k is an ideal I_k; the chips before it do the work
W(I_k) (each unit at its fastest chip), so W(I_k) - W(I_{k-1}) <= T for a bottleneck T, and the
link after chip k carries the bytes B(I_k) of the tensors leaving I_k. Which ideals have W(I) in
[a, b]? One holding unit u has W(I) >= W(ancestors of u and u); one without it has
W(I) <= total - W(descendants of u and u). So on [a, b] some units must be in and some out, and
the fewest bytes an ideal can send there is a minimum cut of the unit graph with those units
pinned (a closure problem; ``min_cut`` is OR-Tools' max flow, chipcut.compiler.solver.cpsat).
Positions in [0, total]
split into intervals where the pinned sets do not change; a pipeline of bottleneck T needs cut
positions 0 = w_0 <= ... <= w_N = total, steps of at most T (r T for a stage on r replicas),
each in an interval whose least link time is at most T. The least T for which such positions
exist bounds every pipeline from below; nesting of the ideals is what it drops, so it is a
relaxation. On a wide net whose early cuts carry two big feature maps it is far above
total / N, where CP-SAT's own bound stays. Where unit times depend on a stage's weights
(residency), chipcut.compiler.solver.stagebound adds what the surely-included units lose.

**Balanced orders.** The chain program is exact over the prefixes of one unit order; here
the order is built to fill stages of a target time T (timed under the chips' residency
table when they share one): repeatedly the largest unit whose predecessors are placed and
that still fits in the current stage, a new stage when none fits. Each target gives an order whose prefixes land near k T; the chain program then
picks the best cuts along it (links, memory and residency exactly).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from chipcut.compiler.solver import lattice
from chipcut.compiler.solver.evaluate import evaluate, lower_bound_s
from chipcut.compiler.solver.problem import PartitionProblem, Residency
from chipcut.compiler.solver.stagebound import pair_bound
from chipcut.core.vocab import Objective, Topology

# (tails, heads, capacities, source, sink) -> the least cut's capacity (0 when not solved)
MinCut = Callable[[np.ndarray, np.ndarray, np.ndarray, int, int], int]


def cut_bound(problem: PartitionProblem, min_cut: MinCut, deadline: float) -> float:
    """A lower bound on the bottleneck of every pipeline (throughput objective), at least
    ``lower_bound_s``. On a chain it counts the links (assumed no faster for more bytes); on a
    ring or a switch, where a tensor may take another way, it leaves them out (they only add
    time) and bounds by the stages alone."""
    floor = lower_bound_s(problem)
    if problem.objective != Objective.THROUGHPUT or problem.n_chips < 2 or not problem.tensors:
        return floor
    work = np.asarray([min(t) for t in problem.unit_time_s], dtype=np.float64)
    total = float(work.sum())
    ancestors, descendants = closure_work(problem, work)
    bins, clusters, first, last = _bins(ancestors, total - descendants, total)
    least_s = (_least_link_s(problem, _least_bytes(problem, clusters, first, last, min_cut,
                                                   deadline))
               if problem.topology == Topology.CHAIN else np.zeros(len(first)))
    rmax = problem.most_replicas
    bound = _least_limit(bins, least_s, floor, problem.n_chips, rmax, total)
    with_residency = pair_bound(problem, bins, clusters, first, last, least_s, deadline)
    return bound if with_residency is None else max(bound, with_residency)


def _least_limit(bins: np.ndarray, least_s: np.ndarray, floor: float, chips: int, rmax: int,
                 total: float) -> float:
    """The least step limit for which cut positions reach the total (``floor`` if it does):
    bisected, returning the infeasible side, below which every pipeline is."""
    if _reachable(bins, least_s, floor, chips, rmax, total):
        return floor
    lo, hi = floor, total * (1 + 1e-6) + float(np.max(least_s, where=np.isfinite(least_s),
                                                      initial=0.0))
    for _ in range(64):
        mid = (lo + hi) / 2
        if _reachable(bins, least_s, mid, chips, rmax, total):
            hi = mid
        else:
            lo = mid
        if hi - lo <= 1e-12 * hi:
            break
    return lo


def _bins(ancestors: np.ndarray, latest_out: np.ndarray,
          total: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Work positions split where the pinned units change: (start, end) per bin, and per unit
    its clusters (up, down) and per bin the thresholds (first, last): u is pinned in where
    down[u] < first, pinned out where up[u] > last. The work of an ideal holding u is at least
    ancestors[u]; of one without u at most latest_out[u]. Values within a hair (rounding) are
    one cluster; a bin is a cluster or the open gap between two, so every ideal lies in one."""
    hair = 1e-9 * max(total, 1e-300)
    values = np.unique(np.concatenate([ancestors, latest_out, [0.0, total]]))
    breaks = np.flatnonzero(np.diff(values) > 4 * hair)
    lo = np.concatenate([values[:1], values[breaks + 1]])
    hi = np.concatenate([values[breaks], values[-1:]])
    up = np.searchsorted(lo, ancestors, side="right") - 1  # the cluster holding each value
    down = np.searchsorted(lo, latest_out, side="right") - 1
    rows = []
    for c in range(len(lo)):
        rows.append((lo[c] - hair, hi[c] + hair, c, c))
        if c + 1 < len(lo):  # the gap: more than cluster c's work, less than cluster c + 1's
            rows.append((hi[c] + hair, lo[c + 1] - hair, c + 1, c))
    table = np.asarray(rows)
    return table[:, :2], np.column_stack([up, down]), table[:, 2].astype(int), table[:, 3].astype(int)


def closure_work(problem: PartitionProblem, work: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per unit, the work of it with its ancestors, and of it with its descendants
    (units are in a topological order)."""
    n = len(work)
    preds, succs = _neighbours(problem)
    up, down = [0] * n, [0] * n
    for u in range(n):
        up[u] = (1 << u) | _union(up[p] for p in preds[u])
    for u in reversed(range(n)):
        down[u] = (1 << u) | _union(down[c] for c in succs[u])
    return _weigh(up, n, work), _weigh(down, n, work)


def _neighbours(problem: PartitionProblem) -> tuple[list[set[int]], list[list[int]]]:
    """Per unit, its direct predecessors and its direct successors."""
    n = len(problem.unit_time_s)
    preds: list[set[int]] = [set() for _ in range(n)]
    for p, consumers, _ in problem.tensors:
        for c in consumers:
            preds[c].add(p)
    succs: list[list[int]] = [[] for _ in range(n)]
    for c in range(n):
        for p in preds[c]:
            succs[p].append(c)
    return preds, succs


def _union(sets) -> int:
    out = 0
    for s in sets:
        out |= s
    return out


def _weigh(bitsets: list[int], n: int, work: np.ndarray) -> np.ndarray:
    """The work of each bitset's units, a block of rows at a time."""
    size = (n + 7) // 8
    out = np.empty(len(bitsets))
    for at in range(0, len(bitsets), 1024):
        block = bitsets[at:at + 1024]
        raw = np.frombuffer(b"".join(b.to_bytes(size, "little") for b in block), dtype=np.uint8)
        members = np.unpackbits(raw.reshape(len(block), size), axis=1, bitorder="little")[:, :n]
        out[at:at + len(block)] = members @ work
    return out


def _least_bytes(problem: PartitionProblem, clusters: np.ndarray, first: np.ndarray,
                 last: np.ndarray, min_cut: MinCut, deadline: float) -> np.ndarray:
    """Per bin, the fewest bytes leaving an ideal with its pinned units in and out (inf when no
    ideal has them; 0 where time ran out: still a bound). Nodes: units, one per tensor, source,
    sink; a tensor costs its bytes when its producer is in and its node out, and its node is in
    only with every consumer; a unit is in only with its predecessors."""
    n, tensors = len(clusters), problem.tensors
    source, sink = n + len(tensors), n + len(tensors) + 1
    big = sum(b for _, _, b in tensors) + 1
    tails, heads, caps = [], [], []
    for t, (p, consumers, nbytes) in enumerate(tensors):
        tails += [p] + [n + t] * len(consumers) + list(consumers)
        heads += [n + t] + list(consumers) + [p] * len(consumers)
        caps += [nbytes] + [big] * (2 * len(consumers))
    arcs = (np.asarray(tails, np.int32), np.asarray(heads, np.int32), np.asarray(caps, np.int64))
    out = np.zeros(len(first))
    for i, (lowest, highest) in enumerate(zip(first, last, strict=True)):
        if time.perf_counter() > deadline:
            break
        ins, outs = clusters[:, 1] < lowest, clusters[:, 0] > highest
        if (ins & outs).any():
            out[i] = np.inf
            continue
        if not ins.any() or not outs.any():
            continue  # the empty or the full ideal keeps the pins: nothing need cross
        pinned_in, pinned_out = np.flatnonzero(ins).astype(np.int32), np.flatnonzero(outs).astype(np.int32)
        tail = np.concatenate([arcs[0], np.full(len(pinned_in), source, np.int32), pinned_out])
        head = np.concatenate([arcs[1], pinned_in, np.full(len(pinned_out), sink, np.int32)])
        cap = np.concatenate([arcs[2], np.full(len(pinned_in) + len(pinned_out), big, np.int64)])
        flow = min_cut(tail, head, cap, source, sink)
        out[i] = np.inf if flow >= big else flow
    return out


def _least_link_s(problem: PartitionProblem, nbytes: np.ndarray) -> np.ndarray:
    """The fastest chip link's time for each byte count."""
    links = [problem.link(k) for k in range(problem.n_chips)]
    values, inverse = np.unique(nbytes, return_inverse=True)
    fastest = [0.0 if b <= 0 else np.inf if not np.isfinite(b) else min(link(int(b)) for link in links)
               for b in values]
    return np.asarray(fastest, dtype=np.float64)[inverse.reshape(-1)]


def _reachable(bins: np.ndarray, least_s: np.ndarray, limit_s: float, chips: int, rmax: int,
               total: float) -> bool:
    """Whether cut positions with steps of at most limit_s (r limit_s on r replicas), each in a
    bin whose least link time is within limit_s, reach the total on ``chips`` chips. The
    furthest position reached with c chips is the best one: from further on, every later
    position reachable before is still reachable."""
    allowed = least_s <= limit_s * (1 + 1e-12)
    starts, ends = bins[allowed, 0], bins[allowed, 1]
    furthest = np.zeros(chips + 1)
    for c in range(1, chips + 1):
        for r in range(1, min(rmax, c) + 1):
            w = furthest[c - r]
            reach = w + r * limit_s
            hit = (starts <= reach) & (ends >= w)
            step = max(w, float(np.minimum(ends[hit], reach).max())) if hit.any() else w
            furthest[c] = max(furthest[c], step)
    return furthest[chips] >= total - 1e-9 * total


def balanced_order(problem: PartitionProblem, stage_s: float) -> list[int]:
    """A topological order of the units that fills stages of ``stage_s``: the largest ready
    unit that fits, a new stage when none does. A stage is timed as chip 0 runs it (under
    its residency, when the chips share one table), else at each unit's fastest time."""
    n = len(problem.unit_time_s)
    work = [min(t) for t in problem.unit_time_s]
    preds, succs = _neighbours(problem)
    waiting = [len(p) for p in preds]
    ready = [u for u in range(n) if not waiting[u]]
    order: list[int] = []
    clock = _Clock(problem, work)
    while ready:
        fits = [u for u in ready if clock.with_unit(u) <= stage_s * (1 + 1e-12)]
        if not fits and clock.units:
            clock.start()
            continue
        u = max(fits or ready, key=lambda v: (work[v], -v))
        ready.remove(u)
        order.append(u)
        clock.add(u)
        for c in succs[u]:
            waiting[c] -= 1
            if not waiting[c]:
                ready.append(c)
    return order


class _Clock:
    """A stage's time as units join it: under the chips' one residency table when they share
    it (weights resident when they fit, activations in the SRAM left), else the sum of the
    units' fastest times."""

    def __init__(self, problem: PartitionProblem, work: list[float]) -> None:
        tables = problem.residency
        self.table = tables[0] if tables and all(t is tables[0] for t in tables) else None
        self.work = work
        self.weights = problem.weight_bytes or (0,) * len(work)
        if self.table is not None:
            self.streamed = np.asarray(self.table.streamed_s)
            self.resident = np.asarray(self.table.resident_s)
        self.start()

    def start(self) -> None:
        self.units, self.load, self.weight = 0, 0.0, 0
        if self.table is not None:
            self.streamed_sum, self.resident_sum = 0.0, np.zeros(self.resident.shape[0])

    def with_unit(self, u: int) -> float:
        if self.table is None:
            return self.load + self.work[u]
        weight = self.weight + self.weights[u]
        if weight > self.table.resident_bytes:
            return self.streamed_sum + self.streamed[u]
        level = self.table.level(weight)
        return float(self.resident_sum[level] + self.resident[level, u])

    def add(self, u: int) -> None:
        self.units += 1
        self.load += self.work[u]
        self.weight += self.weights[u]
        if self.table is not None:
            self.streamed_sum += self.streamed[u]
            self.resident_sum += self.resident[:, u]


def permuted(problem: PartitionProblem, order: Sequence[int]) -> PartitionProblem:
    """The same problem with unit i of the result being unit order[i] (a topological order)."""
    position = {u: i for i, u in enumerate(order)}

    def each(values):
        return tuple(values[u] for u in order) if values else values
    tensors = tuple((position[p], tuple(sorted(position[c] for c in cs)), b)
                    for p, cs, b in problem.tensors)
    residency = tuple(Residency(each(r.streamed_s), r.resident_bytes, r.sram_bytes, r.free_levels,
                                tuple(each(row) for row in r.resident_s))
                      for r in problem.residency)
    return replace(problem, unit_time_s=each(problem.unit_time_s), tensors=tensors,
                   weight_bytes=each(problem.weight_bytes), live_bytes=each(problem.live_bytes),
                   residency=residency)


ORDERS = 16  # balanced orders tried, at targets spread from the bound to the best plan


def balanced_plans(problem: PartitionProblem, bound: float, value: float, deadline: float,
                   replicate: bool = False) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Plans of a chain (throughput objective) cut along balanced orders at targets from
    ``bound`` to ``value`` (twice the bound when no plan is known), each better than the one
    before and than ``value``: (assignment, replicas) with replicas where ``replicate``. Within
    half the time left; stops at one that meets ``bound``."""
    stop = time.perf_counter() + (deadline - time.perf_counter()) / 2
    n, top, found_plans = len(problem.unit_time_s), value if np.isfinite(value) else 2 * bound, []
    for i in range(ORDERS):
        if time.perf_counter() > stop:
            break
        order = balanced_order(problem, bound + (top - bound) * i / ORDERS)
        try:
            found = lattice.chain_dp(permuted(problem, order), stop, replicate=replicate,
                                     upper_s=value * (1 + 1e-9))
        except lattice.OutOfTime:
            break
        if found is None:
            continue
        chip = [0] * n
        for position, u in enumerate(order):
            chip[u] = found.chip_of_unit[position]
        found_value = evaluate(problem, chip, found.replicas)[0]
        if found_value < value * (1 - 1e-12):
            found_plans.append((tuple(chip), tuple(found.replicas)))
            value = found_value
            if value <= bound * (1 + 1e-9):
                break
    return found_plans
