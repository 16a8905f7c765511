"""Chip-count sweep: speedup and efficiency follow from the per-count throughputs."""

from __future__ import annotations

import pytest

import chipcut
from chipcut.compiler.cli.main import main
from chipcut.compiler.sweep import parse_counts, sweep
from chipcut.core.errors import ChipcutError


def test_parse_counts() -> None:
    assert parse_counts("1..4") == [1, 2, 3, 4]
    assert parse_counts("1,2,8") == [1, 2, 8]
    with pytest.raises(ChipcutError, match="range like 1..8"):
        parse_counts("one..two")
    with pytest.raises(ChipcutError, match=">= 1"):
        parse_counts("0..2")


def test_sweep_speedup_and_efficiency(residual_cnn) -> None:
    options = chipcut.CompileOptions(time_limit_s=5)
    points = sweep(chipcut.lower(*residual_cnn, chips=3, options=options), [1, 2, 3],
                   options=options)
    assert [p.chips for p in points] == [1, 2, 3]
    assert points[0].speedup == 1.0 and points[0].efficiency == 1.0
    for p in points:
        assert p.speedup == pytest.approx(p.throughput_per_s / points[0].throughput_per_s)
        assert p.efficiency == pytest.approx(p.speedup / p.chips)
        assert p.limit.startswith(("chip", "link", "host"))
    assert points[1].throughput_per_s >= points[0].throughput_per_s


def test_sweep_cli_prints_and_plots(tmp_path, capsys) -> None:
    model = tmp_path / "m.py"
    model.write_text("import torch\n\ndef f():\n    return torch.nn.Sequential(*[torch.nn.Linear(64, 64)"
                     " for _ in range(6)])\n")
    png = tmp_path / "sweep.png"
    code = main(["sweep", f"{model}:f", "--input", "16x64", "--chips", "1..3", "--plot", str(png)])
    out = capsys.readouterr().out
    assert code == 0
    assert "speedup" in out and out.count("OPTIMAL") + out.count("FEASIBLE") == 3
    assert png.read_bytes()[:4] == b"\x89PNG"
