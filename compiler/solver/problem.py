"""The partitioning problem as pure data, its solution, and the interconnect the user describes.

Every cost the solver and the plan report comes from this problem through one module,
``chipcut.compiler.solver.evaluate``: unit times per chip, the tensors between units,
and one link-time function per chip (a backend's own ``link_time_s``), the switch and the
host links.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from chipcut.core.errors import ChipcutError
from chipcut.core.vocab import Objective, Topology, parse

LinkTime = Callable[[int], float]  # bytes -> seconds on one link


@dataclass(frozen=True)
class AffineLink:
    """latency + bytes / per-direction bandwidth (0 for nothing sent): the usual link model,
    and the one CP-SAT can encode exactly."""

    bytes_per_s: float
    latency_s: float

    def __call__(self, nbytes: int) -> float:
        return self.latency_s + nbytes / self.bytes_per_s if nbytes > 0 else 0.0


@dataclass(frozen=True)
class BackendLink:
    """A chip's link as its backend costs it (``backend.link_time_s``), whatever its shape."""

    backend: object

    def __call__(self, nbytes: int) -> float:
        return self.backend.link_time_s(nbytes) if nbytes > 0 else 0.0


def as_affine(link: LinkTime) -> AffineLink | None:
    """The affine form of ``link`` when it has one (checked at sizes from 1 B to 1 TB), else None."""
    if isinstance(link, AffineLink):
        return link
    small, large = link(1), link(10**12)
    bytes_per_s = (10**12 - 1) / (large - small) if large > small else 0.0
    if bytes_per_s <= 0:
        return None
    affine = AffineLink(bytes_per_s, small - 1 / bytes_per_s)
    probes = (10, 4096, 10**5, 10**6, 123_457, 10**8, 10**10)
    if affine.latency_s < 0 or any(abs(link(b) - affine(b)) > 1e-9 * max(link(b), 1e-12) for b in probes):
        return None
    return affine


@dataclass(frozen=True)
class Residency:
    """How one chip's unit times depend on the stage it holds (per pair of cuts, not per plan).

    A stage whose weights total W bytes keeps them in SRAM when W <= resident_bytes (-1:
    never); its activations then see sram_bytes - W of SRAM free, else all of it.
    streamed_s[u]: unit u's seconds with weights streamed (all SRAM free); resident_s[i][u]:
    with weights resident and free SRAM in [free_levels[i], free_levels[i + 1]) bytes
    (free_levels[0] == 0; a unit's time changes only where an operand starts to fit, so
    the levels are those operand sizes and the table is exact).
    """

    streamed_s: tuple[float, ...]
    resident_bytes: int
    sram_bytes: int
    free_levels: tuple[int, ...]
    resident_s: tuple[tuple[float, ...], ...]

    def level(self, weight_bytes: int) -> int:
        """The row of resident_s for a stage holding ``weight_bytes`` of resident weights (the
        SRAM left free as chip_state leaves it)."""
        return max(bisect.bisect_right(self.free_levels, max(self.sram_bytes - weight_bytes, 0)) - 1, 0)

    def levels(self, weight_bytes: np.ndarray) -> np.ndarray:
        """``level`` of each of an array of stage weights."""
        free = np.maximum(self.sram_bytes - np.asarray(weight_bytes, dtype=np.float64), 0)
        return np.clip(np.searchsorted(self.free_levels, free, side="right") - 1, 0,
                       len(self.free_levels) - 1)

    def stage_s(self, units: list[int], weight_bytes: int) -> float:
        """Seconds of a stage of ``units`` holding ``weight_bytes`` of weights."""
        if weight_bytes > self.resident_bytes:
            return sum((self.streamed_s[u] for u in units), 0.0)
        level = self.level(weight_bytes)
        return sum((self.resident_s[level][u] for u in units), 0.0)


