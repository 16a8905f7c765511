"""Roofline cost model: time = max(compute, memory) / efficiency + a fixed per-op overhead."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from backends.protocol import OpCost, Work
from backends.spec import ChipSpec, load_spec

PRESETS_DIR = Path(__file__).parent / "presets"


@dataclass(frozen=True)
class RooflineBackend:
    """t = max(2F / (P eta_c) + E / (V eta_c), B / (BW eta_m)) + t_fixed.

    F = MACs at the dtype's peak P (MAC/s), E = element ops at vector rate V,
    B = bytes read and written (inputs, weights, outputs) at DRAM bandwidth BW.
    """

    spec: ChipSpec

    @property
    def name(self) -> str:
        return self.spec.name

    def supports_dtype(self, dtype: str) -> bool:
        return dtype in self.spec.peak_macs_per_s

    def mac_rate(self, dtype: str) -> float:
        """MAC/s for ``dtype``; a dtype the chip lacks runs at its slowest listed rate."""
        rates = self.spec.peak_macs_per_s
        return rates.get(dtype, min(rates.values()))

    def cost(self, work: Work) -> OpCost:
        eta_c = self.spec.compute_efficiency
        compute_s = (work.macs / self.mac_rate(work.dtype) + work.elem_ops / self.spec.vector_ops_per_s) / eta_c
        dram_bytes = work.in_bytes + work.weight_bytes + work.out_bytes
        memory_s = dram_bytes / (self.spec.dram_bytes_per_s * self.spec.memory_efficiency)
        busy = max(compute_s, memory_s)
        overhead = self.spec.op_overhead_s
        bound = "overhead" if overhead > busy else ("compute" if compute_s >= memory_s else "memory")
        return OpCost(busy + overhead, compute_s, memory_s, dram_bytes, bound)

    def link_time_s(self, nbytes: int) -> float:
        if nbytes <= 0:
            return 0.0
        return self.spec.link.latency_s + nbytes / self.spec.link.bytes_per_s


def from_toml(path: str | Path) -> RooflineBackend:
    return RooflineBackend(load_spec(path))


def generic() -> RooflineBackend:
    """The built-in illustrative accelerator (backends/presets/generic.toml)."""
    return from_toml(PRESETS_DIR / "generic.toml")
