"""Schedule: per-chip stages, timelines, link transfers and pipeline metrics of one assignment.

Every time here comes from the problem the solver solved, through
``chipcut.compiler.solver.evaluate.measure``: a stage's time is what the solver charged
it, a link's time is its backend's ``link_time_s``, and the bottleneck and latency are the
solver's own. The per-unit breakdown (compute vs memory, SRAM/DRAM bytes, energy) comes
from the backends' ``cost`` under the same placements the unit times were costed with.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from chipcut.backends.protocol import Backend, OpCost, Work
from chipcut.compiler.lowering.costing import ChipState, placement, unit_cost
from chipcut.compiler.lowering.summary import GraphSummary
from chipcut.compiler.lowering.units import UnitGraph
from chipcut.compiler.plan.model import ChipTimeline, Metrics, OpTiming, Stage, Transfer
from chipcut.compiler.solver.build import make_problem, states_of
from chipcut.compiler.solver.evaluate import Breakdown, measure
from chipcut.compiler.solver.problem import CHAIN, Interconnect, PartitionProblem
from chipcut.core.vocab import Bound


@dataclass(frozen=True)
class Schedule:
    stages: tuple[Stage, ...]
    transfers: tuple[Transfer, ...]
    metrics: Metrics
    timeline: tuple[ChipTimeline, ...]


@dataclass(frozen=True)
class Costed:
    """An assignment with the problem it is costed in: the one the solver solved, or for a
    hand-edited plan the same construction from the plan's graph summary."""

    chip_of_unit: tuple[int, ...]
    replicas: tuple[int, ...]
    problem: PartitionProblem
    states: tuple[ChipState, ...]


def cost_assignment(units: UnitGraph, works: list[Work], backends: list[Backend],
                    chip_of_unit: tuple[int, ...], replicas: tuple[int, ...], net: Interconnect,
                    io_bytes: tuple[int, int]) -> Costed:
    """An assignment costed under its own residency (each chip's weights resident when its
    backend keeps them)."""
    states = states_of(works, chip_of_unit, backends)
    problem = make_problem(units, works, backends, states, net, io_bytes)
    return Costed(chip_of_unit, replicas, problem, states)


def unit_costs(works: list[Work], backends: list[Backend], costed: Costed,
               fuse: bool = True) -> list[OpCost]:
    """Each unit's cost on its chip, under the placement its unit time was costed with
    (``fuse=False``: every unit boundary through DRAM, for comparison)."""
    out = []
    for u, work in enumerate(works):
        k = costed.chip_of_unit[u]
        out.append(unit_cost(work, backends[k], placement(work, backends[k], costed.states[k], fuse)))
    return out


def stage_weight_bytes(summary: GraphSummary, chip_of_unit: tuple[int, ...], chip: int,
                       kv: bool = False) -> int:
    """Bytes of the distinct parameters a chip's nodes read (a shared weight counts once per chip),
    at their stored (possibly quantized) size; with ``kv``, of the KV caches it holds instead."""
    stored, caches = dict(summary.weights), set(summary.kv_cache)
    names = {w for r in summary.nodes if chip_of_unit[r.unit] == chip for w in r.weights
             if (w in caches) == kv}
    return sum(stored.get(w, 0) for w in names)


def stage_weight_read_bytes(summary: GraphSummary, chip_of_unit: tuple[int, ...],
                            chip: int) -> int:
    """Bytes of parameters a chip's nodes read per inference: a weight whole, except one that
    only lookups read (an untied embedding table), of which the rows they gather, at most the
    table; KV caches excluded."""
    stored, caches = dict(summary.weights), set(summary.kv_cache)
    whole: set[str] = set()
    rows: dict[str, float] = {}
    for r in summary.nodes:
        if chip_of_unit[r.unit] != chip:
            continue
        mine = [w for w in r.weights if w not in caches]
        if r.weight_read_bytes is None:
            whole.update(mine)
            continue
        total = sum(stored.get(w, 0) for w in mine)
        for w in mine:  # a lookup's read shared among its tables by their sizes
            rows[w] = rows.get(w, 0.0) + (r.weight_read_bytes * stored.get(w, 0) / total if total else 0.0)
    return (sum(stored.get(w, 0) for w in whole)
            + sum(min(round(b), stored.get(w, 0)) for w, b in rows.items() if w not in whole))


def _scaled(work: Work, batch: int) -> Work:
    gemms = tuple((b, m * batch, k, n) for b, m, k, n in work.gemms)
    return replace(work, macs=work.macs * batch, elem_ops=work.elem_ops * batch,
                   in_bytes=work.in_bytes * batch, out_bytes=work.out_bytes * batch, gemms=gemms)


