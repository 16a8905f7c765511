"""Roofline cost model: time = max(compute, memory) / efficiency + a fixed per-op overhead."""

from __future__ import annotations

from dataclasses import dataclass

from chipcut.backends.energy import dynamic_energy_j
from chipcut.backends.protocol import ALL_DRAM, Memory, OpCost, Placement, Work
from chipcut.backends.spec import ChipSpec, LinkSpec
from chipcut.core.fmt import capacity, rate, seconds
from chipcut.core.vocab import PARENT_CLASS, OpClass


def split_bytes(spec: ChipSpec, work: Work, placement: Placement) -> tuple[int, int]:
    """(dram_bytes, sram_bytes) that ``work`` reads and writes under ``placement``.

    Each operand is counted once, at the level it lives in: weights, inputs and outputs
    go to SRAM when the placement keeps them there (always, on an SRAM-only chip).
    """
    parts = ((work.weight_traffic_bytes, placement.weights_in_sram), (work.in_bytes, placement.inputs_in_sram),
             (work.out_bytes, placement.outputs_in_sram))
    total = sum(nbytes for nbytes, _ in parts)
    if spec.sram_only:
        return 0, total
    sram = sum(nbytes for nbytes, in_sram in parts if in_sram)
    return total - sram, sram


@dataclass(frozen=True)
class RooflineBackend:
    """t = max(F / (P eta_c) + E / (V eta_c) + A / R_c, B_dram / (BW eta_m)) + t_c.

    F = MACs at the dtype's peak P (MAC/s), E = element ops at vector rate V, eta_c the
    compute efficiency of the work's op class (dense, depthwise, small-map, ...), A the
    activation bytes the work reads and writes at its class's activation rate R_c (none
    unless the spec rates the class), B_dram = bytes read and written in DRAM (per the
    Placement) at DRAM bandwidth BW, t_c the class's fixed time (``op_overhead_s`` unless
    the spec gives the class its own). SRAM traffic is counted for energy but is assumed
    never to bound time.
    """

    spec: ChipSpec

    @property
    def name(self) -> str:
        return self.spec.name

    def supports_dtype(self, dtype: str) -> bool:
        return dtype in self.spec.peak_macs_per_s

    def dtypes(self) -> tuple[str, ...]:
        return tuple(self.spec.peak_macs_per_s)

    def peak_macs_per_s(self, dtype: str) -> float:
        return self.spec.peak_macs_per_s.get(dtype, 0.0)

    def memory(self) -> Memory:
        return Memory(self.spec.sram_bytes, self.spec.dram_bytes)

    def weights_resident(self, weight_bytes: int) -> bool:
        """Weights stay in SRAM when all of a stage's weights fit there, unless the spec streams
        them from DRAM every inference (``[memory] weights_in_sram = false``)."""
        return self.spec.weights_in_sram and weight_bytes <= self.spec.sram_bytes

    def link(self) -> LinkSpec:
        return self.spec.link

    def supports_op(self, op: str) -> bool:
        return self.spec.capabilities.supports(op)

    def static_power_w(self) -> float:
        return self.spec.energy.static_power_w

    def mac_rate(self, dtype: str) -> float:
        """Peak MAC/s for ``dtype``; a dtype the chip lacks runs at its slowest listed rate."""
        rates = self.spec.peak_macs_per_s
        return rates.get(dtype, min(rates.values()))

    def compute_time_s(self, work: Work) -> float:
        """Roofline compute time: MACs at peak and element ops at the vector rate, over the
        efficiency of the work's op class (``compute_efficiency`` when the spec has none for it),
        plus its activation bytes at the class's rate where the spec gives one."""
        return ((work.macs / self.mac_rate(work.dtype)
                 + work.elem_ops / self.spec.vector_ops_per_s) / self.spec.efficiency(work.op_class)
                + self.spec.activation_s(work.op_class, work.in_bytes + work.out_bytes))

    def memory_time_s(self, dram_bytes: int) -> float:
        if dram_bytes == 0:
            return 0.0
        return dram_bytes / (self.spec.dram_bytes_per_s * self.spec.memory_efficiency)

    def cost(self, work: Work, placement: Placement = ALL_DRAM) -> OpCost:
        dram_bytes, sram_bytes = split_bytes(self.spec, work, placement)
        compute_s = self.compute_time_s(work)
        memory_s = self.memory_time_s(dram_bytes)
        busy = max(compute_s, memory_s)
        overhead = self.spec.overhead_s(work.op_class)
        bound = "overhead" if overhead > busy else ("compute" if compute_s >= memory_s else "memory")
        time_s = busy + overhead
        utilization = work.macs / (self.mac_rate(work.dtype) * time_s) if time_s > 0 else 0.0
        energy_j = dynamic_energy_j(self.spec.energy, work.macs, work.dtype, sram_bytes, dram_bytes)
        return OpCost(time_s, compute_s, memory_s, dram_bytes, bound, sram_bytes, energy_j,
                      min(utilization, 1.0))

    def link_time_s(self, nbytes: int) -> float:
        """latency + nbytes / per-direction bandwidth; 0 for nothing to send."""
        if nbytes <= 0:
            return 0.0
        return self.spec.link.latency_s + nbytes / self.spec.link.bytes_per_s

    def describe(self) -> str:
        """Peak per dtype, SRAM, DRAM bandwidth and size, link, the array when there is one, the
        per-class efficiencies, and the spec's ``validation`` note when it has one.

        Rates use decimal prefixes (GB/s = 1e9 bytes/s), capacities binary ones (MiB).
        """
        spec = self.spec
        peaks = ", ".join(f"{d} {rate(r, 'MAC/s')}" for d, r in spec.peak_macs_per_s.items())
        dram = (f"DRAM {rate(spec.dram_bytes_per_s, 'B/s')} ({capacity(spec.dram_bytes)})"
                if not spec.sram_only else "no DRAM (SRAM only)")
        link = spec.link
        sram = f"SRAM {capacity(spec.sram_bytes)}" + ("" if spec.weights_in_sram else " (activations only)")
        parts = [f"{self.name}: {peaks}", sram, dram,
                 f"link {(link.interface + ' ') if link.interface else ''}"
                 f"{rate(link.bytes_per_s, 'B/s')} + {seconds(link.latency_s)}"]
        if spec.array is not None:
            a = spec.array
            parts.append(f"array {a.rows}x{a.cols} {a.dataflow} @ {rate(a.clock_hz, 'Hz')}")
        if spec.class_efficiency:
            listed = spec.class_efficiency
            per = [f"{c} {e:.2f}" for c, e in listed.items()]
            unlisted = [c for c in OpClass if c not in listed]
            for parent in dict.fromkeys(PARENT_CLASS[c] for c in unlisted if c in PARENT_CLASS):
                if parent in listed:
                    children = [c for c in unlisted if PARENT_CLASS.get(c) == parent]
                    per.append(f"{', '.join(children)} as {parent}")
                    unlisted = [c for c in unlisted if c not in children]
            parts.append("efficiency " + ", ".join(per)
                         + (f", others {spec.compute_efficiency:.2f}" if unlisted else ""))
        if spec.class_overhead_s:
            parts.append("fixed time per unit " + ", ".join(
                f"{c} {seconds(t)}" for c, t in spec.class_overhead_s.items()))
        if spec.activation_bytes_per_s:
            parts.append("activations at " + ", ".join(
                f"{c} {rate(r, 'B/s')}" for c, r in spec.activation_bytes_per_s.items()))
        if spec.validation:
            parts.append(spec.validation)
        return "; ".join(parts)

    def to_dict(self) -> dict:
        """The spec as the tables of a spec file, in base units (bytes, seconds, MAC/s);
        ``chipcut.backends.loader.from_dict`` builds the same backend from it."""
        s = self.spec
        memory = {"sram_bytes": s.sram_bytes, "dram_bytes": s.dram_bytes,
                  "memory_efficiency": s.memory_efficiency}
        if s.dram_bytes:
            memory["dram_bytes_per_s"] = s.dram_bytes_per_s
        if not s.weights_in_sram:
            memory["weights_in_sram"] = False
        out = {
            "name": s.name, "description": s.description, "source": s.source,
            "compute": {"peak_macs_per_s": dict(s.peak_macs_per_s),
                        "vector_ops_per_s": s.vector_ops_per_s,
                        "compute_efficiency": s.compute_efficiency,
                        "op_overhead_s": s.op_overhead_s},
            "memory": memory,
            "link": {"bytes_per_s": s.link.bytes_per_s, "latency_s": s.link.latency_s,
                     "interface": s.link.interface, "overlap": s.link.overlap},
            "energy": {"pj_per_mac": dict(s.energy.pj_per_mac),
                       "pj_per_byte_sram": s.energy.pj_per_byte_sram,
                       "pj_per_byte_dram": s.energy.pj_per_byte_dram,
                       "static_power_w": s.energy.static_power_w},
        }
        if s.class_efficiency:
            out["compute"]["efficiency"] = dict(s.class_efficiency)
        if s.class_overhead_s:
            out["compute"]["class_overhead_s"] = dict(s.class_overhead_s)
        if s.activation_bytes_per_s:
            out["compute"]["activation_bytes_per_s"] = dict(s.activation_bytes_per_s)
        if s.array is not None:
            out["array"] = {"rows": s.array.rows, "cols": s.array.cols,
                            "clock_hz": s.array.clock_hz, "dataflow": s.array.dataflow}
        caps = s.capabilities
        if caps.ops is not None:
            out["capabilities"] = {"ops": sorted(caps.ops)}
        elif caps.unsupported_ops:
            out["capabilities"] = {"unsupported_ops": sorted(caps.unsupported_ops)}
        if s.extra:
            out["extra"] = dict(s.extra)
        if s.validation:
            out["validation"] = s.validation
        return out
