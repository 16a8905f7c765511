"""Costing: turn annotated nodes and units into backend Work and predicted seconds."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.fx

from backends.protocol import Backend, OpCost, Placement, Work
from backends.spec import ChipSpec, weights_fit
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


def unit_cost(work: Work, backend: Backend, placement: Placement | None = None) -> OpCost:
    if is_free(work):
        return FREE
    return backend.cost(work) if placement is None else backend.cost(work, placement)


def unit_works(gm: torch.fx.GraphModule, units: UnitGraph) -> list[Work]:
    nodes = {n.name: n for n in gm.graph.nodes}
    return [unit_work([nodes[name] for name in members]) for members in units.units]


@dataclass(frozen=True)
class ChipState:
    """Residency on one chip: weights kept in SRAM, and the SRAM left for activations (bytes)."""

    weights_resident: bool
    free_sram_bytes: int


def chip_state(spec: ChipSpec, weight_bytes: int) -> ChipState:
    """Weights stay in SRAM when all of the chip's weights fit; activations get what is left."""
    resident = weights_fit(spec, weight_bytes)
    return ChipState(resident, spec.sram_bytes - (weight_bytes if resident else 0))


def placement(work: Work, spec: ChipSpec, state: ChipState, fuse: bool = True) -> Placement:
    """Where a unit's operands live. With ``fuse`` (backend-aware multi-layer fusion) an
    activation that fits in the free SRAM stays there between units, also when it arrives
    over a link (the link writes into SRAM); without it every unit boundary goes to DRAM."""
    if spec.dram_bytes == 0:
        return Placement(True, True, True)
    return Placement(
        weights_in_sram=state.weights_resident,
        inputs_in_sram=fuse and work.in_bytes <= state.free_sram_bytes,
        outputs_in_sram=fuse and work.out_bytes <= state.free_sram_bytes,
    )


def unit_times(works: list[Work], backends: list[Backend], states: list[ChipState]) -> list[list[float]]:
    """Seconds of each unit on each chip, [unit][chip], under each chip's residency state."""
    cache: dict[tuple[str, ChipState], list[float]] = {}
    columns = []
    for backend, state in zip(backends, states, strict=True):
        key = (backend.name, state)
        if key not in cache:
            cache[key] = [unit_cost(w, backend, placement(w, backend.spec, state)).time_s
                          for w in works]
        columns.append(cache[key])
    return [[col[u] for col in columns] for u in range(len(works))]
