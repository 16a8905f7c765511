"""The backend Protocol: what the compiler asks of a chip cost model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from backends.spec import ChipSpec


@dataclass(frozen=True)
class Work:
    """The work of one node or fused group, as the cost model sees it.

    macs: multiply-accumulates; elem_ops: other arithmetic (element-wise, reductions);
    weight_bytes / in_bytes / out_bytes: bytes of parameters, activation inputs, outputs;
    dtype: compute dtype name ("fp32", "bf16", "int8", ...); op: the anchor op's name;
    gemms: the MACs as matrix products (batch, M, K, N) when known (see compiler.ir.NodeCost).
    """

    macs: int
    elem_ops: int
    weight_bytes: int
    in_bytes: int
    out_bytes: int
    dtype: str = "fp32"
    op: str = ""
    gemms: tuple[tuple[int, int, int, int], ...] = ()


@dataclass(frozen=True)
class OpCost:
    """Predicted cost of one unit of work on one chip (seconds and bytes)."""

    time_s: float
    compute_s: float
    memory_s: float
    dram_bytes: int
    bound: str  # "compute", "memory" or "overhead"


@runtime_checkable
class Backend(Protocol):
    """A chip cost model. ``spec`` carries the published figures; methods predict time.

    >>> from backends.registry import get_backend
    >>> chip = get_backend("generic")
    >>> chip.cost(Work(macs=10**9, elem_ops=0, weight_bytes=0, in_bytes=0, out_bytes=0)).bound
    'compute'
    """

    name: str
    spec: ChipSpec

    def cost(self, work: Work) -> OpCost:
        """Time and bytes for ``work`` on this chip."""
        ...

    def link_time_s(self, nbytes: int) -> float:
        """Time to send ``nbytes`` to the next chip: latency + bytes / per-direction bandwidth."""
        ...

    def supports_dtype(self, dtype: str) -> bool:
        """Whether the chip computes MACs in ``dtype``."""
        ...
