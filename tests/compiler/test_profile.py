"""Profiles: every unit timed on this CPU, the file round-trips, and a compile costs units by it."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import chipcut
from chipcut.compiler.api import CompileOptions, lower
from chipcut.compiler.lowering.costing import is_free
from chipcut.compiler.plan.model import Plan
from chipcut.compiler.plan.profile import Profile
from chipcut.compiler.plan.revalidate import revalidate
from chipcut.compiler.runtime.profile import ProfileOptions, run_units, unit_module
from chipcut.core.errors import ChipcutError

NO_PASSES = CompileOptions(passes="none", time_limit_s=5)


class TwoHeads(torch.nn.Module):
    """Two linear heads reading one position table: ``arange+view`` is a unit with no work."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = torch.nn.Linear(16, 32), torch.nn.Linear(16, 32)
        self.c = torch.nn.Linear(32, 8)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pos = torch.arange(16, dtype=torch.float32).view(1, 16)
        return self.c(torch.relu(self.a(x + pos))), self.b(x * pos)


INPUTS = (torch.randn(2, 16),)


@pytest.fixture(scope="module")
def lowered() -> chipcut.Lowered:
    return lower(TwoHeads(), INPUTS, 1, "cpu", NO_PASSES)


@pytest.fixture(scope="module")
def profile() -> Profile:
    return chipcut.profile(TwoHeads(), INPUTS, "cpu", NO_PASSES, warmup=1, repeats=3)


def test_every_unit_is_timed_and_free_units_cost_nothing(profile, lowered) -> None:
    assert [u.key for u in profile.units] == [w.key for w in lowered.works]
    free = {w.key for w in lowered.works if is_free(w)}
    assert free == {"arange+view"}
    for u in profile.units:
        if u.key in free:
            assert (u.time_s, u.min_s, u.max_s) == (0.0, 0.0, 0.0)
        else:
            assert 0 < u.min_s <= u.time_s <= u.max_s
    assert profile.fingerprint == lowered.fingerprint and profile.passes == lowered.passes
    assert (profile.device, profile.threads, profile.repeats, profile.clock) == (
        "cpu", 1, 3, "thread_time")
    assert profile.model_s > 0 and profile.backend == "cpu"


def test_the_units_run_in_order_give_the_graphs_outputs(lowered) -> None:
    gm = lowered.graph_module
    modules = [unit_module(gm, names) for names in lowered.units.units]
    inputs = dict(zip([n.name for n in gm.graph.nodes if n.op == "placeholder"], INPUTS,
                      strict=True))
    with torch.no_grad():
        values, _ = run_units(modules, inputs, [False] * len(modules), None)
        expected = gm(*INPUTS)
    output = next(n for n in gm.graph.nodes if n.op == "output").args[0]
    got = tuple(values[n.name] for n in output)
    torch.testing.assert_close(got, tuple(expected), rtol=0, atol=0)
    assert len(modules[2].module.graph.find_nodes(op="get_attr")) == 2  # weights, not inputs


def test_json_round_trips_exactly(profile, tmp_path) -> None:
    path = tmp_path / "profile.json"
    text = profile.to_json(path)
    assert Profile.from_json(path) == profile
    assert Profile.from_json(text) == profile


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: {**d, "schema_version": 99}, "schema_version 99, this chipcut reads 1"),
    (lambda d: {k: v for k, v in d.items() if k != "threads"}, "field threads is missing"),
    (lambda d: {**d, "units": [{**d["units"][0], "time_s": -1}]}, r"units\[0\]: field time_s"),
    (lambda d: {**d, "model_s": "fast"}, "field model_s = 'fast' must be float"),
])
def test_a_bad_profile_file_is_a_one_line_error(profile, edit, message) -> None:
    import json

    with pytest.raises(ChipcutError, match=message) as e:
        Profile.from_json(json.dumps(edit(profile.to_dict())))
    assert "\n" not in str(e.value)


