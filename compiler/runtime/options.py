"""The options of a run, checked before anything starts."""

from __future__ import annotations

import math
from dataclasses import dataclass

from chipcut.core.errors import ChipcutError

SCHEDULE_NAMES = ("gpipe", "1f1b")  # torch.distributed.pipelining ScheduleGPipe, Schedule1F1B
DEVICES = ("cpu", "cuda")


def _whole(name: str, value: object, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ChipcutError(f"{name} = {value!r}: must be a whole number >= {least}")
    return value


@dataclass(frozen=True)
class RunOptions:
    """How to run a plan. ``frames`` are timed after one warmup step of ``microbatches``
    frames and must be a multiple of it; ``threads`` torch threads per stage process;
    ``timeout_s`` bounds the whole run; ``port``: None picks a free one.

    >>> RunOptions(frames=8, microbatches=4).steps
    2
    """

    frames: int = 16
    microbatches: int = 4
    schedule: str = "gpipe"
    threads: int = 1
    device: str = "cpu"
    timeout_s: float = 300.0
    oversubscribe: bool = False
    port: int | None = None
    latency_frames: int = 3

    def __post_init__(self) -> None:
        _whole("frames", self.frames, 1)
        _whole("microbatches", self.microbatches, 1)
        _whole("threads", self.threads, 1)
        _whole("latency_frames", self.latency_frames, 1)
        if self.frames % self.microbatches:
            below = self.frames - self.frames % self.microbatches
            raise ChipcutError(
                f"frames = {self.frames} is not a multiple of microbatches = {self.microbatches}: "
                f"each schedule step runs {self.microbatches} frames; give frames = "
                + (f"{below} or {below + self.microbatches}" if below else
                   f"{self.microbatches}, or microbatches = {self.frames}"))
        if self.schedule not in SCHEDULE_NAMES:
            raise ChipcutError(f"schedule = {self.schedule!r}: known schedules are "
                               f"{', '.join(SCHEDULE_NAMES)}")
        if self.device not in DEVICES:
            raise ChipcutError(f"device = {self.device!r}: give one of {', '.join(DEVICES)}")
        if not (isinstance(self.timeout_s, (int, float)) and 0 < self.timeout_s < math.inf):
            raise ChipcutError(f"timeout = {self.timeout_s!r}: must be a finite number > 0 seconds")
        if self.port is not None:
            _whole("port", self.port, 1)

    @property
    def steps(self) -> int:
        return self.frames // self.microbatches



__all__ = ["RunOptions", "SCHEDULE_NAMES", "DEVICES"]
