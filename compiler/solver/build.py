"""From chips and units to the solver's problem: unit times under residency, links, memory,
the switch and the host links, all asked of the backends through their Protocol."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from chipcut.backends.protocol import Backend, Work
from chipcut.compiler.lowering.costing import (
    ChipState,
    chip_state,
    placement,
    unit_cost,
    unit_times,
)
from chipcut.compiler.lowering.units import UnitGraph
from chipcut.compiler.solver import capabilities
from chipcut.compiler.solver.fit import live_bytes
from chipcut.compiler.solver.problem import (
    CHAIN,
    BackendLink,
    Interconnect,
    PartitionProblem,
    Residency,
)

MAX_LEVEL_CELLS = 20_000_000  # free-SRAM levels x units per chip table, beyond which the
# residency is left to rounds of fixed states (the exact tables would not fit in memory)


def make_problem(units: UnitGraph, works: list[Work], backends: list[Backend],
                 states: tuple[ChipState, ...] | list[ChipState], net: Interconnect = CHAIN,
                 io_bytes: tuple[int, int] = (0, 0),
                 banned: set[tuple[int, int]] = frozenset()) -> PartitionProblem:
    """The solver's input with every chip under residency ``states``; ``banned`` (unit, chip)
    pairs cost more than any plan that avoids them."""
    times = capabilities.apply(unit_times(works, backends, list(states)), banned)
    in_bytes, out_bytes = io_bytes
    return PartitionProblem(
        unit_time_s=tuple(tuple(row) for row in times),
        tensors=tuple((p, c, b) for p, c, b, _ in units.tensors),
        n_chips=len(backends),
        links=tuple(BackendLink(b) for b in backends),
        weight_bytes=tuple(w.weight_bytes for w in works),
        live_bytes=live_bytes(units, works),
        memory_bytes=tuple(b.memory().capacity_bytes for b in backends),
        overlap=tuple(b.link().overlap for b in backends),
        max_replicas=identical_runs(backends) if net.replicate else (),
        topology=net.topology,
        switch=net.switch_link(backends[0]),
        host_in_s=net.host_link(backends[0])(in_bytes),
        host_out_s=net.host_link(backends[-1])(out_bytes),
        objective=net.objective,
    )


def identical_runs(backends: list[Backend]) -> tuple[int, ...]:
    """For each chip, how many chips from it on run the same backend."""
    out = [1] * len(backends)
    for k in range(len(backends) - 2, -1, -1):
        if backends[k + 1] is backends[k] or backends[k + 1].name == backends[k].name:
            out[k] = out[k + 1] + 1
    return tuple(out)


def states_of(works: list[Work], chip_of_unit: tuple[int, ...],
              backends: list[Backend]) -> tuple[ChipState, ...]:
    """Each chip's residency under an assignment: its weights resident when its backend says so."""
    weights = [0] * len(backends)
    for u, chip in enumerate(chip_of_unit):
        weights[chip] += works[u].weight_bytes
    return tuple(chip_state(b, w) for b, w in zip(backends, weights, strict=True))


def optimistic_states(backends: list[Backend]) -> list[ChipState]:
    """Every chip with its weights resident and all of its SRAM free: no plan does better."""
    return [ChipState(True, b.memory().sram_bytes) for b in backends]


def residency_problem(units: UnitGraph, works: list[Work], backends: list[Backend],
                      net: Interconnect = CHAIN, io_bytes: tuple[int, int] = (0, 0),
                      banned: set[tuple[int, int]] = frozenset()) -> PartitionProblem | None:
    """The solver's input with residency decided per stage (see Residency): unit_time_s holds
    each unit's fastest time. None when a chip's exact table would be too large."""
    tables: dict[int, Residency] = {}
    for b in backends:
        if id(b) not in tables:
            table = _residency(works, b)
            if table is None:
                return None
            tables[id(b)] = table
    chips = [tables[id(b)] for b in backends]
    if banned:  # as capabilities.apply prices a ban, over the slowest of every table
        penalty = capabilities.FORBIDDEN_FACTOR * (sum(
            max(max(r.streamed_s[u], *(row[u] for row in r.resident_s)) for r in chips)
            for u in range(len(works))) + 1e-9)
        chips = [_ban(r, k, banned, penalty) for k, r in enumerate(chips)]
    fastest = tuple(tuple(min(r.streamed_s[u], *(row[u] for row in r.resident_s)) for r in chips)
                    for u in range(len(works)))
    base = make_problem(units, works, backends, [chip_state(b, 0) for b in backends], net,
                        io_bytes, banned)
    return replace(base, unit_time_s=fastest, residency=tuple(chips))


def _residency(works: list[Work], backend: Backend) -> Residency | None:
    sram = backend.memory().sram_bytes
    streamed_state = ChipState(False, sram)
    streamed = tuple(unit_cost(w, backend, placement(w, backend, streamed_state)).time_s
                     for w in works)
    limit = _resident_limit(backend, sum(w.weight_bytes for w in works))
    if limit < 0:
        return Residency(streamed, -1, sram, (0,), (streamed,))
    levels = sorted({0} | {v for w in works for v in (w.in_bytes, w.out_bytes) if 0 < v <= sram})
    if len(levels) * len(works) > MAX_LEVEL_CELLS:
        return None
    table = np.empty((len(levels), len(works)))
    at = np.asarray(levels)
    for u, w in enumerate(works):
        # A unit's placement changes only where its input or output starts to fit.
        marks = sorted({0} | {v for v in (w.in_bytes, w.out_bytes) if 0 < v <= sram})
        seconds = [unit_cost(w, backend, placement(w, backend, ChipState(True, f))).time_s
                   for f in marks]
        table[:, u] = np.asarray(seconds)[np.searchsorted(marks, at, side="right") - 1]
    return Residency(streamed, limit, sram, tuple(levels), tuple(map(tuple, table.tolist())))


def _resident_limit(backend: Backend, total_bytes: int) -> int:
    """The most stage weight bytes the backend keeps resident (-1: none). A backend's rule is
    monotone (a smaller stage never loses residency), so bisection finds it."""
    if not backend.weights_resident(0):
        return -1
    if backend.weights_resident(total_bytes):
        return total_bytes
    lo, hi = 0, total_bytes  # resident at lo, not at hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if backend.weights_resident(mid) else (lo, mid)
    return lo


def _ban(r: Residency, k: int, banned: set[tuple[int, int]], penalty_s: float) -> Residency:
    """Banned units on chip k cost more than any plan that avoids them, in every table."""
    def ban(row: tuple[float, ...]) -> tuple[float, ...]:
        return tuple(penalty_s if (u, k) in banned else t for u, t in enumerate(row))
    return replace(r, streamed_s=ban(r.streamed_s), resident_s=tuple(map(ban, r.resident_s)))
