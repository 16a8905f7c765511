"""The public stages: ``lower`` (capture, passes, accounting) -> ``solve`` (the cut) ->
``schedule`` (the Plan); ``compile`` runs the three.

Options live in one frozen :class:`CompileOptions`; each setting has one place, so nothing
overrides anything silently. Lowering never changes the caller's graph: a captured model is
copied before the passes rewrite it, so one capture can be lowered many times, and one
lowering solved for many chip counts (``chipcut sweep``).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace

import torch

from chipcut.backends.profiled import ProfiledBackend
from chipcut.backends.protocol import Backend, Work
from chipcut.backends.registry import get_backend, validate
from chipcut.compiler.capture import Captured, as_inputs, capture
from chipcut.compiler.llm.stamp import capture_repeated
from chipcut.compiler.lowering.costing import unit_works
from chipcut.compiler.lowering.summary import GraphSummary, fingerprint, summarize
from chipcut.compiler.lowering.units import UnitGraph, build_units
from chipcut.compiler.plan.loading import load_profile, refine
from chipcut.compiler.plan.model import SCHEMA_VERSION, ChipRecord, ModelInfo, Plan, SolverInfo
from chipcut.compiler.plan.profile import Profile
from chipcut.compiler.plan.savings import with_savings
from chipcut.compiler.plan.schedule import Costed, build_schedule
from chipcut.compiler.plan.serving import serving_of
from chipcut.compiler.runtime.profile import ProfileOptions, build_profile, measure_units
from chipcut.compiler.solver.order import best_order
from chipcut.compiler.solver.problem import Interconnect
from chipcut.compiler.solver.residency import Partitioned
from chipcut.core.errors import ChipcutError
from chipcut.core.ir import (
    QuantReport,
    get_cost,
    get_group,
    get_phase,
    get_quant_report,
    is_compute,
)
from chipcut.core.vocab import Objective, Topology
from chipcut.passes.accounting import accounting, unaccounted
from chipcut.passes.manager import Pipeline, Target, as_pipeline

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CompileOptions:
    """Every setting of a compile, in one place. Bandwidths in bytes/s per direction, latencies
    and the time limit in seconds; None takes the chips' own links.

    ``passes``: a pipeline such as ``"fold-bn,quantize{dtype=int8},fuse"`` (``"default"``,
    ``"none"``); ``topology``: chain, ring or switch; ``objective``: throughput (least
    bottleneck, then fewest bytes) or latency (least batch-1 latency); ``replicate``: a stage
    may run on several identical chips taking alternate frames; ``batch``: the batch of the
    batched-throughput figure. ``profile``: a profile file (``chipcut profile --out``) or a
    :class:`Profile` whose measured unit times cost the units in place of the backend's model
    (bytes, memory, residency and links stay the backend's); ``threads``: torch threads each
    stage runs with, which ``profile`` measures with and a given profile must have been
    measured at.

    >>> CompileOptions(topology="ring").interconnect.topology
    <Topology.RING: 'ring'>
    """

    time_limit_s: float = 10.0
    batch: int = 8
    passes: str | Pipeline = "default"
    topology: Topology = Topology.CHAIN
    objective: Objective = Objective.THROUGHPUT
    replicate: bool = False
    switch_bytes_per_s: float | None = None
    switch_latency_s: float | None = None
    host_bytes_per_s: float | None = None
    host_latency_s: float | None = None
    name: str | None = None
    profile: str | os.PathLike | Profile | None = None
    threads: int = 1

    def __post_init__(self) -> None:
        net = self.interconnect  # validates the topology, objective and links
        object.__setattr__(self, "topology", net.topology)
        object.__setattr__(self, "objective", net.objective)
        if isinstance(self.batch, bool) or not isinstance(self.batch, int) or self.batch < 1:
            raise ChipcutError(f"batch = {self.batch!r}: must be a whole number >= 1 frame")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            raise ChipcutError(f"threads = {self.threads!r}: must be a whole number >= 1 thread")
        if not isinstance(self.profile, (str, os.PathLike, Profile, type(None))):
            raise ChipcutError(f"profile = {type(self.profile).__name__}: give a profile file's "
                               "path (chipcut profile --out) or a Profile")
        if not (isinstance(self.time_limit_s, (int, float)) and 0 < self.time_limit_s < float("inf")):
            raise ChipcutError(f"time_limit_s = {self.time_limit_s!r}: must be a finite number "
                               "> 0 seconds")

    @property
    def interconnect(self) -> Interconnect:
        return Interconnect(self.topology, self.switch_bytes_per_s, self.switch_latency_s,
                            self.host_bytes_per_s, self.host_latency_s, self.objective,
                            self.replicate)

    @classmethod
    def of(cls, options: CompileOptions | None = None, **overrides: object) -> CompileOptions:
        """``options`` (or the defaults) with ``overrides`` applied; an unknown name is an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ChipcutError(f"unknown compile option {unknown[0]!r}; options are: "
                               f"{', '.join(sorted(known))}")
        return replace(options or cls(), **overrides)


@dataclass(frozen=True)
class Lowered:
    """A model ready to cut: its rewritten, accounted graph, units, their work and the summary
    a plan keeps. ``graph_module`` is this lowering's own copy."""

    name: str
    units: UnitGraph
    summary: GraphSummary
    works: tuple[Work, ...]
    passes: str
    fingerprint: str
    quantization: QuantReport | None
    example_inputs: tuple = field(compare=False, repr=False)
    graph_module: torch.fx.GraphModule = field(compare=False, repr=False)


@dataclass(frozen=True)
class Solved:
    """The chips in pipeline order and the assignment, costed in the solver's own problem."""

    backends: tuple[Backend, ...]
    partitioned: Partitioned


def resolve_chips(chips: int | Sequence[str | Backend], backend: str | Backend) -> list[Backend]:
    """One Backend per chip: ``chips`` is a count (all ``backend``) or a list of backends/names."""
    if isinstance(chips, bool) or not isinstance(chips, (int, list, tuple)):
        raise ChipcutError(f"chips = {chips!r}: give a chip count (e.g. 4) or a list of backend names")
    if isinstance(chips, int):
        if chips < 1:
            raise ChipcutError(f"chips = {chips}: need at least 1 chip; pass chips=1 or more")
        return [_backend(backend)] * chips
    if not chips:
        raise ChipcutError("chips = []: name at least one backend, e.g. ['generic', 'generic']")
    built = [_backend(c) for c in chips]
    for k, b in enumerate(built):
        first = next(j for j, other in enumerate(built) if other.name == b.name)
        if built[first] != b:
            raise ChipcutError(f"chips {first} and {k} are both named {b.name!r} but are not the "
                               "same chip (a plan names its chips); give each spec file a name "
                               "of its own")
    return built


def _backend(b: str | Backend) -> Backend:
    return get_backend(b) if isinstance(b, str) else validate(b)


def lower(model: object, example_inputs: tuple = (), chips: int | Sequence[str | Backend] = 1,
          backend: str | Backend = "generic", options: CompileOptions | None = None,
          calibration_inputs: Sequence[tuple] = (), progress: Progress | None = None) -> Lowered:
    """Capture ``model`` (or copy a ``Captured``), run the pass pipeline for ``chips`` and account
    every node's work. ``calibration_inputs`` (tuples shaped like the example inputs) are where
    quantization measures SQNR; the example inputs are used when none are given."""
    options = options or CompileOptions()
    backends = resolve_chips(chips, backend)
    pipeline = as_pipeline(options.passes)
    say = progress or (lambda _msg: None)
    if isinstance(model, Captured):
        captured = replace(model, graph_module=copy.deepcopy(model.graph_module))
    else:
        say("capturing model")
        captured = _capture(model, as_inputs(example_inputs), options.name)
    gm = captured.graph_module
    calibration = check_calibration(gm, calibration_inputs)
    example = tuple(captured.example_inputs)
    real = all(isinstance(t, torch.Tensor) and not t.is_meta for t in example)
    target = Target(tuple(_distinct(backends)), example if real else (), calibration)
    gm = pipeline.run(gm, target, verify=True, progress=progress)
    accounting(gm)
    units = build_units(gm)
    summary = summarize(gm, units)
    works = tuple(unit_works(summary, len(units.units)))
    quant = get_quant_report(gm)
    return Lowered(captured.name, units, summary, works, str(pipeline), fingerprint(gm), quant,
                   example, gm)


def _capture(model: object, example_inputs: tuple, name: str | None) -> Captured:
    """A model on the meta device with a repeated decoder layer (a transformers config's
    ``num_hidden_layers``) is captured by that layer (``chipcut.compiler.llm.stamp``)."""
    config = getattr(model, "config", None)
    if isinstance(model, torch.nn.Module) and example_inputs and config is not None:
        return capture_repeated(model, config, lambda: model, example_inputs,
                                name or type(model).__name__, prefix="")
    return capture(model, example_inputs, name=name)


def solve(lowered: Lowered, chips: int | Sequence[str | Backend] = 4,
          backend: str | Backend = "generic", options: CompileOptions | None = None,
          progress: Progress | None = None, *,
          start: tuple[int, ...] | None = None) -> Solved:
    """The best pipeline of ``lowered`` over ``chips`` within the time limit (every distinct chip
    order when the chips differ), with its proven bound. ``start``: a known assignment (unit ->
    chip, e.g. a plan for fewer chips of the same kind); the plan found is never worse."""
    options = options or CompileOptions()
    backends = resolve_chips(chips, backend)
    if options.profile is not None:
        backends = profiled(backends, lowered, options)
    n_units = len(lowered.units.units)
    if len(backends) > n_units and not options.replicate:
        raise ChipcutError(f"{len(backends)} chips but the model has only {n_units} partition "
                           f"units ({len(lowered.summary.nodes)} compute nodes); use at most "
                           f"{n_units} chips, or let stages replicate (--replicate)")
    if progress:
        progress(f"solving {n_units} units on {len(backends)} chips")
    order, found = best_order(lowered.units, list(lowered.works), backends, options.time_limit_s,
                              progress, options.interconnect, lowered.summary.io_bytes(), start)
    return Solved(tuple(order), found)


def schedule(lowered: Lowered, solved: Solved, options: CompileOptions | None = None) -> Plan:
    """The Plan of a solved lowering: stages, transfers, timelines, metrics, the solver's line."""
    options = options or CompileOptions()
    backends = list(solved.backends)
    found = solved.partitioned
    s = found.solution
    costed = Costed(s.chip_of_unit, s.replicas, found.problem, found.states)
    sched = build_schedule(lowered.summary, lowered.units, list(lowered.works), backends, costed,
                           found.lower_bound_s, batch=options.batch, net=options.interconnect)
    quant = lowered.quantization
    if quant is not None:
        quant = with_savings(quant, lowered.graph_module, lowered.units, backends, costed,
                             sched, options)
    compute = [n for n in lowered.graph_module.graph.nodes if is_compute(n)]
    groups: dict[str, int] = {}
    for g in map(get_group, compute):
        if g is not None:
            groups[g.name] = groups.get(g.name, 0) + 1
    return Plan(
        schema_version=SCHEMA_VERSION,
        model=ModelInfo(lowered.name, sum(get_cost(n).macs for n in compute), len(compute),
                        len(lowered.units.units), unaccounted(lowered.graph_module)),
        backend=backends[0].name if len({b.name for b in backends}) == 1 else "mixed",
        chips=tuple(b.name for b in backends),
        stages=sched.stages,
        transfers=sched.transfers,
        metrics=sched.metrics,
        solver=SolverInfo(s.status, s.bottleneck_s, s.bound_s, s.gap, s.wall_s, s.bytes_moved,
                          s.method),
        timeline=sched.timeline,
        graph=lowered.summary,
        notes=found.notes,
        passes=lowered.passes,
        fused_groups=sum(1 for size in groups.values() if size > 1),
        quantization=quant,
        interconnect=options.interconnect,
        chip_specs=tuple(ChipRecord.of(b) for b in _distinct(backends)),
        fingerprint=lowered.fingerprint,
        serving=serving_of(get_phase(lowered.graph_module), sched.stages, sched.metrics, backends),
        graph_module=lowered.graph_module,
    ).sealed()


def profiled(backends: list[Backend], lowered: Lowered, options: CompileOptions) -> list[Backend]:
    """The chips with unit times from ``options.profile``, checked against ``lowered``: the
    same graph, every unit that does work timed, at ``options.threads``."""
    prof, source = load_profile(options.profile)
    names = sorted({b.name for b in backends})
    if len(names) > 1:
        raise ChipcutError(f"a profile times one device, but the chips are {', '.join(names)}; "
                           "give one backend (--chips N --backend NAME) with --profile")
    prof.check(lowered.fingerprint, list(lowered.works), lowered.passes, options.threads,
               f"profile {source}")
    chip = validate(ProfiledBackend(backends[0], prof.times_s(), prof.ops(), source,
                                    prof.link_scale))
    return [chip] * len(backends)


def profile(model: object, example_inputs: tuple = (), backend: str | Backend = "generic",
            options: CompileOptions | None = None, *, device: str = "cpu", warmup: int = 2,
            repeats: int = 10, load: int = 0, progress: Progress | None = None) -> Profile:
    """Lower ``model`` for ``backend`` (``options.passes``) and time each partition unit on
    this machine (``device`` "cpu" with ``options.threads`` threads, or "cuda"): the measured
    seconds ``compile(..., profile=...)`` costs the units with. ``load``: other processes
    running the graph meanwhile, as the other stages of a pipeline on this host will
    (``stages - 1`` for a plan run by ``chipcut run`` here).

    >>> import torch, chipcut
    >>> net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU())
    >>> prof = chipcut.profile(net, (torch.randn(1, 64),), "cpu", repeats=2)
    >>> [u.key for u in prof.units], prof.units[0].time_s > 0
    (['linear+relu'], True)
    """
    options = options or CompileOptions()
    how = ProfileOptions(device, options.threads, warmup, repeats, load)
    lowered = lower(model, example_inputs, 1, backend, options, progress=progress)
    measured = measure_units(lowered.graph_module, lowered.units, list(lowered.works),
                             lowered.example_inputs, how, progress)
    name = backend if isinstance(backend, str) else backend.name
    return build_profile(lowered.name, lowered.fingerprint, lowered.passes, name, how, measured)


def _distinct(backends: list[Backend]) -> list[Backend]:
    return list({b.name: b for b in backends}.values())


def compile(  # noqa: A001 - the product's verb
    model: object,
    example_inputs: tuple = (),
    chips: int | Sequence[str | Backend] = 4,
    backend: str | Backend = "generic",
    options: CompileOptions | None = None,
    *,
    calibration_inputs: Sequence[tuple] = (),
    progress: Progress | None = None,
    **overrides: object,
) -> Plan:
    """Capture ``model``, run the pass pipeline, account its work, cut it over ``chips`` chips
    and schedule it: ``schedule(lower(...), solve(...))``.

    Settings are :class:`CompileOptions` fields, given as ``options`` or as keywords
    (``time_limit_s=5, topology="ring"``). When the chips differ, the solver also picks
    their order in the pipeline.

    >>> import torch, chipcut
    >>> net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8))
    >>> plan = chipcut.compile(net, (torch.randn(1, 64),), chips=2, time_limit_s=5)
    >>> print(sum(len(s.nodes) for s in plan.stages), plan.solver.status)
    3 OPTIMAL
    """
    options = CompileOptions.of(options, **overrides)
    resolve_chips(chips, backend)  # a bad chip list fails before the capture
    lowered = lower(model, example_inputs, chips, backend, options, calibration_inputs, progress)
    return schedule(lowered, solve(lowered, chips, backend, options, progress), options)


def _shape(t: object) -> str:
    return "x".join(str(int(d)) for d in t.shape) if isinstance(t, torch.Tensor) else type(t).__name__


def check_calibration(gm: torch.fx.GraphModule, calibration_inputs: Sequence[tuple]) -> tuple[tuple, ...]:
    """Calibration input tuples, each checked against the captured inputs' count and shapes."""
    expected = [n.meta.get("val") for n in gm.graph.nodes if n.op == "placeholder"]
    out = []
    for i, batch in enumerate(calibration_inputs):
        batch = tuple(batch) if isinstance(batch, (tuple, list)) else (batch,)
        if len(batch) != len(expected):
            raise ChipcutError(f"calibration input {i} has {len(batch)} tensors; the model takes "
                               f"{len(expected)} ({', '.join(_shape(e) for e in expected)})")
        for j, (got, want) in enumerate(zip(batch, expected, strict=True)):
            if isinstance(want, torch.Tensor) and (not isinstance(got, torch.Tensor)
                                                   or tuple(got.shape) != tuple(want.shape)):
                raise ChipcutError(f"calibration input {i}, argument {j}: shape {_shape(got)}, "
                                   f"expected {_shape(want)} (the shape the model was captured "
                                   "with); give tensors of that shape")
        out.append(batch)
    return tuple(out)


__all__ = ["compile", "lower", "solve", "schedule", "profile", "refine", "CompileOptions",
           "Lowered", "Solved", "resolve_chips"]
