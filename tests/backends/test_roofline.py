"""Roofline model: the formula, placements (DRAM vs SRAM bytes), SRAM-only chips, links, a real conv."""

from __future__ import annotations

import pytest
import torch

from chipcut.backends.protocol import Placement, Work
from chipcut.backends.registry import get_backend
from chipcut.backends.roofline import RooflineBackend
from chipcut.backends.spec import ChipSpec, LinkSpec
from chipcut.compiler.capture import capture
from chipcut.compiler.lowering.costing import node_work
from chipcut.core.ir import get_cost, is_compute
from chipcut.passes.accounting import accounting


def chip(**changes: object) -> RooflineBackend:
    fields = dict(name="toy", peak_macs_per_s={"fp32": 1e12, "int8": 4e12}, vector_ops_per_s=1e11,
                  sram_bytes=8 * 2**20, dram_bytes=2**30, dram_bytes_per_s=1e10,
                  link=LinkSpec(1e9, 1e-6), compute_efficiency=0.5, memory_efficiency=0.8,
                  op_overhead_s=1e-6)
    return RooflineBackend(ChipSpec(**(fields | changes)))


def test_compute_bound_time_is_macs_and_element_ops_over_derated_peak_plus_overhead() -> None:
    work = Work(macs=10**9, elem_ops=10**8, weight_bytes=10**6, in_bytes=10**6, out_bytes=10**6)
    cost = chip().cost(work)
    compute_s = (1e9 / 1e12 + 1e8 / 1e11) / 0.5  # 4 ms
    memory_s = 3e6 / (1e10 * 0.8)  # 0.375 ms
    assert (cost.compute_s, cost.memory_s) == (pytest.approx(compute_s), pytest.approx(memory_s))
    assert cost.time_s == pytest.approx(compute_s + 1e-6)
    assert (cost.dram_bytes, cost.sram_bytes, cost.bound) == (3_000_000, 0, "compute")
    assert cost.utilization == pytest.approx(1e9 / (1e12 * (compute_s + 1e-6)))


def test_memory_bound_and_overhead_bound_classification() -> None:
    streaming = chip().cost(Work(10**6, 0, weight_bytes=10**8, in_bytes=0, out_bytes=0, dtype="int8"))
    assert streaming.bound == "memory"
    assert streaming.time_s == pytest.approx(1e8 / 8e9 + 1e-6)
    tiny = chip().cost(Work(100, 0, 0, 4, 4))
    assert tiny.bound == "overhead"
    assert tiny.time_s == pytest.approx(1e-6 + 8 / 8e9)  # overhead + the 8 bytes' memory time


def test_placement_moves_bytes_from_dram_to_sram() -> None:
    work = Work(10**6, 0, weight_bytes=4000, in_bytes=300, out_bytes=20)
    backend = chip()
    everything_dram = backend.cost(work)
    assert (everything_dram.dram_bytes, everything_dram.sram_bytes) == (4320, 0)
    weights = backend.cost(work, Placement(weights_in_sram=True))
    assert (weights.dram_bytes, weights.sram_bytes) == (320, 4000)
    fused = backend.cost(work, Placement(True, True, True))
    assert (fused.dram_bytes, fused.sram_bytes, fused.memory_s) == (0, 4320, 0.0)
    assert weights.memory_s == pytest.approx(320 / 8e9)


def test_sram_only_chip_keeps_every_byte_on_chip_whatever_the_placement() -> None:
    backend = chip(dram_bytes=0, dram_bytes_per_s=0.0)
    cost = backend.cost(Work(10**6, 0, weight_bytes=10**7, in_bytes=10**5, out_bytes=10**5))
    assert (cost.dram_bytes, cost.sram_bytes, cost.memory_s) == (0, 10_200_000, 0.0)
    assert cost.bound == "compute"


def test_unsupported_dtype_runs_at_the_slowest_listed_rate() -> None:
    backend = chip(op_overhead_s=0.0, compute_efficiency=1.0)
    assert not backend.supports_dtype("bf16") and backend.supports_dtype("int8")
    assert backend.cost(Work(10**9, 0, 0, 0, 0, dtype="bf16")).compute_s == pytest.approx(1e-3)
    assert backend.cost(Work(10**9, 0, 0, 0, 0, dtype="int8")).compute_s == pytest.approx(2.5e-4)


