"""Energy model: 45 nm defaults (Horowitz, ISSCC 2014) and the dynamic energy of one unit of work.

E = MACs x e_mac(dtype) + SRAM bytes x e_sram + DRAM bytes x e_dram; the compiler
adds P_static x time. A MAC is one multiply plus one accumulate, so its energy is
the sum of the two operations' energies.
"""

from __future__ import annotations

import math

from chipcut.backends.spec import EnergySpec

PJ = 1e-12

# Horowitz 45 nm, pJ per operation.
INT8_MULT_PJ, INT8_ADD_PJ, INT32_ADD_PJ = 0.2, 0.03, 0.1
FP16_MULT_PJ, FP16_ADD_PJ = 1.1, 0.4
FP32_MULT_PJ, FP32_ADD_PJ = 3.7, 0.9

DEFAULT_PJ_PER_MAC = {
    # int8 products accumulate in int32 on real arrays: 0.2 + 0.1. (With an int8 add,
    # 0.2 + 0.03 = 0.23 pJ, the figure the ResNet-50 power example in DESIGN.md uses.)
    "int8": INT8_MULT_PJ + INT32_ADD_PJ,
    # Assumption, no 45 nm figure: a 4-bit multiplier has ~1/4 the area of an 8-bit one.
    "int4": INT8_MULT_PJ / 4 + INT32_ADD_PJ,
    # Assumption, no 45 nm figure: fp8 product (int8-sized multiplier) into an fp16 accumulator.
    "fp8": INT8_MULT_PJ + FP16_ADD_PJ,
    "fp16": FP16_MULT_PJ + FP16_ADD_PJ,
    "bf16": FP16_MULT_PJ + FP16_ADD_PJ,  # assumption: same 16-bit datapath cost as fp16
    "fp32": FP32_MULT_PJ + FP32_ADD_PJ,
}

# 64-bit (8-byte) SRAM reads: 8 KB 10 pJ, 32 KB 20 pJ, 1 MB 100 pJ -> pJ per byte by array size.
SRAM_PJ_PER_BYTE_BY_SIZE = ((8 * 2**10, 10 / 8), (32 * 2**10, 20 / 8), (2**20, 100 / 8))
# 64-bit DRAM access 1.3-2.6 nJ -> 162.5-325 pJ/B; the default takes the low end.
DRAM_PJ_PER_BYTE = 1300 / 8


def sram_pj_per_byte(sram_bytes: int) -> float:
    """pJ per SRAM byte for an SRAM of ``sram_bytes``, log-interpolated in Horowitz's table.

    Larger SRAMs are built from ~1 MB banks, so sizes past 1 MB cost the 1 MB figure.

    >>> sram_pj_per_byte(8 * 2**10), sram_pj_per_byte(28 * 2**20)
    (1.25, 12.5)
    """
    points = SRAM_PJ_PER_BYTE_BY_SIZE
    if sram_bytes <= points[0][0]:
        return points[0][1]
    for (size_lo, pj_lo), (size_hi, pj_hi) in zip(points, points[1:], strict=False):
        if sram_bytes <= size_hi:
            t = math.log(sram_bytes / size_lo) / math.log(size_hi / size_lo)
            return pj_lo + t * (pj_hi - pj_lo)
    return points[-1][1]


def default_energy(sram_bytes: int) -> EnergySpec:
    """The 45 nm defaults for a chip with ``sram_bytes`` of SRAM and no static power."""
    return EnergySpec(dict(DEFAULT_PJ_PER_MAC), sram_pj_per_byte(sram_bytes), DRAM_PJ_PER_BYTE, 0.0)


def mac_pj(energy: EnergySpec, dtype: str) -> float:
    """pJ per MAC in ``dtype``; a dtype without a figure costs as fp32 (the widest)."""
    return energy.pj_per_mac.get(dtype, energy.pj_per_mac.get("fp32", DEFAULT_PJ_PER_MAC["fp32"]))


def dynamic_energy_j(energy: EnergySpec, macs: int, dtype: str, sram_bytes: int,
                     dram_bytes: int) -> float:
    """Joules of MACs plus SRAM and DRAM traffic (element-wise ops are not charged).

    >>> e = default_energy(2**20)
    >>> round(dynamic_energy_j(e, 10**9, "fp32", 0, 0), 6)  # 1 GMAC at 4.6 pJ
    0.0046
    """
    return PJ * (macs * mac_pj(energy, dtype) + sram_bytes * energy.pj_per_byte_sram
                 + dram_bytes * energy.pj_per_byte_dram)
