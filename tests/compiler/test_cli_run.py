"""``chipcut run`` and ``chipcut show --measured``: the measured table, the files, and bad input
as one line with exit code 2 and no output file."""

from __future__ import annotations

import json
import socket
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import chipcut
from chipcut.backends.registry import get_backend
from chipcut.backends.roofline import RooflineBackend
from chipcut.backends.spec import LinkSpec
from chipcut.compiler.cli.main import main
from chipcut.compiler.runtime.launch import local_cores

FREE_LINK = RooflineBackend(replace(get_backend("generic").spec, name="free-link",
                                    link=LinkSpec(1e18, 0.0)))
FACTORY = textwrap.dedent("""
    import torch

    def convnet():
        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
            torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
            torch.nn.Flatten(), torch.nn.Linear(8 * 8 * 8, 4)).eval()
""")


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[str, Path]:
    """(MODEL spec, plan.json) of a conv net cut over 2 chips."""
    folder = tmp_path_factory.mktemp("cli_run")
    (folder / "convnet_model.py").write_text(FACTORY)
    spec = f"{folder / 'convnet_model.py'}:convnet"
    namespace: dict = {}
    exec(FACTORY, namespace)
    plan = chipcut.compile(namespace["convnet"](), (torch.randn(1, 3, 8, 8),), chips=2,
                           time_limit_s=5, backend=FREE_LINK)
    assert sum(1 for s in plan.stages if s.nodes) == 2
    plan.to_json(folder / "plan.json")
    return spec, folder / "plan.json"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_run_prints_measured_beside_predicted_and_writes_files(capsys, saved, tmp_path) -> None:
    spec, plan = saved
    measured, trace = tmp_path / "measured.json", tmp_path / "run.json"
    code, out, err = run(capsys, "run", spec, str(plan), "--input", "1x3x8x8", "--frames", "8",
                         "--microbatches", "4", "--out", str(measured), "--trace", str(trace))
    assert code == 0, err
    assert "2 stage processes, gpipe, 4 microbatches, 1 thread each (cpu)" in out
    assert "throughput: predicted" in out and "latency (one frame alone): predicted" in out
    assert "link 0->1" in out and "meas. / pred." in out
    m = chipcut.Measured.from_json(measured, chipcut.Plan.from_json(plan))
    assert m.max_abs_diff <= 1e-5 * max(1.0, m.output_scale)  # fold-bn: relative to the scale
    events = json.loads(trace.read_text())["traceEvents"]
    forwards = [e for e in events if e.get("cat") == "forward"]
    assert len(forwards) == 2 * 8 and {e["pid"] for e in forwards} == {0, 1}
    code, shown, err = run(capsys, "show", str(plan), "--measured", str(measured))
    assert code == 0, err
    assert shown.count("meas. / pred.") == 1 and "bottleneck: predicted" in shown


def _taken_port() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


@pytest.mark.parametrize("extra, message", [
    (["--frames", "10", "--microbatches", "4"], "frames = 10 is not a multiple of microbatches = 4"),
    (["--frames", "0"], "frames = 0: must be a whole number >= 1"),
    (["--threads", str(len(local_cores()))], "cores, this machine gives"),
    (["--port", "{port}"], "is already in use on 127.0.0.1"),
    (["--input", "2x3x8x8"], "differs from the plan's"),
    (["--schedule", "1f1b", "--microbatches", "1"], "1f1b needs at least as many microbatches"),
])
def test_bad_run_input_is_one_line_exit_2(capsys, saved, tmp_path, extra, message) -> None:
    spec, plan = saved
    out_path = tmp_path / "never.json"
    with _taken_port() as taken:
        extra = [a.replace("{port}", str(taken.getsockname()[1])) for a in extra]
        inputs = [] if "--input" in extra else ["--input", "1x3x8x8"]
        code, out, err = run(capsys, "run", spec, str(plan), *inputs, *extra, "--out",
                             str(out_path))
    assert code == 2 and out == ""
    lines = [line for line in err.splitlines() if line.startswith("chipcut: error")]
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err and not out_path.exists()


def test_show_refuses_a_measurement_of_another_plan(capsys, saved, tmp_path) -> None:
    from chipcut.compiler.plan.measured import MEASURED_SCHEMA_VERSION

    _, plan = saved
    other = tmp_path / "other.json"
    chipcut.Measured(MEASURED_SCHEMA_VERSION, "f" * 16, "0" * 16, "m", "gpipe", 4, 4, 1, "cpu",
                     "gloo", False, (), (), 1.0, 2.0, 0.5, 0.25, "chip 0", "chip 1", 0.0, 1.0,
                     1.0, "here").to_json(other)
    code, out, err = run(capsys, "show", str(plan), "--measured", str(other))
    assert code == 2 and out == "" and "Traceback" not in err
    assert f"measured file {other} was measured on another plan (plan hash 0000000000000000" in err


def test_the_readme_torchrun_command_runs_a_plan_as_its_ranks(saved, tmp_path) -> None:
    """README: ``torchrun --nproc-per-node 2 -m chipcut.compiler.cli.main run MODEL plan.json``:
    each rank builds its own stage, torchrun's rendezvous joins them, rank 0 writes the file."""
    import subprocess
    import sys

    spec, plan = saved
    measured = tmp_path / "measured.json"
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
         "--master-port", str(_free_port()), "-m", "chipcut.compiler.cli.main", "run", spec,
         str(plan), "--input", "1x3x8x8", "--frames", "4", "--microbatches", "2", "--out",
         str(measured)], capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    m = chipcut.Measured.from_json(measured, chipcut.Plan.from_json(plan))
    assert [s.rank for s in m.stages] == [0, 1] and m.frames == 4
    assert m.outputs_agree and m.throughput_per_s > 0
    assert "2 stage processes, gpipe, 2 microbatches" in done.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
