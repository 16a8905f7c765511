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
from chipcut.core.ir import QuantReport, clear_precision, get_precision, is_compute, set_precision
from chipcut.passes.accounting import accounting


def _bytes(summary: GraphSummary) -> tuple[int, int]:
    """(stored weight bytes, activation bytes written by compute nodes) of one inference."""
    return sum(b for _, b in summary.weights), sum(r.out_bytes for r in summary.nodes)


def with_savings(report: QuantReport, gm: torch.fx.GraphModule, units: UnitGraph,
                 backends: list[Backend], costed: Costed, schedule: Schedule,
                 options: object) -> QuantReport:
    """``report`` with weight and activation bytes and dynamic energy before and after.

    "Before" re-accounts the graph with the precision annotations removed and costs the
    same assignment on the same chips; the annotations are restored afterwards.
    """
    saved = {n: get_precision(n) for n in gm.graph.nodes if is_compute(n) and get_precision(n)}
    after = _bytes(summarize(gm, units))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the first accounting already reported unknown ops
        for n in saved:
            clear_precision(n)
        try:
            accounting(gm)
            summary = summarize(gm, units)
            before = _bytes(summary)
            works = unit_works(summary, len(units.units))
        finally:
            for n, p in saved.items():
                set_precision(n, p)
            accounting(gm)
    plain = cost_assignment(units, works, backends, costed.chip_of_unit, costed.replicas,
                            options.interconnect, summary.io_bytes())
    energy_before = sum(c.energy_j for c in unit_costs(works, backends, plain))
    return replace(report, weight_bytes_before=before[0], weight_bytes_after=after[0],
                   activation_bytes_before=before[1], activation_bytes_after=after[1],
                   energy_j_before=energy_before,
                   energy_j_after=schedule.metrics.dynamic_energy_j)
