"""One cost semantics: the solver's objective is the plan's reported figure, and both agree
with a reference written separately (a frame-by-frame pipeline simulation and explicit
per-tensor routes)."""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import replace

import pytest
import torch
from profile_backend import ProfileBackend

import chipcut
from chipcut.backends.presets import preset_names
from chipcut.backends.registry import get_backend
from chipcut.backends.roofline import RooflineBackend
from chipcut.compiler.plan.revalidate import revalidate
from chipcut.compiler.solver.evaluate import measure
from chipcut.compiler.solver.problem import AffineLink, PartitionProblem


def reference_routes(topology: str, n: int, src: int, readers: list[int]) -> list[tuple[int, int]]:
    """Links a tensor crosses, found by trying every way of sending it (not the product's code)."""
    if topology == "switch":
        return [(src, r) for r in readers]
    if topology == "chain" or n <= 2:
        return [(s, s + 1) for s in range(src, max(readers))] if readers else []
    best = None
    for forward in itertools.product((True, False), repeat=len(readers)):
        links = set()
        for r, fwd in zip(readers, forward, strict=True):
            steps = (r - src) % n if fwd else (src - r) % n
            links |= {((src + i) % n, (src + i + 1) % n) if fwd else ((src - i) % n, (src - i - 1) % n)
                      for i in range(steps)}
        if best is None or len(links) < len(best):
            best = links
    return sorted(best)


def simulate(problem: PartitionProblem, chips: tuple[int, ...], frames: int = 60) -> tuple[float, float]:
    """(steady-state seconds per frame, latency of one frame) of a pipeline with one replica per
    stage, overlapped transfers, simulated frame by frame: each stage and each link is a
    resource that serves one frame at a time, in order."""
    n = problem.n_chips
    stage = [0.0] * n
    for u, k in enumerate(chips):
        stage[k] += problem.unit_time_s[u][k]
    loads: dict[tuple[int, int], int] = {}
    for p, consumers, nbytes in problem.tensors:
        readers = sorted({chips[c] for c in consumers} - {chips[p]})
        for key in reference_routes(problem.topology, n, chips[p], readers):
            loads[key] = loads.get(key, 0) + nbytes
    if problem.topology == "switch":
        total = sum(loads.values())
        links = {("switch",): problem.switch(total)} if total else {}
    else:
        links = {key: problem.links[key[0]](b) for key, b in loads.items()}
    # Resources in the order a frame visits them: host in, stage 0, its outgoing links, ...
    order = [("host in", problem.host_in_s)]
    for k in range(n):
        order.append((f"chip {k}", stage[k]))
        order += [(key, t) for key, t in sorted(links.items(), key=str) if key[0] == k]
    order += [(key, t) for key, t in links.items() if key == ("switch",)]
    order.append(("host out", problem.host_out_s))
    free = {name: 0.0 for name, _ in order}
    done = []
    for _ in range(frames):
        t = 0.0
        for name, seconds in order:
            t = max(t, free[name]) + seconds
            free[name] = t
        done.append(t)
    return done[-1] - done[-2], sum(seconds for _, seconds in order)


def random_problem(rng: random.Random, topology: str) -> PartitionProblem:
    n, chips = rng.randint(3, 7), rng.randint(2, 4)
    tensors = []
    for p in range(n - 1):
        consumers = sorted({p + 1} | {c for c in range(p + 2, n) if rng.random() < 0.4})
        tensors.append((p, tuple(consumers), rng.randint(1, 5000)))
    packet = ProfileBackend()
    links = tuple(rng.choice([AffineLink(rng.uniform(1e5, 1e7), rng.uniform(0, 1e-4)),
                              packet.link_time_s]) for _ in range(chips))
    return PartitionProblem(
        unit_time_s=tuple(tuple(rng.uniform(1e-4, 1e-3) for _ in range(chips)) for _ in range(n)),
        tensors=tuple(tensors), n_chips=chips, links=links, topology=topology,
        switch=AffineLink(rng.uniform(1e5, 1e7), 1e-5), host_in_s=rng.uniform(0, 1e-4),
        host_out_s=rng.uniform(0, 1e-4))


@pytest.mark.parametrize("topology", ["chain", "ring", "switch"])
def test_measure_agrees_with_a_frame_by_frame_simulation(topology: str) -> None:
    rng = random.Random(7)
    checked = 0
    for _ in range(40):
        problem = random_problem(rng, topology)
        n = len(problem.unit_time_s)
        for chips in itertools.product(range(problem.n_chips), repeat=n):
            if any(chips[p] > chips[c] for p, cs, _ in problem.tensors for c in cs):
                continue
            period, latency = simulate(problem, chips)
            m = measure(problem, chips)
            assert m.bottleneck_s == pytest.approx(period, rel=1e-9)
            assert m.latency_s == pytest.approx(latency, rel=1e-9)
            checked += 1
    assert checked > 500


