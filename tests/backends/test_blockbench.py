"""Calibration blocks: each layer's work and class are what the product counts for the unit the
same layer makes in a model, and the timing reports every layer of every block."""

from __future__ import annotations

import math

import pytest
import torch

import chipcut
from chipcut.backends.blockbench import Block, blocks, bottleneck, encoder, inverted, time_blocks


class BlockModel(torch.nn.Module):
    """A block as a model holds it: its weights as parameters, its layers in forward."""

    def __init__(self, block: Block) -> None:
        super().__init__()
        self.block = block
        self.w = torch.nn.ParameterDict({k: torch.nn.Parameter(torch.randn(s) * 0.05)
                                         for k, s in block.weights.items()})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [x]
        for layer in self.block.layers:
            outs.append(layer.run(outs, dict(self.w)))
        return outs[-1]


@pytest.mark.parametrize("block", blocks(), ids=lambda b: b.name)
def test_layer_work_and_class_are_the_units_the_product_makes(block: Block) -> None:
    model = BlockModel(block).eval()
    lowered = chipcut.lower(model, (torch.randn(block.input_shape),), backend="cpu",
                            options=chipcut.CompileOptions(passes="fuse"))
    works = [w for w in lowered.works if w.macs or w.elem_ops]
    assert [(w.macs, w.elem_ops, w.in_bytes + w.out_bytes, str(w.op_class)) for w in works] == [
        (layer.macs, layer.elem_ops, layer.activation_bytes, str(layer.op_class))
        for layer in block.layers]


def test_blocks_cover_the_shapes_they_name() -> None:
    names = [b.name for b in blocks()]
    assert names == ["bottleneck-56", "bottleneck-28", "bottleneck-14", "bottleneck-7",
                     "inverted-112-s2", "inverted-56", "inverted-56-s2", "inverted-28",
                     "inverted-28-k5", "inverted-14", "inverted-14-k5", "inverted-7", "encoder"]
    # ResNet-50's bottleneck at 56x56: 1x1 256->64, 3x3 64, 1x1 64->256 (closed form).
    assert [layer.macs for layer in bottleneck(256, 64, 56).layers] == [
        256 * 64 * 3136, 64 * 64 * 9 * 3136, 64 * 256 * 3136]
    assert sum(layer.macs for layer in encoder().layers) == (
        128 * 768 * (3 * 768 + 768 + 2 * 3072) + 12 * 128 * 128 * 2 * 64)
    assert inverted(16, 24, 112, stride=2).layers[1].macs == 96 * 9 * 56 * 56
    assert inverted(40, 40, 28, kernel=5).layers[1].macs == 240 * 25 * 28 * 28


def test_time_blocks_times_every_layer_and_keeps_the_fastest_repeat() -> None:
    ticks = iter(range(10**6))  # each call of the clock one second later
    small = (inverted(8, 8, 8, expand=2),)
    times = time_blocks(lambda: float(next(ticks)), repeats=2, rounds=3, chosen=small)
    assert [t.name for t in times] == ["inverted-8-expand", "inverted-8-depthwise",
                                       "inverted-8-project"]
    assert all(t.seconds == 1.0 and t.spread == 1.0 for t in times)  # start and end: 1 s apart
    assert [t.macs for t in times] == [layer.macs for layer in small[0].layers]
    assert math.prod(t.elem_ops for t in times) > 0
