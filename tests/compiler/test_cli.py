"""The chipcut CLI: compile/show/backends, and one-line user errors with exit code 2."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch

from chipcut.compiler.cli.main import main

FACTORY = textwrap.dedent("""
    import torch

    def tiny():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32),
                                   torch.nn.ReLU(), torch.nn.Linear(32, 4))

    def with_inputs():
        return tiny(), (torch.randn(1, 8),)

    def broken():
        raise ValueError("boom")
""")


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "models_for_cli.py"
    path.write_text(FACTORY)
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_compile_prints_table_and_writes_plan(capsys, model_file, tmp_path) -> None:
    out_path = tmp_path / "plan.json"
    code, out, err = run(capsys, "compile", f"{model_file}:tiny", "--input", "1x8", "--chips", "2",
                         "--out", str(out_path))
    assert code == 0, err
    assert "MACs %" in out and "solver: OPTIMAL" in out
    data = json.loads(out_path.read_text())
    assert data["model"]["macs"] == 8 * 32 + 32 * 32 + 32 * 4
    assert len(data["stages"]) == 2
    code, shown, _ = run(capsys, "show", str(out_path))
    assert code == 0 and shown.splitlines()[-1] == out.splitlines()[-2]


def test_factory_may_return_inputs(capsys, model_file) -> None:
    code, out, err = run(capsys, "compile", f"{model_file}:with_inputs", "--chips", "3")
    assert code == 0, err
    assert "3 x generic" in out


def test_pt2_file(capsys, model_file, tmp_path) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    path = tmp_path / "m.pt2"
    torch.export.save(torch.export.export(model, (torch.randn(1, 8),)), path)
    code, out, err = run(capsys, "compile", str(path), "--chips", "2")
    assert code == 0, err
    assert "m: 2 x generic" in out


def test_backends_lists_generic(capsys) -> None:
    code, out, _ = run(capsys, "backends")
    assert code == 0 and "generic" in out and "SRAM" in out


@pytest.mark.parametrize("argv, message", [
    (["compile", "missing_file.py:f", "--input", "1x8"], "does not exist"),
    (["compile", "{model}:tiny", "--input", "1xx8"], "bad --input '1xx8'"),
    (["compile", "{model}:tiny", "--input", "1x8:float99"], "unknown dtype 'float99'"),
    (["compile", "{model}:tiny", "--input", "1x8", "--backend", "nope"], "known backends: "),
    (["compile", "{model}:tiny", "--input", "1x8", "--chips", "0"], "need at least 1 chip"),
    (["compile", "{model}:tiny", "--input", "1x8", "--chips", "99"], "use at most"),
    (["compile", "{model}:tiny"], "needs example inputs"),
    (["compile", "{model}:nothing", "--input", "1x8"], "has no attribute 'nothing'"),
    (["compile", "no.such.module:f", "--input", "1x8"], "cannot import"),
    (["compile", "{model}:tiny", "--input", "1x9"], "check the --input shapes"),
    (["compile", "{model}:broken", "--input", "1x8"], "raised ValueError: boom"),
    (["show", "missing.json"], "cannot read plan"),
    (["compile", "{model}:tiny", "--input", "1x8", "--passes", "fold-bn,fusion"],
     "unknown pass 'fusion'; known passes: cse, fold-bn, fuse, quantize{"),
    (["compile", "{model}:tiny", "--input", "1x8", "--passes", "quantize{dtype=fp8}"],
     "pass quantize{dtype=fp8} failed at node linear_1: linear_1 (2) would compute in fp8"),
])
def test_user_errors_are_one_line_exit_2(capsys, model_file, tmp_path, argv, message) -> None:
    out_path = tmp_path / "never.json"
    argv = [a.replace("{model}", str(model_file)) for a in argv] + (
        ["--out", str(out_path)] if argv[0] == "compile" else [])
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    lines = [line for line in err.splitlines() if line.startswith("chipcut: error")]
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err
    assert not out_path.exists()


def test_a_model_file_that_fails_to_load_is_one_line(capsys, tmp_path) -> None:
    bad = tmp_path / "bad_model.py"
    bad.write_text("raise ValueError('no weights here')\n")
    code, out, err = run(capsys, "compile", f"{bad}:f", "--input", "1x8", "--out",
                         str(tmp_path / "never.json"))
    assert code == 2 and out == "" and "Traceback" not in err
    assert f"model file {bad} raised ValueError while loading: no weights here" in err


def test_corrupt_plan_is_one_line(capsys, tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    code, _, err = run(capsys, "show", str(bad))
    assert code == 2 and "not valid JSON" in err and "Traceback" not in err


def test_compile_takes_a_pass_pipeline(capsys, model_file) -> None:
    code, out, err = run(capsys, "compile", f"{model_file}:tiny", "--input", "1x8", "--chips", "2",
                         "--passes", "quantize{dtype=int8,first_last=int8},fuse")
    assert code == 0, err
    assert "passes: quantize{dtype=int8,first_last=int8},fuse (2 fused groups, 3 partition units)" in out
    assert "quantize: quantize{dtype=int8,first_last=int8}: MAC layers int8 x3; output SQNR" in out
    params = 8 * 32 + 32 + 32 * 32 + 32 + 32 * 4 + 4
    assert f"quantize saved: weights {4 * params / 1e3:.3g} kB -> {params / 1e3:.3g} kB" in out


def test_bad_option_value_is_one_line(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["compile", "x:y", "--topology", "mesh"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1
    assert "invalid choice: 'mesh'" in err and "chipcut compile --help" in err
