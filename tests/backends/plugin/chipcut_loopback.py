"""A third-party chipcut backend for tests: 1 ns per MAC, links at 1 ns per byte plus 1 us.

It implements chipcut.backends.protocol.Backend from scratch, without a ChipSpec or any
class of chipcut's, so the registry and compiler see it exactly as they would see an
outside plug-in.
"""

from __future__ import annotations

from dataclasses import dataclass

from chipcut.backends.protocol import Memory, OpCost, Placement, Work
from chipcut.backends.spec import LinkSpec

SECONDS_PER_MAC = 1e-9
LINK_LATENCY_S = 1e-6
LINK_SECONDS_PER_BYTE = 1e-9
SRAM_BYTES = 2**20


@dataclass(frozen=True)
class LoopbackBackend:
    name: str = "loopback"

    def cost(self, work: Work, placement: Placement = Placement()) -> OpCost:  # noqa: B008
        time_s = work.macs * SECONDS_PER_MAC
        return OpCost(time_s, time_s, 0.0, 0, "compute", 0, 0.0, 1.0 if work.macs else 0.0)

    def link(self) -> LinkSpec:
        return LinkSpec(1 / LINK_SECONDS_PER_BYTE, LINK_LATENCY_S, "loopback")

    def link_time_s(self, nbytes: int) -> float:
        return 0.0 if nbytes <= 0 else LINK_LATENCY_S + nbytes * LINK_SECONDS_PER_BYTE

    def memory(self) -> Memory:
        return Memory(sram_bytes=SRAM_BYTES, dram_bytes=0)

    def weights_resident(self, weight_bytes: int) -> bool:
        return True

    def dtypes(self) -> tuple[str, ...]:
        return ("fp32",)

    def peak_macs_per_s(self, dtype: str) -> float:
        return 1 / SECONDS_PER_MAC if dtype == "fp32" else 0.0

    def supports_dtype(self, dtype: str) -> bool:
        return dtype == "fp32"

    def supports_op(self, op: str) -> bool:
        return True

    def static_power_w(self) -> float:
        return 1.0

    def describe(self) -> str:
        return f"{self.name}: fp32 1 GMAC/s; SRAM 1 MiB; no DRAM (SRAM only); link 1 GB/s + 1 us"

    def to_dict(self) -> None:
        return None


def make() -> LoopbackBackend:
    return LoopbackBackend()
