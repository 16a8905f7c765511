"""Chrome trace and PNG plots come out of a plan (and out of one CLI call)."""

from __future__ import annotations

import json

import chipcut
import pytest
from chipcut.compiler.cli.main import main
from chipcut.compiler.views.trace import LINK_PID, chrome_trace


@pytest.fixture
def plan(residual_cnn) -> chipcut.Plan:
    return chipcut.compile(*residual_cnn, chips=3, time_limit_s=5)


def test_trace_has_a_track_per_chip_and_link(plan) -> None:
    trace = chrome_trace(plan)
    json.dumps(trace)  # serializable
    events = trace["traceEvents"]
    names = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
    assert {f"chip {k} (generic)" for k in range(3)} <= names
    assert {f"link {t.src}->{t.dst}" for t in plan.transfers} <= names
    for chip, stage in enumerate(plan.stages):
        spans = [e for e in events if e["ph"] == "X" and e["pid"] == chip]
        assert sum(e["dur"] for e in spans) == pytest.approx(stage.time_s * 1e6)
    links = [e for e in events if e["ph"] == "X" and e["pid"] >= LINK_PID]
    assert [e["dur"] for e in links] == pytest.approx([t.time_s * 1e6 for t in plan.transfers])


def test_one_cli_call_writes_plan_trace_and_plot(tmp_path, capsys) -> None:
    model = tmp_path / "m.py"
    model.write_text("import torch\n\ndef f():\n    return torch.nn.Sequential(torch.nn.Linear(8, 64),"
                     " torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2))\n")
    out = {name: tmp_path / name for name in ("plan.json", "trace.json", "plan.png")}
    code = main(["compile", f"{model}:f", "--input", "4x8", "--chips", "2", "--out", str(out["plan.json"]),
                 "--trace", str(out["trace.json"]), "--plot", str(out["plan.png"])])
    printed = capsys.readouterr().out
    assert code == 0
    assert "energy" in printed and "DRAM MB" in printed
    assert json.loads(out["trace.json"].read_text())["traceEvents"]
    assert out["plan.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out["plan.png"].stat().st_size > 20_000
    # show re-draws from the saved plan alone
    again = tmp_path / "again.png"
    assert main(["show", str(out["plan.json"]), "--plot", str(again)]) == 0
    assert again.stat().st_size > 20_000
