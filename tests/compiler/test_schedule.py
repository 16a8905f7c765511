"""Schedule: timelines add up to stage times, residency and multi-layer fusion change DRAM bytes."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import chipcut
from chipcut.backends.registry import get_backend
from chipcut.backends.roofline import RooflineBackend
from chipcut.backends.spec import LinkSpec
from chipcut.compiler.solver.evaluate import measure
from chipcut.compiler.solver.problem import AffineLink, PartitionProblem


def test_timeline_adds_up_to_stage_times(residual_cnn) -> None:
    plan = chipcut.compile(*residual_cnn, chips=3, time_limit_s=5)
    assert len(plan.timeline) == 3
    for stage, line in zip(plan.stages, plan.timeline, strict=True):
        assert line.chip == stage.chip
        ends = [op.end_s for op in line.ops]
        assert ends == sorted(ends)
        assert sum(op.end_s - op.start_s for op in line.ops) == pytest.approx(stage.time_s)
        assert all(b.start_s == pytest.approx(a.end_s) for a, b in zip(line.ops, line.ops[1:], strict=False))
        assert sum(op.macs for op in line.ops) == stage.macs
        assert sum(op.energy_j for op in line.ops) == pytest.approx(stage.energy_j)


def _small_sram_backend(sram_bytes: int) -> RooflineBackend:
    base = get_backend("generic")
    return RooflineBackend(replace(base.spec, name=f"generic-{sram_bytes}", sram_bytes=sram_bytes))


def test_weights_resident_only_when_they_fit() -> None:
    model = torch.nn.Sequential(*[torch.nn.Linear(256, 256) for _ in range(4)]).eval()
    inputs = (torch.randn(1, 256),)
    weight_bytes = 4 * (256 * 256 + 256) * 4
    roomy = chipcut.compile(model, inputs, chips=1, backend=_small_sram_backend(2 * weight_bytes))
    tight = chipcut.compile(model, inputs, chips=1, backend=_small_sram_backend(weight_bytes // 2))
    assert roomy.stages[0].weight_bytes == tight.stages[0].weight_bytes == weight_bytes
    assert roomy.stages[0].weights_resident and not tight.stages[0].weights_resident
    # Streamed weights are read from DRAM every inference.
    assert tight.stages[0].dram_bytes - roomy.stages[0].dram_bytes >= weight_bytes


def test_multi_layer_fusion_keeps_intermediates_on_chip() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(8, 8, 3, padding=1)).eval()
    plan = chipcut.compile(model, (torch.randn(1, 8, 64, 64),), chips=1, passes="none")
    stage = plan.stages[0]
    activation = 8 * 64 * 64 * 4
    # Unfused: the input read, two intermediates written and read, the output written.
    # Fused: all fit in the 32 MiB SRAM, weights resident, so nothing goes off chip.
    assert stage.dram_bytes_unfused == 6 * activation
    assert stage.dram_bytes == 0
    # With the fuse pass, conv+relu is one group: its intermediate never leaves the chip,
    # even when every group boundary goes through DRAM.
    fused = chipcut.compile(model, (torch.randn(1, 8, 64, 64),), chips=1, passes="fuse")
    assert fused.fused_groups == 1
    assert fused.stages[0].dram_bytes_unfused == 4 * activation
    assert fused.stages[0].dram_bytes == 0


def test_batched_throughput_and_energy(residual_cnn) -> None:
    plan = chipcut.compile(*residual_cnn, chips=2, batch=4)
    m = plan.metrics
    assert m.batch == 4
    assert m.throughput_at_batch_per_s >= m.throughput_per_s * 0.999
    assert m.dynamic_energy_j == pytest.approx(sum(s.energy_j for s in plan.stages))
    assert m.energy_per_inference_j == pytest.approx(m.dynamic_energy_j + m.static_power_w * m.bottleneck_s)
    assert m.power_w(100.0) == pytest.approx(m.dynamic_energy_j * 100 + m.static_power_w)


def test_link_bound_pipeline_reports_the_link() -> None:
    # Stages of 1 ms and 2 ms joined by a link that takes 3 ms for 1000 bytes.
    problem = PartitionProblem(((1e-3, 1e-3), (2e-3, 2e-3)), ((0, (1,), 1000),), 2,
                               (AffineLink(1000 / 2.5e-3, 0.5e-3),) * 2)
    m = measure(problem, (0, 1))
    assert (m.bottleneck, m.bottleneck_chip, m.bottleneck_s) == ("link 0->1", -1, pytest.approx(3e-3))
    assert m.latency_s == pytest.approx(6e-3)
    assert [(x.src, x.dst, x.bytes) for x in m.links] == [(0, 1, 1000)]


def test_slow_link_keeps_the_model_on_fewer_chips() -> None:
    """When every cut costs more than it saves, the best pipeline leaves a chip idle."""
    slow = get_backend("generic")
    slow = RooflineBackend(replace(slow.spec, name="slow-link", link=LinkSpec(1e6, 1e-3)))
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 64))
    plan = chipcut.compile(model.eval(), (torch.randn(8, 64),), chips=2, backend=slow)
    assert plan.transfers == ()
    assert sorted(len(s.nodes) for s in plan.stages)[0] == 0


def test_a_stage_bound_reads_a_backends_own_word_as_compute_or_memory() -> None:
    from chipcut.backends.protocol import OpCost
    from chipcut.compiler.plan.schedule import stage_bound

    costs = [OpCost(3e-6, 1e-6, 3e-6, 0, "simulated"), OpCost(2e-6, 2e-6, 0.0, 0, "compute"),
             OpCost(4e-6, 0.0, 0.0, 0, "overhead")]
    assert stage_bound(costs) == "overhead"  # 4 us, beside memory 3 us and compute 2 us
    assert stage_bound(costs[:2]) == "memory"  # the plug-in's 3 us: its memory time is longer
    assert stage_bound([]) == "compute"
