"""``chipcut profile`` and ``chipcut compile --profile``: files written, and user errors as one
line with exit code 2 and no file written."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from chipcut.compiler.cli.main import main

FACTORY = textwrap.dedent("""
    import torch

    def tiny():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32),
                                   torch.nn.ReLU(), torch.nn.Linear(32, 4))

    def on_meta():
        with torch.device("meta"):
            return tiny()
""")
FAST = ("--warmup", "1", "--repeats", "2")


@pytest.fixture
def model(tmp_path: Path) -> str:
    path = tmp_path / "models_for_profile.py"
    path.write_text(FACTORY)
    return f"{path}:tiny"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def profile_file(capsys, model, tmp_path) -> Path:
    path = tmp_path / "profile.json"
    code, out, err = run(capsys, "profile", model, "--input", "1x8", "--backend", "cpu", *FAST,
                         "--out", str(path))
    assert code == 0, err
    assert "3 units (3 timed) on cpu" in out and f"profile written to {path}" in out
    return path


def test_profile_then_compile_with_it(capsys, model, profile_file, tmp_path) -> None:
    data = json.loads(profile_file.read_text())
    assert data["schema_version"] == 1 and data["threads"] == 1
    assert [u["key"] for u in data["units"]] == ["linear+relu", "linear_1+relu_1", "linear_2"]
    plan = tmp_path / "plan.json"
    code, out, err = run(capsys, "compile", model, "--input", "1x8", "--backend", "cpu",
                         "--chips", "2", "--profile", str(profile_file), "--out", str(plan))
    assert code == 0, err
    assert "2 x profiled:profile.json" in out
    stages = json.loads(plan.read_text())["stages"]
    times = {u["key"]: u["time_s"] for u in data["units"]}
    assert sum(s["time_s"] for s in stages) == pytest.approx(sum(times.values()), rel=1e-12)
    code, shown, err = run(capsys, "show", str(plan))
    assert code == 0 and "edited" not in shown, err


def one_line_error(code: int, out: str, err: str, message: str) -> None:
    assert code == 2 and out == ""
    assert err.startswith("chipcut: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_compile_with_a_profile_of_other_shapes_writes_nothing(capsys, model, profile_file,
                                                               tmp_path) -> None:
    plan = tmp_path / "plan.json"
    code, out, err = run(capsys, "compile", model, "--input", "2x8", "--backend", "cpu",
                         "--chips", "2", "--profile", str(profile_file), "--out", str(plan))
    one_line_error(code, out, err, "was measured on another graph")
    assert not plan.exists()


@pytest.mark.parametrize(("extra", "message"), [
    (("--threads", "2"), "measured with 1 thread(s), this compile asks for 2"),
    (("--passes", "none"), "has no time for unit 'linear'"),
])
def test_compile_with_a_mismatched_profile_writes_nothing(capsys, model, profile_file, tmp_path,
                                                          extra, message) -> None:
    plan = tmp_path / "plan.json"
    code, out, err = run(capsys, "compile", model, "--input", "1x8", "--backend", "cpu",
                         "--chips", "2", "--profile", str(profile_file), "--out", str(plan), *extra)
    one_line_error(code, out, err, message)
    assert not plan.exists()


def test_compile_with_a_missing_or_broken_profile(capsys, model, tmp_path) -> None:
    plan = tmp_path / "plan.json"
    code, out, err = run(capsys, "compile", model, "--input", "1x8", "--profile",
                         str(tmp_path / "nope.json"), "--out", str(plan))
    one_line_error(code, out, err, "cannot read profile")
    (tmp_path / "bad.json").write_text("{not json")
    code, out, err = run(capsys, "compile", model, "--input", "1x8", "--profile",
                         str(tmp_path / "bad.json"), "--out", str(plan))
    one_line_error(code, out, err, "is not valid JSON")
    assert not plan.exists()


def test_a_profile_of_no_threads_is_refused(capsys, model, profile_file, tmp_path) -> None:
    data = json.loads(profile_file.read_text())
    data["threads"] = 0
    (tmp_path / "zero.json").write_text(json.dumps(data))
    plan = tmp_path / "plan.json"
    code, out, err = run(capsys, "compile", model, "--input", "1x8", "--profile",
                         str(tmp_path / "zero.json"), "--out", str(plan))
    one_line_error(code, out, err, "field threads = 0 must be >= 1")
    assert not plan.exists()


@pytest.mark.parametrize(("argv", "message"), [
    (("--threads", "0"), "threads = 0: must be a whole number >= 1"),
    (("--repeats", "0"), "repeats = 0"),
    (("--backend", "nope"), "unknown backend 'nope'"),
])
def test_profile_bad_options_write_nothing(capsys, model, tmp_path, argv, message) -> None:
    path = tmp_path / "profile.json"
    code, out, err = run(capsys, "profile", model, "--input", "1x8", *argv, "--out", str(path))
    one_line_error(code, out, err, message)
    assert not path.exists()


def test_profile_of_a_meta_model_writes_nothing(capsys, model, tmp_path) -> None:
    path = tmp_path / "profile.json"
    code, out, err = run(capsys, "profile", model.replace(":tiny", ":on_meta"), "--input", "1x8",
                         "--out", str(path))
    one_line_error(code, out, err, "captured on the meta device")
    assert not path.exists()


def compiled_and_run(capsys, model: str, tmp_path: Path, *flags: str, chips: str = "2",
                     frames: str = "4") -> tuple[Path, Path]:
    """A plan of ``model`` on ``chips`` cpu chips (compile ``flags``) and a measured run of it."""
    plan_path, measured = tmp_path / f"plan-{chips}.json", tmp_path / f"measured-{chips}.json"
    code, _, err = run(capsys, "compile", model, "--input", "1x8", "--backend", "cpu", "--chips",
                       chips, *flags, "--out", str(plan_path))
    assert code == 0, err
    code, _, err = run(capsys, "run", model, str(plan_path), "--input", "1x8", "--frames", frames,
                       "--out", str(measured))
    assert code == 0, err
    return plan_path, measured


def test_refine_scales_each_stage_to_its_measured_run(capsys, model, profile_file,
                                                      tmp_path) -> None:
    import chipcut

    plan_path, measured_path = compiled_and_run(capsys, model, tmp_path, "--profile",
                                                str(profile_file), frames="8")
    plan = chipcut.Plan.from_json(str(plan_path))
    measured = chipcut.Measured.from_json(str(measured_path), plan)
    before = chipcut.Profile.from_json(str(profile_file))
    refined = chipcut.refine(str(profile_file), str(plan_path), str(measured_path))
    busy = {m.chip: m.busy_s for m in measured.stages}
    for stage in plan.stages:  # each stage's units now sum to its measured busy time
        keys = [u.key for u in before.units if u.key.split("+")[0] in stage.nodes]
        old = {u.key: u.time_s for u in before.units if u.key in keys}
        new = {u.key: u.time_s for u in refined.units if u.key in keys}
        assert sum(new.values()) == pytest.approx(busy[stage.chip], rel=1e-12)
        factor = busy[stage.chip] / sum(old.values())
        assert new == pytest.approx({k: t * factor for k, t in old.items()}, rel=1e-12)
    assert refined.refined.startswith(f"scaled to a measured run of plan {measured.plan_hash} (")
    assert chipcut.Profile.from_json(refined.to_json()) == refined
    # Compiling from the refined profile: the plan's stages cost the scaled times.
    code, out, err = run(capsys, "compile", model, "--input", "1x8", "--backend", "cpu",
                         "--chips", "2", "--profile", str(profile_file), "--refine",
                         str(plan_path), str(measured_path), "--out", str(tmp_path / "p2.json"))
    assert code == 0, err
    refined_plan = json.loads((tmp_path / "p2.json").read_text())
    assert sum(s["time_s"] for s in refined_plan["stages"]) == pytest.approx(
        sum(u.time_s for u in refined.units), rel=1e-12)
    # Links: scaled by the median measured / predicted link time of the run.
    ratios = sorted(x.time_s / x.predicted_s for x in measured.links if x.predicted_s > 0)
    assert ratios and refined.link_scale == pytest.approx(ratios[len(ratios) // 2], rel=1e-12)
    assert f"; links x{refined.link_scale:.3f})" in refined.refined
    cpu = chipcut.compiler.api.get_backend("cpu")
    for t in refined_plan["transfers"]:
        assert t["time_s"] == pytest.approx(cpu.link_time_s(t["bytes"]) * refined.link_scale,
                                            rel=1e-9)


def test_refine_without_a_profile_or_with_another_plans_run_writes_nothing(
        capsys, model, profile_file, tmp_path) -> None:
    plan_path = tmp_path / "plan.json"
    code, _, err = run(capsys, "compile", model, "--input", "1x8", "--backend", "cpu",
                       "--chips", "2", "--out", str(plan_path))
    assert code == 0, err
    _, measured = compiled_and_run(capsys, model, tmp_path, chips="1")  # another plan's run
    out_path = tmp_path / "refined-plan.json"
    code, out, err = run(capsys, "compile", model, "--input", "1x8", "--backend", "cpu",
                         "--refine", str(plan_path), str(measured), "--out", str(out_path))
    one_line_error(code, out, err, "--refine PLAN MEASURED rescales the unit times of a "
                   "--profile; give --profile profile.json too")
    code, out, err = run(capsys, "compile", model, "--input", "1x8", "--backend", "cpu",
                         "--profile", str(profile_file), "--refine", str(plan_path),
                         str(measured), "--out", str(out_path))
    assert code == 2 and err.count("\n") == 1 and "was measured on another plan" in err, err
    assert not out_path.exists()


@pytest.mark.parametrize(("edit", "message"), [
    (lambda m: m["stages"][0].update(busy_s=-1e-5),
     "measured field measured.stages[0].busy_s = -1e-05 must be >= 0"),
    (lambda m: m["stages"][0].update(busy_s=0.0), "a stage that ran takes > 0 s"),
    (lambda m: m["stages"][0].update(chip=7), "the measured run has stages on chips [7, 1], "
     "the plan on [0, 1]"),
    (lambda m: m.update(stages=[]), "the measured run has stages on chips [], the plan on [0, 1]"),
    (lambda m: m.update(threads=2), "the measured run used 2 thread(s) per stage on cpu, the "
     "profile 1 on cpu; run the plan with --threads 1"),
])
def test_refine_refuses_a_measured_file_it_cannot_scale_by(capsys, model, profile_file, tmp_path,
                                                           edit, message) -> None:
    plan_path, measured = compiled_and_run(capsys, model, tmp_path, "--profile", str(profile_file))
    data = json.loads(measured.read_text())
    edit(data)
    measured.write_text(json.dumps(data))
    out_path = tmp_path / "refined-plan.json"
    code, out, err = run(capsys, "compile", model, "--input", "1x8", "--backend", "cpu",
                         "--chips", "2", "--profile", str(profile_file), "--refine",
                         str(plan_path), str(measured), "--out", str(out_path))
    one_line_error(code, out, err, message)
    assert not out_path.exists()


def test_refine_names_a_file_given_in_the_wrong_place(capsys, model, profile_file,
                                                      tmp_path) -> None:
    plan_path, measured = compiled_and_run(capsys, model, tmp_path)
    out_path = tmp_path / "refined-plan.json"
    for profile, plan, meas, message in (
            (profile_file, measured, plan_path, f"{measured} is a measured run file, given as "
             "the plan; give the file chipcut compile --out wrote there"),
            (plan_path, plan_path, measured, f"{plan_path} is a plan file, given as the profile"),
            (profile_file, plan_path, profile_file, f"{profile_file} is a profile file, given as "
             "the measured run")):
        code, out, err = run(capsys, "compile", model, "--input", "1x8", "--backend", "cpu",
                             "--profile", str(profile), "--refine", str(plan), str(meas),
                             "--out", str(out_path))
        one_line_error(code, out, err, message)
        assert not out_path.exists()
