"""Op classes: which kind of kernel a node's work runs as (a table keyed by ATen op name).

A spec rates each class with its own compute efficiency (``[compute] efficiency``): on one
machine a depthwise conv runs at a fraction of a GEMM's MAC rate, a conv on a 7x7 map at
well under a conv on a 56x56 one, and pooling far below the element-wise rate.
"""

from __future__ import annotations

from collections.abc import Callable

from chipcut.core.vocab import OpClass

Gemms = tuple[tuple[int, int, int, int], ...]
Classifier = Callable[[Gemms], OpClass]

# A groups=1 conv whose GEMM has at most this many rows (output positions N*Hout*Wout: a 7x7
# map at batch 1) is "small-map". Measured single-threaded on x86 (AVX-512, oneDNN): 1x1 and
# 3x3 convs at 7x7 (49 positions) or less run at ~0.5-0.75 of the MAC rate they reach at
# 14x14 and above, and at 10x10 already at ~0.85.
SMALL_MAP_ROWS = 49
# A groups=1 conv whose GEMM reduces over fewer than this many inputs (Cin*Kh*Kw) or makes
# fewer outputs (Cout) per position is "narrow": measured single-threaded on x86 in a model's
# sequence of layers, MobileNetV2's 1x1 expand/project convs (16-160 channels on one side) and
# ResNet-50's 64-channel 1x1 convs run at 18-39 G MAC/s where its 3x3 convs and wide 1x1
# convs reach 44-50.
NARROW_CHANNELS = 128


def _conv(gemms: Gemms) -> OpClass:
    """Depthwise when grouped, small-map when it has few output positions, narrow when it has
    few channels on one side, else dense. Reads the conv rule's GEMM: (groups, N*Hout*Wout,
    Cin/groups*Kh*Kw, Cout/groups)."""
    if not gemms:
        return OpClass.DENSE
    groups, rows, reduce, cols = gemms[0]
    if groups > 1:
        return OpClass.DEPTHWISE
    if rows <= SMALL_MAP_ROWS:
        return OpClass.SMALL_MAP
    return OpClass.NARROW if min(reduce, cols) < NARROW_CHANNELS else OpClass.DENSE


_CONVS = [f"conv{d}d" for d in (1, 2, 3)] + [f"conv_transpose{d}d" for d in (1, 2, 3)]
_SDPA = ["scaled_dot_product_attention", "_scaled_dot_product_attention_math",
         "_scaled_dot_product_flash_attention", "_scaled_dot_product_flash_attention_for_cpu",
         "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention",
         "_scaled_dot_product_fused_attention_overrideable"]
# Windowed pooling. Adaptive pooling (mostly global: a 7x7 map to 1x1) is a reduction and runs
# at element-wise rates: measured single-threaded, adaptive_avg_pool2d reads ~6-14 G elements/s
# where max_pool2d 3x3/2 reads ~0.1-0.15 G, so one efficiency cannot serve both.
_POOLS = [f"{kind}_pool{d}d" for kind in ("max", "avg") for d in (1, 2, 3)]
_POOLS += ["max_pool2d_with_indices", "max_pool3d_with_indices"]
_GEMMS = ["linear", "addmm", "mm", "bmm", "matmul", "baddbmm", "einsum", "bilinear",
          "grouped_mm", "_grouped_mm", "grouped_mm_fallback"]

# ATen op name (chipcut.passes.accounting.op_name) -> its class, or a function of its GEMMs.
OP_CLASSES: dict[str, OpClass | Classifier] = {
    **dict.fromkeys(_CONVS + ["convolution", "_convolution"], _conv),
    **dict.fromkeys(_SDPA, OpClass.ATTENTION),
    **dict.fromkeys(_POOLS, OpClass.POOL),
    **dict.fromkeys(_GEMMS, OpClass.GEMM),
}


def classify(op: str, macs: int, gemms: Gemms) -> OpClass:
    """The class of a node running ``op`` with ``macs`` MACs as ``gemms``: from the table, else
    dense for any other op with MACs (a registered custom op) and element-wise for the rest.

    >>> classify("conv2d", 64 * 9 * 3136, ((64, 3136, 9, 1),))
    <OpClass.DEPTHWISE: 'depthwise'>
    >>> classify("conv2d", 512 * 512 * 9 * 49, ((1, 49, 4608, 512),)).value
    'small-map'
    >>> classify("conv2d", 24 * 144 * 3136, ((1, 3136, 24, 144),)).value
    'narrow'
    >>> classify("pad", 0, ()).value, classify("mylib::fused_mlp", 10**6, ()).value
    ('elementwise', 'dense')
    """
    entry = OP_CLASSES.get(op)
    if entry is None:
        return OpClass.DENSE if macs > 0 else OpClass.ELEMENTWISE
    return entry if isinstance(entry, OpClass) else entry(gemms)
