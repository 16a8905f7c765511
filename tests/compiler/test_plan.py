"""Plan: JSON round-trip is exact, schema is checked (atomic writes: tests/core/test_files.py)."""

from __future__ import annotations

import json
from dataclasses import replace

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


def _classed_backend():
    from chipcut.backends.registry import get_backend
    from chipcut.backends.roofline import RooflineBackend

    spec = get_backend("generic").spec
    return RooflineBackend(replace(spec, name="classed", class_efficiency={
        "dense": 0.8, "depthwise": 0.2, "small-map": 0.6, "elementwise": 0.5}))


def test_per_class_efficiencies_round_trip_through_plan_json(residual_cnn) -> None:
    from chipcut.backends.loader import from_dict
    from chipcut.compiler.plan.revalidate import revalidate

    plan = chipcut.compile(*residual_cnn, chips=1, backend=_classed_backend(), time_limit_s=5)
    loaded = Plan.from_json(plan.to_json())
    assert loaded == plan
    (record,) = loaded.chip_specs
    assert record.spec["compute"]["efficiency"] == {"dense": 0.8, "depthwise": 0.2,
                                                    "small-map": 0.6, "elementwise": 0.5}
    assert from_dict(record.spec, "plan").spec == _classed_backend().spec
    assert {r.op_class for r in loaded.graph.nodes if r.macs} == {"narrow", "gemm"}  # run as dense
    recosted, edited = revalidate(loaded)
    assert not edited and recosted.stages[0].time_s == plan.stages[0].time_s


def test_old_plan_without_op_classes_loads_and_costs_at_compute_efficiency(residual_cnn) -> None:
    from chipcut.compiler.plan.revalidate import revalidate

    plan = chipcut.compile(*residual_cnn, chips=1, time_limit_s=5)  # generic: no per-class figures
    data = json.loads(plan.to_json())
    for record in data["graph"]["nodes"]:
        del record["op_class"]  # as written before op classes existed
    old = Plan.from_dict(data)
    assert all(r.op_class is None for r in old.graph.nodes)
    recosted, edited = revalidate(old)
    assert not edited and recosted.stages[0].time_s == plan.stages[0].time_s