@pytest.mark.parametrize(("name", "bytes_per_s", "latency_s"), [
    ("hailo-8", 3.94e9, 2e-6),      # PCIe Gen3 x4, per direction
    ("inferx-x1", 3.94e9, 2e-6),    # PCIe Gen3 x4
    ("tpu-v1", 15.75e9, 2e-6),      # PCIe Gen3 x16
    ("t4", 15.75e9, 5e-6),          # PCIe Gen3 x16
    ("generic", 31.5e9, 2e-6),      # PCIe Gen4 x16
    ("h100-sxm", 450e9, 3e-6),      # NVLink4: 900 GB/s is both directions together
])
def test_link_time_is_latency_plus_bytes_over_per_direction_bandwidth(name: str, bytes_per_s: float,
                                                                      latency_s: float) -> None:
    backend = get_backend(name)
    assert backend.link_time_s(0) == 0.0
    assert backend.link_time_s(10**6) == pytest.approx(latency_s + 1e6 / bytes_per_s)
    # 1 MB over PCIe Gen3 x4 takes ~254 us one way; the same over x16 ~63.5 us.
    if bytes_per_s == 3.94e9:
        assert backend.link_time_s(10**6) == pytest.approx(255.8e-6, rel=1e-3)


def test_captured_3x3_conv_has_225m_macs_and_the_roofline_compute_time() -> None:
    conv = torch.nn.Conv2d(100, 100, 3, padding=1)
    gm = accounting(capture(conv, (torch.randn(1, 100, 50, 50),)).graph_module)
    (node,) = [n for n in gm.graph.nodes if is_compute(n) and get_cost(n).macs]
    work = node_work(node)
    assert work.macs == 3 * 3 * 100 * 100 * 50 * 50 == 225_000_000
    assert work.gemms == ((1, 2500, 900, 100),)  # (groups, N*H*W, Cin*Kh*Kw, Cout)
    assert sum(b * m * k * n for b, m, k, n in work.gemms) == work.macs
    assert (work.weight_bytes, work.in_bytes, work.out_bytes) == (360_400, 1_000_000, 1_000_000)
    cost = get_backend("generic").cost(work)  # fp32 at 4 TMAC/s, 1 Top/s element-wise, 200 GB/s
    assert cost.compute_s == pytest.approx(225e6 / 4e12 + 250_000 / 1e12)  # 56.5 us
    assert cost.memory_s == pytest.approx(2_360_400 / 200e9)
    assert cost.bound == "compute" and cost.time_s == pytest.approx(56.5e-6)


CLASSES = {"dense": 0.8, "depthwise": 0.2, "small-map": 0.6, "attention": 0.7, "pool": 0.3}


def test_compute_time_uses_the_efficiency_of_the_works_op_class() -> None:
    backend = chip(class_efficiency=CLASSES)  # elementwise unlisted: compute_efficiency 0.5
    at_peak_s = 1e9 / 1e12 + 1e8 / 1e11  # 2 ms of MACs and element ops at the peak rates
    for op_class, eta in [*CLASSES.items(), ("elementwise", 0.5), (None, 0.5)]:
        work = Work(10**9, 10**8, 0, 0, 0, op_class=op_class)
        cost = backend.cost(work)
        assert cost.compute_s == pytest.approx(at_peak_s / eta, rel=1e-12), op_class
        assert cost.time_s == pytest.approx(at_peak_s / eta + 1e-6, rel=1e-12)
    streaming = Work(10**3, 0, weight_bytes=10**8, in_bytes=0, out_bytes=0, op_class="depthwise")
    assert backend.cost(streaming).memory_s == pytest.approx(1e8 / 8e9)  # memory term unchanged


def test_describe_shows_per_class_efficiencies_and_the_fallback_only_when_used() -> None:
    assert "efficiency" not in chip().describe()
    assert chip(class_efficiency=CLASSES).describe().endswith(
        "; efficiency dense 0.80, depthwise 0.20, small-map 0.60, attention 0.70, pool 0.30, "
        "gemm, narrow as dense, others 0.50")
    every = CLASSES | {"elementwise": 0.4}
    assert chip(class_efficiency=every).describe().endswith(
        "pool 0.30, elementwise 0.40, gemm, narrow as dense")
    assert chip(class_efficiency={"depthwise": 0.2}).describe().endswith(
        "efficiency depthwise 0.20, others 0.50")  # no dense: a GEMM runs at the fallback


