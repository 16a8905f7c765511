"""The IR is torch.fx; this module owns every chipcut annotation in ``node.meta``.

Each concern has one key and one frozen dataclass, read and written only
through the accessors here:

- ``chipcut.cost`` -> :class:`NodeCost` (written by ``chipcut.passes.accounting``)
- ``chipcut.precision`` -> :class:`Precision` (written by ``chipcut.passes.quantize``)
- ``chipcut.group`` -> :class:`FusionGroup` (written by ``chipcut.passes.fuse``)
- ``chipcut.kv`` -> :class:`KVCache` on a ``get_attr`` node (written by ``chipcut.compiler.llm``)

and graph-level keys in ``GraphModule.meta``:

- ``chipcut.quantization`` -> :class:`QuantReport` (written by ``chipcut.passes.quantize``)
- ``chipcut.phase`` -> :class:`Phase` (written by ``chipcut.compiler.llm``)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.fx

from chipcut.core.dtypes import BYTES, ORDER
from chipcut.core.vocab import OpClass

COST_KEY = "chipcut.cost"
PRECISION_KEY = "chipcut.precision"
GROUP_KEY = "chipcut.group"
QUANT_KEY = "chipcut.quantization"
KV_KEY = "chipcut.kv"
PHASE_KEY = "chipcut.phase"


@dataclass(frozen=True)
class NodeCost:
    """Work of one FX node, from shapes and dtypes.

    macs: multiply-accumulates; elem_ops: element-wise / reduction ops (not MACs);
    out_bytes: bytes of the node's output activation(s);
    in_bytes: bytes of activation inputs read (weights excluded);
    weight_bytes: bytes of parameters and buffers the node reads (stored size);
    rule: the accounting rule that produced it ("none" when no rule matched);
    gemms: the MACs as matrix products (batch, M, K, N), for array cost models:
    conv -> (groups, N*Hout*Wout, Cin/groups*Kh*Kw, Cout/groups); sum of b*M*K*N == macs
    (attention with a causal mask excepted, which does half the work of its GEMMs).
    """

    macs: int
    elem_ops: int
    out_bytes: int
    in_bytes: int
    weight_bytes: int
    rule: str
    gemms: tuple[tuple[int, int, int, int], ...] = ()
    weight_read_bytes: int | None = None  # bytes of weights read per inference, when not all
    # (a lookup such as embedding reads only the rows it gathers)
    op_class: OpClass | None = None  # the kind of kernel (chipcut.passes.op_classes); None: unclassified


ZERO_COST = NodeCost(0, 0, 0, 0, 0, "none")


# Narrow to wide; a MAC runs in the wider of its weight and activation dtypes.
DTYPE_ORDER = ORDER
DTYPE_BYTES = BYTES


@dataclass(frozen=True)
class Precision:
    """Storage dtype of a node's weights and output activation ("fp32", "int8", ...)."""

    weights: str
    activations: str

    @property
    def compute(self) -> str:
        """The dtype the MACs run in: the wider of weights and activations (int4 weights
        with int8 activations compute in int8)."""
        return DTYPE_ORDER[max(DTYPE_ORDER.index(self.weights), DTYPE_ORDER.index(self.activations))]


@dataclass(frozen=True)
class FusionGroup:
    """Membership of a node in a fusion group: ``name`` is the group, ``anchor`` its main op."""

    name: str
    anchor: str


@dataclass(frozen=True)
class LayerQuant:
    """The precision chosen for one MAC layer and its measured SQNR (dB; None: not measured
    or exact)."""

    node: str
    module: str
    weights: str
    activations: str
    sqnr_db: float | None


@dataclass(frozen=True)
class QuantReport:
    """What quantization chose and what it cost or saved, per inference.

    output_sqnr_db: SQNR of the model outputs under fake quantization (None: not measured,
    e.g. meta weights); bytes and dynamic energy before (the model's own dtype) and after.
    """

    policy: str
    threshold_db: float
    output_sqnr_db: float | None
    layers: tuple[LayerQuant, ...]
    weight_bytes_before: int = 0
    weight_bytes_after: int = 0
    activation_bytes_before: int = 0
    activation_bytes_after: int = 0
    energy_j_before: float = 0.0
    energy_j_after: float = 0.0


