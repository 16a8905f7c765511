"""Hand-edited plans: moved nodes are re-costed; a plan that is no longer a pipeline is refused."""

from __future__ import annotations

import dataclasses
import json

import pytest

import chipcut
from chipcut.compiler.cli.main import main
from chipcut.compiler.plan.model import Plan, content_digest
from chipcut.compiler.plan.revalidate import revalidate
from chipcut.core.errors import ChipcutError


@pytest.fixture
def saved(residual_cnn, tmp_path):
    plan = chipcut.compile(*residual_cnn, chips=2, time_limit_s=5, passes="none")
    path = tmp_path / "plan.json"
    plan.to_json(path)
    return plan, path


def edit(path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_unchanged_plan_is_left_alone(saved) -> None:
    plan, path = saved
    loaded, edited = revalidate(Plan.from_json(path))
    assert not edited and loaded == plan


def test_moving_the_boundary_node_is_recosted(saved, capsys) -> None:
    plan, path = saved
    last = plan.stages[0].nodes[-1]

    def move(data):  # the last node of chip 0 becomes the first of chip 1: still a pipeline
        data["stages"][0]["nodes"].remove(last)
        data["stages"][1]["nodes"].insert(0, last)

    records = {r.name: r for r in plan.graph.nodes}
    unit = records[last].unit
    if sum(r.unit == unit for r in plan.graph.nodes) > 1:
        pytest.skip("the boundary node is part of a fused unit")
    edit(path, move)
    replanned, edited = revalidate(Plan.from_json(path))
    assert edited and replanned.solver.status == "EDITED"
    assert replanned.stages[1].nodes[0] == last
    assert replanned.stages[0].macs + replanned.stages[1].macs == plan.model.macs
    assert replanned.metrics.bottleneck_s >= plan.solver.bound
    assert replanned.stages[1].macs == plan.stages[1].macs + records[last].macs
    assert main(["show", str(path)]) == 0
    assert "plan was edited by hand: re-validated and re-costed" in capsys.readouterr().out


def _slower(data: dict) -> None:
    """What an older chipcut could have written: another time for stage 0."""
    data["stages"][0]["time_s"] *= 1.5


@pytest.mark.parametrize(("digest", "status", "says"), [
    ("kept", "RECOSTED", "plan was costed by another version of chipcut: re-costed"),
    ("stale", "EDITED", "plan was edited by hand"),
    ("none", "EDITED", "plan differs from what this chipcut computes for it (edited by hand, "
                       "or costed by another version)"),
])
def test_show_tells_a_hand_edit_from_another_versions_costs(saved, capsys, digest: str,
                                                            status: str, says: str) -> None:
    plan, path = saved
    assert Plan.from_json(path).intact is True

    def change(data):
        _slower(data)
        if digest == "kept":  # written so by chipcut itself, only costed otherwise
            data["digest"] = content_digest(data)
        elif digest == "none":  # a plan from before plans carried a digest
            del data["digest"]

    edit(path, change)
    loaded = Plan.from_json(path)
    assert loaded.intact is {"kept": True, "stale": False, "none": None}[digest]
    again, changed = revalidate(loaded)
    assert changed and again.solver.status == status and again.stages == plan.stages
    assert main(["show", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(says) and f"solver: {status}" in out


def test_a_plan_changed_through_the_api_is_edited_not_recosted(saved, capsys) -> None:
    plan, path = saved
    slower = dataclasses.replace(plan.stages[0], time_s=plan.stages[0].time_s * 1.5)
    changed = dataclasses.replace(plan, stages=(slower, *plan.stages[1:]))
    assert changed.intact is None  # not loaded; replace does not carry a loaded plan's state
    assert revalidate(changed)[0].solver.status == "EDITED"
    changed.to_json(path)  # saved with the digest chipcut gave the plan it started from
    assert Plan.from_json(path).intact is False
    assert main(["show", str(path)]) == 0
    assert capsys.readouterr().out.startswith("plan was edited by hand")
    again = revalidate(Plan.from_json(path))[0]  # chipcut's own result: sealed afresh
    again.to_json(path)
    assert Plan.from_json(path).intact is True and revalidate(Plan.from_json(path))[1] is False


def test_hand_edited_figures_are_computed_again(saved, capsys) -> None:
    plan, path = saved

    def change(data):  # a figure no stage or transfer shows, and a chip the title does not
        data["metrics"]["throughput_per_s"] = 1e12
        data["backend"] = "t4"

    edit(path, change)
    again, changed = revalidate(Plan.from_json(path))
    assert changed and again.metrics == plan.metrics and again.backend == plan.backend
    assert main(["show", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("plan was edited by hand") and "1e+12" not in out
    assert f"throughput {plan.metrics.throughput_per_s:.4g}/s" in out


def test_a_hand_edited_model_total_is_counted_again(saved, capsys) -> None:
    plan, path = saved
    edit(path, lambda data: data["model"].update(macs=1, units=1))
    again, changed = revalidate(Plan.from_json(path))
    assert changed and again.model == plan.model
    assert again.model.macs == sum(s.macs for s in plan.stages) > 1


def test_backward_edge_is_refused(saved, capsys) -> None:
    plan, path = saved
    first = plan.stages[0].nodes[0]

    def move(data):
        data["stages"][0]["nodes"].remove(first)
        data["stages"][1]["nodes"].append(first)

    edit(path, move)
    with pytest.raises(ChipcutError, match=f"reads {first} from chip 1, a later chip"):
        revalidate(Plan.from_json(path))
    assert main(["show", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no longer a pipeline" in err


def test_dropped_and_duplicated_nodes_are_named(saved) -> None:
    plan, path = saved
    node = plan.stages[1].nodes[0]
    edit(path, lambda d: d["stages"][1]["nodes"].remove(node))
    with pytest.raises(ChipcutError, match=f"node {node} is in no stage"):
        revalidate(Plan.from_json(path))
    edit(path, lambda d: d["stages"][0]["nodes"].extend([node, node]))
    with pytest.raises(ChipcutError, match=f"node {node} is in stages 0 and 0"):
        revalidate(Plan.from_json(path))


def test_splitting_a_fused_group_is_refused(residual_cnn, tmp_path) -> None:
    plan = chipcut.compile(*residual_cnn, chips=2, time_limit_s=5, passes="fuse")
    path = tmp_path / "plan.json"
    plan.to_json(path)
    first = next(s for s in plan.stages if s.nodes).nodes[0]  # an anchor with its epilogue
    chip = next(s.chip for s in plan.stages if first in s.nodes)

    def move(data):
        data["stages"][chip]["nodes"].remove(first)
        data["stages"][1 - chip]["nodes"].insert(0, first)

    edit(path, move)
    with pytest.raises(ChipcutError, match=f"nodes {first} and .* form one fused unit"):
        revalidate(Plan.from_json(path))


def test_a_plan_with_every_node_on_the_first_of_three_chips_is_recosted(residual_cnn,
                                                                         tmp_path) -> None:
    # Two empty chips at the end of the pipeline: each receives and sends nothing.
    plan = chipcut.compile(*residual_cnn, chips=3, time_limit_s=5, passes="none")
    path = tmp_path / "plan.json"
    plan.to_json(path)

    def all_on_chip_0(data):
        for stage in data["stages"][1:]:
            data["stages"][0]["nodes"] += stage["nodes"]
            stage["nodes"] = []
    edit(path, all_on_chip_0)
    replanned, edited = revalidate(Plan.from_json(path))
    assert edited and [len(s.nodes) > 0 for s in replanned.stages] == [True, False, False]
    assert [(s.in_bytes, s.out_bytes) for s in replanned.stages[1:]] == [(0, 0), (0, 0)]
    assert replanned.stages[0].macs == plan.model.macs
