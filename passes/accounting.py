"""Accounting pass: per-node MACs, element ops, activation and weight bytes into ``chipcut.cost``."""

from __future__ import annotations

import operator
import warnings
from collections.abc import Callable

import torch
import torch.fx

from chipcut.core.dtypes import BYTES
from chipcut.core.ir import (
    NodeCost,
    attr_value,
    get_cost,
    get_kv,
    get_precision,
    is_compute,
    iter_tensors,
    node_value,
    set_cost,
    state_written,
)
from chipcut.passes.op_classes import classify
from chipcut.passes.rules import (
    MAC_RULES,
    Gemms,
    Rule,
    bound_args,
    gathered,
    numel,
    register_macs,
    val,
)

aten = torch.ops.aten
nn = torch.nn

# Op families are read from torch's own tags where it has them (``Tag.pointwise``,
# ``Tag.reduction``, ``OpOverload.is_view``); these tables hold only the ATen ops the tags miss.
POINTWISE_OPS = {
    "hardswish", "prelu", "_prelu_kernel", "floor_divide", "masked_fill", "where", "rsub",
    "__and__", "__or__", "__iand__", "__ior__", "__irshift__",
}
# Normalizations, softmax, scans, pooling and resampling: no MACs, one op per input element.
REDUCTION_OPS = {
    "softmax", "_softmax", "log_softmax", "_log_softmax", "layer_norm", "native_layer_norm",
    "rms_norm", "_fused_rms_norm", "group_norm", "native_group_norm", "batch_norm",
    "native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training",
    "instance_norm", "cumsum", "cumprod", "topk", "sort", "diff", "_adaptive_avg_pool2d",
    "histc", "bincount",  # MoE routing: tokens per expert
    "_adaptive_avg_pool3d", "max_pool2d_with_indices", "max_pool3d_with_indices",
    *(f"{kind}_pool{d}d" for kind in ("max", "avg", "adaptive_avg", "adaptive_max")
      for d in (1, 2, 3)),
    *(f"upsample_nearest{d}d" for d in (1, 2, 3)),
    *(f"_upsample_nearest_exact{d}d" for d in (1, 2, 3)),
    "upsample_linear1d", "upsample_bilinear2d", "upsample_bicubic2d", "upsample_trilinear3d",
}
# Data movement, creation and metadata that is not a view: no arithmetic at all. ("getitem"
# picks an output of a multi-output op; it is Python's, not ATen's.)
LAYOUT_OPS = {
    "_to_copy", "_unsafe_view", "cat", "stack", "index", "index_select", "gather", "index_put",
    "scatter", "embedding", "embedding_bag", "lift_fresh_copy", "dropout", "feature_dropout",
    "alpha_dropout", "feature_alpha_dropout", "native_dropout", "copy", "fill", "arange", "zeros",
    "ones", "full", "empty", "zeros_like", "ones_like", "full_like", "empty_like", "new_ones",
    "new_zeros", "new_empty", "new_full", "scalar_tensor", "repeat", "repeat_interleave", "roll",
    "flip", "pad", "constant_pad_nd", "tril", "triu", "pixel_shuffle", "pixel_unshuffle", "type_as",
    "size", "sym_size", "dim", "numel", "_assert_tensor_metadata", "getitem",
}
# Layout ops that write a fresh tensor (not a view): one element op per output element, so a
# pad or a concatenation costs time and never counts as free.
COPY_OPS = {"pad", "constant_pad_nd", "cat", "stack", "repeat", "roll", "flip", "tril", "triu",
            "pixel_shuffle", "pixel_unshuffle"}
# Ops that read only the weight rows they gather.
LOOKUPS = {"embedding", "index_select", "gather", "index", "embedding_bag"}


def _resample_op(mode: str, rank: int) -> str:
    """The ATen op F.interpolate records for ``mode`` on a rank-``rank`` (N, C, ...) input."""
    d = rank - 2
    if mode == "area":
        return f"adaptive_avg_pool{d}d"
    if mode == "nearest-exact":
        return f"_upsample_nearest_exact{d}d"
    return f"upsample_{mode}{d}d"