@dataclass(frozen=True)
class KVCache:
    """A buffer that is one layer's K or V cache: state resident on the chip of the attention
    that reads it, read whole and written one token at a time by every decode step.

    layer: the decoder layer; kind: "k" or "v"; dtype: the dtype the cache is stored in (its
    bytes are counted at it, whatever the graph's tensor dtype and the quantize pass say).
    """

    layer: int
    kind: str
    dtype: str


@dataclass(frozen=True)
class Phase:
    """What an LLM step graph computes: ``phase`` "prefill" (the prompt, ``tokens`` long, for
    ``batch`` sequences) or "decode" (one new token for each of ``batch`` sequences against a
    cache of ``tokens`` context); ``kv_dtype``: the cache's stored dtype ("" for prefill)."""

    phase: str
    batch: int
    tokens: int
    kv_dtype: str = ""


def set_kv(node: torch.fx.Node, kv: KVCache) -> None:
    node.meta[KV_KEY] = kv


def get_kv(node: torch.fx.Node) -> KVCache | None:
    return node.meta.get(KV_KEY)


def state_written(node: torch.fx.Node) -> KVCache | None:
    """The cache a node updates in place (its first argument is a cache buffer), or None."""
    first = node.args[0] if node.args else None
    return get_kv(first) if isinstance(first, torch.fx.Node) else None


def set_phase(gm: torch.fx.GraphModule, phase: Phase) -> None:
    gm.meta[PHASE_KEY] = phase


def get_phase(gm: torch.fx.GraphModule) -> Phase | None:
    return getattr(gm, "meta", {}).get(PHASE_KEY)


def set_cost(node: torch.fx.Node, cost: NodeCost) -> None:
    node.meta[COST_KEY] = cost


def get_cost(node: torch.fx.Node) -> NodeCost:
    """The node's cost, or ZERO_COST for nodes that do no work (placeholders, attributes)."""
    return node.meta.get(COST_KEY, ZERO_COST)


def set_precision(node: torch.fx.Node, precision: Precision) -> None:
    node.meta[PRECISION_KEY] = precision


def get_precision(node: torch.fx.Node) -> Precision | None:
    return node.meta.get(PRECISION_KEY)


def set_group(node: torch.fx.Node, group: FusionGroup) -> None:
    node.meta[GROUP_KEY] = group


def get_group(node: torch.fx.Node) -> FusionGroup | None:
    return node.meta.get(GROUP_KEY)


def clear_group(node: torch.fx.Node) -> None:
    node.meta.pop(GROUP_KEY, None)


def set_quant_report(gm: torch.fx.GraphModule, report: QuantReport | None) -> None:
    if report is None:
        gm.meta.pop(QUANT_KEY, None)
    else:
        gm.meta[QUANT_KEY] = report


def get_quant_report(gm: torch.fx.GraphModule) -> QuantReport | None:
    return getattr(gm, "meta", {}).get(QUANT_KEY)


def clear_precision(node: torch.fx.Node) -> None:
    node.meta.pop(PRECISION_KEY, None)


def module_path(node: torch.fx.Node) -> tuple[tuple[str, str], ...]:
    """(module path, class name) of the modules that produced ``node``, outermost first."""
    stack = node.meta.get("nn_module_stack") or {}
    out = []
    for path, kind in stack.values():
        name = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
        out.append((str(path), name.rsplit(".", 1)[-1].rstrip("'>")))
    return tuple(out)


def iter_tensors(value: object) -> Iterator[torch.Tensor]:
    """Tensors inside a ``meta['val']`` value (a tensor, or nested tuples/lists of them)."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from iter_tensors(item)


def tensor_bytes(value: object) -> int:
    """Bytes of all tensors in ``value`` (works on fake and meta tensors)."""
    return sum(int(t.numel()) * t.element_size() for t in iter_tensors(value))


def node_value(node: torch.fx.Node) -> object:
    """The node's example value: fake/meta tensor(s) recorded at capture."""
    if "val" in node.meta:
        return node.meta["val"]
    meta = node.meta.get("tensor_meta")
    return meta


def is_compute(node: torch.fx.Node) -> bool:
    """Nodes that run on a chip: calls, not inputs, weights or the output."""
    return node.op in ("call_function", "call_method", "call_module")


def attr_value(node: torch.fx.Node) -> object:
    """The parameter or buffer a ``get_attr`` node reads (a real or meta tensor)."""
    obj: object = node.graph.owning_module
    for part in str(node.target).split("."):
        obj = getattr(obj, part)
    return obj
