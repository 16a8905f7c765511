"""Measured: JSON round-trips exactly, and a file of another version, another plan or a bad
field is one line naming what to do."""

from __future__ import annotations

import json
import re

import pytest
import torch

import chipcut
from chipcut.compiler.plan.measured import (
    MEASURED_SCHEMA_VERSION,
    LinkMeasure,
    Measured,
    Span,
    StageMeasure,
    plan_hash,
)


@pytest.fixture(scope="module")
def plan() -> chipcut.Plan:
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    return chipcut.compile(net, (torch.randn(1, 8),), chips=2, time_limit_s=5)


def measured_of(plan: chipcut.Plan) -> Measured:
    return Measured(MEASURED_SCHEMA_VERSION, plan.fingerprint, plan_hash(plan), "net", "1f1b", 8,
                    4, 1, "cpu", "gloo", True,
                    (StageMeasure(0, 0, 0, (0,), 1e-6, 2e-5, 2.5e-5, 8),
                     StageMeasure(1, 1, 1, (1,), 2e-6, 3e-5, 3.5e-5, 8)),
                    (LinkMeasure(0, 1, 64, 64, 1e-4, 1e-9),), 900.0, 1e5, 1e-3, 1e-5, "link 0->1",
                    "chip 1", 0.0, 0.5, 2.0, "here",
                    (Span(0, "forward", 1, 0, 0.0, 2e-5), Span(1, "transfer", 1, 0, 2e-5, 1e-4)))


def test_round_trips_exactly_beside_its_plan(plan, tmp_path) -> None:
    m = measured_of(plan)
    m.to_json(tmp_path / "m.json")
    assert Measured.from_json(tmp_path / "m.json", chipcut.Plan.from_json(plan.to_json())) == m
    assert Measured.from_json(m.to_json()) == m


def test_plan_hash_follows_the_plan_json(plan) -> None:
    assert plan_hash(chipcut.Plan.from_json(plan.to_json())) == plan_hash(plan)
    other = chipcut.Plan.from_dict({**json.loads(plan.to_json()), "passes": "none"})
    assert plan_hash(other) != plan_hash(plan)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(schema_version=99), "has schema_version 99, this chipcut reads 1"),
    (lambda d: d.pop("frames"), "measured field measured.frames is missing"),
    (lambda d: d["stages"][0].update(busy_s="fast"), "measured.stages[0].busy_s = 'fast' must be float"),
    (lambda d: d.update(plan_hash="0" * 16), "was measured on another plan (plan hash 0000"),
])
def test_bad_files_are_one_line(plan, tmp_path, edit, message) -> None:
    data = measured_of(plan).to_dict()
    edit(data)
    path = tmp_path / "m.json"
    path.write_text(json.dumps(data))
    with pytest.raises(chipcut.ChipcutError, match=re.escape(message)) as info:
        Measured.from_json(path, plan)
    assert "\n" not in str(info.value)


def test_unreadable_and_corrupt_files(tmp_path) -> None:
    with pytest.raises(chipcut.ChipcutError, match="cannot read measured file"):
        Measured.from_json(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(chipcut.ChipcutError, match="is not valid JSON"):
        Measured.from_json(tmp_path / "bad.json")


def test_outputs_that_differ_are_said_to(plan) -> None:
    from dataclasses import replace

    from chipcut.compiler.runtime.run import _checked
    from chipcut.compiler.views.measured import render

    m = measured_of(plan)  # max abs diff 0 at output scale 0.5
    assert m.outputs_agree and "DIFFER" not in render(m)
    assert replace(m, max_abs_diff=9e-5).outputs_agree  # rounding, under 1e-4
    off = replace(m, max_abs_diff=0.2, output_scale=3.0)
    assert not off.outputs_agree
    assert "they DIFFER, the pipeline did not compute the model" in render(off)
    with pytest.warns(chipcut.ChipcutWarning, match=r"differ from the unsplit model's by up to 0\.2 "):
        _checked(off)
