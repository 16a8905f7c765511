"""From chips and units to the solver's problem: unit times under residency, links, memory,
the switch and the host links, all asked of the backends through their Protocol."""

from __future__ import annotations

from chipcut.backends.protocol import Backend, Work
from chipcut.compiler.lowering.costing import ChipState, chip_state, unit_times
from chipcut.compiler.lowering.units import UnitGraph
from chipcut.compiler.solver import capabilities
from chipcut.compiler.solver.fit import live_bytes
from chipcut.compiler.solver.problem import CHAIN, BackendLink, Interconnect, PartitionProblem


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
