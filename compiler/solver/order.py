"""Chip order: when the chips differ, which one runs the first stage, the second, ...

Every distinct order of the chip list (a multiset: [x1, x1, hailo] has 3) is
solved, each exactly when the lattice is small, and the best plan wins; its
bound is the least bound over all orders, so OPTIMAL means optimal over orders
too. Past ``MAX_ORDERS`` orders, only the given order and the chips sorted by
speed (fastest first, and last) are tried, and the plan says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from itertools import permutations

from chipcut.backends.protocol import Backend, Work
from chipcut.compiler.lowering.units import UnitGraph
from chipcut.compiler.solver.problem import Interconnect
from chipcut.compiler.solver.residency import Partitioned, partition
from chipcut.core.errors import ChipcutError, NoPlanInTime
from chipcut.core.vocab import Status

MAX_ORDERS = 24


def orders(backends: list[Backend]) -> tuple[list[list[Backend]], bool]:
    """(distinct chip orders to try, whether that is all of them)."""
    names = [b.name for b in backends]
    if len(set(names)) == 1:
        return [backends], True
    by_name = {b.name: b for b in backends}
    distinct = sorted(set(permutations(names)))
    if len(distinct) <= MAX_ORDERS:
        return [[by_name[n] for n in order] for order in distinct], True
    speed = sorted(backends, key=lambda b: (-max(map(b.peak_macs_per_s, b.dtypes())), b.name))
    tried = [backends, speed, speed[::-1]]
    unique = {tuple(b.name for b in o): o for o in tried}
    return list(unique.values()), False


def best_order(units: UnitGraph, works: list[Work], backends: list[Backend], time_limit_s: float,
               progress: Callable[[str], None] | None, net: Interconnect,
               io_bytes: tuple[int, int], hint: tuple[int, ...] | None = None,
               ) -> tuple[list[Backend], Partitioned]:
    """The chip order and plan with the least objective (then fewest bytes); ``hint`` (an
    assignment for the chips as given) is a plan to do no worse than."""
    candidates, every = orders(backends)
    complete = every
    start = time.perf_counter()
    best: tuple[list[Backend], Partitioned] | None = None
    bounds, failures = [], []
    for i, order in enumerate(candidates):
        left = time_limit_s - (time.perf_counter() - start)
        if best is not None and left <= 0:
            complete = False  # out of time: the bound covers the orders tried
            break
        share = max(left, 0.0) / (len(candidates) - i)
        if len(candidates) > 1 and progress:
            progress(f"chip order {i + 1}/{len(candidates)}: {', '.join(b.name for b in order)}")
        try:
            found = partition(units, works, order, share, progress, net, io_bytes,
                              hint if [b.name for b in order] == [b.name for b in backends]
                              else None)
        except ChipcutError as e:
            failures.append(e)
            complete = complete and not isinstance(e, NoPlanInTime)  # that order's bound unknown
            continue
        bounds.append(found.solution.bound_s)
        s = found.solution
        if best is None or (s.bottleneck_s, s.bytes_moved) < (best[1].solution.bottleneck_s,
                                                             best[1].solution.bytes_moved):
            best = (order, found)
    if best is None:  # an order that ran out of time proves nothing: say that over "does not fit"
        raise next((e for e in failures if isinstance(e, NoPlanInTime)), failures[0])
    order, found = best
    if len(candidates) == 1:
        return order, found
    s = found.solution
    bound = min(bounds) if complete else min(bounds + [0.0])
    gap = (s.bottleneck_s - bound) / s.bottleneck_s if s.bottleneck_s > 0 else 0.0
    status = Status.OPTIMAL if gap <= 1e-6 else Status.FEASIBLE
    note = (f"chip order chosen from {len(candidates)} orders" if complete else
            f"chip order chosen from {len(bounds)} of the possible orders"
            + ("" if every else " (given, fastest first, fastest last)")
            + "; the bound covers no other order")
    solution = replace(s, bound_s=bound, gap=gap, status=status,
                       wall_s=time.perf_counter() - start)
    return order, replace(found, solution=solution, notes=found.notes + (note,))
