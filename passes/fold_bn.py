"""fold-bn: fold eval-mode batch norm into the preceding convolution or linear layer.

y = gamma (conv(x, W) + b - mean) / sqrt(var + eps) + beta becomes conv(x, W') + b'
with W' = W * s (per output channel), b' = (b - mean) * s + beta, s = gamma / sqrt(var + eps).
The folded weights are new parameters of the graph module, computed on the real
weights (or on meta tensors, for models built on the meta device). A batch norm
is folded only when the layer before it has no other user and the channel axis
of the batch norm is the layer's output channel axis.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.fx

from chipcut.core.ir import attr_value, node_value
from chipcut.passes.manager import register_pass

aten = torch.ops.aten

# op -> (index of the bias argument, axis of the output channels in the weight)
LAYERS = {
    aten.conv1d.default: (2, 0),
    aten.conv2d.default: (2, 0),
    aten.conv3d.default: (2, 0),
    aten.convolution.default: (2, 0),
    aten.linear.default: (2, 0),
}
# batch norm op -> (index of weight, bias, running_mean, running_var, eps), or None where absent
NORMS = {
    aten.batch_norm.default: (1, 2, 3, 4, 7),
    aten._native_batch_norm_legit_no_training.default: (1, 2, 3, 4, 6),
}


def _is_training(bn: torch.fx.Node) -> bool:
    return bn.target is aten.batch_norm.default and len(bn.args) > 5 and bool(bn.args[5])


def _foldable(bn: torch.fx.Node) -> torch.fx.Node | None:
    if bn.op != "call_function" or bn.target not in NORMS or _is_training(bn):
        return None
    layer = bn.args[0]
    if not isinstance(layer, torch.fx.Node) or layer.target not in LAYERS or len(layer.users) != 1:
        return None
    if layer.target is aten.convolution.default and layer.args[6]:  # transposed
        return None
    weight = layer.args[1]
    if not isinstance(weight, torch.fx.Node) or weight.op != "get_attr":
        return None
    if layer.target is aten.linear.default:
        out = node_value(layer)
        if not isinstance(out, torch.Tensor) or out.dim() != 2:  # BN1d on (N, L, C) is over L
            return None
    if bn.target is aten._native_batch_norm_legit_no_training.default:
        if any(u.target is not operator.getitem or u.args[1] != 0 for u in bn.users):
            return None
    return layer


def _tensor(arg: object) -> torch.Tensor | None:
    return attr_value(arg) if isinstance(arg, torch.fx.Node) else None


def _new_param(gm: torch.fx.GraphModule, like: torch.fx.Node, suffix: str, value: torch.Tensor) -> str:
    path, _, leaf = str(like.target).rpartition(".")
    owner = gm.get_submodule(path) if path else gm
    name = f"{leaf}_{suffix}"
    i = 0
    while hasattr(owner, name):
        i += 1
        name = f"{leaf}_{suffix}{i}"
    owner.register_parameter(name, torch.nn.Parameter(value.detach(), requires_grad=False))
    return f"{path}.{name}" if path else name


def fold_one(gm: torch.fx.GraphModule, layer: torch.fx.Node, bn: torch.fx.Node) -> None:
    iw, ib, im, iv, ie = NORMS[bn.target]
    args = list(bn.args)
    gamma, beta, mean, var = (_tensor(args[i]) for i in (iw, ib, im, iv))
    eps = float(args[ie])
    weight_node = layer.args[1]
    w = attr_value(weight_node)
    bias_index, axis = LAYERS[layer.target]
    layer_args = list(layer.args) + [None] * max(0, bias_index + 1 - len(layer.args))
    b = _tensor(layer_args[bias_index])
    with torch.no_grad():
        scale = torch.rsqrt(var.double() + eps)
        if gamma is not None:
            scale = scale * gamma.double()
        shape = [1] * w.dim()
        shape[axis] = -1
        # The per-channel scale in float64, the weights in their own dtype: one rounding of
        # the scale and one of the product, without a float64 copy of every weight.
        new_w = w * scale.to(w.dtype).reshape(shape)
        base = b.double() if b is not None else torch.zeros_like(mean, dtype=torch.float64)
        new_b = (base - mean.double()) * scale + (beta.double() if beta is not None else 0.0)
        new_b = new_b.to(w.dtype)
    w_name = _new_param(gm, weight_node, "bn_folded", new_w)
    b_name = _new_param(gm, weight_node, "bias_bn_folded", new_b)
    with gm.graph.inserting_before(layer):
        w_node = gm.graph.get_attr(w_name)
        b_node = gm.graph.get_attr(b_name)
    w_node.meta.update(weight_node.meta)
    layer_args[1], layer_args[bias_index] = w_node, b_node
    layer.args = tuple(layer_args)
    if bn.target is aten._native_batch_norm_legit_no_training.default:
        for user in list(bn.users):
            user.replace_all_uses_with(layer)
            gm.graph.erase_node(user)
    else:
        bn.replace_all_uses_with(layer)
    gm.graph.erase_node(bn)


def drop_unused_attrs(gm: torch.fx.GraphModule) -> None:
    """Erase get_attr nodes nobody reads, and the parameters no get_attr names any more."""
    gone = []
    for node in list(gm.graph.nodes):
        if node.op == "get_attr" and not node.users:
            gone.append(str(node.target))
            gm.graph.erase_node(node)
    still = {str(n.target) for n in gm.graph.nodes if n.op == "get_attr"}
    for target in gone:
        if target in still:
            continue
        path, _, leaf = target.rpartition(".")
        owner = gm.get_submodule(path) if path else gm
        if hasattr(owner, leaf):
            delattr(owner, leaf)


@register_pass("fold-bn")
@dataclass(frozen=True)
class FoldBatchNorm:
    """Fold every eval batch norm that follows a conv or linear layer into that layer's weights.

    >>> gm = FoldBatchNorm()(gm)  # doctest: +SKIP
    """

    structural: ClassVar[bool] = True  # rewrites the graph (others only annotate it)

    def __call__(self, gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
        folded = 0
        for bn in list(gm.graph.nodes):
            layer = _foldable(bn)
            if layer is not None:
                fold_one(gm, layer, bn)
                folded += 1
        if folded:
            drop_unused_attrs(gm)
            gm.recompile()
        return gm
