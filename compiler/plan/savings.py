"""Quantization savings: the same plan costed at the model's own precision, beside the quantized one."""

from __future__ import annotations

import warnings
from dataclasses import replace

import torch.fx

from chipcut.backends.protocol import Backend
from chipcut.compiler.lowering.costing import unit_works
from chipcut.compiler.lowering.summary import GraphSummary, summarize
from chipcut.compiler.lowering.units import UnitGraph
from chipcut.compiler.plan.schedule import Costed, Schedule, cost_assignment, unit_costs
from chipcut.core.ir import QuantReport, clear_precision
from chipcut.passes.accounting import accounting


def _bytes(summary: GraphSummary) -> tuple[int, int]:
    """(stored weight bytes, activation bytes written by compute nodes) of one inference."""
    return sum(b for _, b in summary.weights), sum(r.out_bytes for r in summary.nodes)


def unquantized(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """A view of ``gm`` at the model's own precision, accounted: its graph is a copy (node metadata
    copied shallowly, weights shared) with the precision annotations removed. ``gm`` is untouched."""
    graph = torch.fx.Graph()
    out = graph.graph_copy(gm.graph, {})
    graph.output(out)
    plain = torch.fx.GraphModule(gm, graph)
    for node in plain.graph.nodes:
        clear_precision(node)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the first accounting already reported unknown ops
        return accounting(plain)


def with_savings(report: QuantReport, gm: torch.fx.GraphModule, units: UnitGraph,
                 backends: list[Backend], costed: Costed, schedule: Schedule,
                 options: object) -> QuantReport:
    """``report`` with weight and activation bytes and dynamic energy before and after: "before"
    is the same assignment on the same chips, costed on the graph at its own precision."""
    after = _bytes(summarize(gm, units))
    summary = summarize(unquantized(gm), units)
    before = _bytes(summary)
    works = unit_works(summary, len(units.units))
    plain = cost_assignment(units, works, backends, costed.chip_of_unit, costed.replicas,
                            options.interconnect, summary.io_bytes())
    energy_before = sum(c.energy_j for c in unit_costs(works, backends, plain))
    return replace(report, weight_bytes_before=before[0], weight_bytes_after=after[0],
                   activation_bytes_before=before[1], activation_bytes_after=after[1],
                   energy_j_before=energy_before,
                   energy_j_after=schedule.metrics.dynamic_energy_j)
