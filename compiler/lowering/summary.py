"""Graph summary: the part of the FX graph a plan needs to be re-validated and re-costed alone.

A plan carries it in JSON, so ``chipcut show`` can check a hand-edited plan
(every node on one chip, no edge back to an earlier chip, fused groups whole)
and cost it again on the named backends without the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.fx

from chipcut.compiler.lowering.costing import compute_dtype
from chipcut.compiler.lowering.units import UnitGraph
from chipcut.core.ir import (
    attr_value,
    get_cost,
    get_kv,
    is_compute,
    iter_tensors,
    node_value,
    tensor_bytes,
)
from chipcut.core.vocab import OpClass
from chipcut.passes.accounting import attr_bytes, op_name


@dataclass(frozen=True)
class NodeRecord:
    """One compute node: its unit, work, and the values it reads (compute nodes or graph inputs)."""

    name: str
    unit: int
    op: str
    dtype: str
    macs: int
    elem_ops: int
    weight_bytes: int
    out_bytes: int
    gemms: tuple[tuple[int, int, int, int], ...]  # (batch, M, K, N), see chipcut.core.ir.NodeCost
    inputs: tuple[str, ...]
    weights: tuple[str, ...]
    is_output: bool
    weight_read_bytes: int | None = None  # see compiler.ir.NodeCost
    op_class: OpClass | None = None  # see chipcut.passes.op_classes; None in plans from before it


@dataclass(frozen=True)
class GraphSummary:
    nodes: tuple[NodeRecord, ...]  # compute nodes in graph (topological) order
    inputs: tuple[tuple[str, int], ...]  # graph inputs: (name, bytes)
    weights: tuple[tuple[str, int], ...]  # distinct parameters: (name, stored bytes)
    kv_cache: tuple[str, ...] = ()  # the names in ``weights`` that are KV caches (state)

    def io_bytes(self) -> tuple[int, int]:
        """(bytes of the model's inputs, bytes of its outputs): what the host links carry."""
        return (sum(b for _, b in self.inputs), sum(r.out_bytes for r in self.nodes if r.is_output))


def summarize(gm: torch.fx.GraphModule, units: UnitGraph) -> GraphSummary:
    """Records for every compute node of an accounted (and possibly quantized) graph."""
    output = next(n for n in gm.graph.nodes if n.op == "output")
    outputs = {p.name for p in output.all_input_nodes}
    records, weights, kv = [], {}, set()
    for node in gm.graph.nodes:
        if not is_compute(node):
            continue
        cost = get_cost(node)
        attrs = [p for p in node.all_input_nodes if p.op == "get_attr"]
        caches = [p for p in attrs if get_kv(p) is not None]
        for p in caches:
            weights[str(p.target)] = attr_bytes(p, None)
            kv.add(str(p.target))
        params = [p for p in attrs if get_kv(p) is None]
        raw = sum(tensor_bytes(attr_value(p)) for p in params)
        stored = cost.weight_bytes - sum(weights[str(p.target)] for p in caches)
        scale = stored / raw if raw else 1.0  # quantized weights count as stored
        for p in params:
            weights[str(p.target)] = round(tensor_bytes(attr_value(p)) * scale)
        if node.op == "call_module":
            weights[str(node.target)] = cost.weight_bytes
        records.append(NodeRecord(
            name=node.name, unit=units.unit_of[node.name], op=op_name(node),
            dtype=compute_dtype(node), macs=cost.macs, elem_ops=cost.elem_ops,
            weight_bytes=cost.weight_bytes, out_bytes=cost.out_bytes,
            gemms=tuple(tuple(g) for g in cost.gemms),
            inputs=tuple(p.name for p in node.all_input_nodes if p.op != "get_attr"),
            weights=tuple(str(p.target) for p in attrs) + ((str(node.target),) if node.op == "call_module" else ()),
            is_output=node.name in outputs,
            weight_read_bytes=cost.weight_read_bytes,
            op_class=cost.op_class,
        ))
    inputs = tuple((n.name, tensor_bytes(node_value(n))) for n in gm.graph.nodes if n.op == "placeholder")
    return GraphSummary(tuple(records), inputs, tuple(sorted(weights.items())), tuple(sorted(kv)))


def units_of(summary: GraphSummary) -> UnitGraph:
    """The unit graph of a summary: the same units and tensors ``build_units`` gave the graph,
    so a plan re-validated from its JSON is costed exactly as it was compiled."""
    n = 1 + max((r.unit for r in summary.nodes), default=-1)
    members: list[list[str]] = [[] for _ in range(n)]
    unit_of = {r.name: r.unit for r in summary.nodes}
    readers: dict[str, set[int]] = {}
    for r in summary.nodes:
        members[r.unit].append(r.name)
        for name in r.inputs:
            readers.setdefault(name, set()).add(r.unit)
    tensors = tuple((r.unit, tuple(sorted(readers[r.name] - {r.unit})), r.out_bytes, r.name)
                    for r in summary.nodes if readers.get(r.name, set()) - {r.unit})
    return UnitGraph(tuple(tuple(m) for m in members), tensors, unit_of)


def fingerprint(gm: torch.fx.GraphModule) -> str:
    """A hash of the graph's structure: every node's name, op, inputs, and output shapes and
    dtypes, in order (annotations excluded). A plan records it; ``split`` refuses a graph
    whose fingerprint differs."""
    import hashlib

    lines = []
    for node in gm.graph.nodes:
        shapes = [f"{tuple(t.shape)}:{t.dtype}" for t in iter_tensors(node_value(node))]
        inputs = ",".join(p.name for p in node.all_input_nodes)
        lines.append(f"{node.op} {node.name} {op_name(node) if is_compute(node) else node.target} "
                     f"({inputs}) {' '.join(shapes)}")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
