"""Schedule: per-chip timelines, stages, link transfers and pipeline metrics for an assignment.

Residency is decided per chip (compiler.costing.chip_state): a stage's weights
stay in SRAM when they all fit; an activation passed between units stays in
SRAM when it fits beside them (backend-aware multi-layer fusion). Each stage
also reports its DRAM bytes without that fusion, for comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from chipcut.backends.protocol import Backend, OpCost, Work
from chipcut.compiler.lowering.costing import placement, unit_cost
from chipcut.compiler.lowering.summary import GraphSummary
from chipcut.compiler.plan.model import ChipTimeline, Metrics, OpTiming, Stage, Transfer
from chipcut.compiler.solver.problem import CHAIN, Interconnect, hops, host_link_s
from chipcut.compiler.solver.residency import states_of


@dataclass(frozen=True)
class Schedule:
    stages: tuple[Stage, ...]
    transfers: tuple[Transfer, ...]
    metrics: Metrics
    timeline: tuple[ChipTimeline, ...]


def stage_weight_bytes(summary: GraphSummary, chip_of_unit: tuple[int, ...], chip: int) -> int:
    """Bytes of the distinct parameters a chip's nodes read (a shared weight counts once per chip),
    at their stored (possibly quantized) size."""
    stored = dict(summary.weights)
    names = {w for r in summary.nodes if chip_of_unit[r.unit] == chip for w in r.weights}
    return sum(stored.get(w, 0) for w in names)


def _scaled(work: Work, batch: int) -> Work:
    gemms = tuple((b, m * batch, k, n) for b, m, k, n in work.gemms)
    return replace(work, macs=work.macs * batch, elem_ops=work.elem_ops * batch,
                   in_bytes=work.in_bytes * batch, out_bytes=work.out_bytes * batch, gemms=gemms)


def build_schedule(summary: GraphSummary, works: list[Work], chip_of_unit: tuple[int, ...],
                   backends: list[Backend], lower_bound_s: float, batch: int = 8,
                   replicas: tuple[int, ...] | None = None, net: Interconnect = CHAIN) -> Schedule:
    """Stages, transfers (per link of the topology), timelines and metrics of one assignment.

    ``replicas[k]``: r on the first chip of a stage that r identical chips share, 0 on the
    others (which list no nodes)."""
    n_chips = len(backends)
    replicas = tuple(replicas) if replicas else (1,) * n_chips
    units_of_chip: list[list[int]] = [[] for _ in range(n_chips)]
    for u, chip in enumerate(chip_of_unit):
        units_of_chip[chip].append(u)
    states = states_of(works, chip_of_unit, backends)
    fused, plain = [], []
    for u, work in enumerate(works):
        chip = chip_of_unit[u]
        fused.append(placement(work, backends[chip].spec, states[chip], fuse=True))
        plain.append(placement(work, backends[chip].spec, states[chip], fuse=False))
    costs = [unit_cost(w, backends[chip_of_unit[u]], fused[u]) for u, w in enumerate(works)]
    unfused_dram = [unit_cost(w, backends[chip_of_unit[u]], plain[u]).dram_bytes
                    for u, w in enumerate(works)]
    unit_names = [[] for _ in works]
    for r in summary.nodes:
        unit_names[r.unit].append(r.name)

    leads = [k for k in range(n_chips) if replicas[k] > 0]
    in_bytes, out_bytes, links = _traffic(summary, chip_of_unit, leads, net.topology, n_chips)
    transfers, switch_bytes = [], 0
    for (src, dst), tensors in sorted(links.items()):
        nbytes = sum(b for _, b in tensors)
        if net.topology == "switch":
            switch_bytes += nbytes
            seconds = nbytes / net.switch(backends[0].spec.link)[0]
        else:
            seconds = backends[src + replicas[src] - 1].link_time_s(nbytes)
        transfers.append(Transfer(src, dst, nbytes, tuple(t for t, _ in tensors), seconds))
    link_busy = [0.0] * n_chips
    for t in transfers:
        link_busy[t.src] += t.time_s
        link_busy[t.dst] += t.time_s
    stages, timeline, compute_only = [], [], []
    for chip, us in enumerate(units_of_chip):
        lead = max(k for k in leads if k <= chip)
        extra = 0.0 if backends[chip].spec.link.overlap or net.topology == "switch" else link_busy[chip]
        stage = _stage(chip, backends[chip], units_of_chip[lead] if lead != chip else us, summary,
                       chip_of_unit, works, costs, unfused_dram, states[lead].weights_resident,
                       in_bytes[chip], out_bytes[chip], extra)
        if lead != chip:
            stage = replace(stage, nodes=(), replicas=0, replica_of=lead, time_s=0.0, macs=0,
                            energy_j=0.0, in_bytes=0, out_bytes=0)
        else:
            stage = replace(stage, replicas=replicas[chip])
            compute_only.append(stage.time_s - extra)
        stages.append(stage)
        timeline.append(_timeline(chip, us, unit_names, works, costs))
    first, last = backends[0].spec.link, backends[-1].spec.link
    in_bytes_model, out_bytes_model = summary.io_bytes()
    host = [("host in", host_link_s(in_bytes_model, net, first.bytes_per_s, first.latency_s)),
            ("host out", host_link_s(out_bytes_model, net, last.bytes_per_s, last.latency_s))]
    shared = [("switch", _switch_s(net, backends, switch_bytes))] if switch_bytes else []
    metrics = pipeline_metrics(stages, transfers, lower_bound_s, shared + host,
                               switched=net.topology == "switch")
    links_s = sum(s for _, s in shared) if shared else sum(t.time_s for t in transfers)
    metrics = replace(metrics, latency_s=sum(compute_only) + links_s + sum(s for _, s in host),
                      host_in_s=host[0][1], host_out_s=host[1][1])
    batched = [sum(unit_cost(_scaled(works[u], batch), backends[k], fused[u]).time_s for u in us)
               / replicas[k] for k, us in enumerate(units_of_chip) if replicas[k] > 0]
    batched += [t.time_s * batch for t in transfers if net.topology != "switch"]
    batched += [seconds * batch for _, seconds in shared + host]
    static_w = sum(b.static_power_w() for b in backends)
    dynamic_j = sum(s.energy_j for s in stages)
    metrics = replace(metrics, batch=batch,
                      throughput_at_batch_per_s=batch / max(batched) if max(batched) > 0 else 0.0,
                      dynamic_energy_j=dynamic_j, static_power_w=static_w,
                      energy_per_inference_j=dynamic_j + static_w * metrics.bottleneck_s)
    return Schedule(tuple(stages), tuple(transfers), metrics, tuple(timeline))


def _switch_s(net: Interconnect, backends: list[Backend], nbytes: int) -> float:
    bw, lat = net.switch(backends[0].spec.link)
    return lat + nbytes / bw


def _traffic(summary: GraphSummary, chip_of_unit: tuple[int, ...], leads: list[int], topology: str,
             n_chips: int) -> tuple[list[int], list[int], dict[tuple[int, int], list[tuple[str, int]]]]:
    """Bytes each chip receives and sends, and the tensors on each directed link (chips)."""
    stage_of = {k: s for s, k in enumerate(leads)}
    chip_of = {r.name: chip_of_unit[r.unit] for r in summary.nodes}
    users: dict[str, list[int]] = {}
    for r in summary.nodes:
        for name in r.inputs:
            users.setdefault(name, []).append(chip_of[r.name])
    links: dict[tuple[int, int], list[tuple[str, int]]] = {}
    in_bytes, out_bytes = [0] * n_chips, [0] * n_chips
    for name, nbytes in summary.inputs:
        for chip in sorted(set(users.get(name, []))):
            in_bytes[chip] += nbytes
    for r in summary.nodes:
        src = chip_of[r.name]
        readers = sorted({stage_of[c] for c in users.get(r.name, [])} - {stage_of[src]})
        if r.is_output:
            out_bytes[src] += r.out_bytes
        path = hops(topology, len(leads), stage_of[src], readers)
        if topology == "switch":
            path = [(stage_of[src], s) for s in readers]
        for a, b in path:
            links.setdefault((leads[a], leads[b]), []).append((r.name, r.out_bytes))
        if readers:
            out_bytes[src] += r.out_bytes
            for s in readers:
                in_bytes[leads[s]] += r.out_bytes
    return in_bytes, out_bytes, links


def _stage(chip: int, backend: Backend, us: list[int], summary: GraphSummary,
           chip_of_unit: tuple[int, ...], works: list[Work], costs: list[OpCost],
           unfused_dram: list[int], resident: bool, in_bytes: int, out_bytes: int,
           link_s: float = 0.0) -> Stage:
    mine = [costs[u] for u in us]
    compute_s = sum((c.compute_s for c in mine), 0.0)
    memory_s = sum((c.memory_s for c in mine), 0.0)
    time_s = sum((c.time_s for c in mine), 0.0) + link_s
    macs = sum(works[u].macs for u in us)
    peak = max(backend.spec.peak_macs_per_s.values())
    return Stage(
        chip=chip, backend=backend.name,
        nodes=tuple(r.name for r in summary.nodes if r.unit in set(us)),
        macs=macs, weight_bytes=stage_weight_bytes(summary, chip_of_unit, chip), in_bytes=in_bytes, out_bytes=out_bytes,
        time_s=time_s, compute_s=compute_s, memory_s=memory_s,
        bound="compute" if compute_s >= memory_s else "memory",
        utilization=macs / (peak * time_s) if time_s > 0 else 0.0,
        weights_resident=resident, sram_bytes=sum(c.sram_bytes for c in mine),
        dram_bytes=sum(c.dram_bytes for c in mine),
        dram_bytes_unfused=sum(unfused_dram[u] for u in us),
        energy_j=sum((c.energy_j for c in mine), 0.0),
    )


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


def pipeline_metrics(stages: list[Stage] | tuple[Stage, ...], transfers: tuple[Transfer, ...] | list,
                     lower_bound_s: float, extra: list[tuple[str, float]] = (),
                     switched: bool = False) -> Metrics:
    """Throughput = 1 / the slowest stage (per replica set), link, or ``extra`` resource (the
    switch, host links); batch-1 latency = stages + links + extra in sequence. ``switched``:
    the transfers share one switch (listed in ``extra``), so none is a bottleneck alone."""
    leads = [s for s in stages if s.replicas > 0]
    slowest = max(leads, key=lambda s: s.time_s / s.replicas)
    bottleneck_s, chip, label = slowest.time_s / slowest.replicas, slowest.chip, f"chip {slowest.chip}"
    for t in transfers:
        if not switched and t.time_s > bottleneck_s:
            bottleneck_s, chip, label = t.time_s, -1, f"link {t.src}->{t.dst}"
    for name, seconds in extra:
        if seconds > bottleneck_s:
            bottleneck_s, chip, label = seconds, -1, name
    links_s = 0.0 if switched else sum(t.time_s for t in transfers)
    latency = sum(s.time_s for s in leads) + links_s + sum(seconds for _, seconds in extra)
    return Metrics(
        throughput_per_s=1.0 / bottleneck_s if bottleneck_s > 0 else 0.0,
        latency_s=latency, bottleneck_chip=chip, bottleneck=label, bottleneck_s=bottleneck_s,
        lower_bound_s=lower_bound_s, bytes_moved=sum(t.bytes for t in transfers),
    )
