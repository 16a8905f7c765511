"""Profiling: time every partition unit of a lowered graph on this machine's CPU or GPU.

Each unit becomes a small GraphModule of its own nodes (values from outside the unit are
its inputs, weights its attributes, shared with the graph). The units then run in graph
order, each on the values the units before it produced, as a pipeline stage would run them,
and each call is timed: ``warmup`` untimed passes, then ``repeats`` timed ones. A unit that
does no work runs untimed and costs 0.

Timing a unit in its place in the sequence, not in a loop of its own, matters: looped alone,
a unit reuses the memory it just freed and finds its weights and inputs in cache, and the
units of MobileNetV2 then sum to half of what the whole graph takes on one CPU thread.

The recorded time is the median over the repeats, not the minimum: a plan predicts the time
a stage takes frame after frame, and the median is that typical time, robust to an odd slow
repeat, where the minimum is a best case the stage rarely sees. On one CPU thread the clock
is that thread's CPU time, so other processes on a shared machine do not inflate it; with
more threads (which the calling thread's CPU time does not see) it is wall time; on a GPU,
CUDA events.
"""

from __future__ import annotations

import copy
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from queue import Empty

import torch
import torch.fx

from chipcut.backends.protocol import Work
from chipcut.compiler.lowering.costing import is_free
from chipcut.compiler.lowering.units import UnitGraph
from chipcut.compiler.plan.profile import PROFILE_SCHEMA_VERSION, Profile, UnitTime
from chipcut.compiler.runtime.launch import _context, _main_script_not_rerun, dumps, loads
from chipcut.compiler.runtime.load import background_load
from chipcut.core.errors import ChipcutError
from chipcut.core.heap import keep_heap, kept_heap

DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class ProfileOptions:
    """How to time: ``device`` "cpu" or "cuda"; ``threads``: torch CPU threads (the count each
    pipeline stage runs with, ``chipcut run --threads``); ``warmup`` untimed and ``repeats``
    timed passes over the units; ``load``: other processes running the whole graph meanwhile
    (CPU), as the other stages of a pipeline on this host do (``stages - 1``)."""

    device: str = "cpu"
    threads: int = 1
    warmup: int = 2
    repeats: int = 10
    load: int = 0

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ChipcutError(f"device = {self.device!r}: profile on one of {', '.join(DEVICES)}")
        for name, low in (("threads", 1), ("warmup", 0), ("repeats", 1), ("load", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ChipcutError(f"{name} = {value!r}: must be a whole number >= {low}")
        if self.device == "cuda" and self.load:
            raise ChipcutError(f"load = {self.load}: background load is for CPU profiles; "
                               "give --load 0 with --device cuda")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ChipcutError("device = 'cuda' but torch sees no CUDA GPU here; profile with "
                               "--device cpu, or on a machine with a GPU")


@dataclass(frozen=True)
class UnitModule:
    """One unit as a module: it takes the values named ``inputs`` and returns those named
    ``outputs`` (its values read by other units or returned by the graph)."""

    module: torch.fx.GraphModule
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def unit_module(gm: torch.fx.GraphModule, names: tuple[str, ...]) -> UnitModule:
    """A GraphModule of just the nodes ``names`` of ``gm``.

    Values read from outside the unit become placeholders in first-use order; weights stay
    ``get_attr`` reads of ``gm``'s own tensors (shared, not copied)."""
    nodes = {n.name: n for n in gm.graph.nodes}
    members = [nodes[name] for name in names]
    inside = set(members)
    outside = list(dict.fromkeys(p for n in members for p in n.all_input_nodes
                                 if p not in inside and p.op != "get_attr"))
    graph = torch.fx.Graph()
    env: dict[torch.fx.Node, torch.fx.Node] = {p: graph.placeholder(p.name) for p in outside}
    for node in members:
        for p in node.all_input_nodes:
            if p.op == "get_attr" and p not in env:
                env[p] = graph.get_attr(p.target)
        env[node] = graph.node_copy(node, lambda a: env[a])
    used = [n for n in members if any(u not in inside for u in n.users)]
    graph.output(tuple(env[n] for n in used))
    return UnitModule(torch.fx.GraphModule(gm, graph), tuple(p.name for p in outside),
                      tuple(n.name for n in used))


class _Clock:
    """Times one call: CUDA events on a GPU, else the calling thread's CPU time on one CPU
    thread and wall time with several."""

    def __init__(self, device: str) -> None:
        self.cuda = device == "cuda"
        self.now = time.thread_time if torch.get_num_threads() == 1 else time.perf_counter
        self.name = "cuda_events" if self.cuda else self.now.__name__

    def time(self, fn: Callable[[], object]) -> tuple[object, Callable[[], float]]:
        """(fn's result, a function giving its seconds once called; on a GPU, after a sync)."""
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            result = fn()
            end.record()
            return result, lambda: start.elapsed_time(end) / 1e3
        t0 = self.now()
        result = fn()
        seconds = self.now() - t0
        return result, lambda: seconds


def run_units(modules: list[UnitModule], inputs: dict[str, object], timed: list[bool],
              clock: _Clock | None = None) -> tuple[dict[str, object], list[Callable[[], float]]]:
    """One pass over the units in order, from the graph's ``inputs`` by name: (the values
    still live at the end, those no later unit reads; each timed unit's seconds).

    A value is dropped after its last reader, as the graph itself frees it."""
    last_read = {name: u for u, m in enumerate(modules) for name in m.inputs}
    env, seconds = dict(inputs), []
    for u, m in enumerate(modules):
        args = [env[n] for n in m.inputs]
        if timed[u] and clock is not None:
            result, took = clock.time(lambda m=m, args=args: m.module(*args))
            seconds.append(took)
        else:
            result = m.module(*args)
        del args
        env.update(zip(m.outputs, result, strict=True))
        for name in m.inputs:
            if last_read[name] == u:
                env.pop(name, None)
    if clock is not None and clock.cuda:
        torch.cuda.synchronize()
    return env, seconds


@dataclass(frozen=True)
class Measurement:
    """Each unit's time, the whole graph's median seconds per call, the clock and the device."""

    units: tuple[UnitTime, ...]
    model_s: float
    clock: str
    device_name: str


def measure_units(gm: torch.fx.GraphModule, units: UnitGraph, works: list[Work], inputs: tuple,
                  options: ProfileOptions, progress: Callable[[str], None] | None = None
                  ) -> Measurement:
    """Time every unit of ``gm`` (and the whole graph) under ``options``.

    On the CPU the timing runs in a fresh process, pinned to one core with its heap kept, as
    a pipeline stage process runs: the caller's process may have a heap that earlier work left
    large and scattered (MobileNetV2's units then run ~20% slower in it than in a stage).
    On a GPU it runs here; the caller's thread count is restored after."""
    _check_real(gm, inputs)
    say = progress or (lambda _msg: None)
    timed = [not is_free(w) for w in works]
    if options.load:
        say(f"starting {options.load} background copies of the graph")
    with background_load(gm, inputs, options.load, options.threads):
        if options.device == "cuda":
            # The units are cut from the graph on the GPU: they share its tensors there.
            gm = _on_device(gm, options.device)
            inputs = tuple(t.to(options.device) if isinstance(t, torch.Tensor) else t
                           for t in inputs)
            modules = [unit_module(gm, names) for names in units.units]
            samples, whole, clock, device = _time_here(gm, modules, inputs, timed, options, say)
        else:
            modules = [unit_module(gm, names) for names in units.units]
            samples, whole, clock, device = _time_in_child(gm, modules, inputs, timed, options,
                                                           say)
    timings = iter(samples)
    out = [UnitTime(w.key, w.op, w.macs, w.elem_ops, *_spread(next(timings)))
           if t else UnitTime(w.key, w.op, w.macs, w.elem_ops, 0.0, 0.0, 0.0)
           for w, t in zip(works, timed, strict=True)]
    return Measurement(tuple(out), statistics.median(whole), clock, device)


def _time_here(gm: torch.fx.GraphModule, modules: list[UnitModule], inputs: tuple,
               timed: list[bool], options: ProfileOptions, say: Callable[[str], None]):
    """(per timed unit its seconds per pass, the whole graph's seconds per pass, the clock's
    name, the device in words), timed in this process on the device ``gm`` and ``inputs``
    are on."""
    before = torch.get_num_threads()
    torch.set_num_threads(options.threads)
    try:
        placeholders = [n.name for n in gm.graph.nodes if n.op == "placeholder"]
        feed = dict(zip(placeholders, inputs, strict=True))
        clock = _Clock(options.device)
        samples: list[list[float]] = [[] for _ in range(sum(timed))]
        whole: list[float] = []
        with torch.no_grad(), kept_heap():  # as the stage processes run them
            for k in range(options.warmup + options.repeats):
                say(f"timing {len(modules)} units and the whole graph, pass {k + 1} of "
                    f"{options.warmup + options.repeats}")
                _, seconds = run_units(modules, feed, timed, clock)
                # forward, not __call__: export's input-check hooks are no stage's work
                _, took = clock.time(lambda: gm.forward(*inputs))
                if clock.cuda:
                    torch.cuda.synchronize()
                if k >= options.warmup:
                    for column, s in zip(samples, seconds, strict=True):
                        column.append(s())
                    whole.append(took())
        return samples, whole, clock.name, device_name(options.device)
    finally:
        torch.set_num_threads(before)


def _plain(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """A plain GraphModule over the same graph and tensors: export's tracer class does not
    unpickle."""
    plain = torch.fx.GraphModule(gm, gm.graph)
    plain._tracer_cls = None
    return plain


def _time_in_child(gm: torch.fx.GraphModule, modules: list[UnitModule], inputs: tuple,
                   timed: list[bool], options: ProfileOptions, say: Callable[[str], None]):
    """:func:`_time_here` in a fresh process (see :func:`measure_units`); its progress lines
    come back as it goes, and a process that dies is reported in one line."""
    ctx = _context()
    queue = ctx.Queue()
    # One pickle: the weights the units share with the graph are written once.
    units = [UnitModule(_plain(m.module), m.inputs, m.outputs) for m in modules]
    plain = _plain(gm)
    payload = dumps((plain, units, inputs, timed, options), plain)
    say("starting a process to time the units in")
    with _main_script_not_rerun():
        proc = ctx.Process(target=_child, args=(payload, queue), name="chipcut profile")
        proc.start()
    try:
        while True:
            try:
                kind, value = queue.get(timeout=1.0)
            except Empty:
                if not proc.is_alive():
                    raise ChipcutError(f"the profiling process ended (exit code {proc.exitcode}) "
                                       "before it reported; profile again, or with fewer "
                                       "--repeats if memory is short") from None
                continue
            if kind == "progress":
                say(value)
            elif kind == "error":
                raise ChipcutError(value)
            else:
                return value
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join(5)


def _child(payload: bytes, queue) -> None:
    """The profiling process: on the first core this process may use, its heap kept."""
    if hasattr(os, "sched_getaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    keep_heap()
    try:
        gm, modules, inputs, timed, options = loads(payload)
        result = _time_here(gm, modules, inputs, timed, options,
                            lambda msg: queue.put(("progress", msg)))
        queue.put(("done", result))
    except Exception as e:  # noqa: BLE001 - reported to the parent in one line
        queue.put(("error", f"profiling failed: {type(e).__name__}: {e}"))


def _on_device(gm: torch.fx.GraphModule, device: str) -> torch.fx.GraphModule:
    """A copy of ``gm`` with every tensor it reads on ``device``: parameters, buffers and the
    plain tensor attributes export leaves (constants). The caller's module stays where it is."""
    moved = copy.deepcopy(gm).to(device)
    for node in moved.graph.nodes:
        if node.op == "get_attr":
            owner, _, name = str(node.target).rpartition(".")
            module = moved.get_submodule(owner) if owner else moved
            value = getattr(module, name)
            if isinstance(value, torch.Tensor) and value.device.type != device:
                setattr(module, name, value.to(device))
    return moved


def _spread(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def device_name(device: str) -> str:
    """The processor (or GPU), thread count and torch version, in words."""
    if device == "cuda":
        what = torch.cuda.get_device_name()
    else:
        what = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    return f"{what}, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}"


def _check_real(gm: torch.fx.GraphModule, inputs: tuple) -> None:
    tensors = [t for t in inputs if isinstance(t, torch.Tensor)]
    tensors += list(gm.parameters()) + list(gm.buffers())
    if not inputs or any(t.is_meta for t in tensors):
        raise ChipcutError("the model was captured on the meta device (no weights or input "
                           "values), so its units cannot be timed; build it with real weights "
                           "and give real --input tensors to profile it")


def build_profile(model: str, fingerprint: str, passes: str, backend: str,
                  options: ProfileOptions, measured: Measurement) -> Profile:
    """The Profile value of one measurement (see :func:`measure_units`)."""
    return Profile(PROFILE_SCHEMA_VERSION, model, fingerprint, passes, backend, options.device,
                   measured.device_name, options.threads, options.warmup, options.repeats,
                   measured.clock, measured.model_s, measured.units, options.load)


__all__ = ["ProfileOptions", "Measurement", "UnitModule", "measure_units", "build_profile",
           "unit_module", "run_units"]
