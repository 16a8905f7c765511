"""Runtime: a plan run as real processes (torch.distributed.pipelining, gloo) gives the unsplit
model's outputs, is measured beside its prediction, and every bad input is one line."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import threading
import time
from dataclasses import replace

import pytest
import torch

import chipcut
from chipcut.backends.registry import get_backend
from chipcut.backends.roofline import RooflineBackend
from chipcut.backends.spec import LinkSpec
from chipcut.compiler.runtime.launch import local_cores
from chipcut.compiler.runtime.stages import stage_modules, wiring

# A free link, so that the solver spreads even tiny models over every chip.
FREE_LINK = RooflineBackend(replace(get_backend("generic").spec, name="free-link",
                                    link=LinkSpec(1e18, 0.0)))


class SkipAcross(torch.nn.Module):
    """Three equal layers and a skip from the first to the last: cut in three, the first
    layer's output crosses the middle stage."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = (torch.nn.Linear(64, 64) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.a(x))
        return self.c(torch.relu(self.b(h))) + h


@pytest.fixture(scope="module")
def skip_across() -> tuple[torch.nn.Module, tuple, chipcut.Plan]:
    torch.manual_seed(0)
    model, inputs = SkipAcross().eval(), (torch.randn(2, 64),)
    return model, inputs, chipcut.compile(model, inputs, chips=3, time_limit_s=5, backend=FREE_LINK)


def close_to_unsplit(m: chipcut.Measured) -> bool:
    """fp32: within 1e-5, relative to the output's scale when it exceeds 1 (fold-bn rounds)."""
    return m.max_abs_diff <= 1e-5 * max(1.0, m.output_scale)


def test_stage_modules_carry_values_across_a_cut(skip_across) -> None:
    _, inputs, plan = skip_across
    split = plan.split()
    wired = wiring(split)
    skip = set(split.stage_outputs[0]) & set(split.stage_inputs[2])  # made by 0, read by 2
    assert skip and skip <= set(wired.gives[1]) and not skip & set(split.stage_outputs[1])
    values = inputs
    with torch.no_grad():
        for module in stage_modules(split):
            values = module(*values)
    torch.testing.assert_close(values, split.run_stages(*inputs), rtol=0, atol=0)


def test_two_stages_match_the_unsplit_model_and_are_measured(two_in_two_out, tmp_path) -> None:
    model, inputs = two_in_two_out
    plan = chipcut.compile(model, inputs, chips=2, time_limit_s=5, backend=FREE_LINK)
    m = chipcut.run(plan, model, inputs, frames=8, microbatches=4, timeout_s=120)
    assert close_to_unsplit(m) and m.output_scale > 0
    assert [s.chip for s in m.stages] == [0, 1] and [s.microbatches for s in m.stages] == [8, 8]
    assert all(s.busy_s > 0 and s.predicted_s > 0 for s in m.stages)
    (link,) = m.links
    assert (link.src, link.dst) == (0, 1) and link.bytes == link.predicted_bytes > 0
    assert m.throughput_per_s > 0 and m.latency_s > 0
    assert m.bottleneck in {"chip 0", "chip 1", "link 0->1"}
    assert m.predicted_throughput_per_s == plan.metrics.throughput_per_s
    assert sum(s.kind == "forward" for s in m.spans) == 16
    assert sum(s.kind == "transfer" for s in m.spans) == 8
    loaded = chipcut.Measured.from_json(m.to_json(tmp_path / "m.json") and tmp_path / "m.json",
                                        chipcut.Plan.from_json(plan.to_json()))
    assert loaded == m


def test_three_stages_1f1b_with_a_skip_across_a_cut(skip_across) -> None:
    model, inputs, plan = skip_across
    m = chipcut.run(plan, model, inputs, frames=6, microbatches=3, schedule="1f1b",
                    oversubscribe=True, timeout_s=120)
    assert close_to_unsplit(m)
    assert len(m.stages) == 3 and [(x.src, x.dst) for x in m.links] == [(0, 1), (1, 2)]
    # the skip crosses stage 1: link 1->2 carries it beside stage 1's own output
    assert m.links[1].bytes == m.links[1].predicted_bytes == 2 * 2 * 64 * 4


