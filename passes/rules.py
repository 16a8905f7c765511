"""Per-op work rules: MACs and element ops from shapes, registered per ATen op (a table).

A rule takes the node and returns ``(macs, elem_ops, gemms)``, gemms being the
MACs as matrix products ``(batch, M, K, N)`` for array cost models. Ops with no MAC rule
fall into three known zero-MAC families (pointwise, view/layout, reduction);
anything else is reported by ``chipcut.passes.accounting`` as unaccounted.
"""

from __future__ import annotations

import math
import operator
import weakref
from collections.abc import Callable

import torch
import torch.fx
import torch.nn.functional as F

from chipcut.core.ir import iter_tensors, node_value
from chipcut.passes.masks import mask_bound, mask_signature

aten = torch.ops.aten
Gemms = tuple[tuple[int, int, int, int], ...]
Rule = Callable[[torch.fx.Node], tuple[int, int, Gemms]]
MAC_RULES: dict[object, Rule] = {}


def register_macs(*targets: object) -> Callable[[Rule], Rule]:
    """Register ``fn(node) -> (macs, elem_ops, gemms)`` for each target: an OpOverload, a
    function, a module type, or an op's qualified name ``"namespace::name"`` (every overload;
    for ops of a library that registers them only once it is imported).

    >>> @register_macs("mylib::fused_mlp")  # doctest: +SKIP
    ... def _fused_mlp(node): ...
    """

    def deco(fn: Rule) -> Rule:
        for target in targets:
            MAC_RULES[target] = fn
        return fn

    return deco


def _first_tensor(value: object) -> torch.Tensor | None:
    return next(iter_tensors(value), None)


def val(arg: object) -> torch.Tensor | None:
    """The example tensor behind an FX argument (None for non-tensors)."""
    if isinstance(arg, torch.fx.Node):
        return _first_tensor(node_value(arg))
    return arg if isinstance(arg, torch.Tensor) else None


def numel(t: torch.Tensor | None) -> int:
    return int(t.numel()) if t is not None else 0


def bound_args(node: torch.fx.Node) -> dict[str, object]:
    """Arguments by schema name for an ATen op node (positional and keyword)."""
    schema = getattr(node.target, "_schema", None)
    if schema is None:
        return dict(node.kwargs)
    out = {a.name: a.default_value for a in schema.arguments if a.has_default_value()}
    out.update({a.name: v for a, v in zip(schema.arguments, node.args, strict=False)})
    out.update(node.kwargs)
    return out


def _module(node: torch.fx.Node) -> torch.nn.Module:
    return node.graph.owning_module.get_submodule(node.target)


def _out(node: torch.fx.Node) -> torch.Tensor | None:
    return _first_tensor(node_value(node))


# --- convolution -----------------------------------------------------------------------------

