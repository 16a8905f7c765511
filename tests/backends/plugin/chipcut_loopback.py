"""A third-party chipcut backend for tests: 1 ns per MAC, links at 1 ns per byte plus 1 us.

It implements chipcut.backends.protocol.Backend without subclassing anything of chipcut's,
so the registry and compiler see it exactly as they would see an outside plug-in.
"""

from __future__ import annotations

from dataclasses import dataclass

from chipcut.backends.protocol import OpCost, Placement, Work
from chipcut.backends.spec import ChipSpec, LinkSpec

SECONDS_PER_MAC = 1e-9
LINK_LATENCY_S = 1e-6
LINK_SECONDS_PER_BYTE = 1e-9


@dataclass(frozen=True)
class LoopbackBackend:
    spec: ChipSpec
    name: str = "loopback"

    def cost(self, work: Work, placement: Placement = Placement()) -> OpCost:  # noqa: B008
        time_s = work.macs * SECONDS_PER_MAC
        return OpCost(time_s, time_s, 0.0, 0, "compute", 0, 0.0, 1.0 if work.macs else 0.0)

    def link_time_s(self, nbytes: int) -> float:
        return 0.0 if nbytes <= 0 else LINK_LATENCY_S + nbytes * LINK_SECONDS_PER_BYTE

    def supports_dtype(self, dtype: str) -> bool:
        return dtype == "fp32"

    def supports_op(self, op: str) -> bool:
        return True

    def static_power_w(self) -> float:
        return 1.0


def make() -> LoopbackBackend:
    spec = ChipSpec(name="loopback", peak_macs_per_s={"fp32": 1 / SECONDS_PER_MAC},
                    vector_ops_per_s=1e12, sram_bytes=2**20, dram_bytes=0, dram_bytes_per_s=0.0,
                    link=LinkSpec(1 / LINK_SECONDS_PER_BYTE, LINK_LATENCY_S, "loopback"),
                    source="tests/backends/plugin")
    return LoopbackBackend(spec)
