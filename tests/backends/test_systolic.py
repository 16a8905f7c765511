"""Systolic-array term (SCALE-Sim): folds, cycles, utilization, and compute = max(array, roofline)."""

from __future__ import annotations

import dataclasses

import pytest

from chipcut.backends.protocol import Placement, Work
from chipcut.backends.registry import get_backend
from chipcut.backends.spec import ArraySpec
from chipcut.backends.systolic import SystolicBackend, array_utilization, gemm_cycles, mapping

TPU_ARRAY = ArraySpec(256, 256, 700e6)
FC = Work(macs=2048 * 1000, elem_ops=0, weight_bytes=2048 * 1000, in_bytes=2048, out_bytes=1000,
          dtype="int8", op="linear", gemms=((1, 1, 2048, 1000),))


def test_batch1_fc_2048x1000_on_tpu_v1_is_far_below_one_percent_utilization() -> None:
    # Weight-stationary: Sr = K = 2048, Sc = N = 1000, T = M = 1.
    assert mapping(FC.gemms[0], "weight-stationary") == (2048, 1000, 1)
    folds = 8 * 4  # ceil(2048 / 256) * ceil(1000 / 256)
    cycles = folds * (2 * 256 + 256 + 1 - 2)
    assert gemm_cycles(FC.gemms[0], TPU_ARRAY) == cycles == 24_544
    utilization = array_utilization(FC.macs, cycles, TPU_ARRAY)
    assert utilization == pytest.approx(2_048_000 / (65_536 * 24_544)) == pytest.approx(0.0012732, rel=1e-4)
    assert utilization < 0.01

    tpu = get_backend("tpu-v1")
    assert isinstance(tpu, SystolicBackend)
    resident = tpu.cost(FC, Placement(weights_in_sram=True))
    assert resident.compute_s == pytest.approx(24_544 / 700e6)  # 35.06 us, not 2 MMAC / 45.9 TMAC/s
    assert resident.bound == "compute"
    assert resident.utilization == pytest.approx(utilization)  # peak is exactly R x C x clock
    streamed = tpu.cost(FC)  # 2 MB of weights from DDR3 at 34 GB/s every inference
    assert streamed.bound == "memory"
    # at the fitted memory efficiency (0.9: MLP0's published 12.3 TOPS, see the preset)
    assert tpu.spec.memory_efficiency == 0.9
    assert streamed.memory_s == pytest.approx((2_048_000 + 3048) / (34e9 * 0.9))
    assert streamed.utilization < utilization


def test_3x3_conv_on_tpu_v1_maps_kernel_window_to_rows() -> None:
    work = Work(225_000_000, 0, 90_000, 250_000, 250_000, "int8", "conv2d", ((1, 2500, 900, 100),))
    cycles = 4 * 1 * (512 + 256 + 2500 - 2)  # ceil(900/256) x ceil(100/256) folds of 3266
    assert gemm_cycles(work.gemms[0], TPU_ARRAY) == cycles == 13_064
    assert array_utilization(work.macs, cycles, TPU_ARRAY) == pytest.approx(0.26280, rel=1e-4)
    cost = get_backend("tpu-v1").cost(work, Placement(weights_in_sram=True))
    assert cost.compute_s == pytest.approx(13_064 / 700e6)  # 18.7 us vs 4.9 us at peak


def test_large_gemm_that_fills_the_array_approaches_peak() -> None:
    gemm = (1, 25_600, 256, 256)  # one fold, long stream
    cycles = gemm_cycles(gemm, TPU_ARRAY)
    assert cycles == 512 + 256 + 25_600 - 2
    assert array_utilization(25_600 * 256 * 256, cycles, TPU_ARRAY) == pytest.approx(25_600 / 26_366)


def test_output_stationary_streams_the_reduction() -> None:
    array = dataclasses.replace(TPU_ARRAY, dataflow="output-stationary")
    assert mapping(FC.gemms[0], "output-stationary") == (1, 1000, 2048)
    assert gemm_cycles(FC.gemms[0], array) == 1 * 4 * (512 + 256 + 2048 - 2) == 11_256


def test_batch_and_several_gemms_add_up() -> None:
    one = gemm_cycles((1, 64, 128, 128), TPU_ARRAY)
    assert gemm_cycles((12, 64, 128, 128), TPU_ARRAY) == 12 * one
    assert gemm_cycles((0, 64, 128, 128), TPU_ARRAY) == 0


def test_compute_time_is_the_larger_of_array_and_roofline() -> None:
    tpu = get_backend("tpu-v1")
    vector_heavy = dataclasses.replace(FC, elem_ops=10**9)  # 10^9 / 179.2e9 = 5.6 ms >> 35 us
    assert tpu.cost(vector_heavy).compute_s == pytest.approx(1e9 / 179.2e9 + 2.048e6 / 45.8752e12)
    no_shapes = dataclasses.replace(FC, gemms=())  # unknown shapes: roofline only
    assert tpu.cost(no_shapes, Placement(True)).compute_s == pytest.approx(2.048e6 / 45.8752e12)


def test_systolic_backend_requires_an_array() -> None:
    spec = get_backend("generic").spec
    with pytest.raises(ValueError, match="needs an \\[array\\] section"):
        SystolicBackend(spec)
