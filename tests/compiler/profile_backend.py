"""A profile-driven backend written the way a third party would: per-op times from a table of
measurements (here a made-up table), a packetized link whose time is not affine in bytes,
its own memory and residency rule, and no ChipSpec anywhere."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from chipcut.backends.protocol import Memory, OpCost, Placement, Work
from chipcut.backends.spec import LinkSpec

PACKET_BYTES = 4096
PACKET_S = 2e-6  # one packet, whatever its fill: time = ceil(bytes / 4096) x 2 us + 5 us
LINK_SETUP_S = 5e-6


@dataclass(frozen=True)
class ProfileBackend:
    """Unit time = the measured seconds per MAC (or per element op) of the unit's op class,
    plus a fixed launch time; weights stay resident below ``resident_bytes``."""

    name: str = "profiled"
    s_per_mac: dict[str, float] = field(default_factory=lambda: {"conv2d": 2e-11, "linear": 5e-11})
    s_per_elem: float = 1e-10
    launch_s: float = 3e-6
    resident_bytes: int = 64 * 2**10
    overlap: bool = True

    def cost(self, work: Work, placement: Placement = Placement()) -> OpCost:  # noqa: B008
        rate = self.s_per_mac.get(work.op, 1e-10)
        streamed = 0 if placement.weights_in_sram else work.weight_bytes * 1e-12
        busy = work.macs * rate + work.elem_ops * self.s_per_elem + streamed
        return OpCost(busy + self.launch_s, busy, streamed, 0, "compute", 0, 1e-12 * work.macs, 0.5)

    def link(self) -> LinkSpec:
        return LinkSpec(PACKET_BYTES / PACKET_S, LINK_SETUP_S, "packets", self.overlap)

    def link_time_s(self, nbytes: int) -> float:
        return 0.0 if nbytes <= 0 else LINK_SETUP_S + math.ceil(nbytes / PACKET_BYTES) * PACKET_S

    def memory(self) -> Memory:
        return Memory(sram_bytes=256 * 2**10, dram_bytes=2**30)

    def weights_resident(self, weight_bytes: int) -> bool:
        return weight_bytes <= self.resident_bytes

    def dtypes(self) -> tuple[str, ...]:
        return ("fp32",)

    def peak_macs_per_s(self, dtype: str) -> float:
        return 1 / min(self.s_per_mac.values()) if dtype == "fp32" else 0.0

    def supports_dtype(self, dtype: str) -> bool:
        return dtype == "fp32"

    def supports_op(self, op: str) -> bool:
        return True

    def static_power_w(self) -> float:
        return 0.5

    def describe(self) -> str:
        return f"{self.name}: measured per-op times; packetized link"

    def to_dict(self) -> None:
        return None