def _upsample_module(node: torch.fx.Node, module: nn.Module) -> str:
    return _resample_op(module.mode, val(node.args[0]).dim())


def _interpolate_function(node: torch.fx.Node) -> str:
    mode = node.kwargs.get("mode", node.args[3] if len(node.args) > 3 else "nearest")
    return _resample_op(mode, val(node.args[0]).dim())


# nn.Module class -> the ATen op torch.export records for it, so a module call left by the
# symbolic_trace fallback has the name export gives (chip specs and reports key on it).
# Subclasses take their base's entry; a module not listed keeps its class name.
MODULE_OPS: dict[type[nn.Module], str | Callable[[torch.fx.Node, nn.Module], str]] = {
    nn.Conv1d: "conv1d", nn.Conv2d: "conv2d", nn.Conv3d: "conv3d",
    nn.ConvTranspose1d: "conv_transpose1d", nn.ConvTranspose2d: "conv_transpose2d",
    nn.ConvTranspose3d: "conv_transpose3d", nn.Linear: "linear", nn.Bilinear: "bilinear",
    nn.modules.batchnorm._BatchNorm: "batch_norm",
    nn.modules.instancenorm._InstanceNorm: "instance_norm",
    nn.LayerNorm: "layer_norm", nn.GroupNorm: "group_norm", nn.RMSNorm: "rms_norm",
    nn.ReLU: "relu", nn.ReLU6: "hardtanh", nn.Hardtanh: "hardtanh", nn.GELU: "gelu",
    nn.SiLU: "silu", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.Hardswish: "hardswish",
    nn.Hardsigmoid: "hardsigmoid", nn.LeakyReLU: "leaky_relu", nn.ELU: "elu", nn.Mish: "mish",
    nn.Softplus: "softplus", nn.PReLU: "prelu", nn.Softmax: "softmax", nn.Softmax2d: "softmax",
    nn.LogSoftmax: "log_softmax",
    nn.Dropout: "dropout", nn.Dropout1d: "feature_dropout", nn.Dropout2d: "feature_dropout",
    nn.Dropout3d: "feature_dropout", nn.AlphaDropout: "alpha_dropout", nn.Identity: "alias",
    nn.Flatten: "flatten", nn.Unflatten: "unflatten",
    nn.MaxPool1d: "max_pool1d", nn.MaxPool2d: "max_pool2d", nn.MaxPool3d: "max_pool3d",
    nn.AvgPool1d: "avg_pool1d", nn.AvgPool2d: "avg_pool2d", nn.AvgPool3d: "avg_pool3d",
    nn.AdaptiveAvgPool1d: "adaptive_avg_pool1d", nn.AdaptiveAvgPool2d: "adaptive_avg_pool2d",
    nn.AdaptiveAvgPool3d: "adaptive_avg_pool3d", nn.AdaptiveMaxPool1d: "adaptive_max_pool1d",
    nn.AdaptiveMaxPool2d: "adaptive_max_pool2d", nn.AdaptiveMaxPool3d: "adaptive_max_pool3d",
    nn.Upsample: _upsample_module, nn.PixelShuffle: "pixel_shuffle",
    nn.PixelUnshuffle: "pixel_unshuffle", nn.modules.padding._ConstantPadNd: "pad",
    nn.modules.padding._ReflectionPadNd: "pad", nn.modules.padding._ReplicationPadNd: "pad",
    nn.modules.padding._CircularPadNd: "pad", nn.Embedding: "embedding",
    nn.EmbeddingBag: "embedding_bag",
}
# Python-level callables (functions, operators, tensor methods) whose name is not the ATen op's.
FUNCTION_OPS: dict[object, str | Callable[[torch.fx.Node], str]] = {
    torch.nn.functional.interpolate: _interpolate_function,
    operator.truediv: "div", operator.floordiv: "floor_divide", operator.iadd: "add",
    operator.isub: "sub", operator.imul: "mul", operator.itruediv: "div",
    operator.and_: "bitwise_and", operator.or_: "bitwise_or", operator.xor: "bitwise_xor",
    operator.invert: "bitwise_not", operator.not_: "logical_not",
    **{method: "to" for method in ("float", "double", "half", "bfloat16", "long", "int", "short",
                                   "char", "byte", "bool")},
}


