"""Chrome trace export (opens in Perfetto or chrome://tracing): one pipelined period of a plan,
or the measured timeline of a run (``chipcut run --trace``) in the same layout."""

from __future__ import annotations

import json
import os

from chipcut.compiler.plan.measured import Measured
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


def measured_trace(m: Measured) -> dict:
    """Trace events of a measured run, from the stage processes' own clocks: a process per stage
    (one event per forward, named step.microbatch) and per link (one per transfer)."""
    events: list[dict] = []
    names = {s.stage: f"stage {s.stage}: chip {s.chip}, rank {s.rank}" for s in m.stages}
    names.update({LINK_PID + k: f"link {x.src}->{x.dst}" for k, x in enumerate(m.links)})
    for pid, name in names.items():
        events.append({"ph": "M", "name": "process_name", "pid": pid, "args": {"name": name}})
        events.append({"ph": "M", "name": "process_sort_index", "pid": pid,
                       "args": {"sort_index": pid}})
    for span in m.spans:
        pid = span.stage if span.kind == "forward" else LINK_PID + span.stage - 1
        events.append({"ph": "X", "pid": pid, "tid": 0, "name": f"{span.step}.{span.microbatch}",
                       "cat": span.kind, "ts": span.start_s * US,
                       "dur": (span.end_s - span.start_s) * US,
                       "args": {"step": span.step, "microbatch": span.microbatch}})
    return {"traceEvents": events, "displayTimeUnit": "ns",
            "otherData": {"model": m.model, "schedule": m.schedule, "measured": True,
                          "throughput_per_s": m.throughput_per_s, "bottleneck": m.bottleneck}}


def write_measured_trace(m: Measured, path: str | os.PathLike) -> None:
    write_atomic(path, json.dumps(measured_trace(m)))