@dataclass(frozen=True)
class PartitionProblem:
    """Pure solver input. Units are in a topological order.

    unit_time_s[u][k]: seconds of unit u on chip k; tensors: (producer, consumers, bytes)
    between units; links[k]: seconds to send b bytes over the link out of chip k.
    weight_bytes[u] and live_bytes[u] (activations live while u runs) are checked against
    memory_bytes[k] (0: unchecked). overlap[k]: chip k's transfers overlap its compute.
    max_replicas[k]: how many identical chips from k on may share one stage. switch: seconds
    for b bytes through the shared switch; host_in_s / host_out_s: the model's inputs in and
    outputs out. residency[k] (when given) makes chip k's unit times depend on its stage's
    weights (see Residency); unit_time_s then holds each unit's fastest time, a bound.
    """

    unit_time_s: tuple[tuple[float, ...], ...]
    tensors: tuple[tuple[int, tuple[int, ...], int], ...]
    n_chips: int
    links: tuple[LinkTime, ...]
    weight_bytes: tuple[int, ...] = ()
    live_bytes: tuple[int, ...] = ()
    memory_bytes: tuple[int, ...] = ()
    overlap: tuple[bool, ...] = ()
    max_replicas: tuple[int, ...] = ()
    topology: Topology = Topology.CHAIN
    switch: LinkTime | None = None
    host_in_s: float = 0.0
    host_out_s: float = 0.0
    objective: Objective = Objective.THROUGHPUT
    residency: tuple[Residency, ...] = ()

    def stage_s(self, k: int, units: list[int]) -> float:
        """Seconds of one frame of ``units`` on chip k (under the stage's own residency)."""
        if self.residency:
            weights = sum(self.weight_bytes[u] for u in units) if self.weight_bytes else 0
            return self.residency[k].stage_s(units, weights)
        return sum((self.unit_time_s[u][k] for u in units), 0.0)

    @property
    def most_replicas(self) -> int:
        """The most identical chips any stage may run on (1: no replication)."""
        return max(max(self.max_replicas, default=1), 1)

    def link(self, k: int) -> LinkTime:
        """The link out of chip k (the last one listed serves the chips after it)."""
        return self.links[min(k, len(self.links) - 1)]

    def overlaps(self, k: int) -> bool:
        return self.overlap[k] if self.overlap else True


@dataclass(frozen=True)
class Solution:
    chip_of_unit: tuple[int, ...]
    status: str  # OPTIMAL, FEASIBLE (time limit hit with a plan)
    bottleneck_s: float  # the objective's value: bottleneck, or batch-1 latency
    bound_s: float
    gap: float
    bytes_moved: int
    wall_s: float
    replicas: tuple[int, ...] = ()  # per chip: r on a stage's first chip, 0 on its replicas
    method: str = ""


@dataclass(frozen=True)
class Interconnect:
    """How the chips are wired, and what the solver optimizes.

    Bandwidths in bytes/s (per direction), latencies in seconds; None takes the chips' own
    link (the switch: one chip link's bandwidth, shared; the host: chip 0's link in, the
    last chip's link out). ``replicate``: a stage may run on several identical chips
    (each holding the stage's weights) when that is strictly faster than cutting finer.
    """

    topology: Topology = Topology.CHAIN
    switch_bytes_per_s: float | None = None
    switch_latency_s: float | None = None
    host_bytes_per_s: float | None = None
    host_latency_s: float | None = None
    objective: Objective = Objective.THROUGHPUT
    replicate: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "topology", parse(Topology, self.topology, "topology"))
        object.__setattr__(self, "objective", parse(Objective, self.objective, "objective"))
        for name in ("switch_bytes_per_s", "host_bytes_per_s"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and 0 < value < math.inf):
                raise ChipcutError(f"{name} = {value!r} bytes/s: must be a finite rate > 0, "
                                   "e.g. 32e9 (32 GB/s)")
        for name in ("switch_latency_s", "host_latency_s"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and 0 <= value < math.inf):
                raise ChipcutError(f"{name} = {value!r} s: must be a finite time >= 0, e.g. 2e-6")
        if not isinstance(self.replicate, bool):
            raise ChipcutError(f"replicate = {self.replicate!r}: must be true or false")

    def switch_link(self, chip) -> LinkTime:
        """The shared switch: the given bandwidth, else the chip's own link (a Backend)."""
        return self._link(chip, self.switch_bytes_per_s, self.switch_latency_s)

    def host_link(self, chip) -> LinkTime:
        """A host link: the given bandwidth, else the chip's own link (a Backend)."""
        return self._link(chip, self.host_bytes_per_s, self.host_latency_s)

    @staticmethod
    def _link(chip, bytes_per_s: float | None, latency_s: float | None) -> LinkTime:
        if bytes_per_s is None and latency_s is None:
            return BackendLink(chip)
        own = chip.link()
        return AffineLink(bytes_per_s or own.bytes_per_s,
                          own.latency_s if latency_s is None else latency_s)


CHAIN = Interconnect()  # the default: a chain, throughput, no replication


class NoFit(Exception):
    """No pipeline keeps every chip's weights and live activations within its memory."""


class NotFound(Exception):
    """No pipeline that fits memory was found within the time limit (none is proven absent)."""
