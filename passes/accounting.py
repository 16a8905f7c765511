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
    get_precision,
    is_compute,
    iter_tensors,
    node_value,
    set_cost,
)
from chipcut.passes.rules import MAC_RULES, bound_args, numel, val

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


def _weight_bytes(node: torch.fx.Node) -> int:
    precision = get_precision(node)
    dtype = precision.weights if precision is not None else None
    tensors = [attr_value(n) for n in node.all_input_nodes if n.op == "get_attr"]
    if node.op == "call_module":
        state = node.graph.owning_module.get_submodule(node.target).state_dict()
        # A batch norm's step counter is never read in eval (export does not pass it).
        tensors += [t for k, t in state.items() if not k.endswith("num_batches_tracked")]
    return stored_bytes(tensors, dtype)


def out_bytes(node: torch.fx.Node) -> int:
    """Bytes of the node's output activation at its annotated precision."""
    precision = get_precision(node)
    return stored_bytes(node_value(node), precision.activations if precision is not None else None)


def node_work(node: torch.fx.Node) -> tuple[int, int, str, tuple]:
    """(macs, elem_ops, rule, gemms) for one compute node; rule 'none' when no table knows the op."""
    rule = MAC_RULES.get(rule_key(node))
    name = op_name(node)
    if rule is not None:
        macs, elem, gemms = rule(node)
        return int(macs), int(elem), name, tuple(gemms)
    out = numel(val(node))
    kind = family(node)
    if kind == "layout":
        return 0, 0, kind, ()
    if kind == "reduction":
        inputs = [val(a) for a in _activation_inputs(node)]
        return 0, max([numel(t) for t in inputs] + [out]), kind, ()
    return 0, out, kind, ()


def is_mac_op(node: torch.fx.Node) -> bool:
    """A compute node whose rule counts multiply-accumulates (conv, linear, matmul, attention)."""
    return is_compute(node) and rule_key(node) in MAC_RULES and node_work(node)[0] > 0


def accounting(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Annotate every compute node with a :class:`compiler.ir.NodeCost`.

    Ops without a rule count 0 MACs and are listed once in a ``UnaccountedOpsWarning``.
    """
    unknown: dict[str, int] = {}
    for node in gm.graph.nodes:
        if not is_compute(node):
            continue
        macs, elem_ops, rule, gemms = node_work(node)
        if rule == "none":
            unknown[op_name(node)] = unknown.get(op_name(node), 0) + 1
        in_bytes = sum(out_bytes(n) for n in _activation_inputs(node))
        weights, written = _weight_bytes(node), out_bytes(node)
        # A lookup reads the rows it gathers, not its whole table.
        read = min(weights, written) if op_name(node) in LOOKUPS and weights else None
        set_cost(node, NodeCost(macs, elem_ops, written, in_bytes, weights, rule, gemms, read))
    if unknown:
        listed = ", ".join(f"{name} (x{count})" for name, count in sorted(unknown.items()))
        warnings.warn(UnaccountedOpsWarning(
            f"no MAC rule for {listed}: counted as 0 MACs and element-wise work; "
            "register one with chipcut.passes.rules.register_macs"), stacklevel=2)
    return gm


class UnaccountedOpsWarning(UserWarning):
    """Ops that no accounting rule covers (their MACs count as 0)."""


__all__ = ["accounting", "node_work", "op_name", "family", "bound_args", "UnaccountedOpsWarning"]
