"""`chipcut backends`: the registered backends, plus spec files named or calibrated here."""

from __future__ import annotations

from chipcut.backends.presets import PRESETS_DIR
from chipcut.compiler.cli.main import main


def _calibrated_file(folder, machine: str, day: str) -> None:
    text = (PRESETS_DIR / "cpu.toml").read_text()
    text = text.replace('name = "cpu"', 'name = "cpu-calibrated"')
    text = text.replace('description = "host CPU, uncalibrated default', f'description = "{machine}')
    text = text.replace('source = "assumption: nominal', f'source = "calibrated by chipcut calibrate on {day};')
    (folder / "cpu-calibrated.toml").write_text(text)


def test_backends_lists_the_calibrated_file_with_its_machine_and_date(tmp_path, monkeypatch,
                                                                      capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["backends"]) == 0
    assert "cpu-calibrated" not in capsys.readouterr().out
    _calibrated_file(tmp_path, "Test CPU 9000", "2026-11-20 10:00")
    assert main(["backends"]) == 0
    out = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(out) if line.startswith("cpu-calibrated: "))
    assert out[at].endswith("[file cpu-calibrated.toml]")
    assert "Test CPU 9000" in out[at + 1] and "on 2026-11-20 10:00" in out[at + 1]
    assert any(line.startswith("cpu: fp32 192 GMAC/s") for line in out)  # the preset is unchanged


def test_backends_describes_named_spec_files_and_refuses_a_missing_one(tmp_path, capsys) -> None:
    spec = tmp_path / "npu.toml"
    spec.write_text((PRESETS_DIR / "generic.toml").read_text().replace('name = "generic"',
                                                                       'name = "npu"'))
    assert main(["backends", str(spec)]) == 0
    assert f"[file {spec}]" in capsys.readouterr().out
    assert main(["backends", str(tmp_path / "missing.toml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.toml" in err[0]


def test_a_spec_warning_is_printed_beside_the_error_it_explains(tmp_path, capsys) -> None:
    text = (PRESETS_DIR / "generic.toml").read_text().replace('name = "generic"', 'name = "mine"')
    spec = tmp_path / "mine.toml"
    spec.write_text(text + '\n[capabilities]\nops = ["conv2dd"]\n')
    model = tmp_path / "tiny.py"
    model.write_text("import torch\n\ndef model():\n    return torch.nn.Linear(16, 8)\n")
    code = main(["compile", f"{model}:model", "--input", "4x16", "--chips", "1",
                 "--backend", str(spec), "--out", str(tmp_path / "plan.json")])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and len(err) == 2 and not (tmp_path / "plan.json").exists()
    assert err[0].startswith("chipcut: warning: ") and "did you mean 'conv2d'" in err[0]
    assert err[1].startswith("chipcut: error: node linear (linear, fp32) cannot run on any chip")
