"""Costing: turn annotated nodes and units into backend Work and predicted seconds."""

from __future__ import annotations

from typing import Any

import torch
import torch.fx

from backends.protocol import Backend, OpCost, Work
from compiler.ir import get_cost, get_precision, is_compute, iter_tensors, node_value, tensor_bytes
from compiler.units import UnitGraph
from passes.accounting import op_name

TORCH_DTYPES = {
    torch.float32: "fp32", torch.float64: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16",
    torch.int8: "int8", torch.uint8: "int8",
}
for _name in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz"):
    if hasattr(torch, _name):
        TORCH_DTYPES[getattr(torch, _name)] = "fp8"


def compute_dtype(node: torch.fx.Node) -> str:
    """The dtype the node computes in: its precision annotation, else its output dtype."""
    precision = get_precision(node)
    if precision is not None:
        return precision.compute
    tensor = next(iter_tensors(node_value(node)), None)
    return TORCH_DTYPES.get(tensor.dtype, "fp32") if tensor is not None else "fp32"


def node_work(node: torch.fx.Node) -> Work:
    c = get_cost(node)
    return Work(c.macs, c.elem_ops, c.weight_bytes, c.in_bytes, c.out_bytes,
                compute_dtype(node), c.rule, c.gemms)


def _value_bytes(node: torch.fx.Node) -> int:
    """Bytes of a value as stored: the accounted (precision-aware) figure for compute nodes."""
    return get_cost(node).out_bytes if is_compute(node) else tensor_bytes(node_value(node))


def unit_work(nodes: list[torch.fx.Node]) -> Work:
    """The work of a unit (a fused group or a node with its views) as one piece.

    Intermediates consumed only inside the unit never touch memory outside it:
    in_bytes are the distinct values read from outside, out_bytes the values
    used outside (by other units or as model outputs).
    """
    names = {n.name for n in nodes}
    anchor = max(nodes, key=lambda n: (get_cost(n).macs, get_cost(n).elem_ops))
    inputs = {p.name: p for n in nodes for p in n.all_input_nodes
              if p.op != "get_attr" and p.name not in names}
    outputs = [n for n in nodes if any(u.name not in names for u in n.users)]
    costs = [get_cost(n) for n in nodes]
    return Work(
        macs=sum(c.macs for c in costs),
        elem_ops=sum(c.elem_ops for c in costs),
        weight_bytes=sum(c.weight_bytes for c in costs),
        in_bytes=sum(_value_bytes(p) for p in inputs.values()),
        out_bytes=sum(get_cost(n).out_bytes for n in outputs),
        dtype=compute_dtype(anchor),
        op=op_name(anchor),
        gemms=tuple(g for c in costs for g in c.gemms),
    )


def is_free(work: Work) -> bool:
    """Work-free units (views, getitem) cost nothing on any chip."""
    return work.macs == 0 and work.elem_ops == 0


FREE = OpCost(0.0, 0.0, 0.0, 0, "overhead")


def unit_cost(work: Work, backend: Backend, placement: Any = None) -> OpCost:
    if is_free(work):
        return FREE
    return backend.cost(work) if placement is None else backend.cost(work, placement)


def unit_works(gm: torch.fx.GraphModule, units: UnitGraph) -> list[Work]:
    nodes = {n.name: n for n in gm.graph.nodes}
    return [unit_work([nodes[name] for name in members]) for members in units.units]


def unit_times(works: list[Work], backends: list[Backend]) -> list[list[float]]:
    """Seconds of each unit on each chip: [unit][chip]. Each distinct backend is costed once."""
    per_backend: dict[str, list[float]] = {}
    for backend in backends:
        if backend.name not in per_backend:
            per_backend[backend.name] = [unit_cost(w, backend).time_s for w in works]
    columns = [per_backend[b.name] for b in backends]
    return [[col[u] for col in columns] for u in range(len(works))]