def _conv_macs(x: torch.Tensor, w: torch.Tensor, out: torch.Tensor, transposed: bool,
               groups: int) -> tuple[int, int, Gemms]:
    # Normal: every output element takes Cin/groups * prod(kernel) MACs (weight[1:]).
    # Transposed: every input element scatters into Cout/groups * prod(kernel) outputs.
    per = numel(w) // w.shape[0]
    src = x if transposed else out
    macs = numel(src) * per
    channels = int(src.shape[1]) if src.dim() > 1 else 1
    rows = numel(src) // max(channels, 1)  # N * spatial positions
    gemm = (groups, rows, per, channels // groups)
    return macs, numel(out), (gemm,)


@register_macs(aten.conv1d.default, aten.conv2d.default, aten.conv3d.default,
               aten.conv1d.padding, aten.conv2d.padding, aten.conv3d.padding)
def _conv(node: torch.fx.Node) -> tuple[int, int, Gemms]:
    groups = int(bound_args(node).get("groups", 1))
    return _conv_macs(val(node.args[0]), val(node.args[1]), _out(node), False, groups)


@register_macs(aten.conv_transpose1d.default, aten.conv_transpose2d.input,
               aten.conv_transpose3d.input)
def _conv_t(node: torch.fx.Node) -> tuple[int, int, Gemms]:
    groups = int(bound_args(node).get("groups", 1))
    return _conv_macs(val(node.args[0]), val(node.args[1]), _out(node), True, groups)


# torch.conv2d (F.conv2d is the same function) as the symbolic_trace fallback records it:
# (input, weight, bias, stride, padding, dilation, groups), or for the transposed ones
# (input, weight, bias, stride, padding, output_padding, groups, dilation); groups is args[6].
@register_macs(torch.conv1d, torch.conv2d, torch.conv3d, torch.conv_transpose1d,
               torch.conv_transpose2d, torch.conv_transpose3d)
def _conv_function(node: torch.fx.Node) -> tuple[int, int, Gemms]:
    groups = node.args[6] if len(node.args) > 6 else node.kwargs.get("groups", 1)
    transposed = node.target in (torch.conv_transpose1d, torch.conv_transpose2d,
                                 torch.conv_transpose3d)
    return _conv_macs(val(node.args[0]), val(node.args[1]), _out(node), transposed, int(groups))


@register_macs(aten.convolution.default, aten._convolution.default)
def _convolution(node: torch.fx.Node) -> tuple[int, int, Gemms]:
    args = bound_args(node)
    return _conv_macs(val(node.args[0]), val(node.args[1]), _out(node), bool(args["transposed"]),
                      int(args["groups"]))


# --- GEMM family -----------------------------------------------------------------------------

def _gemm(out: torch.Tensor, k: int, batched: bool, epilogue: bool) -> tuple[int, int, Gemms]:
    """out (..., M, N) = a (..., M, K) @ b (..., K, N): numel(out) * K MACs."""
    n = int(out.shape[-1]) if out.dim() else 1
    m = int(out.shape[-2]) if out.dim() > 1 else 1
    total = max(numel(out), 1)
    batch = total // (m * n) if batched else 1
    if not batched:
        m = total // n
    return total * k, numel(out) if epilogue else 0, ((batch, m, k, n),)


def _linear(node: torch.fx.Node) -> tuple[int, int, Gemms]:
    return _gemm(_out(node), int(val(node.args[1]).shape[-1]), False, True)


register_macs(aten.linear.default, F.linear)(_linear)


@register_macs(aten.addmm.default, torch.addmm)
def _addmm(node: torch.fx.Node) -> tuple[int, int, Gemms]:
    return _gemm(_out(node), int(val(node.args[1]).shape[-1]), False, True)


@register_macs(aten.mm.default, aten.bmm.default, aten.matmul.default, torch.matmul,
               torch.mm, torch.bmm, operator.matmul)
def _matmul(node: torch.fx.Node) -> tuple[int, int, Gemms]:
    return _gemm(_out(node), int(val(node.args[0]).shape[-1]), True, False)


@register_macs(aten.baddbmm.default, torch.baddbmm)
def _baddbmm(node: torch.fx.Node) -> tuple[int, int, Gemms]:
    return _gemm(_out(node), int(val(node.args[1]).shape[-1]), True, True)


def _split(total: int, parts: int) -> list[tuple[int, int]]:
    """``total`` cut into ``parts`` near-equal pieces, as (how many, size) pairs."""
    size, extra = divmod(total, parts)
    return [(count, n) for count, n in ((extra, size + 1), (parts - extra, size)) if count and n]


def _grouped_gemm(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> tuple[int, Gemms]:
    """MACs and GEMMs of a grouped matrix product, in each of F.grouped_mm's four forms."""
    if a.dim() == 2 and b.dim() == 2:  # (M, K) x (K, N), K cut into groups -> (G, M, N)
        groups, m, n = (int(d) for d in out.shape)
        k = int(a.shape[-1])
        return m * k * n, tuple((count, m, part, n) for count, part in _split(k, groups))
    if a.dim() == 3 and b.dim() == 3:  # (G, M, K) x (G, K, N) -> (G, M, N)
        groups, m, k = (int(d) for d in a.shape)
        return numel(out) * k, ((groups, m, k, int(b.shape[-1])),)
    if a.dim() == 2:  # (rows, K) x (G, K, N), rows cut into groups -> (rows, N)
        rows, k = (int(d) for d in a.shape)
        groups, n = int(b.shape[0]), int(b.shape[-1])
        return rows * k * n, tuple((count, part, k, n) for count, part in _split(rows, groups))
    groups, m, k = (int(d) for d in a.shape)  # (G, M, K) x (K, N), N cut into groups -> (M, N)
    n = int(b.shape[-1])
    return m * k * n, tuple((count, m, k, part) for count, part in _split(n, groups))


_GROUPED_MM = ["transformers::grouped_mm_fallback"]
if hasattr(aten, "_grouped_mm"):
    _GROUPED_MM.append(aten._grouped_mm.default)
_GROUPED_MM += [getattr(m, name) for m, name in ((F, "grouped_mm"), (torch, "_grouped_mm"))
                if hasattr(m, name)]


@register_macs(*_GROUPED_MM)
def _grouped_mm(node: torch.fx.Node) -> tuple[int, int, Gemms]:
    """A grouped GEMM, as mixture-of-experts layers run their experts (transformers 5 calls
    ``grouped_mm`` or its own ``transformers::grouped_mm_fallback``): every row meets the
    weight of the one group (expert) it was routed to.

    Convention: count the routed tokens x expert GEMMs as the graph computes them. A
    static-capacity dispatch (padded to a fixed number of rows per expert, usually a bmm or
    einsum) counts its padded rows, since that is the work the graph does; a data-dependent
    dispatch like this one counts what the shapes say: every routed row (tokens x top_k), each
    once. How the rows split among the experts depends on the routing; the GEMMs assume an
    even split, so their MACs sum to the total.
    """
    out = _out(node)
    macs, gemms = _grouped_gemm(val(node.args[0]), val(node.args[1]), out)
    return macs, numel(out) if bound_args(node).get("bias") is not None else 0, gemms


def _einsum_macs(equation: str, operands: list[torch.Tensor]) -> int:
    """The MACs of contracting the operands pairwise, left to right, as torch does without
    opt_einsum: each step costs the product of the sizes of every index its two operands
    carry, and keeps the indices a later operand or the output still needs. (With opt_einsum
    installed torch may pick a cheaper order.)"""
    parts = equation.replace(" ", "").split("->")
    lhs = parts[0].split(",")
    sizes: dict[str, int] = {}
    for letters, t in zip(lhs, operands, strict=True):
        letters = letters.replace("...", "")
        dims = t.shape[len(t.shape) - len(letters):]
        sizes.update(zip(letters, (int(d) for d in dims), strict=True))
    batch = 1
    for letters, t in zip(lhs, operands, strict=True):
        if "..." in letters:
            batch = max(batch, math.prod(int(d) for d in t.shape[: len(t.shape) - len(letters) + 3]))
    if len(operands) < 2:
        return 0
    letters = [t.replace("...", "") for t in lhs]
    out = parts[1].replace("...", "") if len(parts) > 1 else \
        "".join(c for c in sizes if "".join(letters).count(c) == 1)
    total, current = 0, set(letters[0])
    for i in range(1, len(letters)):
        union = current | set(letters[i])
        total += math.prod(sizes[c] for c in union)
        still = set(out) | set("".join(letters[i + 1:]))
        current = {c for c in union if c in still}
    return total * batch


@register_macs(aten.einsum.default, torch.einsum)
def _einsum(node: torch.fx.Node) -> tuple[int, int, Gemms]:
    operands = node.args[1] if len(node.args) > 1 else node.args[0]
    if not isinstance(operands, (list, tuple)):
        operands = node.args[1:]
    tensors = [val(a) for a in operands]
    return _einsum_macs(node.args[0], tensors), numel(_out(node)), ()


# --- attention -------------------------------------------------------------------------------

def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               causal: bool) -> tuple[int, int, Gemms]:
    # B*H*Sq*Sk*(Dqk + Dv): QK^T then PV; a causal mask leaves half the score matrix.
    *batch, sq, dqk = (int(d) for d in q.shape)
    sk, dv = int(k.shape[-2]), int(v.shape[-1])
    heads = math.prod(batch)
    scores = heads * sq * sk
    macs = scores * (dqk + dv)
    if causal:
        macs //= 2
        scores //= 2
    gemms = ((heads, sq, dqk, sk), (heads, sq, sk, dv))
    return macs, 4 * scores, gemms  # scale, max, exp, normalize per score


def _causal(q: torch.Tensor, k: torch.Tensor, is_causal: object, mask: object) -> bool:
    """Whether attention counts as causal (half the scores): ``is_causal=True``, or a mask that
    lets no query see a key after it (nothing above the diagonal, as ``is_causal`` aligns it).

    Convention: the same computation counts the same however the mask is spelled. A mask is
    read when it is built from constants alone (tril/triu, arange comparisons,
    ``torch.ones(...).tril()``, a buffer, transformers' mask functions), also when it is such
    a mask ANDed with one from the model's inputs (a padding mask only removes more). A mask
    stricter than causal (a sliding window) counts as causal too. A mask that cannot be read
    (from the inputs alone, a buffer on the meta device, a producer too large to run again)
    counts in full.
    """
    if bool(is_causal):
        return True
    if not isinstance(mask, torch.fx.Node):
        return False
    sq, sk = int(q.shape[-2]), int(k.shape[-2])
    # Every layer reads the same mask node and each pass asks again: read it once per shape,
    # again only if the nodes that produce it have changed.
    key = (mask_signature(mask), sq, sk)
    known = _CAUSAL_SEEN.get(mask)
    if known is not None and known[0] == key:
        return known[1]
    allowed = mask_bound(mask)
    causal = False
    if allowed is not None:
        above = torch.ones(sq, sk, dtype=torch.bool).triu(1)
        try:
            allowed, above = torch.broadcast_tensors(allowed, above)
            causal = not bool((allowed & above).any())
        except RuntimeError:
            causal = False
    _CAUSAL_SEEN[mask] = (key, causal)
    return causal


# mask node -> (its signature and the shape asked, causal?): a memo that dies with the graph
_CAUSAL_SEEN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


_SDPA_OPS = [
    aten.scaled_dot_product_attention.default,
    aten._scaled_dot_product_attention_math.default,
    aten._scaled_dot_product_flash_attention.default,
    aten._scaled_dot_product_flash_attention_for_cpu.default,
    aten._scaled_dot_product_efficient_attention.default,
    aten._scaled_dot_product_cudnn_attention.default,
]
if hasattr(aten, "_scaled_dot_product_fused_attention_overrideable"):
    _SDPA_OPS.append(aten._scaled_dot_product_fused_attention_overrideable.default)


@register_macs(*_SDPA_OPS)
def _sdpa(node: torch.fx.Node) -> tuple[int, int, Gemms]:
    """Attention, halved when causal: ``is_causal=True`` or a causal mask (see :func:`_causal`)."""
    args = bound_args(node)
    q, k, v = (val(args[name]) for name in ("query", "key", "value"))
    mask = args.get("attn_mask", args.get("attn_bias"))
    return _attention(q, k, v, _causal(q, k, args.get("is_causal", False), mask))


@register_macs(F.scaled_dot_product_attention)
def _sdpa_function(node: torch.fx.Node) -> tuple[int, int, Gemms]:
    q, k, v = (val(a) for a in node.args[:3])
    mask = node.args[3] if len(node.args) > 3 else node.kwargs.get("attn_mask")
    return _attention(q, k, v, _causal(q, k, node.kwargs.get("is_causal", False), mask))


# --- embedding: a lookup, bytes but no MACs --------------------------------------------------

@register_macs(aten.embedding.default, F.embedding, torch.nn.Embedding)
def _embedding(node: torch.fx.Node) -> tuple[int, int, Gemms]:
    return 0, 0, ()


def gathered(node: torch.fx.Node) -> int:
    """Rows a lookup gathers: the elements of its integer (index) argument."""
    index = next((t for t in map(val, node.args) if t is not None
                  and not t.is_floating_point() and not t.is_complex()), None)
    return numel(index)


@register_macs(aten.embedding_bag.default, aten.embedding_bag.padding_idx,
               aten._embedding_bag.default, F.embedding_bag, torch.nn.EmbeddingBag)
def _embedding_bag(node: torch.fx.Node) -> tuple[int, int, Gemms]:
    """A bag sums (or averages, or takes the max of) the rows it gathers: one element op per
    element gathered."""
    out = val(node)
    return 0, gathered(node) * (int(out.shape[-1]) if out is not None and out.dim() else 1), ()


# --- in-place writes: a KV cache update writes one token into a whole cache -----------------

@register_macs(aten.index_copy.default, aten.index_copy_.default)
def _index_copy(node: torch.fx.Node) -> tuple[int, int, Gemms]:
    """index_copy writes the ``source`` rows at ``index``: one element op per element written,
    not per element of the tensor it writes into."""
    source = node.args[3] if len(node.args) > 3 else node.kwargs.get("source")
    return 0, numel(val(source)), ()


# --- nn.Module calls (symbolic_trace fallback) -----------------------------------------------

@register_macs(torch.nn.Linear)
def _linear_module(node: torch.fx.Node) -> tuple[int, int, Gemms]:
    return _gemm(_out(node), int(_module(node).in_features), False, True)


@register_macs(torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d,
               torch.nn.ConvTranspose1d, torch.nn.ConvTranspose2d, torch.nn.ConvTranspose3d)
def _conv_module(node: torch.fx.Node) -> tuple[int, int, Gemms]:
    mod = _module(node)
    transposed = isinstance(mod, torch.nn.modules.conv._ConvTransposeNd)
    return _conv_macs(val(node.args[0]), mod.weight, _out(node), transposed, mod.groups)
