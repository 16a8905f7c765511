"""Measured: what a plan did when it ran as a real pipeline, beside what the plan predicted.

A frozen, JSON-serializable value with its own ``schema_version``. It records the plan's
``fingerprint`` and a hash of the whole plan, so a measured file is only ever read beside the
plan it was measured on. Times are seconds, sizes bytes, rates frames per second.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import MISSING, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from chipcut.core.errors import ChipcutError
from chipcut.core.files import json_text

MEASURED_SCHEMA_VERSION = 1


def plan_hash(plan: Any) -> str:
    """A hash of everything a plan serializes: two plans hash alike only when their JSON does
    (its ``digest`` left out, a hash of the rest that plans from before it lack)."""
    data = plan.to_dict()
    data.pop("digest", None)
    text = json.dumps(data, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StageMeasure:
    """One pipeline stage: the plan's chip it stands for, the process that ran it, and the time
    inside its forward per microbatch (one frame), beside the plan's stage time."""

    stage: int  # position in the pipeline
    chip: int  # the plan's chip
    rank: int
    cores: tuple[int, ...]  # CPU cores the process was pinned to (empty: not pinned)
    predicted_s: float
    busy_s: float  # median over the measured microbatches
    busy_mean_s: float
    microbatches: int  # forwards measured


@dataclass(frozen=True)
class LinkMeasure:
    """The link from one stage to the next: bytes actually sent per frame (carried values
    included) and the median wall time from when both ends were ready to when the data was in
    the receiver (the receiver's wait, net of time the sender was not yet sending)."""

    src: int  # chips, as in the plan's transfers
    dst: int
    bytes: int
    predicted_bytes: int
    time_s: float
    predicted_s: float


@dataclass(frozen=True)
class Span:
    """One event of the measured timeline, seconds from the run's common origin."""

    stage: int
    kind: str  # "forward" or "transfer" (into this stage)
    step: int
    microbatch: int
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Measured:
    """A measured run of a plan. ``Measured.from_json(m.to_json(path), plan) == m``."""

    schema_version: int
    plan_fingerprint: str
    plan_hash: str
    model: str
    schedule: str  # "gpipe" or "1f1b"
    frames: int  # measured frames, after one warmup step
    microbatches: int  # per schedule step; one microbatch is one frame
    threads: int  # per stage process
    device: str  # "cpu" or "cuda"
    process_backend: str  # torch.distributed backend: "gloo" or "nccl"
    oversubscribed: bool  # more threads than cores: stages shared cores
    stages: tuple[StageMeasure, ...]
    links: tuple[LinkMeasure, ...]
    throughput_per_s: float  # steady state: one frame per median interval between the
    # last stage's frames (each schedule step's fill and drain left out, as the plan assumes)
    predicted_throughput_per_s: float
    latency_s: float  # one frame through the pipeline alone, median
    predicted_latency_s: float
    bottleneck: str  # measured: "chip 1" or "link 0->1"
    predicted_bottleneck: str
    max_abs_diff: float  # pipelined outputs against the unsplit model
    output_scale: float  # max |output| of the unsplit model's floating-point outputs
    wall_s: float
    machine: str
    spans: tuple[Span, ...] = ()
    run_throughput_per_s: float = 0.0  # frames / wall time of the timed steps, fill and drain in

    @property
    def outputs_agree(self) -> bool:
        """The pipeline computed the model: outputs within rounding of the unsplit model's
        (on CPU ``1e-4`` of the output scale, at least ``1e-4``: integer outputs exactly; on
        CUDA ``1e-2``, as its TF32 and reduced-precision kernels round against the CPU
        reference)."""
        tolerance = 1e-4 if self.device == "cpu" else 1e-2
        return self.max_abs_diff <= tolerance * max(self.output_scale, 1.0)

    def to_dict(self) -> dict:
        return _plain(self)

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The measurement as JSON text; with ``path``, also written atomically to that file."""
        return json_text(self.to_dict(), path)

    @classmethod
    def from_json(cls, source: str | os.PathLike, plan: Any = None) -> Measured:
        """Read a measured file (path or JSON text); with ``plan``, refuse one measured on
        another plan."""
        text, where = str(source), "measured JSON"
        if not text.lstrip().startswith("{"):
            where = f"measured file {source}"
            try:
                text = Path(source).read_text()
            except (OSError, UnicodeDecodeError) as e:
                reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
                raise ChipcutError(f"cannot read {where}: {reason}; give the file chipcut run "
                                   "--out wrote") from None
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            raise ChipcutError(f"{where} is not valid JSON; write it with chipcut run "
                               "--out") from None
        if not isinstance(data, dict) or data.get("schema_version") != MEASURED_SCHEMA_VERSION:
            version = data.get("schema_version") if isinstance(data, dict) else None
            raise ChipcutError(f"{where} has schema_version {version!r}, this chipcut reads "
                               f"{MEASURED_SCHEMA_VERSION}; measure again with chipcut run --out")
        measured = _build(cls, data, "measured")
        if plan is not None:
            measured.check_plan(plan, where)
        return measured

    def check_plan(self, plan: Any, where: str = "the measurement") -> None:
        """Refuse a plan other than the one this was measured on."""
        found = plan_hash(plan)
        if found != self.plan_hash:
            raise ChipcutError(f"{where} was measured on another plan (plan hash "
                               f"{self.plan_hash}, this plan {found}); run chipcut run MODEL "
                               "plan.json --out measured.json with this plan")


def _plain(value: Any) -> Any:
    if is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ChipcutError(f"measured field {where} must be an object; measure again")
    hints, kwargs = get_type_hints(cls), {}
    for f in fields(cls):
        if f.name not in data:
            if f.default is not MISSING:
                continue
            raise ChipcutError(f"measured field {where}.{f.name} is missing; measure again")
        kwargs[f.name] = _convert(hints[f.name], data[f.name], f"{where}.{f.name}")
    return cls(**kwargs)


def _convert(hint: Any, value: Any, where: str) -> Any:
    if is_dataclass(hint):
        return _build(hint, value, where)
    if get_origin(hint) is tuple:
        if not isinstance(value, list):
            raise ChipcutError(f"measured field {where} must be a list; measure again")
        inner = get_args(hint)[0]
        return tuple(_convert(inner, v, f"{where}[{i}]") for i, v in enumerate(value))
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ChipcutError(f"measured field {where} = {value!r} must be a finite number")
        value = float(value)
    elif not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ChipcutError(f"measured field {where} = {value!r} must be {hint.__name__}; "
                           "measure again")
    # Times, sizes, rates, counts and indices are never negative (timeline spans are times
    # from an origin each host takes for itself, and are left as they are).
    if hint in (int, float) and value < 0 and ".spans[" not in where:
        raise ChipcutError(f"measured field {where} = {value!r} must be >= 0; measure again "
                           "with chipcut run --out")
    return value


__all__ = ["Measured", "StageMeasure", "LinkMeasure", "Span", "MEASURED_SCHEMA_VERSION",
           "plan_hash"]
