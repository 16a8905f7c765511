"""Profiled backend: a chip whose unit times are measured seconds; everything else is its base's."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from chipcut.backends.protocol import ALL_DRAM, Backend, Memory, OpCost, Placement, Work
from chipcut.backends.spec import LinkSpec
from chipcut.core.errors import ChipcutError

PROFILE_TABLE = "profile"  # the table a profiled backend adds to its base's spec dict


@dataclass(frozen=True, eq=False)
class ProfiledBackend:
    """``base`` with each unit's time taken from ``times_s`` (seconds by ``Work.key``).

    Bytes per memory level, energy, memory, residency, links, dtypes and ops stay the base's;
    only a unit's time (and its compute/memory split, scaled to it) comes from the profile,
    and a link's time is the base's times ``link_scale`` (1 unless a measured run refined it).
    ``ops`` holds each profiled unit's MACs + element ops: work that does more or less than
    that (the same unit at another batch) takes the measured time scaled by its work.

    >>> from chipcut.backends.registry import get_backend
    >>> chip = ProfiledBackend(get_backend("cpu"), {"conv2d+relu": 2e-3}, {"conv2d+relu": 10**6})
    >>> chip.cost(Work(10**6, 0, 0, 0, 0, key="conv2d+relu")).time_s
    0.002
    >>> chip.name
    'profiled:cpu'
    """

    base: Backend
    times_s: Mapping[str, float]
    ops: Mapping[str, int] = field(default_factory=dict)
    source: str = ""  # where the times come from (a profile file's name); names the backend
    link_scale: float = 1.0  # measured / predicted link time of a run (chipcut.refine)

    @property
    def name(self) -> str:
        return f"profiled:{self.source or self.base.name}"

    def time_s(self, work: Work) -> float:
        """The measured seconds of ``work``'s unit, scaled by its work when that differs."""
        if work.key not in self.times_s:
            what = f"unit {work.key!r}" if work.key else f"a {work.op or 'unnamed'} work with no unit key"
            raise ChipcutError(f"backend {self.name} has no measured time for {what}; profile the "
                               "model with the passes it is compiled with (chipcut profile)")
        measured = self.times_s[work.key]
        profiled_ops = self.ops.get(work.key, 0)
        done = work.macs + work.elem_ops
        if profiled_ops and done != profiled_ops:
            return measured * done / profiled_ops
        return measured

    def cost(self, work: Work, placement: Placement = ALL_DRAM) -> OpCost:
        base = self.base.cost(work, placement)
        time_s = self.time_s(work)
        scale = time_s / base.time_s if base.time_s > 0 else 0.0
        return OpCost(time_s, base.compute_s * scale, base.memory_s * scale, base.dram_bytes,
                      base.bound, base.sram_bytes, base.energy_j,
                      min(base.utilization / scale, 1.0) if scale > 0 else 0.0)

    def link(self) -> LinkSpec:
        return self.base.link()

    def link_time_s(self, nbytes: int) -> float:
        return self.base.link_time_s(nbytes) * self.link_scale

    def memory(self) -> Memory:
        return self.base.memory()

    def weights_resident(self, weight_bytes: int) -> bool:
        return self.base.weights_resident(weight_bytes)

    def dtypes(self) -> tuple[str, ...]:
        return self.base.dtypes()

    def peak_macs_per_s(self, dtype: str) -> float:
        return self.base.peak_macs_per_s(dtype)

    def supports_dtype(self, dtype: str) -> bool:
        return self.base.supports_dtype(dtype)

    def supports_op(self, op: str) -> bool:
        return self.base.supports_op(op)

    def static_power_w(self) -> float:
        return self.base.static_power_w()

    def describe(self) -> str:
        links = f", link times x{self.link_scale:.3g}" if self.link_scale != 1.0 else ""
        return (f"{self.name}: measured times of {len(self.times_s)} units{links} over "
                f"{self.base.describe()}")

    def to_dict(self) -> dict | None:
        """The base's spec dict plus a ``profile`` table of the times (None when the base has
        no spec dict): ``chipcut.backends.loader.from_dict`` rebuilds the same backend."""
        spec = self.base.to_dict()
        if spec is None:
            return None
        return {**spec, PROFILE_TABLE: {"source": self.source, "times_s": dict(self.times_s),
                                        "ops": dict(self.ops), "link_scale": self.link_scale}}


def from_table(base: Backend, table: object, origin: str) -> ProfiledBackend:
    """``base`` profiled by a ``profile`` table as ``to_dict`` writes it; one-line errors."""
    if not isinstance(table, dict):
        raise ChipcutError(f"{origin}: {PROFILE_TABLE} must be a table with source, times_s and ops")
    source, times, ops = table.get("source", ""), table.get("times_s"), table.get("ops", {})
    if not isinstance(source, str) or not isinstance(times, dict) or not isinstance(ops, dict):
        raise ChipcutError(f"{origin}: {PROFILE_TABLE} needs source (text), times_s and ops "
                           "(tables by unit key); recompile with --profile")
    for key, value in times.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                math.isfinite(value) and value >= 0):
            raise ChipcutError(f"{origin}: {PROFILE_TABLE}.times_s[{key!r}] = {value!r} must be "
                               "a finite number >= 0 seconds; recompile with --profile")
    for key, value in ops.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ChipcutError(f"{origin}: {PROFILE_TABLE}.ops[{key!r}] = {value!r} must be a "
                               "whole number >= 0; recompile with --profile")
    scale = table.get("link_scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (
            math.isfinite(scale) and scale > 0):
        raise ChipcutError(f"{origin}: {PROFILE_TABLE}.link_scale = {scale!r} must be a finite "
                           "number > 0; recompile with --profile")
    return ProfiledBackend(base, {k: float(v) for k, v in times.items()}, dict(ops), source,
                           float(scale))
