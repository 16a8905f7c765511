"""Systolic-array cost model: SCALE-Sim fold counting on top of the roofline.

A GEMM (M x K) @ (K x N) maps onto an R x C array as Sr rows and Sc columns of
work streamed over T cycles; it takes ceil(Sr/R) ceil(Sc/C) folds of
(2R + C + T - 2) cycles each (fill, stream, drain; Samajdar et al., SCALE-Sim):

- weight-stationary (TPU v1): weights K x N sit in the array, Sr = K, Sc = N, T = M;
- output-stationary: each PE owns one output, Sr = M, Sc = N, T = K (the reduction streams).

Small or oddly shaped GEMMs leave most PEs idle, so a batch-1 fully connected
layer runs at a tiny fraction of peak however fast the roofline says it could.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from chipcut.backends.protocol import Work
from chipcut.backends.roofline import RooflineBackend
from chipcut.backends.spec import ArraySpec

Gemm = tuple[int, int, int, int]  # (batch, M, K, N)


def mapping(gemm: Gemm, dataflow: str) -> tuple[int, int, int]:
    """(Sr, Sc, T) of one (batch, M, K, N) GEMM for ``dataflow``."""
    _, m, k, n = gemm
    if dataflow == "weight-stationary":
        return k, n, m
    if dataflow == "output-stationary":
        return m, n, k
    raise ValueError(f"unknown dataflow {dataflow!r}")


def gemm_cycles(gemm: Gemm, array: ArraySpec) -> int:
    """Array cycles of one GEMM: batch x folds x (2R + C + T - 2).

    >>> gemm_cycles((1, 1, 2048, 1000), ArraySpec(256, 256, 700e6))  # 8 x 4 folds of 767
    24544
    """
    batch = gemm[0]
    sr, sc, t = mapping(gemm, array.dataflow)
    if batch == 0 or sr == 0 or sc == 0 or t == 0:
        return 0
    folds = math.ceil(sr / array.rows) * math.ceil(sc / array.cols)
    return batch * folds * (2 * array.rows + array.cols + t - 2)


def array_cycles(gemms: tuple[Gemm, ...], array: ArraySpec) -> int:
    """Cycles of a sequence of GEMMs run one after another on the array."""
    return sum(gemm_cycles(g, array) for g in gemms)


def array_utilization(macs: int, cycles: int, array: ArraySpec) -> float:
    """MACs / (R C cycles): the fraction of PE-cycles doing useful work.

    >>> round(array_utilization(2048 * 1000, 24544, ArraySpec(256, 256, 700e6)), 6)
    0.001273
    """
    return macs / (array.rows * array.cols * cycles) if cycles else 0.0


@dataclass(frozen=True)
class SystolicBackend(RooflineBackend):
    """Roofline plus an array term: compute time = max(array cycles / clock, roofline compute).

    Work without GEMM shapes (element-wise, reductions) costs the roofline alone.
    Needs ``spec.array``.
    """

    def __post_init__(self) -> None:
        if self.spec.array is None:
            raise ValueError(f"backend {self.spec.name!r}: SystolicBackend needs an [array] section")

    def array_time_s(self, work: Work) -> float:
        array = self.spec.array
        return array_cycles(work.gemms, array) / array.clock_hz

    def compute_time_s(self, work: Work) -> float:
        return max(self.array_time_s(work), super().compute_time_s(work))