def test_compile_costs_each_unit_by_its_profiled_time(profile) -> None:
    plan = chipcut.compile(TwoHeads(), INPUTS, 2, "cpu", NO_PASSES, profile=profile)
    times = profile.times_s()
    assert plan.chips == ("profiled:TwoHeads",) * 2 and plan.backend == "profiled:TwoHeads"
    unit_keys: dict[int, list[str]] = {}
    for r in plan.graph.nodes:
        unit_keys.setdefault(r.unit, []).append(r.name)
    for stage, timeline in zip(plan.stages, plan.timeline, strict=True):
        mine = {r.unit for r in plan.graph.nodes if r.name in stage.nodes}
        expected = sum(times["+".join(unit_keys[u])] for u in mine)
        assert sum(op.end_s - op.start_s for op in timeline.ops) == pytest.approx(expected,
                                                                                   rel=1e-12)
        assert stage.time_s == pytest.approx(expected, rel=1e-12)  # the cpu link overlaps


def test_show_recosts_a_profiled_plan_to_the_same_figures(profile) -> None:
    plan = chipcut.compile(TwoHeads(), INPUTS, 2, "cpu", NO_PASSES, profile=profile)
    loaded = Plan.from_json(plan.to_json())
    assert loaded.chip_specs[0].spec["profile"]["times_s"] == profile.times_s()
    again, edited = revalidate(loaded)
    assert not edited and again.stages == plan.stages


def test_a_profile_of_another_graph_is_refused(profile) -> None:
    with pytest.raises(ChipcutError, match="measured on another graph") as e:
        chipcut.compile(TwoHeads(), (torch.randn(3, 16),), 2, "cpu", NO_PASSES, profile=profile)
    assert "\n" not in str(e.value)


def test_a_profile_missing_a_unit_is_refused(profile) -> None:
    lacking = replace(profile, units=profile.units[:-1])
    last = profile.units[-1].key
    with pytest.raises(ChipcutError, match=rf"no time for unit '{last}' \(1 unit\(s\) missing\)"):
        chipcut.compile(TwoHeads(), INPUTS, 2, "cpu", NO_PASSES, profile=lacking)
    with pytest.raises(ChipcutError, match="lowered with passes 'none', this compile with"):
        chipcut.compile(TwoHeads(), INPUTS, 2, "cpu", time_limit_s=5, profile=profile)


def test_a_profile_at_another_thread_count_is_refused(profile) -> None:
    with pytest.raises(ChipcutError, match=r"measured with 1 thread\(s\), this compile asks for 2"):
        chipcut.compile(TwoHeads(), INPUTS, 2, "cpu", NO_PASSES, profile=profile, threads=2)


def test_a_profile_times_one_kind_of_chip(profile) -> None:
    with pytest.raises(ChipcutError, match="a profile times one device, but the chips are cpu, generic"):
        chipcut.compile(TwoHeads(), INPUTS, ["cpu", "generic"], "cpu", NO_PASSES, profile=profile)


def test_a_model_on_the_meta_device_cannot_be_profiled() -> None:
    with torch.device("meta"):
        model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU())
    with pytest.raises(ChipcutError, match="captured on the meta device") as e:
        chipcut.profile(model, (torch.randn(2, 16, device="meta"),), "cpu", NO_PASSES)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(("options", "message"), [
    (dict(threads=0), "threads = 0: must be a whole number >= 1"),
    (dict(repeats=0), "repeats = 0: must be a whole number >= 1"),
    (dict(device="tpu"), "device = 'tpu': profile on one of cpu, cuda"),
])
def test_profile_options_are_checked(options, message) -> None:
    with pytest.raises(ChipcutError, match=message):
        ProfileOptions(**options)


def test_profile_under_background_load_records_it() -> None:
    """With load=1 another process runs the graph while the units are timed (as a second
    pipeline stage on this host would); the profile says so and still times every unit."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 8))
    prof = chipcut.profile(net, (torch.randn(4, 256),), "cpu", repeats=3, load=1)
    assert prof.load == 1 and all(u.time_s > 0 for u in prof.units)
    assert chipcut.Profile.from_json(prof.to_json()) == prof
    with pytest.raises(chipcut.ChipcutError, match="load = -1"):
        chipcut.profile(net, (torch.randn(4, 256),), "cpu", load=-1)
