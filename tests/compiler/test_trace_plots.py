"""Chrome trace and PNG plots come out of a plan (and out of one CLI call)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import chipcut
from chipcut.compiler.cli.main import main
from chipcut.compiler.views.trace import LINK_PID, chrome_trace

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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
    assert out["plan.png"].read_bytes()[:8] == PNG_SIGNATURE
    assert out["plan.png"].stat().st_size > 20_000
    # show re-draws from the saved plan alone
    again = tmp_path / "again.png"
    assert main(["show", str(out["plan.json"]), "--plot", str(again)]) == 0
    assert again.stat().st_size > 20_000


# A fresh interpreter: the backend is fixed on first use, so only a new process shows whether
# chipcut's plotting would switch the backend its user chose (MPLBACKEND here).
LEAVE_BACKEND_ALONE = """
import sys
import matplotlib
from chipcut import Plan
from chipcut.compiler.sweep import SweepPoint, plot
from chipcut.compiler.views.plots import plot_plan

plot_plan(Plan.from_json("plan.json"), "plan.png")
plot([SweepPoint(1, 100.0, 0.01, 1.0, 1.0, "chip 0", "OPTIMAL", 0.0, 0),
      SweepPoint(2, 180.0, 0.012, 1.8, 0.9, "chip 1", "OPTIMAL", 0.0, 4096)], "sweep.png")
print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
"""


def test_plots_leave_the_users_matplotlib_backend_alone(plan, tmp_path) -> None:
    plan.to_json(tmp_path / "plan.json")
    env = {**os.environ, "MPLBACKEND": "pdf"}
    done = subprocess.run([sys.executable, "-c", LEAVE_BACKEND_ALONE], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["pdf", "False"]  # still the user's backend; pyplot never loaded
    for name in ("plan.png", "sweep.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_SIGNATURE
