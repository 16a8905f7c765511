"""Split: one GraphModule per chip, built with torch's own ``split_module``.

``split_module`` passes tensor attributes between partitions as inputs; we move
each weight into the stage that reads it, so a stage module owns its weights
and takes only activations.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.fx
from torch.fx.passes.split_module import split_module

from chipcut.compiler.lowering.summary import fingerprint
from chipcut.core.errors import ChipcutError
from chipcut.core.ir import attr_value, is_compute


@dataclass
class SplitModel:
    """``stages[k]`` runs on chip k; calling the SplitModel runs the pipeline.

    ``stage_inputs[k]`` / ``stage_outputs[k]`` name the values (original FX node
    names) each stage takes and returns, so the stages can be run by hand.
    """

    top: torch.fx.GraphModule
    stages: list[torch.fx.GraphModule]
    stage_inputs: list[list[str]]
    stage_outputs: list[list[str]]
    input_names: list[str]
    output_names: list[str]

    def __call__(self, *inputs: torch.Tensor) -> tuple:
        return self.run_stages(*inputs)

    def run_stages(self, *inputs: torch.Tensor) -> tuple:
        """Feed inputs through the stages in order, passing values by name; returns the outputs."""
        env = dict(zip(self.input_names, inputs, strict=True))
        for stage, names_in, names_out in zip(self.stages, self.stage_inputs, self.stage_outputs,
                                              strict=True):
            result = stage(*[env[n] for n in names_in])
            if not isinstance(result, (tuple, list)):
                result = (result,)
            env.update(zip(names_out, result, strict=True))
        return tuple(env[n] for n in self.output_names)


def _own_weights(top: torch.fx.GraphModule, call: torch.fx.Node) -> None:
    """Turn weight inputs of one stage call into attributes of the stage module."""
    sub = getattr(top, call.target)
    placeholders = [p for p in sub.graph.nodes if p.op == "placeholder"]
    kept = []
    for arg, ph in zip(call.args, placeholders, strict=True):
        if isinstance(arg, torch.fx.Node) and arg.op == "get_attr":
            value = attr_value(arg)
            name = "w_" + str(arg.target).replace(".", "_")
            if isinstance(value, torch.nn.Parameter):
                sub.register_parameter(name, value)
            else:
                sub.register_buffer(name, value)
            with sub.graph.inserting_before(ph):
                fetched = sub.graph.get_attr(name)
            fetched.meta = dict(ph.meta)
            ph.replace_all_uses_with(fetched)
            sub.graph.erase_node(ph)
        else:
            kept.append(arg)
    call.args = tuple(kept)
    sub.recompile()


def _pipeline_order(gm: torch.fx.GraphModule, chip_of: dict[str, int]) -> torch.fx.GraphModule:
    """A copy of ``gm`` with compute nodes ordered by (chip, original position).

    That is a topological order (stages are contiguous), and it keeps each chip's nodes
    together, which split_module needs when a fused group pulls a node ahead of others.
    """
    index = {n: i for i, n in enumerate(gm.graph.nodes)}

    def key(n: torch.fx.Node) -> tuple[int, int, int]:
        rank = 2 if n.op == "output" else (1 if is_compute(n) else 0)
        return rank, chip_of.get(n.name, 0) if is_compute(n) else 0, index[n]

    graph = torch.fx.Graph()
    env: dict[torch.fx.Node, torch.fx.Node] = {}
    for n in sorted(gm.graph.nodes, key=key):
        env[n] = graph.node_copy(n, lambda a: env[a])
    return torch.fx.GraphModule(gm, graph)


def split_plan(plan: object, gm: torch.fx.GraphModule | None) -> SplitModel:
    """Split ``gm`` by the plan's stages (every compute node goes to its stage's chip)."""
    if gm is None:
        raise ChipcutError("this plan has no captured graph (it was loaded from JSON); pass one: "
                           "plan.split(chipcut.capture(model, inputs).graph_module)")
    if not isinstance(gm, torch.fx.GraphModule):
        raise ChipcutError(f"plan.split takes the captured graph, not a {type(gm).__name__}: "
                           "plan.split(chipcut.capture(model, inputs).graph_module)")
    chip_of = {name: s.chip for s in plan.stages for name in s.nodes}
    missing = [n.name for n in gm.graph.nodes if is_compute(n) and n.name not in chip_of]
    if missing and getattr(plan, "passes", ""):
        # A freshly captured graph: redo the plan's graph rewrites (annotations do not matter here).
        from chipcut.passes.manager import Pipeline

        rewrites = Pipeline(tuple(p for p in Pipeline.parse(plan.passes).passes
                                  if getattr(p, "structural", False)))
        gm = rewrites.run(copy.deepcopy(gm))
        missing = [n.name for n in gm.graph.nodes if is_compute(n) and n.name not in chip_of]
    if missing:
        raise ChipcutError(f"node {missing[0]} of the graph is in no stage of the plan "
                           f"({len(missing)} such nodes); the plan was made for another model")
    found = fingerprint(gm)
    if getattr(plan, "fingerprint", "") and found != plan.fingerprint:
        raise ChipcutError(f"the graph's fingerprint {found} differs from the plan's "
                           f"{plan.fingerprint}: the plan was made for another model or other input "
                           "shapes or dtypes; capture the model the plan was compiled from, or recompile")
    gm = _pipeline_order(gm, chip_of)
    top = split_module(gm, gm, lambda node: chip_of[node.name], keep_original_order=True,
                       keep_original_node_name=True)
    calls = [n for n in top.graph.nodes if n.op == "call_module"]
    for call in calls:
        _own_weights(top, call)
    top.graph.eliminate_dead_code()
    top.recompile()
    stages = [getattr(top, c.target) for c in calls]
    ins = [[p.name for p in s.graph.nodes if p.op == "placeholder"] for s in stages]
    outs = []
    for s in stages:
        result = next(n for n in s.graph.nodes if n.op == "output").args[0]
        flat = result if isinstance(result, (tuple, list)) else (result,)
        outs.append([a.name for a in flat])
    gm_out = next(n for n in gm.graph.nodes if n.op == "output").args[0]
    flat_out = gm_out if isinstance(gm_out, (tuple, list)) else (gm_out,)
    inputs = [n.name for n in gm.graph.nodes if n.op == "placeholder"]
    return SplitModel(top, stages, ins, outs, inputs, [a.name for a in flat_out])
