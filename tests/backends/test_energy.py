"""Energy: 45 nm defaults, the ResNet-50 fp32 vs int8 power example, bytes per memory level, static power."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from chipcut.backends.energy import (
    DEFAULT_PJ_PER_MAC,
    DRAM_PJ_PER_BYTE,
    dynamic_energy_j,
    sram_pj_per_byte,
)
from chipcut.backends.loader import from_toml
from chipcut.backends.protocol import Placement, Work
from chipcut.backends.registry import get_backend

RESNET50_OPS_PER_IMAGE = 7.7e9
IMAGES_PER_S = 1000


def design_example_chip(path: Path, extra_energy: str = 'static_power_w = "3 W"'):
    """A chip with DESIGN.md's per-op energies: fp32 (4 + 0.4) pJ, int8 (0.2 + 0.03) pJ."""
    path.write_text(textwrap.dedent("""
        [compute]
        peak_macs_per_s = { fp32 = "100 TFLOPS", int8 = "400 TOPS" }
        vector_ops_per_s = "1 TOPS"
        [memory]
        sram_bytes = "32 MiB"
        dram_bytes = "16 GiB"
        dram_bytes_per_s = "1 TB/s"
        [link]
        bytes_per_s = "10 GB/s"
        latency_s = "1 us"
        [energy]
        pj_per_mac = { fp32 = "4.4 pJ", int8 = "0.23 pJ" }
    """) + extra_energy + "\n")
    return from_toml(path)


@pytest.fixture
def example_chip(tmp_path: Path):
    return design_example_chip(tmp_path / "example.toml")


def test_resnet50_fp32_vs_int8_power_matches_the_design_example(example_chip) -> None:
    # The example charges one multiply-add per "op": 7.7 G of them per image.
    def watts(dtype: str, fraction: float = 1.0) -> float:
        work = Work(int(RESNET50_OPS_PER_IMAGE * fraction), 0, 0, 0, 0, dtype=dtype)
        return example_chip.cost(work).energy_j * IMAGES_PER_S

    assert watts("fp32") == pytest.approx(33.88, rel=1e-3)
    assert watts("int8") == pytest.approx(1.771, rel=1e-3)
    assert watts("fp32") / watts("int8") == pytest.approx(19.13, rel=1e-3)
    # Pruning 30% of the work: 0.7 x 1.771 W = 1.2397 W, which the design example rounds to 1.24.
    assert watts("int8", fraction=0.7) == pytest.approx(0.7 * 7.7e9 * 0.23e-12 * IMAGES_PER_S)
    assert example_chip.static_power_w() == 3.0


def test_default_mac_energies_are_horowitz_multiply_plus_add() -> None:
    assert DEFAULT_PJ_PER_MAC["int8"] == pytest.approx(0.3)   # 0.2 mult + 0.1 int32 accumulate
    assert DEFAULT_PJ_PER_MAC["fp16"] == pytest.approx(1.5)   # 1.1 + 0.4
    assert DEFAULT_PJ_PER_MAC["fp32"] == pytest.approx(4.6)   # 3.7 + 0.9
    assert DEFAULT_PJ_PER_MAC["fp32"] / DEFAULT_PJ_PER_MAC["int8"] == pytest.approx(15.33, rel=1e-3)
    assert 160 <= DRAM_PJ_PER_BYTE <= 325


@pytest.mark.parametrize(("sram_bytes", "pj_per_byte"), [
    (4 * 2**10, 1.25), (8 * 2**10, 1.25), (16 * 2**10, 1.875), (32 * 2**10, 2.5),
    (2**20, 12.5), (28 * 2**20, 12.5),
])
def test_sram_energy_grows_with_sram_size(sram_bytes: int, pj_per_byte: float) -> None:
    assert sram_pj_per_byte(sram_bytes) == pytest.approx(pj_per_byte)


def test_keeping_weights_in_sram_cuts_fc_energy_on_tpu_v1() -> None:
    tpu = get_backend("tpu-v1")
    fc = Work(2_048_000, 0, 2_048_000, 2048, 1000, "int8", "linear", ((1, 1, 2048, 1000),))
    streamed = tpu.cost(fc)
    resident = tpu.cost(fc, Placement(weights_in_sram=True))
    assert streamed.energy_j == pytest.approx((2_048_000 * 0.3 + 2_051_048 * 162.5) * 1e-12)
    assert resident.energy_j == pytest.approx((2_048_000 * 0.3 + 2_048_000 * 12.5 + 3048 * 162.5) * 1e-12)
    # The ratio follows from the two closed forms (12.50), not a rounded figure.
    assert streamed.energy_j / resident.energy_j == pytest.approx(
        (2_048_000 * 0.3 + 2_051_048 * 162.5) / (2_048_000 * 0.3 + 2_048_000 * 12.5 + 3048 * 162.5))


def test_dynamic_energy_of_an_unknown_dtype_costs_as_fp32() -> None:
    energy = get_backend("generic").spec.energy
    assert dynamic_energy_j(energy, 10**9, "int2", 0, 0) == pytest.approx(4.6e-3)


@pytest.mark.parametrize(("name", "watts"), [("tpu-v1", 28.0), ("hailo-8", 0.5), ("t4", 14.0),
                                             ("h100-sxm", 140.0), ("generic", 0.0)])
def test_static_power_comes_from_the_spec(name: str, watts: float) -> None:
    assert get_backend(name).static_power_w() == watts


def test_resnet50_fp32_vs_int8_power_from_the_api(tmp_path: Path, resnet50_captured) -> None:
    """The same example on the real ResNet-50, compiled at fp32 and quantized to int8."""
    import chipcut

    # Memory traffic made free, so the power is MACs x pJ alone.
    chip = design_example_chip(tmp_path / "macs_only.toml",
                               'pj_per_byte_sram = "1e-9 pJ"\npj_per_byte_dram = "1e-9 pJ"')
    watts = {}
    for dtype, passes in (("fp32", "fold-bn,fuse"),
                          ("int8", "fold-bn,quantize{dtype=int8,first_last=int8,measure=false},fuse")):
        plan = chipcut.compile(resnet50_captured, chips=1, backend=chip, passes=passes)
        watts[dtype] = plan.metrics.power_w(IMAGES_PER_S)
    macs = 4_087_136_256  # ResNet-50 at 224: FlopCounterMode FLOPs / 2
    # The memory traffic (under 1e8 bytes at 1e-9 pJ each) adds under 1e-13 J to about 1e-3 J
    # per image, so the MACs alone match to rel 1e-9.
    assert watts["fp32"] == pytest.approx(macs * 4.4e-12 * IMAGES_PER_S, rel=1e-9)
    assert watts["int8"] == pytest.approx(macs * 0.23e-12 * IMAGES_PER_S, rel=1e-9)
    assert watts["fp32"] / watts["int8"] == pytest.approx(4.4 / 0.23, rel=1e-9)
