"""Schedule: per-chip stages, per-link transfers and pipeline metrics for an assignment."""

from __future__ import annotations

import torch.fx

from backends.protocol import Backend
from compiler.costing import node_cost
from compiler.ir import attr_value, get_cost, is_compute, node_value, tensor_bytes
from compiler.plan import Metrics, Stage, Transfer
from compiler.units import UnitGraph


def _weight_bytes(nodes: list[torch.fx.Node]) -> int:
    """Bytes of the distinct parameters the nodes read (a shared weight counts once per chip)."""
    attrs = {str(inp.target): tensor_bytes(attr_value(inp))
             for node in nodes for inp in node.all_input_nodes if inp.op == "get_attr"}
    modules = sum(get_cost(n).weight_bytes for n in nodes if n.op == "call_module")
    return sum(attrs.values()) + modules


def build_schedule(gm: torch.fx.GraphModule, units: UnitGraph, chip_of_unit: tuple[int, ...],
                   backends: list[Backend], lower_bound_s: float
                   ) -> tuple[tuple[Stage, ...], tuple[Transfer, ...], Metrics]:
    """Stages, transfers (per link of the chain) and metrics of one assignment."""
    n_chips = len(backends)
    nodes = [n for n in gm.graph.nodes if is_compute(n)]
    chip_of = {n.name: chip_of_unit[units.unit_of[n.name]] for n in nodes}
    by_chip: list[list[torch.fx.Node]] = [[] for _ in range(n_chips)]
    for n in nodes:
        by_chip[chip_of[n.name]].append(n)

    link_tensors: list[list[tuple[str, int]]] = [[] for _ in range(max(n_chips - 1, 0))]
    in_bytes = [0] * n_chips
    out_bytes = [0] * n_chips
    for n in gm.graph.nodes:
        users = [u for u in n.users if is_compute(u)]
        nbytes = tensor_bytes(node_value(n))
        if n.op == "placeholder":
            for chip in sorted({chip_of[u.name] for u in users}):
                in_bytes[chip] += nbytes
            continue
        if not is_compute(n):
            continue
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

    stages = []
    for chip, members in enumerate(by_chip):
        costs = [node_cost(n, backends[chip]) for n in members]
        compute_s = sum(c.compute_s for c in costs)
        memory_s = sum(c.memory_s for c in costs)
        stages.append(Stage(
            chip=chip, backend=backends[chip].name, nodes=tuple(n.name for n in members),
            macs=sum(get_cost(n).macs for n in members), weight_bytes=_weight_bytes(members),
            in_bytes=in_bytes[chip], out_bytes=out_bytes[chip],
            time_s=sum(c.time_s for c in costs), compute_s=compute_s, memory_s=memory_s,
            bound="compute" if compute_s >= memory_s else "memory",
        ))
    transfers = []
    for k, tensors in enumerate(link_tensors, start=1):
        if tensors:
            nbytes = sum(b for _, b in tensors)
            transfers.append(Transfer(k - 1, k, nbytes, tuple(t for t, _ in tensors),
                                      backends[k - 1].link_time_s(nbytes)))
    return tuple(stages), tuple(transfers), pipeline_metrics(stages, transfers, lower_bound_s)


def pipeline_metrics(stages: list[Stage] | tuple[Stage, ...], transfers: tuple[Transfer, ...] | list,
                     lower_bound_s: float) -> Metrics:
    """Throughput = 1 / slowest stage or link; batch-1 latency = stages + links in sequence."""
    slowest = max(stages, key=lambda s: s.time_s)
    bottleneck_s, chip, label = slowest.time_s, slowest.chip, f"chip {slowest.chip}"
    for t in transfers:
        if t.time_s > bottleneck_s:
            bottleneck_s, chip, label = t.time_s, -1, f"link {t.src}->{t.dst}"
    latency = sum(s.time_s for s in stages) + sum(t.time_s for t in transfers)
    return Metrics(
        throughput_per_s=1.0 / bottleneck_s if bottleneck_s > 0 else float("inf"),
        latency_s=latency, bottleneck_chip=chip, bottleneck=label, bottleneck_s=bottleneck_s,
        lower_bound_s=lower_bound_s, bytes_moved=sum(t.bytes for t in transfers),
    )
