"""Presets: every shipped chip loads, validates and carries its published figures and source."""

from __future__ import annotations

import pytest

from chipcut.backends.presets import PRESETS_DIR, preset_names
from chipcut.backends.registry import available, describe, get_backend
from chipcut.backends.systolic import SystolicBackend

EXPECTED = ["coral-edge-tpu", "cpu", "generic", "h100-sxm", "hailo-8", "inferx-x1", "t4", "tpu-v1"]


def test_every_preset_file_is_a_registered_backend() -> None:
    assert preset_names() == EXPECTED
    assert set(EXPECTED) <= set(available())


@pytest.mark.parametrize("name", EXPECTED)
def test_preset_loads_validates_and_cites_a_source(name: str) -> None:
    backend = get_backend(name)
    spec = backend.spec
    assert backend.name == spec.name == name
    assert spec.source and spec.description
    assert all(rate > 0 for rate in spec.peak_macs_per_s.values())
    assert 0 < spec.compute_efficiency <= 1 and 0 < spec.memory_efficiency <= 1
    assert spec.link.bytes_per_s > 0
    line = describe(name)
    assert "\n" not in line and line.startswith(f"{name}: ") and "SRAM" in line and "link" in line
    text = (PRESETS_DIR / f"{name}.toml").read_text()
    assert "source" in text and ("assumption" in text.lower() or name == "generic")


def test_tpu_v1() -> None:
    tpu = get_backend("tpu-v1")
    spec = tpu.spec
    assert isinstance(tpu, SystolicBackend)
    assert spec.peak_macs_per_s == {"int8": 65_536 * 700e6}  # 91.75 TOPS, published as 92
    # Two ops per MAC over the DRAM bandwidth: 2698.5 ops per byte.
    assert spec.ridge_ops_per_byte == pytest.approx(2 * 65_536 * 700e6 / 34e9)
    assert (spec.sram_bytes, spec.dram_bytes_per_s) == (28 * 2**20, 34e9)
    assert (spec.array.rows, spec.array.cols, spec.array.clock_hz) == (256, 256, 700e6)
    assert spec.array.dataflow == "weight-stationary"
    assert spec.array.peak_macs_per_s == spec.peak_macs_per_s["int8"]
    assert (spec.link.interface, spec.link.bytes_per_s) == ("PCIe Gen3 x16", 15.75e9)


def test_coral_edge_tpu() -> None:
    coral = get_backend("coral-edge-tpu")
    assert coral.spec.peak_macs_per_s == {"int8": 2e12}  # 4 TOPS
    assert coral.spec.sram_bytes == 8_000_000
    assert coral.spec.link.bytes_per_s == 500e6  # PCIe Gen2 x1 per direction
    assert not coral.supports_dtype("fp32") and coral.supports_dtype("int8")
    assert not coral.supports_op("conv3d") and coral.supports_op("conv2d")
    assert coral.static_power_w() < 2.0  # of the published 2 W


def test_inferx_x1() -> None:
    spec = get_backend("inferx-x1").spec
    assert spec.peak_macs_per_s["int8"] == pytest.approx(4096 * 1.067e9)
    assert spec.peak_macs_per_s["bf16"] == pytest.approx(spec.peak_macs_per_s["int8"] / 2)
    assert (spec.sram_bytes, spec.link.bytes_per_s) == (8_000_000, 3.94e9)
    assert spec.dram_bytes_per_s == pytest.approx(4266e6 * 4)  # one x32 LPDDR4-4266 channel


def test_hailo_8_keeps_everything_on_chip() -> None:
    hailo = get_backend("hailo-8")
    assert hailo.spec.peak_macs_per_s == {"int8": 13e12}  # 26 TOPS
    assert hailo.spec.sram_only and hailo.spec.dram_bytes_per_s == 0
    assert hailo.spec.link.bytes_per_s == 3.94e9


def test_t4() -> None:
    spec = get_backend("t4").spec
    assert spec.peak_macs_per_s == {"int4": 130e12, "int8": 65e12, "fp16": 32.5e12, "fp32": 4.05e12}
    assert (spec.dram_bytes, spec.dram_bytes_per_s) == (16 * 2**30, 320e9)
    assert spec.link.bytes_per_s == 15.75e9
    assert spec.extra["board_power_w"] == 70


def test_h100_sxm_uses_dense_not_sparse_tensor_rates() -> None:
    spec = get_backend("h100-sxm").spec
    assert spec.peak_macs_per_s["bf16"] == spec.peak_macs_per_s["fp16"] == pytest.approx(494.7e12)
    assert spec.peak_macs_per_s["int8"] == spec.peak_macs_per_s["fp8"] == pytest.approx(989.5e12)
    assert spec.peak_macs_per_s["fp32"] == pytest.approx(33.5e12)
    assert (spec.dram_bytes_per_s, spec.sram_bytes) == (3.35e12, 50 * 2**20)
    assert spec.link.bytes_per_s == 450e9  # NVLink4 per direction
    assert "sparse" in (PRESETS_DIR / "h100-sxm.toml").read_text().lower()


def test_uncalibrated_cpu_is_the_shipped_default() -> None:
    spec = get_backend("cpu").spec
    assert "uncalibrated" in spec.description and spec.peak_macs_per_s == {"fp32": 192e9}
