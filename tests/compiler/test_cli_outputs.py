"""Output paths: checked before any work, regular files only, symlinks written through, and
every output written or none."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from chipcut.compiler.cli.main import main

MODEL = """
import pathlib, torch
pathlib.Path(__file__).with_name("loaded").touch()  # the model was loaded

def mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
"""


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "m.py"
    path.write_text(MODEL)
    return path


def run(model: Path, *extra: str) -> int:
    return main(["compile", f"{model}:mlp", "--input", "2x8", "--chips", "2", "--time-limit", "2",
                 *extra])


@pytest.mark.parametrize("bad, message", [
    ("folder", "is a folder, not a file"),
    ("afile/plan.json", "is a file, not a folder"),
    ("/dev/null", "is a character device"),
])
def test_a_bad_out_path_fails_before_the_model_is_loaded(model, tmp_path, capsys, bad, message) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "afile").write_text("x")
    target = bad if bad.startswith("/") else str(tmp_path / bad)
    assert run(model, "--out", target) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "loaded").exists()
    assert Path("/dev/null").is_char_device()


def test_an_unknown_backend_fails_before_the_model_is_loaded(model, tmp_path, capsys) -> None:
    assert run(model, "--backend", "no-such-chip") == 2
    assert "unknown backend 'no-such-chip'" in capsys.readouterr().err
    assert not (tmp_path / "loaded").exists()


def test_the_same_file_twice_is_refused(model, tmp_path, capsys) -> None:
    out = str(tmp_path / "x.json")
    assert run(model, "--out", out, "--trace", out) == 2
    assert "both name" in capsys.readouterr().err


def test_a_symlink_is_written_through(model, tmp_path) -> None:
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert run(model, "--out", str(link)) == 0
    assert link.is_symlink() and json.loads(target.read_text())["schema_version"] >= 1


def test_a_failing_output_leaves_nothing_behind(model, tmp_path, monkeypatch, capsys) -> None:
    import chipcut.compiler.views.plots as plots

    def broken(plan, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(plots, "plot_plan", broken)
    out, png = tmp_path / "plan.json", tmp_path / "plan.png"
    out.write_text("previous plan")
    assert run(model, "--out", str(out), "--plot", str(png)) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert out.read_text() == "previous plan" and not png.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_outputs_are_written_together(model, tmp_path) -> None:
    out, trace, png = tmp_path / "p.json", tmp_path / "t.json", tmp_path / "p.png"
    assert run(model, "--out", str(out), "--trace", str(trace), "--plot", str(png)) == 0
    assert json.loads(trace.read_text())["traceEvents"]
    assert png.read_bytes()[:4] == b"\x89PNG" and out.stat().st_size > 0
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
