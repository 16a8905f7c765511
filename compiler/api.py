"""The programmatic entry point: ``compile(model, example_inputs, chips, backend) -> Plan``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from backends.protocol import Backend
from backends.registry import get_backend
from compiler.capture import Captured, capture
from compiler.costing import unit_works
from compiler.errors import ChipcutError
from compiler.ir import get_cost, is_compute
from compiler.plan import SCHEMA_VERSION, ModelInfo, Plan, SolverInfo
from compiler.residency import partition
from compiler.schedule import build_schedule
from compiler.summary import summarize
from compiler.units import build_units
from passes.accounting import accounting


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
) -> Plan:
    """Capture ``model``, account its work, and cut it into a pipeline over ``chips`` chips.

    >>> import torch, compiler
    >>> net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8))
    >>> plan = compiler.compile(net, (torch.randn(1, 64),), chips=2)
    >>> [len(s.nodes) > 0 for s in plan.stages]
    [True, True]
    """
    if batch < 1:
        raise ChipcutError(f"batch = {batch}: must be >= 1 frame")
    if time_limit_s <= 0:
        raise ChipcutError(f"time_limit_s = {time_limit_s}: must be > 0 seconds")
    backends = resolve_chips(chips, backend)
    say = progress or (lambda _msg: None)
    if isinstance(model, Captured):
        captured = model
    else:
        say("capturing model")
        captured = capture(model, tuple(example_inputs), name=name)
    gm = captured.graph_module
    accounting(gm)
    units = build_units(gm)
    n_chips = len(backends)
    if n_chips > len(units.units):
        raise ChipcutError(f"{n_chips} chips but the model has only {len(units.units)} partition "
                           f"units ({sum(is_compute(n) for n in gm.graph.nodes)} compute nodes); "
                           f"use at most {len(units.units)} chips")
    summary = summarize(gm, units)
    works = unit_works(summary, len(units.units))
    say(f"solving {len(units.units)} units on {n_chips} chips")
    result = partition(units, works, backends, time_limit_s, progress)
    solution = result.solution
    schedule = build_schedule(summary, works, solution.chip_of_unit, backends,
                              result.lower_bound_s, batch=batch)
    compute = [n for n in gm.graph.nodes if is_compute(n)]
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
                          solution.wall_s, solution.bytes_moved),
        timeline=schedule.timeline,
        graph=summary,
        notes=result.notes,
        graph_module=gm,
    )

