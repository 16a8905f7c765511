"""Fake quantization and SQNR against closed forms."""

from __future__ import annotations

import math

import pytest
import torch
import torch.fx

import chipcut
from chipcut.core.aliasing import written
from chipcut.core.ir import Precision
from chipcut.passes.sqnr import (
    combine_db,
    fake_quant,
    node_sqnr_db,
    reference,
    run,
    sqnr_db,
    writes_in_place,
)


def test_sqnr_of_a_known_error() -> None:
    ref = torch.ones(1000, dtype=torch.float64)
    assert math.isclose(sqnr_db(ref, ref * 1.1), 20.0, rel_tol=1e-9)  # 10 log10(1 / 0.01)
    assert sqnr_db(ref, ref) == math.inf


def test_int8_of_a_full_scale_uniform_signal_is_about_48_db() -> None:
    # Step 1/127 over [-1, 1]: noise step^2 / 12, signal 1/3 -> 10 log10(4 * 127^2) = 48.13 dB.
    x = torch.rand(1_000_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1
    x[0] = 1.0
    expected = 10 * math.log10(4 * 127**2)
    assert abs(sqnr_db(x, fake_quant(x, "int8")) - expected) < 0.1
    # Each bit is ~6.02 dB: int4 (levels +-7) is 10 log10(4 * 7^2) = 22.9 dB.
    assert abs(sqnr_db(x, fake_quant(x, "int4")) - 10 * math.log10(4 * 49)) < 0.1


def test_int8_error_is_at_most_half_a_step_and_per_channel_scales() -> None:
    w = torch.randn(8, 16, generator=torch.Generator().manual_seed(1))
    w[3] *= 100  # one channel much larger: per-channel scales keep the others precise
    q = fake_quant(w, "int8", axis=0)
    step = w.abs().amax(dim=1, keepdim=True) / 127
    assert bool(((q - w).abs() <= step / 2 + 1e-7).all())
    assert len(torch.unique(q[0])) > 16 // 2


def test_float_formats_round_trip() -> None:
    x = torch.tensor([1.0 + 2**-12, 70000.0])
    assert fake_quant(x, "fp16").tolist() == [1.0, 65504.0]  # 10 mantissa bits; clamped to max
    assert fake_quant(torch.tensor([1.0 + 2**-9]), "bf16").tolist() == [1.0]  # 7 mantissa bits
    assert fake_quant(x, "fp32") is x
    # fp8 e4m3 has 3 mantissa bits: relative error of at most 2^-4 within range.
    y = torch.linspace(0.1, 1.0, 100)
    assert float(((fake_quant(y, "fp8") - y).abs() / y).max()) <= 2**-4 + 1e-6


def test_combined_sqnr_averages_noise_power() -> None:
    assert math.isclose(combine_db([20.0, 20.0]), 20.0)
    assert math.isclose(combine_db([10.0, math.inf]), 10.0)
    assert math.isclose(combine_db([10.0, 20.0]), -10 * math.log10((0.1 + 0.01) / 2))


class _Writes(torch.nn.Module):
    """Three convs around in-place writes: the first conv's output is rectified in place, read
    by the second and then overwritten (read before the write), the third's shifted in place."""

    def __init__(self, in_place: bool) -> None:
        super().__init__()
        self.c1, self.c2 = torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(8, 8, 3, padding=1)
        self.c3, self.in_place = torch.nn.Conv2d(8, 4, 3), in_place

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.c1(x)
        y = torch.relu_(y) if self.in_place else torch.relu(y)
        z = self.c2(y)
        y = y.mul_(0.5) if self.in_place else y * 0.5
        w = self.c3(y + z)
        return w.add_(3.0) if self.in_place else w + 3.0


def _captured(in_place: bool) -> tuple[torch.fx.GraphModule, list[tuple[torch.Tensor, ...]]]:
    torch.manual_seed(0)
    model, x = _Writes(in_place).eval(), torch.randn(2, 3, 12, 12)
    return chipcut.capture(model, (x,)).graph_module, [(x,)]


def test_layer_sqnr_is_measured_on_the_layer_output_not_what_later_writes_make_of_it() -> None:
    per_layer = []
    for in_place in (False, True):
        gm, batches = _captured(in_place)
        convs = [n for n in gm.graph.nodes if n.target == torch.ops.aten.conv2d.default]
        assert len(convs) == 3
        writes = sum(written(n) is not None for n in gm.graph.nodes)
        assert writes == (3 if in_place else 0) and writes_in_place(gm) == in_place
        names = {n.name for n in convs}
        precisions = {n.name: Precision("int8", "int8") for n in convs}
        ref = reference(gm, batches, names)
        approx, _ = run(gm, batches, precisions, ref, names)
        per_layer.append([node_sqnr_db(ref.recorded, approx, n.name) for n in convs])
    assert per_layer[1] == pytest.approx(per_layer[0], abs=1e-6)  # the same math, the same SQNR


def test_a_partial_run_of_a_graph_with_writes_equals_the_whole_run() -> None:
    gm, batches = _captured(True)
    second = [n for n in gm.graph.nodes if n.target == torch.ops.aten.conv2d.default][1]
    ref = reference(gm, batches, set(), keep_values=True)
    precision = {second.name: Precision("int8", "int8")}
    _, partial = run(gm, batches, precision, ref, changed={second})
    _, whole = run(gm, batches, precision, ref)
    torch.testing.assert_close(partial, whole, rtol=0, atol=0)
    assert not torch.equal(whole[0][0], ref.outputs[0][0])  # the quantized layer changed it
