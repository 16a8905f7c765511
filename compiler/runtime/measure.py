"""From what the ranks recorded to a :class:`Measured`: stage and link times beside the plan's,
throughput, latency, the measured bottleneck and the outputs against the unsplit model."""

from __future__ import annotations

import os
import platform
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from chipcut.compiler.plan.measured import (
    MEASURED_SCHEMA_VERSION,
    LinkMeasure,
    Measured,
    Span,
    StageMeasure,
    plan_hash,
)

if TYPE_CHECKING:  # the worker imports torch.distributed.pipelining, slow to import
    from chipcut.compiler.runtime.worker import RankRecords


@dataclass(frozen=True)
class RunInfo:
    """How the run was made: what a Measured records besides the timings."""

    model: str
    schedule: str
    frames: int
    microbatches: int
    threads: int
    device: str
    oversubscribed: bool
    wall_s: float


def machine() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"torch {torch.__version__}")


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def _stages(plan, records: list[RankRecords], chips: list[int]) -> list[StageMeasure]:
    out = []
    for k, rec in enumerate(records):
        busy = [end - start for _, _, start, end in rec.forwards]
        out.append(StageMeasure(k, chips[k], rec.rank, rec.cores, plan.stages[chips[k]].time_s,
                                _median(busy), statistics.fmean(busy) if busy else 0.0, len(busy)))
    return out


def _links(plan, records: list[RankRecords], chips: list[int]) -> tuple[list[LinkMeasure], list[Span]]:
    """Per link: the receiver's wait for each microbatch, from when both ends were ready."""
    predicted = {(t.src, t.dst): t for t in plan.transfers}
    links, spans = [], []
    for k in range(len(records) - 1):
        sent = {(s, i): t for s, i, t in records[k].sends}
        posted = {(s, i): t for s, i, t in records[k + 1].recvs}
        arrived = {(s, i): a for s, i, a, _ in records[k + 1].forwards}
        times = []
        for key in sorted(arrived.keys() & sent.keys() & posted.keys()):
            ready = max(sent[key], posted[key])
            times.append(max(arrived[key] - ready, 0.0))
            spans.append(Span(k + 1, "transfer", key[0], key[1], ready, max(arrived[key], ready)))
        p = predicted.get((chips[k], chips[k + 1]))
        links.append(LinkMeasure(chips[k], chips[k + 1], records[k].sent_bytes,
                                 p.bytes if p else 0, _median(times), p.time_s if p else 0.0))
    return links, spans


def _outputs_diff(records: list[RankRecords], reference: list[tuple[torch.Tensor, ...]]) -> float:
    got = records[-1].outputs
    worst = 0.0
    for outs, refs in zip(got, reference, strict=True):
        for o, r in zip(outs, refs, strict=True):
            worst = max(worst, (o.double() - r.double()).abs().max().item() if o.numel() else 0.0)
    return worst


def assemble(plan, records: list[RankRecords], chips: list[int], info: RunInfo,
             reference: list[tuple[torch.Tensor, ...]]) -> Measured:
    """The Measured of one run: ``chips[k]`` is the plan's chip that stage ``k`` ran."""
    stages = _stages(plan, records, chips)
    links, transfer_spans = _links(plan, records, chips)
    began = records[0].starts[0] if records[0].starts else 0.0
    ended = max((end for _, _, _, end in records[-1].forwards), default=began)
    run_throughput = info.frames / (ended - began) if ended > began else 0.0
    throughput = _steady_throughput(records[-1].forwards) or run_throughput
    latency = _median([records[-1].latency[j][1] - records[0].latency[j][0]
                       for j in range(min(len(records[0].latency), len(records[-1].latency)))])
    times = {f"chip {s.chip}": s.busy_s for s in stages}
    times.update({f"link {x.src}->{x.dst}": x.time_s for x in links})
    spans = [Span(k, "forward", s, i, a, b) for k, rec in enumerate(records)
             for s, i, a, b in rec.forwards]
    scale = max((r.abs().max().item() for refs in reference for r in refs
                 if r.numel() and r.is_floating_point()), default=0.0)
    return Measured(
        schema_version=MEASURED_SCHEMA_VERSION, plan_fingerprint=plan.fingerprint,
        plan_hash=plan_hash(plan), model=info.model, schedule=info.schedule, frames=info.frames,
        microbatches=info.microbatches, threads=info.threads, device=info.device,
        process_backend="nccl" if info.device == "cuda" else "gloo",
        oversubscribed=info.oversubscribed, stages=tuple(stages), links=tuple(links),
        throughput_per_s=throughput, predicted_throughput_per_s=plan.metrics.throughput_per_s,
        latency_s=latency, predicted_latency_s=plan.metrics.latency_s,
        bottleneck=max(times, key=times.get), predicted_bottleneck=plan.metrics.bottleneck,
        max_abs_diff=_outputs_diff(records, reference), output_scale=float(scale),
        wall_s=info.wall_s, machine=machine(),
        spans=tuple(sorted(spans + transfer_spans, key=lambda x: (x.start_s, x.stage))),
        run_throughput_per_s=run_throughput)


def _steady_throughput(last_stage_forwards) -> float:
    """Frames/s the full pipeline sustains: one over the median interval between consecutive
    frames leaving the last stage. Each schedule step fills and drains the pipeline; with
    several microbatches per step most intervals are the sustained ones, and the median
    leaves the step boundaries out (the plan predicts the sustained rate)."""
    ends = sorted(end for _, _, _, end in last_stage_forwards)
    gaps = [b - a for a, b in zip(ends, ends[1:], strict=False) if b > a]
    return 1.0 / _median(gaps) if gaps else 0.0


__all__ = ["RunInfo", "assemble", "machine"]
