"""Calibration blocks: the layers of common model motifs, run one after another as a model runs
them, each layer timed on its own.

A kernel timed in a loop of its own finds its input, its output buffer and its code hot in
cache; between the other layers of a model it does not, and its neighbours' fused element-wise
work (bias, activation, residual add) runs beside it. On one CPU thread that makes a 1x1 conv
1.3-1.6x, a depthwise conv up to 2x and a layer norm 3x slower in a model than looped alone, so
the class efficiencies are fitted on layers in their motif: a residual bottleneck at four map
sizes, an inverted residual (expand, depthwise, project) at eight shapes, and a transformer
encoder layer. Each layer is one partition unit of such a model (a conv or GEMM with what fuses
into it), its work what the accounting rules count for it; weights are read from DRAM (copies of
the block's weights taken in turn, more than any last-level cache holds).
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from chipcut.core.vocab import OpClass

COLD_BYTES = 2**26  # weight copies per block: more than a last-level cache holds
SMALL_MAP_POSITIONS = 49  # the classifier's thresholds (chipcut.passes.op_classes, which the
NARROW_CHANNELS = 128  # tests hold these layers' classes to)

Run = Callable[[list, dict], object]  # (outputs so far, index 0 the block input; weights) -> out


@dataclass(frozen=True)
class Layer:
    """One layer of a block: its class, the work the accounting counts (MACs, element ops, the
    activation bytes it reads and writes), and how it runs."""

    name: str
    op_class: OpClass
    macs: int
    elem_ops: int
    activation_bytes: int
    run: Run


@dataclass(frozen=True)
class Block:
    """A motif: its input shape, weight shapes (name -> shape) and layers in order."""

    name: str
    what: str
    input_shape: tuple[int, ...]
    weights: dict[str, tuple[int, ...]]
    layers: tuple[Layer, ...]


def _conv_class(positions: int, reduce: int, cols: int) -> OpClass:
    if positions <= SMALL_MAP_POSITIONS:
        return OpClass.SMALL_MAP
    return OpClass.NARROW if min(reduce, cols) < NARROW_CHANNELS else OpClass.DENSE


def bottleneck(c: int, mid: int, size: int) -> Block:
    """ResNet's bottleneck at ``size``x``size``: 1x1 ``c``->``mid`` + ReLU, 3x3 ``mid`` + ReLU,
    1x1 back to ``c`` + residual add + ReLU (batch norms folded: each conv has a bias)."""
    import torch.nn.functional as F

    hw = size * size
    return Block(f"bottleneck-{size}", f"bottleneck {c}/{mid} ch at {size}x{size}", (1, c, size, size),
                 {"w1": (mid, c, 1, 1), "b1": (mid,), "w2": (mid, mid, 3, 3), "b2": (mid,),
                  "w3": (c, mid, 1, 1), "b3": (c,)}, (
        Layer("reduce", _conv_class(hw, c, mid), mid * c * hw, 2 * mid * hw, 4 * (c + mid) * hw,
              lambda o, w: F.relu(F.conv2d(o[0], w["w1"], w["b1"]))),
        Layer("conv3x3", _conv_class(hw, 9 * mid, mid), mid * mid * 9 * hw, 2 * mid * hw,
              8 * mid * hw, lambda o, w: F.relu(F.conv2d(o[1], w["w2"], w["b2"], padding=1))),
        Layer("expand", _conv_class(hw, mid, c), c * mid * hw, 3 * c * hw, 4 * (mid + 2 * c) * hw,
              lambda o, w: F.relu(F.conv2d(o[2], w["w3"], w["b3"]) + o[0])),
    ))


def inverted(c: int, c_out: int, size: int, stride: int = 1, expand: int = 6,
             kernel: int = 3) -> Block:
    """MobileNetV2's inverted residual at ``size``x``size``: 1x1 expand + ReLU6, ``kernel``x
    ``kernel`` depthwise (``stride``; 5x5 as EfficientNet's) + ReLU6, 1x1 project, plus the
    residual add when shapes allow."""
    import torch.nn.functional as F

    hidden, out = c * expand, size // stride
    hw, ohw = size * size, out * out
    residual = stride == 1 and c == c_out

    def project(o: list, w: dict) -> object:
        y = F.conv2d(o[2], w["w3"], w["b3"])
        return y + o[0] if residual else y

    return Block(f"inverted-{size}" + (f"-s{stride}" if stride > 1 else "")
                 + (f"-k{kernel}" if kernel != 3 else ""),
                 f"inverted residual {c}->{c_out} ch (x{expand}) at {size}x{size}, stride {stride}"
                 f", {kernel}x{kernel} depthwise",
                 (1, c, size, size),
                 {"w1": (hidden, c, 1, 1), "b1": (hidden,), "w2": (hidden, 1, kernel, kernel),
                  "b2": (hidden,), "w3": (c_out, hidden, 1, 1), "b3": (c_out,)}, (
        Layer("expand", _conv_class(hw, c, hidden), hidden * c * hw, 2 * hidden * hw,
              4 * (c + hidden) * hw,
              lambda o, w: F.hardtanh(F.conv2d(o[0], w["w1"], w["b1"]), 0.0, 6.0)),
        Layer("depthwise", OpClass.DEPTHWISE, hidden * kernel * kernel * ohw, 2 * hidden * ohw,
              4 * hidden * (hw + ohw), lambda o, w: F.hardtanh(F.conv2d(
                  o[1], w["w2"], w["b2"], stride=stride, padding=kernel // 2, groups=hidden),
                  0.0, 6.0)),
        Layer("project", _conv_class(ohw, hidden, c_out), c_out * hidden * ohw,
              c_out * ohw * (2 if residual else 1),
              4 * ((hidden + c_out) * ohw + (c * hw if residual else 0)), project),
    ))


def encoder(seq: int = 128, d: int = 768, heads: int = 12, ff: int = 3072) -> Block:
    """A transformer encoder layer (BERT's post-norm): QKV projection, attention, output
    projection + residual, layer norm, feed-forward up + GELU, down + residual, layer norm."""
    import torch.nn.functional as F

    hd = d // heads

    def attention(o: list, w: dict) -> object:
        q, k, v = o[1].view(1, seq, 3, heads, hd).permute(2, 0, 3, 1, 4).unbind(0)
        return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(1, seq, d)

    return Block("encoder", f"encoder layer, {seq} tokens x {d} ({heads} heads, FFN {ff})",
                 (1, seq, d),
                 {"wqkv": (3 * d, d), "bqkv": (3 * d,), "wo": (d, d), "bo": (d,),
                  "g1": (d,), "n1": (d,), "wu": (ff, d), "bu": (ff,), "wd": (d, ff), "bd": (d,),
                  "g2": (d,), "n2": (d,)}, (
        Layer("qkv", OpClass.GEMM, seq * d * 3 * d, seq * 3 * d, 4 * seq * 4 * d,
              lambda o, w: F.linear(o[0], w["wqkv"], w["bqkv"])),
        Layer("attention", OpClass.ATTENTION, heads * seq * seq * 2 * hd,
              4 * heads * seq * seq, 4 * seq * 4 * d, attention),
        Layer("out", OpClass.GEMM, seq * d * d, 2 * seq * d, 4 * seq * 3 * d,
              lambda o, w: F.linear(o[2], w["wo"], w["bo"]) + o[0]),
        Layer("norm1", OpClass.ELEMENTWISE, 0, seq * d, 4 * seq * 2 * d,
              lambda o, w: F.layer_norm(o[3], (d,), w["g1"], w["n1"])),
        Layer("up", OpClass.GEMM, seq * d * ff, 2 * seq * ff, 4 * seq * (d + ff),
              lambda o, w: F.gelu(F.linear(o[4], w["wu"], w["bu"]))),
        Layer("down", OpClass.GEMM, seq * ff * d, 2 * seq * d, 4 * seq * (ff + 2 * d),
              lambda o, w: F.linear(o[5], w["wd"], w["bd"]) + o[4]),
        Layer("norm2", OpClass.ELEMENTWISE, 0, seq * d, 4 * seq * 2 * d,
              lambda o, w: F.layer_norm(o[6], (d,), w["g2"], w["n2"])),
    ))


def blocks() -> tuple[Block, ...]:
    """The calibration blocks: ResNet-50's bottleneck stages, MobileNetV2's inverted residual
    stages (two strided) and two of EfficientNet-B0's 5x5 ones, BERT-base's encoder layer (the
    shapes of those layers; weights random). Depthwise layers of three kinds (3x3, strided,
    5x5) move different bytes per MAC, which tells a depthwise kernel's activation time from
    its arithmetic."""
    return (bottleneck(256, 64, 56), bottleneck(512, 128, 28), bottleneck(1024, 256, 14),
            bottleneck(2048, 512, 7),
            inverted(16, 24, 112, stride=2), inverted(24, 24, 56), inverted(24, 32, 56, stride=2),
            inverted(32, 32, 28), inverted(40, 40, 28, kernel=5), inverted(96, 96, 14),
            inverted(112, 112, 14, kernel=5), inverted(160, 160, 7),
            encoder())


@dataclass(frozen=True)
class LayerTime:
    """A layer's work and time: ``seconds`` the fastest repeat's median call, ``spread`` the
    slowest repeat's over it."""

    name: str
    op_class: OpClass
    macs: int
    elem_ops: int
    activation_bytes: int
    seconds: float
    spread: float


class _Ready:
    """A block built: its input and sets of weights handed out in turn."""

    def __init__(self, block: Block) -> None:
        import torch

        self.block = block
        self.x = torch.randn(block.input_shape)
        per_set = 4 * sum(math.prod(s) for s in block.weights.values())
        sets = [{k: torch.randn(s) * 0.05 for k, s in block.weights.items()}
                for _ in range(max(1, math.ceil(COLD_BYTES / per_set)))]
        self.turn = itertools.cycle(sets)

    def run(self, now: Callable[[], float] | None = None) -> list[float]:
        """One pass over the layers, each on what the layers before it made; their seconds."""
        weights, outs, took = next(self.turn), [self.x.clone()], []
        for layer in self.block.layers:
            start = now() if now else 0.0
            outs.append(layer.run(outs, weights))
            took.append(now() - start if now else 0.0)
        return took


def time_blocks(now: Callable[[], float], repeats: int, rounds: int,
                chosen: tuple[Block, ...] | None = None) -> list[LayerTime]:
    """Every layer of every block timed: ``repeats`` repeats of ``rounds`` passes over all
    blocks, one after another (a warmup pass first)."""
    ready = [_Ready(b) for b in (chosen if chosen is not None else blocks())]
    for r in ready:
        r.run()
    medians: list[list[list[float]]] = [[[] for _ in r.block.layers] for r in ready]
    for _ in range(repeats):
        calls: list[list[list[float]]] = [[[] for _ in r.block.layers] for r in ready]
        for _ in range(rounds):
            for b, r in enumerate(ready):
                for column, s in zip(calls[b], r.run(now), strict=True):
                    column.append(s)
        for b, per_block in enumerate(calls):
            for j, column in enumerate(per_block):
                medians[b][j].append(statistics.median(column))
    return [LayerTime(f"{r.block.name}-{layer.name}", layer.op_class, layer.macs, layer.elem_ops,
                      layer.activation_bytes, min(column), max(column) / min(column))
            for r, per_block in zip(ready, medians, strict=True)
            for layer, column in zip(r.block.layers, per_block, strict=True)]


__all__ = ["Block", "Layer", "LayerTime", "blocks", "bottleneck", "inverted", "encoder",
           "time_blocks"]