@pytest.mark.parametrize("options, message", [
    ({"frames": 10, "microbatches": 4}, "frames = 10 is not a multiple of microbatches = 4: "
     "each schedule step runs 4 frames; give frames = 8 or 12$"),
    ({"frames": 2, "microbatches": 4}, "give frames = 4, or microbatches = 2$"),
    ({"frames": 0}, "frames = 0: must be a whole number >= 1"),
    ({"microbatches": -1}, "microbatches = -1: must be a whole number >= 1"),
    ({"schedule": "1f1b", "frames": 4, "microbatches": 2}, "1f1b needs at least as many"),
    ({"schedule": "zb"}, "known schedules are gpipe, 1f1b"),
    ({"threads": 0}, "threads = 0"),
    ({"timeout_s": 0}, "timeout = 0"),
    ({"speed": 2}, "unknown run option 'speed'"),
])
def test_bad_options_are_one_line(skip_across, options, message) -> None:
    model, inputs, plan = skip_across
    with pytest.raises(chipcut.ChipcutError, match=message) as info:
        chipcut.run(plan, model, inputs, oversubscribe=True, **options)
    assert "\n" not in str(info.value)


def test_more_stages_than_cores_needs_oversubscribe(skip_across) -> None:
    model, inputs, plan = skip_across
    threads = len(local_cores())  # 3 stages x every core: more than there are
    with pytest.raises(chipcut.ChipcutError, match="need .* cores, this machine gives .*--oversubscribe"):
        chipcut.run(plan, model, inputs, threads=threads)


def test_a_port_in_use_is_refused(skip_across) -> None:
    model, inputs, plan = skip_across
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(chipcut.ChipcutError, match=f"--port {port} is already in use"):
            chipcut.run(plan, model, inputs, oversubscribe=True, port=port)


def test_a_plan_for_another_model_is_refused(skip_across) -> None:
    model, _, plan = skip_across
    loaded = chipcut.Plan.from_json(plan.to_json())
    with pytest.raises(chipcut.ChipcutError, match="differs from the plan's"):
        chipcut.run(loaded, model, (torch.randn(3, 64),), oversubscribe=True)


def test_a_measurement_of_another_plan_is_refused(two_in_two_out, skip_across) -> None:
    model, inputs = two_in_two_out
    other = chipcut.compile(model, inputs, chips=2, time_limit_s=5, backend=FREE_LINK)
    measured = fake_measurement(other)
    with pytest.raises(chipcut.ChipcutError, match="was measured on another plan"):
        chipcut.Measured.from_json(measured.to_json(), skip_across[2])
    assert chipcut.Measured.from_json(measured.to_json(), other) == measured


def fake_measurement(plan: chipcut.Plan) -> chipcut.Measured:
    from chipcut.compiler.plan.measured import MEASURED_SCHEMA_VERSION, plan_hash

    return chipcut.Measured(MEASURED_SCHEMA_VERSION, plan.fingerprint, plan_hash(plan), "m",
                            "gpipe", 4, 4, 1, "cpu", "gloo", False, (), (), 1.0, 2.0, 0.5, 0.25,
                            "chip 0", "chip 1", 0.0, 1.0, 1.0, "here")