def op_name(node: torch.fx.Node) -> str:
    """The ATen op's name, whatever the capture path: 'conv2d' for aten.conv2d.default,
    F.conv2d and an nn.Conv2d module call alike; 'div' for ``a / b``."""
    target = node.target
    if node.op == "call_module":
        module = node.graph.owning_module.get_submodule(target)
        entry = next((MODULE_OPS[t] for t in type(module).__mro__ if t in MODULE_OPS), None)
        if entry is None:
            return type(module).__name__
        return entry if isinstance(entry, str) else entry(node, module)
    if isinstance(target, torch._ops.OpOverload):
        return target._schema.name.split("::")[-1]
    entry = FUNCTION_OPS.get(target)
    if entry is not None:
        return entry if isinstance(entry, str) else entry(node)
    if isinstance(target, str):
        return target
    return getattr(target, "__name__", str(target))


def rule_key(node: torch.fx.Node) -> object:
    if node.op == "call_module":
        return type(node.graph.owning_module.get_submodule(node.target))
    return node.target


def find_rule(node: torch.fx.Node) -> Rule | None:
    """The MAC rule for a node: by its target, else by its op's qualified name."""
    key = rule_key(node)
    rule = MAC_RULES.get(key)
    if rule is None and isinstance(key, torch._ops.OpOverload):
        rule = MAC_RULES.get(key._schema.name)
    return rule


def overload_family(op: torch._ops.OpOverload) -> str:
    """'pointwise', 'layout', 'reduction' or 'none' for one ATen overload, from its tags first."""
    name = op._schema.name.split("::")[-1]
    names = {name, name.rstrip("_")}  # an in-place variant (relu_) has its op's family
    if torch.Tag.pointwise in op.tags or names & POINTWISE_OPS:
        return "pointwise"
    if op.is_view or names & LAYOUT_OPS:
        return "layout"
    if torch.Tag.reduction in op.tags or names & REDUCTION_OPS:
        return "reduction"
    return "none"


def family(node: torch.fx.Node) -> str:
    """The zero-MAC family of a compute node: 'pointwise', 'layout', 'reduction' or 'none'.

    An ATen node has its overload's family. Any other call (a module, function or method left
    by the symbolic_trace fallback) takes the family of the ATen op it names; where that op's
    overloads differ (``max`` reduces, ``max(a, b)`` is element-wise) reduction wins.
    """
    if isinstance(node.target, torch._ops.OpOverload):
        return overload_family(node.target)
    name = op_name(node)
    packet = getattr(aten, name, None)
    if not isinstance(packet, torch._ops.OpOverloadPacket):
        return "layout" if name in LAYOUT_OPS else "none"
    found = {overload_family(getattr(packet, o)) for o in packet.overloads()}
    return next((f for f in ("reduction", "pointwise", "layout") if f in found), "none")


def _activation_inputs(node: torch.fx.Node) -> list[torch.fx.Node]:
    return [n for n in node.all_input_nodes if n.op != "get_attr"]


def stored_bytes(value: object, dtype: str | None) -> int:
    """Bytes of the tensors in ``value``; floating-point ones at ``dtype`` when it is given
    (a quantized node stores them narrower), integer ones (indices, masks) as they are."""
    total = 0.0
    for t in iter_tensors(value):
        if dtype is not None and t.is_floating_point():
            total += t.numel() * BYTES[dtype]
        else:
            total += t.numel() * t.element_size()
    return int(total)


def attr_bytes(attr: torch.fx.Node, dtype: str | None) -> int:
    """Stored bytes of the parameter or buffer a ``get_attr`` node reads: a KV cache at its own
    dtype (chipcut.core.ir.KVCache), anything else as :func:`stored_bytes` counts it."""
    kv = get_kv(attr)
    return stored_bytes(attr_value(attr), kv.dtype if kv is not None else dtype)


