"""Fake quantization and SQNR against closed forms."""

from __future__ import annotations

import math

import torch

from chipcut.passes.sqnr import combine_db, fake_quant, sqnr_db


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