def stage_pids(names: set[str], timeout_s: float = 60.0) -> dict[str, int]:
    """The pids of this process's stage children with these names, once they are all running."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = {p.name: p.pid for p in multiprocessing.active_children() if p.name in names}
        if len(found) == len(names) and all(found.values()):
            return found
        time.sleep(0.05)
    return {}


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def run_and_signal(skip_across, sig: signal.Signals, **options) -> tuple[str, list[int]]:
    """Run the 3-stage plan, send ``sig`` to stage 1 once it runs; the error and every pid."""
    model, inputs, plan = skip_across
    names = {f"chipcut stage {r}" for r in range(3)}
    pids: dict[str, int] = {}

    def hit() -> None:
        pids.update(stage_pids(names))
        time.sleep(0.5)
        if pids:
            os.kill(pids["chipcut stage 1"], sig)

    watcher = threading.Thread(target=hit)
    watcher.start()
    try:
        with pytest.raises(chipcut.ChipcutError) as info:
            chipcut.run(plan, model, inputs, frames=400_000, microbatches=4, oversubscribe=True,
                        **options)
    finally:
        watcher.join()
    return str(info.value), list(pids.values())


def test_a_stage_that_dies_is_named_and_every_process_ends(skip_across) -> None:
    message, pids = run_and_signal(skip_across, signal.SIGKILL, timeout_s=120)
    assert message.startswith("stage 1 (rank 1) was killed by SIGKILL") and "\n" not in message
    assert len(pids) == 3 and all(gone(pid) for pid in pids)


def test_a_stage_that_hangs_is_named_at_the_timeout(skip_across) -> None:
    message, pids = run_and_signal(skip_across, signal.SIGSTOP, timeout_s=8)
    assert message.startswith("stage 1 (rank 1) stopped responding") and "--timeout 8 s" in message
    assert len(pids) == 3 and all(gone(pid) for pid in pids)


def test_throughput_is_the_sustained_rate_without_each_steps_fill_and_drain() -> None:
    from chipcut.compiler.runtime.measure import _steady_throughput

    # Two steps of 4 frames, 10 ms apart inside a step, a 60 ms gap (fill and drain) between.
    ends = [0.00, 0.01, 0.02, 0.03, 0.09, 0.10, 0.11, 0.12]
    forwards = [(i // 4, i % 4, end - 0.005, end) for i, end in enumerate(ends)]
    assert _steady_throughput(forwards) == pytest.approx(100.0)
    assert 8 / (0.12 - (-0.005)) < 70  # the whole-run rate, bubbles in, is far lower
    assert _steady_throughput(forwards[:1]) == 0.0  # one frame has no interval


class BoolOut(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Linear(64, 256), torch.nn.Linear(256, 64)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.b(torch.relu(self.a(x)))
        return h, h > 0, h.argmax(dim=-1) + 1000


def test_boolean_and_integer_outputs_are_compared_and_left_out_of_the_scale() -> None:
    torch.manual_seed(0)
    model, x = BoolOut().eval(), torch.randn(1, 64)
    plan = chipcut.compile(model, (x,), chips=2, backend="cpu")
    m = chipcut.run(plan, model, (x,), frames=2, microbatches=1)
    assert m.max_abs_diff == 0.0 and m.outputs_agree
    assert m.output_scale == pytest.approx(model(x)[0].abs().max().item())  # not 1000 + index


def test_stage_processes_keep_their_heap_on_glibc() -> None:
    import platform

    from chipcut.core.heap import keep_heap, kept_heap

    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        with kept_heap() as kept:
            assert kept is True
        assert keep_heap() is True


def test_a_model_calling_a_library_custom_op_runs_and_profiles_in_fresh_processes() -> None:
    # transformers' MoE experts call torch.ops.transformers.grouped_mm_fallback, an op a fresh
    # process knows only once transformers.integrations.moe is imported.
    from transformers import MixtralConfig, MixtralModel

    from chipcut.compiler.runtime.launch import op_modules

    torch.manual_seed(0)
    model = MixtralModel(MixtralConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, num_local_experts=4, vocab_size=500, use_cache=False)).eval()
    captured = chipcut.capture(model, (torch.ones(1, 8, dtype=torch.long),), name="moe")
    assert op_modules(captured.graph_module) == ["transformers.integrations.moe"]
    plan = chipcut.compile(captured, chips=2, backend="cpu")
    # This plan cuts after the first layer's token order (an int64 index_put_), which stage 1
    # indexes with: given torch's own shape inference, stage 1 first ran on an uninitialized
    # copy of it and failed with "index 1402954... is out of bounds". The stages' shapes are
    # now given to PipelineStage up front.
    takes, _ = stage_modules(plan.split(captured.graph_module), captured.graph_module)[1].metas
    assert "index_put_" in plan.transfers[0].tensors
    assert (torch.int64, (16,)) in [(t.dtype, tuple(t.shape)) for t in takes]
    assert all(t.is_meta for t in takes)
    measured = chipcut.run(plan, captured, frames=2, microbatches=1, threads=1)
    assert measured.max_abs_diff <= 1e-5
    profile = chipcut.profile(captured, backend="cpu", repeats=1, warmup=0)
    assert any(u.op == "grouped_mm_fallback" and u.time_s > 0 for u in profile.units)


def test_a_value_whose_shape_moves_with_the_data_is_refused_at_the_cut(skip_across) -> None:
    _, frame, plan = skip_across
    first = stage_modules(plan.split(), plan.graph_module)[0]
    takes, gives = first.metas
    first.metas = (takes, tuple(torch.empty((3, *t.shape[1:]), dtype=t.dtype, device="meta")
                                for t in gives))
    with pytest.raises(chipcut.ChipcutError, match=r"^value \S+ is \(2, .* on this frame but "
                       r"was \(3, .* a value whose shape depends on the data cannot cross a cut"):
        first(*frame)


class Accumulate(torch.nn.Module):
    """``acc = zeros(); acc += layer(x)``: a tensor made from constants, then written in place."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(64, 64) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        acc = torch.zeros(4, 64)
        for layer in self.layers:
            acc += layer(x)
        return acc


