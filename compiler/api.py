"""The programmatic entry point: ``compile(model, example_inputs, chips, backend) -> Plan``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import torch
from chipcut.backends.protocol import Backend
from chipcut.backends.registry import get_backend
from chipcut.compiler.capture import Captured, capture
from chipcut.compiler.lowering.costing import unit_works
from chipcut.compiler.lowering.summary import summarize
from chipcut.compiler.lowering.units import build_units
from chipcut.compiler.plan.model import SCHEMA_VERSION, ModelInfo, Plan, SolverInfo
from chipcut.compiler.plan.savings import with_savings
from chipcut.compiler.plan.schedule import build_schedule
from chipcut.compiler.solver.order import best_order
from chipcut.compiler.solver.problem import OBJECTIVES, TOPOLOGIES, Interconnect
from chipcut.core.errors import ChipcutError
from chipcut.core.ir import get_cost, get_group, get_quant_report, is_compute
from chipcut.passes.accounting import accounting
from chipcut.passes.manager import Pipeline, Target, as_pipeline


def resolve_chips(chips: int | Sequence[str | Backend], backend: str | Backend) -> list[Backend]:
    """One Backend per chip: ``chips`` is a count (all ``backend``) or a list of backend names."""
    if isinstance(chips, bool) or not isinstance(chips, (int, list, tuple)):
        raise ChipcutError(f"chips = {chips!r}: give a chip count (e.g. 4) or a list of backend names")
    if isinstance(chips, int):
        if chips < 1:
            raise ChipcutError(f"chips = {chips}: need at least 1 chip; pass chips=1 or more")
        one = get_backend(backend) if isinstance(backend, str) else backend
        return [one] * chips
    if not chips:
        raise ChipcutError("chips = []: name at least one backend, e.g. ['generic', 'generic']")
    return [get_backend(c) if isinstance(c, str) else c for c in chips]


def compile(  # noqa: A001 - the product's verb
    model: object,
    example_inputs: tuple = (),
    chips: int | Sequence[str | Backend] = 4,
    backend: str | Backend = "generic",
    time_limit_s: float = 10.0,
    name: str | None = None,
    progress: Callable[[str], None] | None = None,
    batch: int = 8,
    passes: str | Pipeline | None = "default",
    calibration_inputs: Sequence[tuple] = (),
    topology: str = "chain",
    objective: str = "throughput",
    replicate: bool = False,
    interconnect: Interconnect | None = None,
) -> Plan:
    """Capture ``model``, run the pass pipeline, account its work, and cut it over ``chips`` chips.

    ``passes`` is a pipeline such as ``"fold-bn,quantize{dtype=int8},fuse"`` (``"default"``:
    ``chipcut.passes.manager.DEFAULT_PIPELINE``; ``"none"``: no passes). ``calibration_inputs`` are
    input tuples shaped like ``example_inputs`` on which quantization measures SQNR (the
    example inputs are used when none are given). The captured graph is rewritten in place.

    ``topology`` wires the chips (``chain``, ``ring``, ``switch``); ``objective`` is
    ``throughput`` (least bottleneck, then fewest bytes) or ``latency`` (least batch-1
    latency); ``replicate`` lets a stage run on several identical chips taking alternate
    frames. ``interconnect`` sets all of these and the switch and host link bandwidths.
    When the chips differ, the solver also picks their order in the pipeline.

    >>> import torch, compiler
    >>> net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8))
    >>> plan = chipcut.compile(net, (torch.randn(1, 64),), chips=2)
    >>> [len(s.nodes) > 0 for s in plan.stages]
    [True, True]
    """
    if batch < 1:
        raise ChipcutError(f"batch = {batch}: must be >= 1 frame")
    if time_limit_s <= 0:
        raise ChipcutError(f"time_limit_s = {time_limit_s}: must be > 0 seconds")
    net = interconnect or Interconnect(topology=topology, objective=objective, replicate=replicate)
    check_interconnect(net)
    backends = resolve_chips(chips, backend)
    say = progress or (lambda _msg: None)
    if isinstance(model, Captured):
        captured = model
    else:
        say("capturing model")
        captured = capture(model, tuple(example_inputs), name=name)
    gm = captured.graph_module
    pipeline = as_pipeline(passes)
    calibration = check_calibration(gm, calibration_inputs)
    example = tuple(captured.example_inputs)
    target = Target(tuple(backends), example if all(isinstance(t, torch.Tensor) and not t.is_meta
                                                    for t in example) else (), calibration)
    gm = pipeline.run(gm, target, verify=True, progress=progress)
    accounting(gm)
    units = build_units(gm)
    n_chips = len(backends)
    if n_chips > len(units.units) and not net.replicate:
        raise ChipcutError(f"{n_chips} chips but the model has only {len(units.units)} partition "
                           f"units ({sum(is_compute(n) for n in gm.graph.nodes)} compute nodes); "
                           f"use at most {len(units.units)} chips, or let stages replicate (--replicate)")
    summary = summarize(gm, units)
    works = unit_works(summary, len(units.units))
    say(f"solving {len(units.units)} units on {n_chips} chips")
    backends, result = best_order(units, works, backends, time_limit_s, progress, net,
                                  summary.io_bytes())
    solution = result.solution
    schedule = build_schedule(summary, works, solution.chip_of_unit, backends,
                              result.lower_bound_s, batch=batch, replicas=solution.replicas, net=net)
    compute = [n for n in gm.graph.nodes if is_compute(n)]
    quant = get_quant_report(gm)
    if quant is not None:
        quant = with_savings(quant, gm, units, solution.chip_of_unit, backends, schedule, batch)
    groups = Counter(g.name for g in map(get_group, compute) if g is not None)
    return Plan(
        schema_version=SCHEMA_VERSION,
        model=ModelInfo(captured.name, sum(get_cost(n).macs for n in compute), len(compute),
                        len(units.units)),
        backend=backends[0].name if len({b.name for b in backends}) == 1 else "mixed",
        chips=tuple(b.name for b in backends),
        stages=schedule.stages,
        transfers=schedule.transfers,
        metrics=schedule.metrics,
        solver=SolverInfo(solution.status, solution.bottleneck_s, solution.bound_s, solution.gap,
                          solution.wall_s, solution.bytes_moved, solution.method),
        timeline=schedule.timeline,
        graph=summary,
        notes=result.notes,
        passes=str(pipeline),
        fused_groups=sum(1 for size in groups.values() if size > 1),
        quantization=quant,
        topology=net.topology,
        objective=net.objective,
        switch_bytes_per_s=net.switch_bytes_per_s,
        host_bytes_per_s=net.host_bytes_per_s,
        graph_module=gm,
    )


def check_interconnect(net: Interconnect) -> None:
    if net.topology not in TOPOLOGIES:
        raise ChipcutError(f"topology = {net.topology!r}: use one of {', '.join(TOPOLOGIES)}")
    if net.objective not in OBJECTIVES:
        raise ChipcutError(f"objective = {net.objective!r}: use one of {', '.join(OBJECTIVES)}")
    for field, value in (("switch_bytes_per_s", net.switch_bytes_per_s),
                         ("host_bytes_per_s", net.host_bytes_per_s)):
        if value is not None and value <= 0:
            raise ChipcutError(f"{field} = {value:g} bytes/s: must be > 0")


def _shape(t: object) -> str:
    return "x".join(str(int(d)) for d in t.shape) if isinstance(t, torch.Tensor) else type(t).__name__


def check_calibration(gm: object, calibration_inputs: Sequence[tuple]) -> tuple[tuple, ...]:
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