def _weight_bytes(node: torch.fx.Node) -> int:
    precision = get_precision(node)
    dtype = precision.weights if precision is not None else None
    attrs = [n for n in node.all_input_nodes if n.op == "get_attr"]
    tensors = [attr_value(n) for n in attrs if get_kv(n) is None]
    cache = sum(attr_bytes(n, dtype) for n in attrs if get_kv(n) is not None)
    if node.op == "call_module":
        state = node.graph.owning_module.get_submodule(node.target).state_dict()
        # A batch norm's step counter is never read in eval (export does not pass it).
        tensors += [t for k, t in state.items() if not k.endswith("num_batches_tracked")]
    return stored_bytes(tensors, dtype) + cache


def out_bytes(node: torch.fx.Node) -> int:
    """Bytes of the node's output activation at its annotated precision; 0 for an in-place
    update of a KV cache, whose output is the cache itself: state counted in the weight bytes
    of the node, not a new activation."""
    if state_written(node) is not None:
        return 0
    precision = get_precision(node)
    return stored_bytes(node_value(node), precision.activations if precision is not None else None)


def node_work(node: torch.fx.Node) -> tuple[int, int, str, tuple]:
    """(macs, elem_ops, rule, gemms) for one compute node; rule 'none' when no table knows the op."""
    rule = find_rule(node)
    name = op_name(node)
    if rule is not None:
        macs, elem, gemms = rule(node)
        return int(macs), int(elem), name, tuple(gemms)
    out = numel(val(node))
    kind = family(node)
    if kind == "layout":
        return 0, out if name in COPY_OPS else 0, kind, ()
    if kind == "reduction":
        inputs = [val(a) for a in _activation_inputs(node)]
        return 0, max([numel(t) for t in inputs] + [out]), kind, ()
    return 0, out, kind, ()


def is_mac_op(node: torch.fx.Node) -> bool:
    """A compute node whose rule counts multiply-accumulates (conv, linear, matmul, attention)."""
    return is_compute(node) and find_rule(node) is not None and node_work(node)[0] > 0


# --- higher-order ops: control flow whose bodies are GraphModules on the owning module -------
# Their rules sit here rather than in rules.py: a body's work is the accounting of its nodes.

hop = torch.ops.higher_order


def subgraphs(node: torch.fx.Node) -> list[torch.fx.GraphModule]:
    """The bodies (branches, loop bodies) a higher-order op node such as ``cond`` runs."""
    if not isinstance(node.target, torch._ops.HigherOrderOperator):
        return []
    found = (attr_value(n) for n in node.all_input_nodes if n.op == "get_attr")
    return [m for m in found if isinstance(m, torch.fx.GraphModule)]


def graph_work(gm: torch.fx.GraphModule, times: int = 1) -> tuple[int, int, Gemms]:
    """(macs, elem_ops, gemms) of every compute node of ``gm``, run ``times`` times."""
    macs = elem = 0
    gemms: list[tuple[int, int, int, int]] = []
    for node in gm.graph.nodes:
        if is_compute(node):
            m, e, _, g = node_work(node)
            macs, elem, gemms = macs + m, elem + e, gemms + list(g)
    return macs * times, elem * times, tuple((b * times, m, k, n) for b, m, k, n in gemms)


@register_macs(hop.cond)
def _cond(node: torch.fx.Node) -> tuple[int, int, Gemms]:
    """torch.cond costs its most expensive branch (most MACs, then most element ops): which
    branch runs depends on the data, and a chip must be provisioned for the costlier one."""
    return max((graph_work(branch) for branch in subgraphs(node)), key=lambda w: w[:2])


@register_macs(hop.map_impl, hop.scan)
def _map(node: torch.fx.Node) -> tuple[int, int, Gemms]:
    """map and scan: the body once per slice of the mapped inputs (their leading dimension)."""
    xs = node.args[1] if node.target is hop.map_impl else node.args[2]
    return graph_work(subgraphs(node)[0], int(val(xs[0]).shape[0]) if xs else 1)


def _bodies_once(node: torch.fx.Node) -> tuple[int, int, Gemms]:
    works = [graph_work(body) for body in subgraphs(node)]
    return (sum(w[0] for w in works), sum(w[1] for w in works),
            tuple(g for w in works for g in w[2]))


