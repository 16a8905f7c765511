"""The cut bound with residency (see chipcut.compiler.solver.wide): per pair of bins, the least
time of a stage between a cut in the first and a cut in the second.

Where a chip keeps a stage's weights in SRAM when they fit, a unit's time depends on the
stage's weights: streamed, or resident with the SRAM the weights leave to activations. The
work bound takes every unit at its fastest, so a net whose first unit slows down whenever
its stage holds a few MB of weights is bounded too low. Between a cut in bin i and one in
bin j, some units are surely in the stage (in every ideal of bin j, in none of bin i), and
the stage's weights lie between those units' weights and the weights of every unit that may
be in it. Each surely-included unit then takes at least its least time over the residency
states those weights allow; what that adds to its fastest time adds to the stage's work
bound. The least bottleneck of a chain of bins under these stage bounds and the bins' link
bounds (a min-max path over N chips) bounds every pipeline from below.
"""

from __future__ import annotations

import time

import numpy as np

from chipcut.compiler.solver.problem import PartitionProblem

MAX_BINS = 3_000  # an (M, M) table per chip count: 72 MB at this size
PENALIZED = 64  # units whose slowdown is counted, the largest first (fewer: still a bound)


def pair_bound(problem: PartitionProblem, bins: np.ndarray, clusters: np.ndarray,
               first: np.ndarray, last: np.ndarray, least_s: np.ndarray,
               deadline: float) -> float | None:
    """The bound over pairs of bins (see the module), or None where it adds nothing (no
    residency, chips that differ, too many bins, time out)."""
    tables = problem.residency
    if (not tables or any(t is not tables[0] for t in tables) or len(bins) > MAX_BINS
            or any(len(set(row)) > 1 for row in problem.unit_time_s)):
        return None
    slow = _slowdown(problem, bins, clusters, first, last, deadline)
    if slow is None:
        return None
    m = len(bins)
    cost = np.maximum(bins[None, :, 0] - bins[:, None, 1], 0.0) + slow
    cost[np.tril_indices(m, -1)] = np.inf  # cuts go forward
    rmax = problem.most_replicas
    best = np.full((problem.n_chips + 1, m), np.inf)
    best[0, 0] = 0.0
    for c in range(1, problem.n_chips + 1):
        if time.perf_counter() > deadline:
            return None
        for r in range(1, min(rmax, c) + 1):
            reach = np.maximum(best[c - r][:, None], cost / r).min(axis=0)
            best[c] = np.minimum(best[c], np.maximum(reach, least_s))
    return float(best[-1, -1])


def _slowdown(problem: PartitionProblem, bins: np.ndarray, clusters: np.ndarray,
              first: np.ndarray, last: np.ndarray, deadline: float) -> np.ndarray | None:
    """(M, M): the least time the surely-included units of a stage from bin i to bin j add to
    their fastest times; None when no unit is ever slower than its fastest, or past the
    deadline."""
    table = problem.residency[0]
    fastest = np.asarray([row[0] for row in problem.unit_time_s], dtype=np.float64)
    streamed = np.asarray(table.streamed_s, dtype=np.float64)
    resident = np.asarray(table.resident_s, dtype=np.float64)  # (levels, n)
    # Free SRAM at most a level: the least time over that level and every lower one.
    resident_least = np.minimum.accumulate(resident, axis=0)
    worst = np.maximum(streamed, resident.max(axis=0)) - fastest
    units = np.argsort(-worst, kind="stable")[:PENALIZED]
    units = units[worst[units] > 1e-12 * max(fastest.sum(), 1e-300)]
    if not len(units):
        return None
    up, down = clusters[:, 0], clusters[:, 1]
    weights = np.asarray(problem.weight_bytes or (0,) * len(fastest), dtype=np.float64)
    w_lo, w_hi = _stage_weights(weights, up, down, first, last)
    level = table.levels(w_lo)
    m = len(bins)
    out = np.zeros((m, m))
    for u in units:
        if time.perf_counter() > deadline:
            return None
        rows = int(np.searchsorted(last, up[u], side="left"))  # bins i with last_i < up[u]
        cols = int(np.searchsorted(first, down[u], side="right"))  # bins j with first_j > down[u]
        if rows == 0 or cols == m:
            continue
        lo, hi = w_lo[:rows, cols:], w_hi[:rows, cols:]
        kept = resident_least[level[:rows, cols:], u]
        least = np.where(lo > table.resident_bytes, streamed[u],
                         np.where(hi <= table.resident_bytes, kept, np.minimum(kept, streamed[u])))
        out[:rows, cols:] += np.maximum(least - fastest[u], 0.0)
    return out


def _stage_weights(weights: np.ndarray, up: np.ndarray, down: np.ndarray, first: np.ndarray,
                   last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(M, M) each: the weights of the units surely in a stage from bin i to bin j (in every
    ideal of j: down < first_j; in none of i: up > last_i), and of every unit that may be
    (in some ideal of j: up <= last_j; not in every ideal of i: down >= first_i)."""
    c = int(max(up.max(initial=0), down.max(initial=0), first.max(), last.max())) + 1
    grid = np.zeros((c, c))
    np.add.at(grid, (down, up), weights)
    below = np.vstack([np.zeros((1, c)), np.cumsum(grid, axis=0)])  # [f][b]: down < f
    above = np.hstack([np.cumsum(below[:, ::-1], axis=1)[:, ::-1][:, 1:], np.zeros((c + 1, 1))])
    surely = above[first[None, :], last[:, None]]  # [i][j]: down < first_j, up > last_i
    upto = np.cumsum(grid, axis=1)  # [a][l]: up <= l
    from_f = np.vstack([np.cumsum(upto[::-1], axis=0)[::-1], np.zeros((1, c))])  # down >= f
    maybe = from_f[first[:, None], last[None, :]]  # [i][j]: down >= first_i, up <= last_j
    return surely, maybe