class Branch(torch.nn.Module):
    """``torch.cond`` between a two-layer and a one-layer branch."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.e = (torch.nn.Linear(64, 64) for _ in range(3))
        self.c, self.d = torch.nn.Linear(64, 256), torch.nn.Linear(256, 64)

    def forward(self, x: torch.Tensor, flag: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.a(x))
        h = torch.cond(flag.sum() > 0, lambda t: self.d(torch.relu(self.c(t))),
                       lambda t: self.b(t), (h,))
        return self.e(h)


def test_stage_graphs_reach_their_processes_node_for_node() -> None:
    """torch's pickling of a GraphModule traces its code again on load, which ran ``zeros``
    and the writes into it then, once (the pipeline was off by 3.55), and could not load a
    graph calling ``torch.cond``."""
    from chipcut.compiler.runtime.launch import dumps, loads

    torch.manual_seed(0)
    for model, inputs in ((Accumulate().eval(), (torch.randn(4, 64),)),
                          (Branch().eval(), (torch.randn(4, 64), torch.ones(1)))):
        plan = chipcut.compile(model, inputs, chips=1, backend="cpu")
        stage = plan.split().stages[0]
        shipped = loads(dumps(stage, stage))
        with torch.no_grad():
            for _ in range(2):
                out = shipped(*inputs)
                out = out[0] if isinstance(out, (tuple, list)) else out
                assert torch.equal(out, model(*inputs))
    measured = chipcut.run(plan, model, inputs, frames=2, microbatches=1)
    assert measured.outputs_agree and measured.max_abs_diff == 0.0


class ScalesItsInput(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(64, 64) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x.mul_(2.0)
        for layer in self.layers:
            x = torch.relu(layer(x))
        return x


def test_a_model_writing_its_input_runs_on_a_fresh_copy_each_frame() -> None:
    """The schedule hands stage 0 the same buffers every step: written in place, the input
    was doubled again each step (off by 0.21), and the caller's tensor with it."""
    torch.manual_seed(0)
    model, x = ScalesItsInput().eval(), torch.randn(4, 64)
    kept = x.clone()
    plan = chipcut.compile(model, (x,), chips=2, backend="cpu")
    measured = chipcut.run(plan, model, (x,), frames=4, microbatches=2)
    assert measured.outputs_agree and measured.max_abs_diff == 0.0
    assert torch.equal(x, kept)