def _tiny_cnn() -> tuple[torch.nn.Module, tuple]:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(16, 32, 3, padding=1),
        torch.nn.ReLU(), torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(32 * 16 * 16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    return net.eval(), (torch.randn(1, 3, 16, 16),)


def _chips() -> list[tuple[str, object]]:
    out = [(name, name) for name in preset_names() if name != "cpu"]
    slow = get_backend("generic")
    out.append(("generic, links without overlap", RooflineBackend(replace(
        slow.spec, name="no-overlap", link=replace(slow.spec.link, overlap=False)))))
    out.append(("profiled plug-in", ProfileBackend()))
    out.append(("profiled plug-in, no overlap", ProfileBackend(name="profiled-serial", overlap=False)))
    return out


@pytest.mark.parametrize(("label", "chip"), _chips(), ids=[label for label, _ in _chips()])
@pytest.mark.parametrize("topology", ["chain", "ring", "switch"])
@pytest.mark.parametrize("objective", ["throughput", "latency"])
def test_solver_objective_is_the_plans_reported_figure(label, chip, topology, objective) -> None:
    plan = chipcut.compile(*_tiny_cnn(), chips=3, backend=chip, topology=topology,
                           objective=objective, time_limit_s=5)
    figure = plan.metrics.latency_s if objective == "latency" else plan.metrics.bottleneck_s
    assert plan.solver.objective == figure  # exactly: one function computed both
    stage_times = [s.time_s / s.replicas for s in plan.stages if s.replicas]
    assert plan.metrics.bottleneck_s >= max(stage_times)
    assert plan.solver.bound <= plan.solver.objective


def test_a_plugins_link_model_is_what_the_solver_and_the_plan_both_use() -> None:
    """The bug this guards: a plug-in whose link is slower than its described numbers got a plan
    the solver called optimal at one figure and the report costed at another."""
    class SlowLink(ProfileBackend):
        def link_time_s(self, nbytes: int) -> float:
            return 0.0 if nbytes <= 0 else 1e-3 + nbytes * 1e-6  # far slower than link()

    plan = chipcut.compile(*_tiny_cnn(), chips=3, backend=SlowLink(name="slow-link"),
                           passes="fold-bn,fuse", time_limit_s=5)
    assert plan.solver.objective == plan.metrics.bottleneck_s
    for t in plan.transfers:
        assert t.time_s == pytest.approx(1e-3 + t.bytes * 1e-6)
    one = chipcut.compile(*_tiny_cnn(), chips=1, backend=SlowLink(name="slow-link"),
                          passes="fold-bn,fuse", time_limit_s=5)
    assert plan.metrics.bottleneck_s <= one.metrics.bottleneck_s  # never worse than no cut


def test_show_recosts_a_plan_with_the_specs_it_carries(tmp_path) -> None:
    chip = get_backend("generic")
    mine = RooflineBackend(replace(chip.spec, name="my-npu", sram_bytes=2**16))
    plan = chipcut.compile(*_tiny_cnn(), chips=2, backend=mine, time_limit_s=5)
    path = tmp_path / "plan.json"
    plan.to_json(path)
    again, edited = revalidate(chipcut.Plan.from_json(path))  # "my-npu" is registered nowhere
    assert not edited and again.metrics == plan.metrics
    assert [r.name for r in plan.chip_specs] == ["my-npu"]
    assert plan.chip_specs[0].spec["memory"]["sram_bytes"] == 2**16


def test_show_without_a_spec_needs_the_backend_installed(tmp_path) -> None:
    plan = chipcut.compile(*_tiny_cnn(), chips=2, backend=ProfileBackend(), time_limit_s=5)
    path = tmp_path / "plan.json"
    plan.to_json(path)
    with pytest.raises(chipcut.ChipcutError, match="'profiled' .* has no spec in the plan and is not installed"):
        revalidate(chipcut.Plan.from_json(path))


def test_more_chips_than_the_bottleneck_needs_leave_the_rest_of_the_plan_exact() -> None:
    plan = chipcut.compile(*_tiny_cnn(), chips=2, backend=ProfileBackend(), time_limit_s=5)
    busy = [s.time_s for s in plan.stages]
    assert math.isclose(plan.metrics.bottleneck_s, max(busy + [t.time_s for t in plan.transfers]
                                                      + [plan.metrics.host_in_s, plan.metrics.host_out_s]))


@pytest.mark.parametrize("objective", ["throughput", "latency"])
def test_mixed_chips_and_replicas_report_the_solvers_figure(objective: str) -> None:
    mixed = chipcut.compile(*_tiny_cnn(), chips=["generic", "t4", "generic"], objective=objective,
                            time_limit_s=5)
    replicated = chipcut.compile(*_tiny_cnn(), chips=4, replicate=True, objective=objective,
                                 backend=ProfileBackend(), time_limit_s=5)
    for plan in (mixed, replicated):
        figure = plan.metrics.latency_s if objective == "latency" else plan.metrics.bottleneck_s
        assert plan.solver.objective == figure
