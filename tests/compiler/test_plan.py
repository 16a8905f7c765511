"""Plan: JSON round-trip is exact, schema is checked (atomic writes: tests/core/test_files.py)."""

from __future__ import annotations

import json

import pytest

import chipcut
from chipcut.compiler.plan.model import SCHEMA_VERSION, Plan
from chipcut.core.errors import ChipcutError


@pytest.fixture
def plan(residual_cnn) -> Plan:
    # A host link fast enough not to be the bottleneck: the plan then cuts (and has transfers)
    # rather than keeping the small model on one chip.
    fast_host = chipcut.CompileOptions(time_limit_s=5, host_bytes_per_s=1e15, host_latency_s=0.0)
    return chipcut.compile(*residual_cnn, chips=3, options=fast_host)


def test_json_round_trip_is_exact(plan: Plan, tmp_path) -> None:
    path = tmp_path / "plan.json"
    text = plan.to_json(path)
    assert path.read_text() == text
    loaded = Plan.from_json(path)
    assert loaded == plan
    assert loaded.to_json() == text


def test_json_has_the_documented_fields(plan: Plan) -> None:
    data = json.loads(plan.to_json())
    assert data["schema_version"] == SCHEMA_VERSION
    assert {"name", "macs", "nodes"} <= set(data["model"])
    assert {"chip", "nodes", "macs", "weight_bytes", "in_bytes", "out_bytes", "time_s"} <= set(
        data["stages"][0])
    assert {"src", "dst", "bytes", "tensors"} <= set(data["transfers"][0])
    assert {"throughput_per_s", "latency_s", "bottleneck_chip"} <= set(data["metrics"])
    assert {"status", "objective", "bound", "gap", "wall_s"} <= set(data["solver"])


def test_wrong_schema_version_is_refused(plan: Plan) -> None:
    data = json.loads(plan.to_json())
    data["schema_version"] = 99
    with pytest.raises(ChipcutError, match="schema_version is 99"):
        Plan.from_dict(data)


def test_missing_and_mistyped_fields_are_named(plan: Plan) -> None:
    data = json.loads(plan.to_json())
    del data["stages"][1]["macs"]
    with pytest.raises(ChipcutError, match=r"plan.stages\[1\].macs is missing"):
        Plan.from_dict(data)
    data = json.loads(plan.to_json())
    data["metrics"]["latency_s"] = "fast"
    with pytest.raises(ChipcutError, match="plan.metrics.latency_s = 'fast' must be float"):
        Plan.from_dict(data)
