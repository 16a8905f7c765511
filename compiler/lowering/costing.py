"""Costing: turn annotated nodes and units into backend Work and predicted seconds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.fx

from chipcut.backends.protocol import Backend, OpCost, Placement, Work
from chipcut.core.dtypes import DType, from_torch
from chipcut.core.ir import get_cost, get_precision, iter_tensors, node_value

if TYPE_CHECKING:
    from chipcut.compiler.lowering.summary import GraphSummary


def compute_dtype(node: torch.fx.Node) -> DType:
    """The dtype the node computes in: its precision annotation, else its output dtype."""
    precision = get_precision(node)
    if precision is not None:
        return DType(precision.compute)
    tensor = next(iter_tensors(node_value(node)), None)
    return from_torch(tensor.dtype, f"node {node.name}") if tensor is not None else DType.FP32


def node_work(node: torch.fx.Node) -> Work:
    c = get_cost(node)
    return Work(c.macs, c.elem_ops, c.weight_bytes, c.in_bytes, c.out_bytes,
                compute_dtype(node), c.rule, c.gemms, c.weight_read_bytes, op_class=c.op_class)


def unit_works(summary: GraphSummary, n_units: int) -> list[Work]:
    """The work of each unit (a fused group, or a node with its views) as one piece.

    Intermediates consumed only inside a unit never touch memory outside it:
    in_bytes are the distinct values read from outside, out_bytes the values
    used outside (by other units or as model outputs).
    """
    records = {r.name: r for r in summary.nodes}
    graph_inputs = dict(summary.inputs)
    user_units: dict[str, set[int]] = {}
    members: list[list] = [[] for _ in range(n_units)]
    for r in summary.nodes:
        members[r.unit].append(r)
        for name in r.inputs:
            user_units.setdefault(name, set()).add(r.unit)
    works = []
    for u, recs in enumerate(members):
        names = {r.name for r in recs}
        outside = {n for r in recs for n in r.inputs if n not in names}
        anchor = max(recs, key=lambda r: (r.macs, r.elem_ops))
        works.append(Work(
            macs=sum(r.macs for r in recs),
            elem_ops=sum(r.elem_ops for r in recs),
            weight_bytes=sum(r.weight_bytes for r in recs),
            in_bytes=sum(records[n].out_bytes if n in records else graph_inputs.get(n, 0)
                         for n in outside),
            out_bytes=sum(r.out_bytes for r in recs if r.is_output or user_units.get(r.name, set()) - {u}),
            dtype=anchor.dtype,
            op=anchor.op,
            gemms=tuple(tuple(g) for r in recs for g in r.gemms),
            weight_read_bytes=(None if all(r.weight_read_bytes is None for r in recs) else
                               sum(r.weight_bytes if r.weight_read_bytes is None else r.weight_read_bytes
                                   for r in recs)),
            op_class=anchor.op_class,
            key=unit_key([r.name for r in recs]),
        ))
    return works


def unit_key(names: list[str]) -> str:
    """A unit's stable name: its member node names in graph order, joined by "+".

    Node names are what capture and the passes give a graph deterministically, so the same
    model lowered again with the same passes names its units alike; they are unique in a
    graph, and a unit grouped otherwise (other fusion) gets another key. Precision and batch
    are left out on purpose: a unit is the same unit quantized or not (the graph's fingerprint
    guards shapes and dtypes as a whole).

    >>> unit_key(["conv2d", "relu", "pad_1"])
    'conv2d+relu+pad_1'
    """
    return "+".join(names)


def is_free(work: Work) -> bool:
    """Work-free units (views, getitem) cost nothing on any chip."""
    return work.macs == 0 and work.elem_ops == 0


FREE = OpCost(0.0, 0.0, 0.0, 0, "overhead")


def unit_cost(work: Work, backend: Backend, placement: Placement | None = None) -> OpCost:
    if is_free(work):
        return FREE
    return backend.cost(work) if placement is None else backend.cost(work, placement)


@dataclass(frozen=True)
class ChipState:
    """Residency on one chip: weights kept in SRAM, and the SRAM left for activations (bytes)."""

    weights_resident: bool
    free_sram_bytes: int


def chip_state(backend: Backend, weight_bytes: int) -> ChipState:
    """The backend decides whether a stage's weights stay resident; activations get the rest."""
    resident = backend.weights_resident(weight_bytes)
    return ChipState(resident, max(backend.memory().sram_bytes - (weight_bytes if resident else 0), 0))


def placement(work: Work, backend: Backend, state: ChipState, fuse: bool = True) -> Placement:
    """Where a unit's operands live. With ``fuse`` (backend-aware multi-layer fusion) an
    activation that fits in the free SRAM stays there between units, also when it arrives
    over a link (the link writes into SRAM); without it every unit boundary goes to DRAM."""
    if backend.memory().sram_only:
        return Placement(True, True, True)
    return Placement(
        weights_in_sram=state.weights_resident,
        inputs_in_sram=fuse and work.in_bytes <= state.free_sram_bytes,
        outputs_in_sram=fuse and work.out_bytes <= state.free_sram_bytes,
    )


def unit_times(works: list[Work], backends: list[Backend], states: list[ChipState]) -> list[list[float]]:
    """Seconds of each unit on each chip, [unit][chip], under each chip's residency state."""
    cache: dict[tuple[int, ChipState], list[float]] = {}
    columns = []
    for backend, state in zip(backends, states, strict=True):
        key = (id(backend), state)
        if key not in cache:
            cache[key] = [unit_cost(w, backend, placement(w, backend, state)).time_s for w in works]
        columns.append(cache[key])
    return [[col[u] for col in columns] for u in range(len(works))]
