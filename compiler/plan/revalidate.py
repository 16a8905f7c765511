"""Re-validation of a plan edited by hand: still a pipeline? then cost it again on its backends,
rebuilt from the specs the plan carries."""

from __future__ import annotations

from dataclasses import replace

from chipcut.backends.loader import rebuild
from chipcut.backends.protocol import Backend
from chipcut.backends.registry import get_backend
from chipcut.compiler.lowering.costing import unit_works
from chipcut.compiler.lowering.summary import units_of
from chipcut.compiler.plan.model import Plan
from chipcut.compiler.plan.schedule import build_schedule, cost_assignment
from chipcut.compiler.plan.serving import recosted
from chipcut.core.errors import ChipcutError
from chipcut.core.vocab import Status


def _check_fields(plan: Plan) -> None:
    """The ranges ``compile`` guarantees and JSON cannot express, each with a one-line fix."""
    if plan.graph is None:
        raise ChipcutError("plan field graph is null: a plan needs its graph summary to be "
                           "checked and costed; recompile it with chipcut compile --out")
    if not plan.chips:
        raise ChipcutError("plan field chips is empty; list one backend name per chip")
    if plan.metrics.batch < 1:
        raise ChipcutError(f"plan field metrics.batch = {plan.metrics.batch}: must be >= 1 frame")
    units = sorted({r.unit for r in plan.graph.nodes})
    if units != list(range(len(units))):
        bad = next((u for i, u in enumerate(units) if u != i), units[-1] if units else -1)
        raise ChipcutError(f"plan field graph.nodes has unit {bad}: units must be numbered "
                           f"0..{len(units) - 1} without gaps; restore the numbers compile wrote")
    n = len(plan.stages)
    for k, s in enumerate(plan.stages):
        if s.replicas < 0 or s.replicas > n - k:
            raise ChipcutError(f"stages[{k}].replicas = {s.replicas}: must be 0 (a replica) or "
                               f"1..{n - k} (this chip and the chips after it)")
        if s.replicas == 0 and not 0 <= s.replica_of < k:
            raise ChipcutError(f"stages[{k}] has replicas 0 but replica_of = {s.replica_of}: name "
                               f"the earlier chip it copies (0..{k - 1}), or set replicas: 1")
        if s.replicas > 0 and s.replica_of != -1:
            raise ChipcutError(f"stages[{k}].replica_of = {s.replica_of} on a stage of its own "
                               "(replicas >= 1): set replica_of: -1")
        for j in range(k + 1, k + max(s.replicas, 1)):
            other = plan.stages[j]
            if other.replica_of != k or plan.chips[j] != plan.chips[k]:
                raise ChipcutError(f"stages[{k}] has replicas {s.replicas} but chip {j} is not "
                                   f"its replica (replica_of {other.replica_of}, backend "
                                   f"{plan.chips[j]}); replicas are the next identical chips")
    for k, s in enumerate(plan.stages):
        if s.replicas == 0:
            lead = plan.stages[s.replica_of]
            if not s.replica_of < k < s.replica_of + lead.replicas:
                raise ChipcutError(f"stages[{k}] says it is a replica of chip {s.replica_of}, "
                                   f"whose stage has replicas {lead.replicas}; make them agree")


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
        if record is None and (name.endswith(".toml") or "/" in name or "\\" in name):
            raise ChipcutError(f"plan chip {name!r} is a file path; a plan names installed "
                               "backends and carries their specs in chip_specs; recompile it")
        if record is not None and record.spec is not None:
            built[name] = rebuild(record.spec, f"plan chip_specs entry {name!r}")
        else:
            try:
                built[name] = get_backend(name)
            except ChipcutError:
                provider = f" (provided by {record.provider})" if record else ""
                raise ChipcutError(f"plan chip {name!r}{provider} has no spec in the plan and is "
                                   "not installed; install its backend, or recompile") from None
    return [built[name] for name in plan.chips]


def revalidate(plan: Plan) -> tuple[Plan, bool]:
    """(the plan re-costed on its backends, whether anything changed). Errors name the node.

    A plan that changed is EDITED, unless its content is what chipcut wrote (``plan.intact``):
    then it was costed by another version of chipcut, and is RECOSTED."""
    _check_fields(plan)
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
    m = schedule.metrics
    again = replace(plan, model=replace(plan.model, macs=sum(r.macs for r in plan.graph.nodes),
                                        nodes=len(plan.graph.nodes), units=len(units.units)),
                    backend=plan.chips[0] if len(set(plan.chips)) == 1 else "mixed",
                    stages=schedule.stages, transfers=schedule.transfers, metrics=m,
                    timeline=schedule.timeline,
                    serving=recosted(plan.serving, schedule.stages, m, backends))
    if again == plan:  # every figure as this chipcut computes it
        return plan, False
    value = m.latency_s if plan.interconnect.objective == "latency" else m.bottleneck_s
    bound = min(plan.solver.bound, value)
    status = Status.RECOSTED if plan.intact else Status.EDITED
    again = replace(again, solver=replace(
        plan.solver, status=status, objective=value, bound=bound,
        gap=(value - bound) / value if value else 0.0, bytes_moved=m.bytes_moved))
    return again.sealed(), True