def test_per_class_efficiencies_round_trip_through_to_dict_and_from_dict() -> None:
    from chipcut.backends.loader import from_dict

    backend = chip(class_efficiency=CLASSES)
    table = backend.to_dict()
    assert table["compute"]["efficiency"] == CLASSES
    assert "efficiency" not in chip().to_dict()["compute"]
    assert from_dict(table, "toy.json").spec == backend.spec


def test_weights_in_sram_false_streams_weights_that_fit_and_round_trips() -> None:
    from chipcut.backends.loader import from_dict

    assert chip().weights_resident(2**20) and not chip().weights_resident(16 * 2**20)
    streaming = chip(weights_in_sram=False)
    assert not streaming.weights_resident(0) and not streaming.weights_resident(2**20)
    table = streaming.to_dict()
    assert table["memory"]["weights_in_sram"] is False
    assert "weights_in_sram" not in chip().to_dict()["memory"]  # the default is not written
    assert from_dict(table, "toy.json").spec == streaming.spec
    assert get_backend("tpu-v1").spec.weights_in_sram is False  # TPU v1 streams from its DDR3


def test_validation_note_ends_the_description_and_round_trips() -> None:
    from chipcut.backends.loader import from_dict

    assert chip(validation="unvalidated: assumptions").describe().endswith("; unvalidated: assumptions")
    assert "validation" not in chip().to_dict()
    backend = chip(validation="fitted to a test")
    assert from_dict(backend.to_dict(), "toy.json").spec == backend.spec
    assert "SRAM 8 MiB (activations only);" in chip(weights_in_sram=False).describe()


def test_a_class_with_its_own_fixed_time_and_activation_rate_adds_them_to_its_units() -> None:
    backend = chip(class_efficiency={"depthwise": 0.2, "dense": 0.8},
                   class_overhead_s={"depthwise": 1.4e-4},
                   activation_bytes_per_s={"depthwise": 1.4e10, "dense": 5e10})
    # 1 M MACs at 1e12 MAC/s over 0.2, plus 7 MB of activations at 14 GB/s, plus 140 us.
    work = Work(10**6, 0, 0, in_bytes=5 * 10**6, out_bytes=2 * 10**6, op_class="depthwise")
    on_chip = Placement(True, True, True)  # activations in SRAM: no DRAM term
    cost = backend.cost(work, on_chip)
    assert cost.compute_s == pytest.approx(1e-6 / 0.2 + 7e6 / 1.4e10, rel=1e-12)
    assert cost.time_s == pytest.approx(5e-6 + 5e-4 + 1.4e-4, rel=1e-12)
    # Unrated classes keep op_overhead_s and no activation term; narrow runs at dense's
    # efficiency but not at its activation rate (those two apply to the class named only).
    plain = backend.cost(Work(10**6, 0, 0, 10**6, 10**6, op_class="attention"), on_chip)
    assert plain.time_s == pytest.approx(1e-6 / 0.5 + 1e-6, rel=1e-12)
    narrow = backend.cost(Work(10**6, 0, 0, 10**6, 10**6, op_class="narrow"), on_chip)
    assert narrow.time_s == pytest.approx(1e-6 / 0.8 + 1e-6, rel=1e-12)
    dense = backend.cost(Work(10**6, 0, 0, 10**6, 10**6, op_class="dense"), on_chip)
    assert dense.time_s == pytest.approx(1e-6 / 0.8 + 2e6 / 5e10 + 1e-6, rel=1e-12)
    described = backend.describe()
    assert "; fixed time per unit depthwise 140 us" in described
    assert "; activations at depthwise 14 GB/s, dense 50 GB/s" in described
    from chipcut.backends.loader import from_dict

    table = backend.to_dict()
    assert table["compute"]["class_overhead_s"] == {"depthwise": 1.4e-4}
    assert from_dict(table, "toy.json").spec == backend.spec
    assert "class_overhead_s" not in chip().to_dict()["compute"]
