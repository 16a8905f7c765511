"""Accounting pass: per-node MACs, element ops, activation and weight bytes into ``chipcut.cost``."""

from __future__ import annotations

import operator
import warnings

import torch
import torch.fx
from chipcut.core.ir import (
    DTYPE_BYTES,
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

# Reductions and normalizations: no MACs, one op per input element.
REDUCTIONS = {
    "mean", "sum", "amax", "amin", "max", "min", "prod", "var", "std", "var_mean", "norm",
    "linalg_vector_norm", "softmax", "_softmax", "log_softmax", "_log_softmax", "layer_norm",
    "native_layer_norm", "rms_norm", "_fused_rms_norm", "group_norm", "native_group_norm",
    "batch_norm", "native_batch_norm", "_native_batch_norm_legit_no_training",
    "_native_batch_norm_legit", "instance_norm", "cumsum", "cumprod", "logsumexp", "argmax",
    "argmin", "max_pool1d", "max_pool2d", "max_pool3d", "max_pool2d_with_indices", "avg_pool1d",
    "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
    "adaptive_avg_pool3d", "_adaptive_avg_pool2d", "adaptive_max_pool2d", "topk", "sort",
    "any", "all", "diff", "upsample_nearest2d", "upsample_bilinear2d", "interpolate",
}
# Layout and data movement: no arithmetic at all.
LAYOUT = {
    "view", "reshape", "_unsafe_view", "expand", "permute", "transpose", "t", "unsqueeze",
    "squeeze", "flatten", "unflatten", "contiguous", "clone", "slice", "select", "split",
    "split_with_sizes", "chunk", "unbind", "cat", "stack", "index", "index_select", "gather",
    "narrow", "alias", "detach", "dropout", "lift_fresh_copy", "_to_copy", "to", "type_as",
    "getitem", "size", "sym_size", "arange", "zeros", "ones", "full", "empty", "zeros_like",
    "ones_like", "full_like", "empty_like", "new_ones", "new_zeros", "new_empty", "scalar_tensor",
    "repeat", "repeat_interleave", "roll", "flip", "pad", "constant_pad_nd", "masked_fill",
    "where", "tril", "triu", "copy", "copy_", "fill_", "identity", "float", "long", "int",
    "bool", "half", "bfloat16", "dim", "numel", "_assert_tensor_metadata", "pixel_shuffle",
    "embedding", "scatter", "index_put", "movedim", "diagonal", "view_as", "reshape_as",
    "expand_as", "_guards_fn",
}


# Ops that read only the weight rows they gather.
LOOKUPS = {"embedding", "Embedding", "index_select", "gather", "index", "embedding_bag"}


def op_name(node: torch.fx.Node) -> str:
    """Short op name: 'conv2d' for aten.conv2d.default, 'relu' for torch.relu, 'Linear' for a module."""
    target = node.target
    if node.op == "call_module":
        return type(node.graph.owning_module.get_submodule(target)).__name__
    if isinstance(target, torch._ops.OpOverload):
        return target._schema.name.split("::")[-1]
    if isinstance(target, str):
        return target
    return getattr(target, "__name__", str(target))


def rule_key(node: torch.fx.Node) -> object:
    if node.op == "call_module":
        return type(node.graph.owning_module.get_submodule(node.target))
    return node.target


def _is_pointwise(node: torch.fx.Node) -> bool:
    target = node.target
    if isinstance(target, torch._ops.OpOverload) and torch.Tag.pointwise in target.tags:
        return True
    return target in POINTWISE_FUNCTIONS or op_name(node).strip("_") in POINTWISE_NAMES


POINTWISE_NAMES = {
    "add", "sub", "mul", "div", "truediv", "floordiv", "neg", "pow", "rsqrt", "sqrt", "exp",
    "log", "relu", "relu6", "gelu", "silu", "sigmoid", "tanh", "hardtanh", "hardswish",
    "hardsigmoid", "leaky_relu", "elu", "mish", "softplus", "abs", "clamp", "clamp_min",
    "clamp_max", "erf", "sin", "cos", "reciprocal", "eq", "ne", "lt", "le", "gt", "ge",
    "and", "or", "logical_and", "logical_or", "logical_not", "bitwise_not", "minimum",
    "maximum", "bitwise_and", "bitwise_or", "xor", "ReLU", "ReLU6", "GELU", "SiLU", "Sigmoid", "Tanh", "Hardswish", "Dropout",
    "Identity", "LeakyReLU", "iadd", "imul",
}
POINTWISE_FUNCTIONS = {operator.add, operator.mul, operator.sub, operator.truediv, operator.neg}
REDUCTION_NAMES = REDUCTIONS | {
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LayerNorm", "GroupNorm", "RMSNorm",
    "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "Softmax",
}
LAYOUT_NAMES = LAYOUT | {"Flatten", "Embedding", "Upsample"}


def _activation_inputs(node: torch.fx.Node) -> list[torch.fx.Node]:
    return [n for n in node.all_input_nodes if n.op != "get_attr"]


def stored_bytes(value: object, dtype: str | None) -> int:
    """Bytes of the tensors in ``value``; floating-point ones at ``dtype`` when it is given
    (a quantized node stores them narrower), integer ones (indices, masks) as they are."""
    total = 0.0
    for t in iter_tensors(value):
        if dtype is not None and t.is_floating_point():
            total += t.numel() * DTYPE_BYTES[dtype]
        else:
            total += t.numel() * t.element_size()
    return int(total)


def _weight_bytes(node: torch.fx.Node) -> int:
    precision = get_precision(node)
    dtype = precision.weights if precision is not None else None
    tensors = [attr_value(n) for n in node.all_input_nodes if n.op == "get_attr"]
    if node.op == "call_module":
        tensors += list(node.graph.owning_module.get_submodule(node.target).state_dict().values())
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
    if _is_pointwise(node):
        return 0, out, "pointwise", ()
    if name in LAYOUT_NAMES or name.rstrip("_") in LAYOUT_NAMES or (
        isinstance(node.target, torch._ops.OpOverload) and node.target.is_view
    ):
        return 0, 0, "layout", ()
    if name in REDUCTION_NAMES or name.rstrip("_") in REDUCTION_NAMES:
        inputs = [val(a) for a in _activation_inputs(node)]
        return 0, max([numel(t) for t in inputs] + [out]), "reduction", ()
    return 0, out, "none", ()


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


__all__ = ["accounting", "node_work", "op_name", "bound_args", "UnaccountedOpsWarning"]
