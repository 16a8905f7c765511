"""Exact dynamic program for pipeline cuts along one topological order (no OR-Tools).

Stage k takes a contiguous slice [j, i) of the order. The first pass finds the
least bottleneck max(stage time, link time); the second the fewest bytes
moved among cut sets within that bottleneck. Used to warm-start CP-SAT and as
a baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ChainCosts:
    """Costs along a fixed order of n units for N chips.

    unit_time_s: (n, N) seconds of unit u on chip k; cut_bytes: (n + 1,) bytes
    crossing a cut placed before position j (0 and n carry none);
    link_bytes_per_s / link_latency_s: (N - 1,) for the link into chip k + 1.
    """

    unit_time_s: np.ndarray
    cut_bytes: np.ndarray
    link_bytes_per_s: np.ndarray
    link_latency_s: np.ndarray


def _link_times(costs: ChainCosts, k: int) -> np.ndarray:
    b = costs.cut_bytes
    return np.where(b > 0, costs.link_latency_s[k - 1] + b / costs.link_bytes_per_s[k - 1], 0.0)


def min_bottleneck(costs: ChainCosts, cap_s: float | None = None) -> tuple[float, list[int]]:
    """Least bottleneck over contiguous cuts, and the stage boundaries [0, c1, ..., n]."""
    n, chips = costs.unit_time_s.shape
    prefix = np.vstack([np.zeros(chips), np.cumsum(costs.unit_time_s, axis=0)])  # (n+1, N)
    best = prefix[:, 0].copy()  # stage 0 takes [0, i)
    choice = np.zeros((chips, n + 1), dtype=np.int64)
    for k in range(1, chips):
        link = _link_times(costs, k)
        before = np.maximum(best, link)  # cost of everything up to a cut at j
        new = np.empty(n + 1)
        for i in range(n + 1):
            seg = prefix[i, k] - prefix[: i + 1, k]
            total = np.maximum(before[: i + 1], seg)
            j = int(np.argmin(total))
            new[i], choice[k, i] = total[j], j
        best = new
    return float(best[n]), _boundaries(choice, chips, n)


def min_bytes_within(costs: ChainCosts, bottleneck_s: float) -> tuple[int, list[int]]:
    """Fewest bytes moved over cuts whose stages and links all stay within ``bottleneck_s``."""
    n, chips = costs.unit_time_s.shape
    prefix = np.vstack([np.zeros(chips), np.cumsum(costs.unit_time_s, axis=0)])
    limit = bottleneck_s * (1 + 1e-9) + 1e-15
    inf = np.inf
    best = np.where(prefix[:, 0] <= limit, 0.0, inf)
    choice = np.zeros((chips, n + 1), dtype=np.int64)
    for k in range(1, chips):
        link_ok = _link_times(costs, k) <= limit
        before = np.where(link_ok, best + costs.cut_bytes, inf)
        new = np.full(n + 1, inf)
        for i in range(n + 1):
            seg_ok = prefix[i, k] - prefix[: i + 1, k] <= limit
            total = np.where(seg_ok, before[: i + 1], inf)
            j = int(np.argmin(total))
            new[i], choice[k, i] = total[j], j
        best = new
    return int(best[n]) if np.isfinite(best[n]) else -1, _boundaries(choice, chips, n)


def _boundaries(choice: np.ndarray, chips: int, n: int) -> list[int]:
    cuts = [n]
    i = n
    for k in range(chips - 1, 0, -1):
        i = int(choice[k, i])
        cuts.append(i)
    cuts.append(0)
    return cuts[::-1]


def assignment_from_boundaries(boundaries: list[int]) -> list[int]:
    """Chip index per position for boundaries [0, c1, ..., n]."""
    out: list[int] = []
    for k in range(len(boundaries) - 1):
        out.extend([k] * (boundaries[k + 1] - boundaries[k]))
    return out


def cut_bytes_along(order_pos_of_unit: list[int], tensors: list[tuple[int, tuple[int, ...], int]],
                    n: int) -> np.ndarray:
    """Bytes crossing a cut before each position j: tensors born before j and used at or after j."""
    diff = np.zeros(n + 2, dtype=np.float64)
    for producer, consumers, nbytes in tensors:
        p = order_pos_of_unit[producer]
        last = max(order_pos_of_unit[c] for c in consumers)
        if last > p:
            diff[p + 1] += nbytes
            diff[last + 1] -= nbytes
    return np.cumsum(diff)[: n + 1]
