"""Re-validation of a plan edited by hand: still a pipeline? then cost it again on its backends."""

from __future__ import annotations

from dataclasses import replace

from chipcut.backends.registry import get_backend
from chipcut.compiler.lowering.costing import unit_works
from chipcut.compiler.plan.model import Plan
from chipcut.compiler.plan.schedule import build_schedule
from chipcut.compiler.solver.problem import Interconnect
from chipcut.core.errors import ChipcutError


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


def revalidate(plan: Plan) -> tuple[Plan, bool]:
    """(the plan re-costed on its backends, whether anything changed). Errors name the node."""
    if plan.graph is None:
        return plan, False
    chip_of_unit = _check_pipeline(plan, _assignment(plan))
    backends = [get_backend(name) for name in plan.chips]
    works = unit_works(plan.graph, len(chip_of_unit))
    net = Interconnect(topology=plan.topology, objective=plan.objective,
                       switch_bytes_per_s=plan.switch_bytes_per_s, host_bytes_per_s=plan.host_bytes_per_s)
    replicas = tuple(s.replicas if s.replica_of < 0 else 0 for s in plan.stages)
    schedule = build_schedule(plan.graph, works, chip_of_unit, backends,
                              plan.metrics.lower_bound_s, batch=plan.metrics.batch,
                              replicas=replicas, net=net)
    if schedule.stages == plan.stages and schedule.transfers == plan.transfers:
        return plan, False
    m = schedule.metrics
    bound = min(plan.solver.bound, m.bottleneck_s)
    solver = replace(plan.solver, status="EDITED", objective=m.bottleneck_s, bound=bound,
                     gap=(m.bottleneck_s - bound) / m.bottleneck_s if m.bottleneck_s else 0.0,
                     bytes_moved=m.bytes_moved)
    return replace(plan, stages=schedule.stages, transfers=schedule.transfers, metrics=m,
                   timeline=schedule.timeline, solver=solver), True
