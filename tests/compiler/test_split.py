"""Split: per-chip GraphModules reproduce the unsplit model (fp32, max abs diff <= 1e-5)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.utils._pytree as pytree

import chipcut
from chipcut.backends.registry import get_backend
from chipcut.backends.roofline import RooflineBackend
from chipcut.backends.spec import LinkSpec
from chipcut.core.errors import ChipcutError

# A free link, so that the solver spreads even tiny models over every chip.
FREE_LINK = RooflineBackend(replace(get_backend("generic").spec, name="free-link",
                                    link=LinkSpec(1e18, 0.0)))


def check_split(model: torch.nn.Module, inputs: tuple, chips: int) -> chipcut.Plan:
    plan = chipcut.compile(model, inputs, chips=chips, time_limit_s=5, backend=FREE_LINK)
    assert all(s.nodes for s in plan.stages)
    parts = plan.split()
    assert len(parts.stages) == sum(1 for s in plan.stages if s.nodes)
    assert all(isinstance(s, torch.fx.GraphModule) for s in parts.stages)
    with torch.no_grad():
        expected = [e for e in pytree.tree_leaves(model(*inputs)) if isinstance(e, torch.Tensor)]
    got = parts.run_stages(*inputs)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert (g - e).abs().max().item() <= 1e-5
    # Stage modules own their weights and take only activations.
    for stage, names in zip(parts.stages, parts.stage_inputs, strict=True):
        assert not any(n.startswith("w_") for n in names)
        assert all(p.op != "placeholder" or p.name in names for p in stage.graph.nodes)
    return plan


@pytest.mark.parametrize("chips", [2, 3, 4])
def test_residual_cnn_split_matches(residual_cnn, chips: int) -> None:
    plan = check_split(*residual_cnn, chips)
    assert len(plan.stages) == chips


@pytest.mark.parametrize("chips", [2, 4])
def test_transformer_encoder_split_matches(small_bert, chips: int) -> None:
    model, inputs = small_bert
    plan = check_split(model, inputs, chips)
    assert plan.metrics.bytes_moved > 0


@pytest.mark.parametrize("chips", [2, 3])
def test_several_inputs_and_outputs_split_matches(two_in_two_out, chips: int) -> None:
    check_split(*two_in_two_out, chips)


def test_split_of_loaded_plan_needs_the_graph(residual_cnn, tmp_path) -> None:
    model, inputs = residual_cnn
    plan = chipcut.compile(model, inputs, chips=2, time_limit_s=5, backend=FREE_LINK)
    loaded = chipcut.Plan.from_json(plan.to_json(tmp_path / "plan.json") and tmp_path / "plan.json")
    with pytest.raises(ChipcutError, match="pass one"):
        loaded.split()
    with pytest.raises(ChipcutError, match=r"^plan.split takes the captured graph, not a "
                       r"\w+: plan.split\(chipcut.capture\(model, inputs\).graph_module\)$"):
        loaded.split(model)
    parts = loaded.split(chipcut.capture(model, inputs).graph_module)
    assert (parts(*inputs)[0] - model(*inputs)).abs().max().item() <= 1e-5


def test_split_refuses_a_graph_the_plan_was_not_made_for(residual_cnn) -> None:
    model, inputs = residual_cnn
    plan = chipcut.compile(model, inputs, chips=2, time_limit_s=5)
    loaded = chipcut.Plan.from_json(plan.to_json())
    same = loaded.split(chipcut.capture(model, inputs).graph_module)
    torch.testing.assert_close(same.run_stages(*inputs)[0], model(*inputs), rtol=1e-4, atol=1e-4)
    other = chipcut.capture(model, (torch.randn(1, 3, 64, 64),)).graph_module  # same names, new shapes
    with pytest.raises(chipcut.ChipcutError, match="differs from the plan's"):
        loaded.split(other)