@register_macs(hop.while_loop)
def _while_loop(node: torch.fx.Node) -> tuple[int, int, Gemms]:
    """while_loop: one iteration (condition and body), a lower bound: the trip count depends on
    the data and is not in the graph."""
    return _bodies_once(node)


@register_macs(*(getattr(hop, name) for name in (
    "wrap_with_set_grad_enabled", "wrap_with_autocast", "invoke_subgraph") if hasattr(hop, name)))
def _wrapped(node: torch.fx.Node) -> tuple[int, int, Gemms]:
    """A body run once (under a grad or autocast context, or a reused subgraph)."""
    return _bodies_once(node)


def _nodes(gm: torch.fx.GraphModule) -> list[torch.fx.Node]:
    """The compute nodes of ``gm`` and of the bodies of its higher-order ops, recursively."""
    out = []
    for node in gm.graph.nodes:
        if is_compute(node):
            out.append(node)
            out += [n for body in subgraphs(node) for n in _nodes(body)]
    return out


def _tensor_work(node: torch.fx.Node) -> bool:
    """Reads a tensor and writes one (not ``x.device``, not a size)."""
    reads = any(isinstance(attr_value(n) if n.op == "get_attr" else val(n), torch.Tensor)
                for n in node.all_input_nodes)
    return reads and val(node) is not None


def unaccounted(gm: torch.fx.GraphModule) -> tuple[tuple[str, int], ...]:
    """(op name, node count) of the ops no rule covers that do work (read and write tensors;
    views and layout ops excluded), most frequent first, bodies of higher-order ops included;
    read from the costs :func:`accounting` wrote. Such ops count 0 MACs and element-wise work.

    >>> gm = accounting(capture(model, (x,)).graph_module)  # doctest: +SKIP
    >>> unaccounted(gm)  # doctest: +SKIP
    (('histc', 4), ('my_op', 2))
    """
    counts: dict[str, int] = {}
    for node in _nodes(gm):
        if get_cost(node).rule == "none" and _tensor_work(node):
            counts[op_name(node)] = counts.get(op_name(node), 0) + 1
    return tuple(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _rows_bytes(node: torch.fx.Node, weights: int, written: int) -> int:
    """Bytes of table rows a lookup reads: as many as it writes, except a bag, which reduces
    each bag of rows it gathers to one."""
    if op_name(node) != "embedding_bag":
        return written
    table = next((val(a) for a in node.args if val(a) is not None and val(a).is_floating_point()),
                 None)
    rows = int(table.shape[0]) if table is not None and table.dim() else 0
    return gathered(node) * weights // rows if rows else written


def _annotate(node: torch.fx.Node) -> None:
    macs, elem_ops, rule, gemms = node_work(node)
    in_bytes = sum(out_bytes(n) for n in _activation_inputs(node))
    weights, written = _weight_bytes(node), out_bytes(node)
    # A lookup reads the rows it gathers, not its whole table (a bag many rows per output).
    read = min(weights, _rows_bytes(node, weights, written)) \
        if op_name(node) in LOOKUPS and weights else None
    set_cost(node, NodeCost(macs, elem_ops, written, in_bytes, weights, rule, gemms, read,
                            classify(op_name(node), macs, gemms)))


def accounting(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Annotate every compute node with a :class:`compiler.ir.NodeCost`, the nodes in the
    bodies of higher-order ops (cond, map, while_loop) included.

    Ops without a rule count 0 MACs and are listed once in a ``UnaccountedOpsWarning``
    (and by :func:`unaccounted`).
    """
    for node in _nodes(gm):
        _annotate(node)
    unknown = unaccounted(gm)
    if unknown:
        listed = ", ".join(f"{name} (x{count})" for name, count in unknown)
        warnings.warn(UnaccountedOpsWarning(
            f"no MAC rule for {listed}: counted as 0 MACs and element-wise work; "
            "register one with chipcut.passes.rules.register_macs"), stacklevel=2)
    return gm


class UnaccountedOpsWarning(UserWarning):
    """Ops that no accounting rule covers (their MACs count as 0)."""


__all__ = ["accounting", "node_work", "op_name", "family", "bound_args", "unaccounted",
           "graph_work", "UnaccountedOpsWarning"]
