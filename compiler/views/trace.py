"""Chrome trace export (opens in Perfetto or chrome://tracing): one pipelined period of a plan."""

from __future__ import annotations

import json
import os

from chipcut.compiler.plan.model import Plan
from chipcut.core.files import write_atomic

US = 1e6  # trace timestamps are microseconds
LINK_PID = 1000


def chrome_trace(plan: Plan) -> dict:
    """Trace events: a process per chip (its ops) and per link (its transfers), one period."""
    events: list[dict] = []
    for timeline in plan.timeline:
        stage = plan.stages[timeline.chip]
        events.append({"ph": "M", "name": "process_name", "pid": timeline.chip,
                       "args": {"name": f"chip {timeline.chip} ({stage.backend})"}})
        events.append({"ph": "M", "name": "process_sort_index", "pid": timeline.chip,
                       "args": {"sort_index": timeline.chip}})
        for op in timeline.ops:
            events.append({
                "ph": "X", "pid": timeline.chip, "tid": 0, "name": op.op, "cat": op.bound,
                "ts": op.start_s * US, "dur": (op.end_s - op.start_s) * US,
                "args": {"unit": op.name, "bound": op.bound, "utilization": op.utilization,
                         "macs": op.macs, "dram_bytes": op.dram_bytes,
                         "sram_bytes": op.sram_bytes, "energy_j": op.energy_j},
            })
    for i, t in enumerate(plan.transfers):
        pid = LINK_PID + i
        events.append({"ph": "M", "name": "process_name", "pid": pid,
                       "args": {"name": f"link {t.src}->{t.dst}"}})
        events.append({"ph": "M", "name": "process_sort_index", "pid": pid,
                       "args": {"sort_index": LINK_PID + i}})
        events.append({"ph": "X", "pid": pid, "tid": 0, "name": f"{t.bytes / 1e6:.3f} MB",
                       "cat": "transfer", "ts": 0.0, "dur": t.time_s * US,
                       "args": {"bytes": t.bytes, "tensors": list(t.tensors)}})
    return {"traceEvents": events, "displayTimeUnit": "ns",
            "otherData": {"model": plan.model.name, "period_s": plan.metrics.bottleneck_s,
                          "bottleneck": plan.metrics.bottleneck}}


def write_trace(plan: Plan, path: str | os.PathLike) -> None:
    write_atomic(path, json.dumps(chrome_trace(plan)))
