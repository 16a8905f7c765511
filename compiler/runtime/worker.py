"""One pipeline rank: join the process group, run its stage under a torch.distributed.pipelining
schedule (forward only), and record when each forward, send and receive happened.

Times are ``time.perf_counter`` seconds from one origin that every rank shares: on one host
the monotonic clock is the same in every process, so rank 0's reading at a barrier is the
origin for all; across hosts each rank takes its own reading at that barrier.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.distributed.pipelining import PipelineStage, Schedule1F1B, ScheduleGPipe

from chipcut.compiler.runtime.options import SCHEDULE_NAMES
from chipcut.compiler.runtime.stages import StageModule
from chipcut.core.heap import keep_heap

SCHEDULES = dict(zip(SCHEDULE_NAMES, (ScheduleGPipe, Schedule1F1B), strict=True))


@dataclass(frozen=True)
class Job:
    """What one rank runs. ``frames``: rank 0 only, the microbatches of one schedule step
    concatenated along dim 0 (the schedule splits them back)."""

    rank: int
    world: int
    module: StageModule
    schedule: str
    microbatches: int
    steps: int  # measured steps, after one warmup step
    latency_frames: int
    threads: int
    cores: tuple[int, ...]
    device: str  # "cpu" or "cuda"
    timeout_s: float
    frames: tuple[torch.Tensor, ...] = ()


@dataclass(frozen=True)
class RankRecords:
    """What one rank saw, in seconds from the common origin. Step 0 is the warmup (not kept)."""

    rank: int
    cores: tuple[int, ...]
    forwards: tuple[tuple[int, int, float, float], ...]  # (step, microbatch, start, end)
    sends: tuple[tuple[int, int, float], ...]  # (step, microbatch, send started)
    recvs: tuple[tuple[int, int, float], ...]  # (step, microbatch, receive posted)
    sent_bytes: int  # per microbatch, to the next stage
    starts: tuple[float, ...]  # when this rank began each measured step
    latency: tuple[tuple[float, float], ...]  # single-frame steps: (began, last forward ended)
    outputs: tuple[tuple[torch.Tensor, ...], ...] = field(default=(), repr=False)


class TimedStage(PipelineStage):
    """torch's PipelineStage, noting when the schedule asks it to send and to receive. The
    module's ``metas`` (what it takes and gives for one frame), where set, are the stage's
    static shapes: torch then runs no shape inference on uninitialized tensors."""

    def __init__(self, module: StageModule, *args: object) -> None:
        takes, gives = module.metas if module.metas is not None else (None, None)
        super().__init__(module, *args, input_args=takes, output_args=gives)
        self.step_index = 0
        self.sends: list[tuple[int, int, float]] = []
        self.recvs: list[tuple[int, int, float]] = []

    def get_fwd_recv_ops(self, fwd_chunk_id: int) -> list:
        if not self.is_first:
            self.recvs.append((self.step_index, fwd_chunk_id, time.perf_counter()))
        return super().get_fwd_recv_ops(fwd_chunk_id)

    def get_fwd_send_ops(self, fwd_chunk_id: int) -> list:
        if not self.is_last:
            self.sends.append((self.step_index, fwd_chunk_id, time.perf_counter()))
        return super().get_fwd_send_ops(fwd_chunk_id)


def pin(threads: int, cores: tuple[int, ...]) -> None:
    """This process on ``cores`` (where the OS allows pinning) with ``threads`` torch threads,
    its heap kept (:func:`keep_heap`)."""
    if cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores)
    keep_heap()
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass


def run_rank(job: Job) -> list[RankRecords] | None:
    """Run one rank to the end; rank 0 returns every rank's records, the others None.

    The process group comes from the environment (``MASTER_ADDR``, ``MASTER_PORT``), as
    torchrun and the launcher both set it.
    """
    pin(job.threads, job.cores)
    cuda = job.device == "cuda"
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", job.rank))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    dist.init_process_group("nccl" if cuda else "gloo", rank=job.rank, world_size=job.world,
                            timeout=timedelta(seconds=job.timeout_s))
    try:
        origin = _origin()
        with torch.no_grad():
            records = _run(job, device, origin)
        gathered: list | None = [None] * job.world if job.rank == 0 else None
        dist.gather_object(records, gathered, dst=0)
        return gathered
    finally:
        dist.destroy_process_group()


def _origin() -> float:
    hosts: list[str | None] = [None] * dist.get_world_size()
    dist.all_gather_object(hosts, socket.gethostname())
    dist.barrier()
    mine = [time.perf_counter()]
    if len(set(hosts)) == 1:
        dist.broadcast_object_list(mine, src=0)
    return mine[0]


def _run(job: Job, device: torch.device, origin: float) -> RankRecords:
    module = job.module.to(device)
    module.sync = device.type == "cuda"
    first, last = job.rank == 0, job.rank == job.world - 1
    frames = tuple(t.to(device) for t in job.frames)
    stage = TimedStage(module, job.rank, job.world, device)
    schedule = SCHEDULES[job.schedule](stage, job.microbatches)

    def step(sched: object, inputs: tuple) -> None:
        sched.step(*inputs, return_outputs=False) if first else sched.step(return_outputs=False)

    step(schedule, frames)  # warmup
    module.spans.clear()
    stage.sends.clear()
    stage.recvs.clear()
    forwards, starts = [], []
    for s in range(1, job.steps + 1):
        stage.step_index = s
        module.keep_outputs = last and s == 1
        starts.append(time.perf_counter() - origin)
        step(schedule, frames)
        forwards += [(s, i, a - origin, b - origin) for i, (a, b) in enumerate(module.spans)]
        module.spans.clear()
    module.keep_outputs = False
    sent = module.out_bytes if not last else 0
    dist.barrier()
    latency = _latency(job, module, device, frames, origin, step)
    outputs = tuple(tuple(t.cpu() for t in out) for out in module.outputs)
    return RankRecords(job.rank, tuple(job.cores), tuple(forwards),
                       tuple((s, i, t - origin) for s, i, t in stage.sends),
                       tuple((s, i, t - origin) for s, i, t in stage.recvs), sent, tuple(starts),
                       latency, outputs)


def _latency(job: Job, module: StageModule, device: torch.device, frames: tuple,
             origin: float, step) -> tuple[tuple[float, float], ...]:
    """One frame at a time through the whole pipeline (a barrier between frames)."""
    one = tuple(t.tensor_split(job.microbatches)[0] for t in frames)
    stage = TimedStage(module, job.rank, job.world, device)
    schedule = SCHEDULES["gpipe"](stage, 1)
    step(schedule, one)  # warmup of this single-microbatch schedule
    dist.barrier()
    out = []
    for _ in range(job.latency_frames):
        module.spans.clear()
        began = time.perf_counter() - origin
        step(schedule, one)
        out.append((began, module.spans[-1][1] - origin))
        dist.barrier()
    return tuple(out)


__all__ = ["Job", "RankRecords", "TimedStage", "SCHEDULES", "run_rank", "pin"]
