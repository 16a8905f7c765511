"""Op classes: real ops classified through the accounting pass, carried into the plan's records
and each unit's Work (the anchor's class)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from chipcut.compiler.capture import capture
from chipcut.compiler.lowering.costing import unit_works
from chipcut.compiler.lowering.summary import summarize
from chipcut.compiler.lowering.units import build_units
from chipcut.core.ir import get_cost, is_compute
from chipcut.passes.accounting import accounting, op_name
from chipcut.passes.fuse import Fuse
from chipcut.passes.op_classes import NARROW_CHANNELS, SMALL_MAP_ROWS


class Fn(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.fn(*xs)


IMAGE = (torch.randn(1, 8, 16, 16),)
WIDE = (torch.randn(1, 16, 16, 16),)  # 16 channels: a 3x3 conv reduces over 144 inputs
CASES = {  # name: (module, inputs, the op, its class)
    "conv": (nn.Conv2d(16, 128, 3, padding=1), WIDE, "conv2d", "dense"),
    "narrow": (nn.Conv2d(8, 8, 3, padding=1), IMAGE, "conv2d", "narrow"),
    "narrow-out": (nn.Conv2d(16, 64, 3, padding=1), WIDE, "conv2d", "narrow"),
    "depthwise": (nn.Conv2d(8, 8, 3, padding=1, groups=8), IMAGE, "conv2d", "depthwise"),
    "grouped": (nn.Conv2d(8, 8, 3, padding=1, groups=2), IMAGE, "conv2d", "depthwise"),
    "small-map": (nn.Conv2d(8, 8, 3, padding=1), (torch.randn(1, 8, 7, 7),), "conv2d", "small-map"),
    "linear": (nn.Linear(16, 4), (torch.randn(3, 16),), "linear", "gemm"),
    "matmul": (Fn(torch.matmul), (torch.randn(4, 8), torch.randn(8, 3)), "matmul", "gemm"),
    "sdpa": (Fn(F.scaled_dot_product_attention), tuple(torch.randn(1, 2, 8, 4) for _ in range(3)),
             "scaled_dot_product_attention", "attention"),
    "max-pool": (nn.MaxPool2d(3, 2, 1), IMAGE, "max_pool2d", "pool"),
    "avg-pool": (nn.AvgPool2d(2), IMAGE, "avg_pool2d", "pool"),
    "global-pool": (nn.AdaptiveAvgPool2d(1), IMAGE, "adaptive_avg_pool2d", "elementwise"),
    "pad": (Fn(lambda x: F.pad(x, (1, 1, 1, 1))), IMAGE, "pad", "elementwise"),
    "relu": (nn.ReLU(), IMAGE, "relu", "elementwise"),
    "layer-norm": (nn.LayerNorm(16), IMAGE, "layer_norm", "elementwise"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_accounting_records_the_op_class_of_real_ops(case: str) -> None:
    module, inputs, op, op_class = CASES[case]
    model = module if isinstance(module, Fn) else nn.Sequential(module)
    gm = accounting(capture(model.eval(), inputs).graph_module)
    (node,) = [n for n in gm.graph.nodes if is_compute(n) and op_name(n) == op]
    assert get_cost(node).op_class == op_class


def _conv_class(conv: nn.Conv2d, size: int) -> str:
    x = torch.randn(1, conv.in_channels, size, size)
    gm = accounting(capture(nn.Sequential(conv).eval(), (x,)).graph_module)
    (node,) = [n for n in gm.graph.nodes if is_compute(n)]
    return get_cost(node).op_class


def test_small_map_threshold_is_on_output_positions() -> None:
    assert SMALL_MAP_ROWS == 49  # 7x7 at batch 1
    conv = nn.Conv2d(16, 128, 3, padding=1)
    assert [_conv_class(conv, size) for size in (7, 8)] == ["small-map", "dense"]


def test_narrow_threshold_is_on_the_channels_each_side_of_the_gemm() -> None:
    assert NARROW_CHANNELS == 128
    # 1x1: reduces over Cin, makes Cout; 3x3: reduces over 9 x Cin.
    shapes = {(127, 256, 1): "narrow", (128, 256, 1): "dense", (256, 127, 1): "narrow",
              (14, 128, 3): "narrow", (15, 128, 3): "dense", (16, 127, 3): "narrow"}
    for (c_in, c_out, k), op_class in shapes.items():
        assert _conv_class(nn.Conv2d(c_in, c_out, k), 12) == op_class, (c_in, c_out, k)


def test_pad_moves_bytes_and_is_not_free() -> None:
    gm = accounting(capture(Fn(lambda x: F.pad(x, (1, 1, 1, 1))), IMAGE).graph_module)
    (node,) = [n for n in gm.graph.nodes if is_compute(n)]
    assert get_cost(node).elem_ops == 8 * 18 * 18  # one per output element
    assert get_cost(node).macs == 0


def test_a_units_class_is_its_anchors_and_reaches_the_work() -> None:
    model = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
    gm = Fuse()(accounting(capture(model.eval(), IMAGE).graph_module))
    accounting(gm)
    units = build_units(gm)
    summary = summarize(gm, units)
    assert {(r.op, r.op_class) for r in summary.nodes} >= {
        ("conv2d", "depthwise"), ("relu", "elementwise"), ("adaptive_avg_pool2d", "elementwise")}
    works = unit_works(summary, len(units.units))
    conv_unit = next(w for w in works if w.op == "conv2d")
    assert conv_unit.op_class == "depthwise" and conv_unit.elem_ops > 8 * 16 * 16  # relu joined