def batched_throughput_per_s(units: UnitGraph, works: list[Work], backends: list[Backend],
                             costed: Costed, net: Interconnect, io_bytes: tuple[int, int],
                             batch: int) -> float:
    """Frames/s when every chip runs ``batch`` frames at once: the same assignment and residency,
    ``batch`` times the work and the bytes on every link, measured like any plan."""
    scaled_units = replace(units, tensors=tuple((p, c, b * batch, n) for p, c, b, n in units.tensors))
    problem = make_problem(scaled_units, [_scaled(w, batch) for w in works], backends,
                           costed.states, net, (io_bytes[0] * batch, io_bytes[1] * batch))
    seconds = measure(problem, costed.chip_of_unit, costed.replicas).bottleneck_s
    return batch / seconds if seconds > 0 else 0.0


def build_schedule(summary: GraphSummary, units: UnitGraph, works: list[Work],
                   backends: list[Backend], costed: Costed, lower_bound_s: float, batch: int = 8,
                   net: Interconnect = CHAIN) -> Schedule:
    """Stages, transfers (per link of the topology), timelines and metrics of one assignment.

    ``costed.replicas[k]``: r on the first chip of a stage that r identical chips share, 0 on
    the others (which list no nodes)."""
    chip_of_unit, replicas, states = costed.chip_of_unit, costed.replicas, costed.states
    n_chips = len(backends)
    m = measure(costed.problem, chip_of_unit, replicas)
    units_of_chip: list[list[int]] = [[] for _ in range(n_chips)]
    for u, chip in enumerate(chip_of_unit):
        units_of_chip[chip].append(u)
    costs = unit_costs(works, backends, costed)
    unfused_dram = [c.dram_bytes for c in unit_costs(works, backends, costed, fuse=False)]
    unit_names: list[list[str]] = [[] for _ in works]
    for r in summary.nodes:
        unit_names[r.unit].append(r.name)
    names = [n for _, _, _, n in units.tensors]
    transfers = tuple(Transfer(m.leads[x.src], m.leads[x.dst], x.bytes,
                               tuple(names[t] for t in x.tensors), x.seconds) for x in m.links)
    in_bytes, out_bytes = _traffic(summary, chip_of_unit, len(backends))
    stages, timeline = [], []
    for chip, us in enumerate(units_of_chip):
        if replicas[chip] > 0:
            s = m.leads.index(chip)
            stage = _stage(chip, backends[chip], us, summary, chip_of_unit, works, costs,
                           unfused_dram, states[chip].weights_resident, in_bytes[chip],
                           out_bytes[chip], m.busy_s[s], replicas[chip])
        else:
            lead = max(k for k in m.leads if k <= chip)
            stage = Stage(chip=chip, backend=backends[chip].name, nodes=(), macs=0,
                          weight_bytes=stage_weight_bytes(summary, chip_of_unit, lead),
                          kv_bytes=stage_weight_bytes(summary, chip_of_unit, lead, kv=True),
                          weight_read_bytes=stages[lead].weight_read_bytes,
                          in_bytes=0, out_bytes=0, time_s=0.0, compute_s=0.0, memory_s=0.0,
                          bound=stages[lead].bound, weights_resident=states[lead].weights_resident,
                          replicas=0, replica_of=lead)
        stages.append(stage)
        timeline.append(_timeline(chip, us, unit_names, works, costs))
    metrics = _metrics(m, lower_bound_s, stages, backends)
    metrics = replace(metrics, batch=batch, throughput_at_batch_per_s=batched_throughput_per_s(
        units, works, backends, costed, net, summary.io_bytes(), batch))
    return Schedule(tuple(stages), transfers, metrics, tuple(timeline))


def _metrics(m: Breakdown, lower_bound_s: float, stages: list[Stage],
             backends: list[Backend]) -> Metrics:
    static_w = sum(b.static_power_w() for b in backends)
    dynamic_j = sum(s.energy_j for s in stages)
    return Metrics(
        throughput_per_s=1.0 / m.bottleneck_s if m.bottleneck_s > 0 else 0.0,
        latency_s=m.latency_s, bottleneck_chip=m.bottleneck_chip, bottleneck=m.bottleneck,
        bottleneck_s=m.bottleneck_s, lower_bound_s=lower_bound_s, bytes_moved=m.bytes_moved,
        dynamic_energy_j=dynamic_j, static_power_w=static_w,
        energy_per_inference_j=dynamic_j + static_w * m.bottleneck_s,
        host_in_s=m.host_in_s, host_out_s=m.host_out_s)


