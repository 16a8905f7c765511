"""The fallback plan when time runs out: stages along the unit order packed under a time cap.

Bisection on the cap T: chip k takes units along the order while its stage time stays
within T and its weights plus peak live activations fit its memory; the last chip takes
the rest. Both limits only loosen as a stage shrinks, so greedy packing finds a plan for
the cap whenever any contiguous split of the order meets it, and the smallest such cap
(to the bisection's tolerance) balances work while every chip fits. Links are left out
of the cap; the plan is costed exactly afterwards like any other.
"""

from __future__ import annotations

from chipcut.compiler.solver.problem import PartitionProblem

ITERATIONS = 48  # relative tolerance ~2^-48 of the total


def _pack(problem: PartitionProblem, cap_s: float) -> tuple[int, ...] | None:
    """Greedy stages under ``cap_s`` and each chip's memory, or None when they do not fit."""
    n, chips = len(problem.unit_time_s), problem.n_chips
    weights = problem.weight_bytes or (0,) * n
    live = problem.live_bytes or (0,) * n
    memory = problem.memory_bytes or (0,) * chips
    chip_of_unit = [0] * n
    u = 0
    for k in range(chips):
        last = k == chips - 1
        time_s, held, peak = 0.0, 0, 0
        while u < n:
            t = problem.unit_time_s[u][k]
            w, a = weights[u], live[u]
            over_time = time_s + t > cap_s
            over_memory = memory[k] > 0 and held + w + max(peak, a) > memory[k]
            if over_memory or (over_time and not last):
                break
            chip_of_unit[u] = k
            time_s, held, peak, u = time_s + t, held + w, max(peak, a), u + 1
        if last and (u < n or time_s > cap_s):
            return None
    return tuple(chip_of_unit) if u == n else None


def packed_split(problem: PartitionProblem) -> tuple[int, ...] | None:
    """The most balanced contiguous split of the unit order that fits every chip's memory,
    or None when no contiguous split fits."""
    total = sum(max(row) for row in problem.unit_time_s)
    best = _pack(problem, total * (1 + 1e-9) + 1e-30)
    if best is None:
        return None
    lo, hi = 0.0, total
    for _ in range(ITERATIONS):
        mid = (lo + hi) / 2
        found = _pack(problem, mid)
        if found is None:
            lo = mid
        else:
            hi, best = mid, found
    return best


def overfull_chip(problem: PartitionProblem, chip_of_unit) -> int | None:
    """The first chip whose weights plus peak live activations exceed its memory, or None."""
    n = len(chip_of_unit)
    weights = problem.weight_bytes or (0,) * n
    live = problem.live_bytes or (0,) * n
    for k, capacity in enumerate(problem.memory_bytes):
        on_k = [u for u in range(n) if chip_of_unit[u] == k]
        if capacity > 0 and on_k and (sum(weights[u] for u in on_k)
                                      + max(live[u] for u in on_k)) > capacity:
            return k
    return None


def valid_start(problem: PartitionProblem, hint: tuple[int, ...] | None) -> bool:
    """Whether ``hint`` is a pipeline of this problem that fits every chip."""
    n = len(problem.unit_time_s)
    return (hint is not None and len(hint) == n and all(0 <= k < problem.n_chips for k in hint)
            and all(hint[p] <= hint[c] for p, cs, _ in problem.tensors for c in cs)
            and overfull_chip(problem, hint) is None)
