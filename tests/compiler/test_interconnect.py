"""Compile-level capacity, topologies, mixed chips and their order, replication, objectives."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import chipcut
from chipcut.backends.registry import get_backend
from chipcut.compiler.cli.main import main
from chipcut.compiler.plan.model import Plan
from chipcut.compiler.plan.revalidate import revalidate
from chipcut.core.errors import ChipcutError

GENERIC = (Path(__file__).parents[2] / "backends" / "presets" / "generic.toml").read_text()


def spec(tmp_path: Path, name: str, sram: str = "32 MiB", dram: str = '"16 GiB"',
         macs: str = "4e12", link: str = "31.5 GB/s") -> str:
    text = (GENERIC.replace('name = "generic"', f'name = "{name}"')
            .replace('sram_bytes = "32 MiB"', f'sram_bytes = "{sram}"')
            .replace('dram_bytes = "16 GiB"', f"dram_bytes = {dram}")
            .replace("fp32 = 4e12", f"fp32 = {macs}")
            .replace('bytes_per_s = "31.5 GB/s"', f'bytes_per_s = "{link}"'))
    if dram == "0":
        text = text.replace('dram_bytes_per_s = "200 GB/s"\n', "")
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return str(path)


def mlp(layers: int = 4, width: int = 128) -> tuple[torch.nn.Module, tuple]:
    torch.manual_seed(0)
    mods = []
    for _ in range(layers):
        mods += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    return torch.nn.Sequential(*mods).eval(), (torch.randn(1, width),)


def test_capacity_error_names_resource_shortfall_and_chip_count(tmp_path: Path, capsys) -> None:
    # Four 128x128 fp32 layers: 66,048 bytes of weights each. An SRAM-only chip of 100 kB
    # holds one layer (plus its activations), so the model needs 4 chips.
    small = spec(tmp_path, "tiny-sram", sram="100 kB", dram="0")
    with pytest.raises(ChipcutError, match=r"SRAM is short by .* it fits on 4 chips \(--chips 4\)"):
        chipcut.compile(*mlp(), chips=2, backend=small, passes="none")
    plan = chipcut.compile(*mlp(), chips=4, backend=small, passes="none")
    for stage in plan.stages:
        assert stage.weight_bytes <= 100_000
    assert [len(s.nodes) > 0 for s in plan.stages] == [True] * 4


def test_capacity_error_at_the_cli_is_one_line(tmp_path: Path, capsys) -> None:
    small = spec(tmp_path, "tiny-sram", sram="60 kB", dram="0")
    model = tmp_path / "m.py"
    model.write_text("import torch\n\ndef net():\n    torch.manual_seed(0)\n"
                     "    return torch.nn.Linear(128, 128), (torch.randn(1, 128),)\n")
    code = main(["compile", f"{model}:net", "--chips", "1", "--backend", small, "--passes", "none"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "alone needs" in err and "no chip count fits" in err and "Traceback" not in err


def test_mixed_chips_pick_their_order(tmp_path: Path) -> None:
    # A fast and a slow chip: the heavy first layers go to the fast chip whatever the
    # order given, so both orders give the same bottleneck, and the plan says which order.
    # (Slow enough that compute, not the host link, is the bottleneck.)
    fast = spec(tmp_path, "fast", macs="8e10")
    slow = spec(tmp_path, "slow", macs="1e10")
    model, inputs = mlp(layers=6, width=512)
    a = chipcut.compile(model, inputs, chips=[fast, slow], passes="none")
    b = chipcut.compile(model, inputs, chips=[slow, fast], passes="none")
    assert a.metrics.bottleneck_s == pytest.approx(b.metrics.bottleneck_s)
    assert a.chips == b.chips
    assert any("chip order chosen from 2 orders" in n for n in a.notes)
    # The fast chip carries more of the MACs.
    macs = {s.backend: s.macs for s in a.stages}
    assert macs["fast"] > macs["slow"]
    assert a.solver.status == "OPTIMAL"


def test_switch_and_ring_topologies_cost_their_links(residual_cnn) -> None:
    chain = chipcut.compile(*residual_cnn, chips=3)
    switch = chipcut.compile(*residual_cnn, chips=3, topology="switch")
    assert switch.interconnect.topology == "switch"
    link = get_backend("generic").spec.link
    # The switch carries each tensor once per reading stage, all on one shared uplink.
    total = sum(t.bytes for t in switch.transfers)
    assert switch.metrics.bytes_moved == total
    shared = link.latency_s + total / link.bytes_per_s
    assert switch.metrics.bottleneck_s >= shared * (1 - 1e-9)
    ring = chipcut.compile(*residual_cnn, chips=3, topology="ring")
    assert ring.metrics.bottleneck_s <= chain.metrics.bottleneck_s * (1 + 1e-9)
    with pytest.raises(ChipcutError, match="topology = 'mesh'"):
        chipcut.compile(*residual_cnn, chips=3, topology="mesh")


def test_replicated_stage_is_in_the_plan_and_survives_show(tmp_path: Path) -> None:
    # One heavy layer and a light one on 3 chips: cutting cannot split the heavy layer;
    # replicas taking alternate frames can.
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2048, 2048), torch.nn.ReLU(),
                                torch.nn.Linear(2048, 16)).eval()
    inputs = (torch.randn(64, 2048),)
    cut = chipcut.compile(model, inputs, chips=3, passes="none")
    rep = chipcut.compile(model, inputs, chips=3, passes="none", replicate=True)
    assert rep.metrics.bottleneck_s < cut.metrics.bottleneck_s * 0.9
    lead = next(s for s in rep.stages if s.replicas > 1)
    followers = [s for s in rep.stages if s.replica_of == lead.chip]
    assert len(followers) == lead.replicas - 1 and all(not s.nodes for s in followers)
    assert rep.metrics.bottleneck_s == pytest.approx(max(
        [s.time_s / s.replicas for s in rep.stages if s.replicas]
        + [t.time_s for t in rep.transfers] + [rep.metrics.host_in_s, rep.metrics.host_out_s]))
    assert f"x{lead.replicas}" in chipcut.report(rep)
    path = tmp_path / "plan.json"
    rep.to_json(path)
    again, edited = revalidate(Plan.from_json(path))
    assert not edited and again.metrics == rep.metrics


def test_latency_objective_is_no_worse_in_latency(residual_cnn) -> None:
    fast = chipcut.compile(*residual_cnn, chips=3)
    low = chipcut.compile(*residual_cnn, chips=3, objective="latency")
    assert low.interconnect.objective == "latency"
    assert low.metrics.latency_s <= fast.metrics.latency_s * (1 + 1e-9)
    assert low.solver.objective == pytest.approx(low.metrics.latency_s)


def test_sweep_marks_counts_that_do_not_fit(tmp_path: Path) -> None:
    from chipcut.compiler.sweep import sweep

    small = spec(tmp_path, "tiny-sram", sram="100 kB", dram="0")
    options = chipcut.CompileOptions(passes="none")
    lowered = chipcut.lower(*mlp(), chips=5, backend=small, options=options)
    points = sweep(lowered, [2, 4, 5], small, options)
    assert [p.status for p in points][0] == "NO FIT" and points[0].limit.startswith("memory")
    assert points[1].status == "OPTIMAL" and points[1].speedup == 1.0
    assert points[2].efficiency == pytest.approx(points[2].speedup * 4 / 5)
