"""Schedule: per-chip timelines, stages, link transfers and pipeline metrics for an assignment.

Residency is decided per chip (compiler.costing.chip_state): a stage's weights
stay in SRAM when they all fit; an activation passed between units stays in
SRAM when it fits beside them (backend-aware multi-layer fusion). Each stage
also reports its DRAM bytes without that fusion, for comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch.fx

from backends.protocol import Backend, OpCost, Work
from compiler.costing import placement, unit_cost
from compiler.ir import attr_value, get_cost, is_compute, node_value, tensor_bytes
from compiler.plan import ChipTimeline, Metrics, OpTiming, Stage, Transfer
from compiler.residency import states_of
from compiler.units import UnitGraph


@dataclass(frozen=True)
class Schedule:
    stages: tuple[Stage, ...]
    transfers: tuple[Transfer, ...]
    metrics: Metrics
    timeline: tuple[ChipTimeline, ...]


def stage_weight_bytes(nodes: list[torch.fx.Node]) -> int:
    """Bytes of the distinct parameters the nodes read (a shared weight counts once per chip).

    The accounted per-node figure is used, so a quantized weight counts at its stored dtype.
    """
    per_attr: dict[str, int] = {}
    total = 0
    for node in nodes:
        attrs = [p for p in node.all_input_nodes if p.op == "get_attr"]
        raw = sum(tensor_bytes(attr_value(p)) for p in attrs)
        scale = get_cost(node).weight_bytes / raw if raw else 1.0
        for p in attrs:
            per_attr[str(p.target)] = round(tensor_bytes(attr_value(p)) * scale)
        if node.op == "call_module":
            total += get_cost(node).weight_bytes
    return total + sum(per_attr.values())


def _scaled(work: Work, batch: int) -> Work:
    gemms = tuple((b, m * batch, k, n) for b, m, k, n in work.gemms)
    return replace(work, macs=work.macs * batch, elem_ops=work.elem_ops * batch,
                   in_bytes=work.in_bytes * batch, out_bytes=work.out_bytes * batch, gemms=gemms)


def build_schedule(gm: torch.fx.GraphModule, units: UnitGraph, works: list[Work],
                   chip_of_unit: tuple[int, ...], backends: list[Backend], lower_bound_s: float,
                   batch: int = 8) -> Schedule:
    """Stages, transfers (per link of the chain), timelines and metrics of one assignment."""
    n_chips = len(backends)
    nodes = {n.name: n for n in gm.graph.nodes}
    units_of_chip: list[list[int]] = [[] for _ in range(n_chips)]
    for u, chip in enumerate(chip_of_unit):
        units_of_chip[chip].append(u)
    members = [[nodes[name] for u in us for name in units.units[u]] for us in units_of_chip]
    weights = [stage_weight_bytes(m) for m in members]
    states = states_of(works, chip_of_unit, backends)
    resident = [s.weights_resident for s in states]
    fused, plain = [], []
    for u, work in enumerate(works):
        chip = chip_of_unit[u]
        fused.append(placement(work, backends[chip].spec, states[chip], fuse=True))
        plain.append(placement(work, backends[chip].spec, states[chip], fuse=False))
    costs = [unit_cost(w, backends[chip_of_unit[u]], fused[u]) for u, w in enumerate(works)]
    unfused_dram = [unit_cost(w, backends[chip_of_unit[u]], plain[u]).dram_bytes
                    for u, w in enumerate(works)]

    in_bytes, out_bytes, link_tensors = _traffic(gm, units, chip_of_unit, n_chips)
    stages, timeline = [], []
    for chip, us in enumerate(units_of_chip):
        stages.append(_stage(chip, backends[chip], us, units, works, costs, unfused_dram,
                             weights[chip], resident[chip], in_bytes[chip], out_bytes[chip]))
        timeline.append(_timeline(chip, us, units, works, costs))
    transfers = []
    for k, tensors in enumerate(link_tensors, start=1):
        if tensors:
            nbytes = sum(b for _, b in tensors)
            transfers.append(Transfer(k - 1, k, nbytes, tuple(t for t, _ in tensors),
                                      backends[k - 1].link_time_s(nbytes)))
    metrics = pipeline_metrics(stages, transfers, lower_bound_s)
    batched = [sum(unit_cost(_scaled(works[u], batch), backends[k], fused[u]).time_s for u in us)
               for k, us in enumerate(units_of_chip)]
    batched += [backends[t.src].link_time_s(t.bytes * batch) for t in transfers]
    static_w = sum(b.static_power_w() for b in backends)
    dynamic_j = sum(s.energy_j for s in stages)
    metrics = replace(metrics, batch=batch,
                      throughput_at_batch_per_s=batch / max(batched) if max(batched) > 0 else 0.0,
                      dynamic_energy_j=dynamic_j, static_power_w=static_w,
                      energy_per_inference_j=dynamic_j + static_w * metrics.bottleneck_s)
    return Schedule(tuple(stages), tuple(transfers), metrics, tuple(timeline))


def _traffic(gm: torch.fx.GraphModule, units: UnitGraph, chip_of_unit: tuple[int, ...],
             n_chips: int) -> tuple[list[int], list[int], list[list[tuple[str, int]]]]:
    """Bytes each chip receives and sends, and the tensors crossing each link of the chain."""
    chip_of = {name: chip_of_unit[u] for name, u in units.unit_of.items()}
    link_tensors: list[list[tuple[str, int]]] = [[] for _ in range(max(n_chips - 1, 0))]
    in_bytes, out_bytes = [0] * n_chips, [0] * n_chips
    for n in gm.graph.nodes:
        users = [u for u in n.users if is_compute(u)]
        if n.op == "placeholder":
            for chip in sorted({chip_of[u.name] for u in users}):
                in_bytes[chip] += tensor_bytes(node_value(n))
            continue
        if not is_compute(n):
            continue
        nbytes = get_cost(n).out_bytes
        src = chip_of[n.name]
        last = max((chip_of[u.name] for u in users), default=src)
        if any(u.op == "output" for u in n.users):
            out_bytes[src] += nbytes
        for k in range(src + 1, last + 1):
            link_tensors[k - 1].append((n.name, nbytes))
        if last > src:
            out_bytes[src] += nbytes
            for chip in sorted({chip_of[u.name] for u in users} - {src}):
                in_bytes[chip] += nbytes
    return in_bytes, out_bytes, link_tensors


def _stage(chip: int, backend: Backend, us: list[int], units: UnitGraph, works: list[Work],
           costs: list[OpCost], unfused_dram: list[int], weight_bytes: int, resident: bool,
           in_bytes: int, out_bytes: int) -> Stage:
    mine = [costs[u] for u in us]
    compute_s = sum((c.compute_s for c in mine), 0.0)
    memory_s = sum((c.memory_s for c in mine), 0.0)
    time_s = sum((c.time_s for c in mine), 0.0)
    macs = sum(works[u].macs for u in us)
    peak = max(backend.spec.peak_macs_per_s.values())
    return Stage(
        chip=chip, backend=backend.name, nodes=tuple(n for u in us for n in units.units[u]),
        macs=macs, weight_bytes=weight_bytes, in_bytes=in_bytes, out_bytes=out_bytes,
        time_s=time_s, compute_s=compute_s, memory_s=memory_s,
        bound="compute" if compute_s >= memory_s else "memory",
        utilization=macs / (peak * time_s) if time_s > 0 else 0.0,
        weights_resident=resident, sram_bytes=sum(c.sram_bytes for c in mine),
        dram_bytes=sum(c.dram_bytes for c in mine),
        dram_bytes_unfused=sum(unfused_dram[u] for u in us),
        energy_j=sum((c.energy_j for c in mine), 0.0),
    )


def _timeline(chip: int, us: list[int], units: UnitGraph, works: list[Work],
              costs: list[OpCost]) -> ChipTimeline:
    ops, t = [], 0.0
    for u in us:
        c = costs[u]
        if c.time_s <= 0:
            continue
        ops.append(OpTiming(units.units[u][0], works[u].op, t, t + c.time_s, c.bound,
                            c.utilization, c.sram_bytes, c.dram_bytes, c.energy_j,
                            works[u].macs, works[u].out_bytes))
        t += c.time_s
    return ChipTimeline(chip, tuple(ops))


def pipeline_metrics(stages: list[Stage] | tuple[Stage, ...], transfers: tuple[Transfer, ...] | list,
                     lower_bound_s: float) -> Metrics:
    """Throughput = 1 / slowest stage or link; batch-1 latency = stages + links in sequence."""
    slowest = max(stages, key=lambda s: s.time_s / s.replicas)
    bottleneck_s, chip, label = slowest.time_s / slowest.replicas, slowest.chip, f"chip {slowest.chip}"
    for t in transfers:
        if t.time_s > bottleneck_s:
            bottleneck_s, chip, label = t.time_s, -1, f"link {t.src}->{t.dst}"
    latency = sum(s.time_s for s in stages) + sum(t.time_s for t in transfers)
    return Metrics(
        throughput_per_s=1.0 / bottleneck_s if bottleneck_s > 0 else 0.0,
        latency_s=latency, bottleneck_chip=chip, bottleneck=label, bottleneck_s=bottleneck_s,
        lower_bound_s=lower_bound_s, bytes_moved=sum(t.bytes for t in transfers),
    )