def _traffic(summary: GraphSummary, chip_of_unit: tuple[int, ...],
             n_chips: int) -> tuple[list[int], list[int]]:
    """Bytes each of ``n_chips`` chips receives (graph inputs and tensors from other chips) and
    sends (tensors to other chips and the model's outputs), per inference; empty chips 0."""
    n_chips = max(n_chips, max(chip_of_unit, default=0) + 1)
    chip_of = {r.name: chip_of_unit[r.unit] for r in summary.nodes}
    users: dict[str, set[int]] = {}
    for r in summary.nodes:
        for name in r.inputs:
            users.setdefault(name, set()).add(chip_of[r.name])
    in_bytes, out_bytes = [0] * (n_chips + 1), [0] * (n_chips + 1)
    for name, nbytes in summary.inputs:
        for chip in users.get(name, ()):
            in_bytes[chip] += nbytes
    for r in summary.nodes:
        src = chip_of[r.name]
        readers = users.get(r.name, set()) - {src}
        if r.is_output or readers:
            out_bytes[src] += r.out_bytes
        for chip in readers:
            in_bytes[chip] += r.out_bytes
    return in_bytes, out_bytes


def _stage(chip: int, backend: Backend, us: list[int], summary: GraphSummary,
           chip_of_unit: tuple[int, ...], works: list[Work], costs: list[OpCost],
           unfused_dram: list[int], resident: bool, in_bytes: int, out_bytes: int,
           time_s: float, replicas: int) -> Stage:
    mine = [costs[u] for u in us]
    compute_s = sum((c.compute_s for c in mine), 0.0)
    memory_s = sum((c.memory_s for c in mine), 0.0)
    macs = sum(works[u].macs for u in us)
    weights = stage_weight_bytes(summary, chip_of_unit, chip)
    peak = max(backend.peak_macs_per_s(d) for d in backend.dtypes())
    return Stage(
        chip=chip, backend=backend.name,
        nodes=tuple(r.name for r in summary.nodes if chip_of_unit[r.unit] == chip),
        macs=macs, weight_bytes=weights,
        weight_read_bytes=_fewer(stage_weight_read_bytes(summary, chip_of_unit, chip), weights),
        kv_bytes=stage_weight_bytes(summary, chip_of_unit, chip, kv=True),
        in_bytes=in_bytes, out_bytes=out_bytes, time_s=time_s, compute_s=compute_s,
        memory_s=memory_s, bound=stage_bound(mine),
        utilization=macs / (peak * time_s) if time_s > 0 and peak > 0 else 0.0,
        weights_resident=resident, sram_bytes=sum(c.sram_bytes for c in mine),
        dram_bytes=sum(c.dram_bytes for c in mine),
        dram_bytes_unfused=sum(unfused_dram[u] for u in us),
        energy_j=sum((c.energy_j for c in mine), 0.0), replicas=replicas,
    )


def _fewer(read: int, stored: int) -> int | None:
    """``read`` where fewer than ``stored`` (Stage.weight_read_bytes), else None."""
    return read if read < stored else None


def stage_bound(costs: list[OpCost]) -> str:
    """What limits a stage: the bound its units spend the most of their time under (compute,
    memory, or the fixed per-op overhead); "compute" for a stage with no time at all. A unit
    whose backend names its bound otherwise counts as compute or memory, whichever is longer."""
    spent = {Bound.COMPUTE: 0.0, Bound.MEMORY: 0.0, Bound.OVERHEAD: 0.0}
    for c in costs:  # a backend's own word for its bound: the larger of compute and memory
        bound = c.bound if c.bound in spent else (
            Bound.COMPUTE if c.compute_s >= c.memory_s else Bound.MEMORY)
        spent[Bound(bound)] += c.time_s
    return str(max(spent, key=spent.__getitem__))


def _timeline(chip: int, us: list[int], unit_names: list[list[str]], works: list[Work],
              costs: list[OpCost]) -> ChipTimeline:
    ops, t = [], 0.0
    for u in us:
        c = costs[u]
        if c.time_s <= 0:
            continue
        ops.append(OpTiming(unit_names[u][0], works[u].op, t, t + c.time_s, c.bound,
                            c.utilization, c.sram_bytes, c.dram_bytes, c.energy_j,
                            works[u].macs, works[u].out_bytes))
        t += c.time_s
    return ChipTimeline(chip, tuple(ops))
