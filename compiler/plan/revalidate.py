"""Re-validation of a plan edited by hand: still a pipeline? then cost it again on its backends,
rebuilt from the specs the plan carries."""

from __future__ import annotations

from dataclasses import replace

from chipcut.backends.loader import from_dict
from chipcut.backends.protocol import Backend
from chipcut.backends.registry import get_backend
from chipcut.compiler.lowering.costing import unit_works
from chipcut.compiler.lowering.summary import units_of
from chipcut.compiler.plan.model import Plan
from chipcut.compiler.plan.schedule import build_schedule, cost_assignment
from chipcut.core.errors import ChipcutError
from chipcut.core.vocab import Status


def _assignment(plan: Plan) -> dict[str, int]:
    records = {r.name for r in plan.graph.nodes}
    if len(plan.stages) != len(plan.chips):
        raise ChipcutError(f"plan has {len(plan.stages)} stages for {len(plan.chips)} chips; "
                           "keep one stage per chip (an empty one has nodes: [])")
    chip_of: dict[str, int] = {}
    for k, stage in enumerate(plan.stages):
        if stage.chip != k:
            raise ChipcutError(f"stages[{k}] says chip {stage.chip}; stages must be listed in chip "
                               "order 0, 1, ...")
        if stage.replica_of >= 0 and stage.nodes:
            raise ChipcutError(f"stage {k} is a replica of chip {stage.replica_of} but lists nodes; "
                               f"list them on chip {stage.replica_of}, or set replica_of: -1 and "
                               "replicas: 1 to make it a stage of its own")
        for name in stage.nodes:
            if name not in records:
                raise ChipcutError(f"stage {k} lists node {name!r}, which is not in the model's "
                                   "graph; remove it or fix the name")
            if name in chip_of:
                raise ChipcutError(f"node {name} is in stages {chip_of[name]} and {k}; keep it in one")
            chip_of[name] = k
    missing = [r.name for r in plan.graph.nodes if r.name not in chip_of]
    if missing:
        raise ChipcutError(f"node {missing[0]} is in no stage ({len(missing)} nodes missing); "
                           "add it to the stage of its neighbours")
    return chip_of


def _check_pipeline(plan: Plan, chip_of: dict[str, int]) -> tuple[int, ...]:
    unit_chip: dict[int, tuple[int, str]] = {}
    for r in plan.graph.nodes:
        k = chip_of[r.name]
        if r.unit in unit_chip and unit_chip[r.unit][0] != k:
            other = unit_chip[r.unit][1]
            raise ChipcutError(f"nodes {other} and {r.name} form one fused unit but sit on chips "
                               f"{unit_chip[r.unit][0]} and {k}; move them together")
        unit_chip.setdefault(r.unit, (k, r.name))
        for name in r.inputs:
            if name in chip_of and chip_of[name] > k:
                raise ChipcutError(
                    f"node {r.name} on chip {k} reads {name} from chip {chip_of[name]}, a later "
                    f"chip: that edge runs backwards, so the plan is no longer a pipeline; move "
                    f"{name} to chip {k} or earlier, or {r.name} to chip {chip_of[name]} or later")
    return tuple(unit_chip[u][0] for u in range(len(unit_chip)))


def plan_backends(plan: Plan) -> list[Backend]:
    """The plan's chips, rebuilt from the specs it carries; a chip without one is looked up by
    name among the installed backends."""
    records = {r.name: r for r in plan.chip_specs}
    built: dict[str, Backend] = {}
    for name in plan.chips:
        if name in built:
            continue
        record = records.get(name)
        if record is not None and record.spec is not None:
            built[name] = from_dict(record.spec, f"plan chip_specs entry {name!r}")
        else:
            try:
                built[name] = get_backend(name)
            except ChipcutError:
                provider = f" (provided by {record.provider})" if record else ""
                raise ChipcutError(f"plan chip {name!r}{provider} has no spec in the plan and is "
                                   "not installed; install its backend, or recompile") from None
    return [built[name] for name in plan.chips]


def revalidate(plan: Plan) -> tuple[Plan, bool]:
    """(the plan re-costed on its backends, whether anything changed). Errors name the node."""
    if plan.graph is None:
        return plan, False
    chip_of_unit = _check_pipeline(plan, _assignment(plan))
    backends = plan_backends(plan)
    units = units_of(plan.graph)
    works = unit_works(plan.graph, len(units.units))
    replicas = tuple(s.replicas if s.replica_of < 0 else 0 for s in plan.stages)
    costed = cost_assignment(units, works, backends, chip_of_unit, replicas, plan.interconnect,
                             plan.graph.io_bytes())
    schedule = build_schedule(plan.graph, units, works, backends, costed,
                              plan.metrics.lower_bound_s, batch=plan.metrics.batch,
                              net=plan.interconnect)
    if schedule.stages == plan.stages and schedule.transfers == plan.transfers:
        return plan, False
    m = schedule.metrics
    value = m.latency_s if plan.interconnect.objective == "latency" else m.bottleneck_s
    bound = min(plan.solver.bound, value)
    solver = replace(plan.solver, status=Status.EDITED, objective=value, bound=bound,
                     gap=(value - bound) / value if value else 0.0, bytes_moved=m.bytes_moved)
    return replace(plan, stages=schedule.stages, transfers=schedule.transfers, metrics=m,
                   timeline=schedule.timeline, solver=solver), True
