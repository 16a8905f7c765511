"""Costing: turn annotated nodes and units into backend Work and predicted seconds."""

from __future__ import annotations

import torch
import torch.fx

from backends.protocol import Backend, OpCost, Work
from compiler.ir import get_cost, get_precision, iter_tensors, node_value
from compiler.units import UnitGraph

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


def node_cost(node: torch.fx.Node, backend: Backend) -> OpCost:
    """Predicted cost of one node; free nodes (views) cost nothing on any chip."""
    work = node_work(node)
    if work.macs == 0 and work.elem_ops == 0:
        return OpCost(0.0, 0.0, 0.0, 0, "overhead")
    return backend.cost(work)


def unit_times(gm: torch.fx.GraphModule, units: UnitGraph, backends: list[Backend]) -> list[list[float]]:
    """Seconds of each unit on each chip: [unit][chip]. Each distinct backend is costed once."""
    nodes = {n.name: n for n in gm.graph.nodes}
    per_backend: dict[str, list[float]] = {}
    for backend in backends:
        if backend.name not in per_backend:
            per_backend[backend.name] = [
                sum(node_cost(nodes[name], backend).time_s for name in members)
                for members in units.units
            ]
    columns = [per_backend[b.name] for b in backends]
    return [[col[u] for col in columns] for u in range(len(units.units))]
