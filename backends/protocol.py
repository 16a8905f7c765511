"""The backend Protocol: what the compiler asks of a chip cost model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from chipcut.backends.spec import LinkSpec
from chipcut.core.vocab import OpClass


@dataclass(frozen=True)
class Work:
    """The work of one node or fused group, as the cost model sees it.

    macs: multiply-accumulates; elem_ops: other arithmetic (element-wise, reductions);
    weight_bytes / in_bytes / out_bytes: bytes of parameters, activation inputs, outputs;
    dtype: compute dtype name ("fp32", "bf16", "int8", ...); op: the anchor op's name;
    gemms: the MACs as matrix products (batch, M, K, N) when known (see compiler.ir.NodeCost);
    op_class: the anchor's op class (chipcut.core.vocab.OpClass), which picks the efficiency;
    key: the unit's stable name in a graph (its member node names, see
    chipcut.compiler.lowering.costing.unit_key), by which a profile of measured times finds it.
    """

    macs: int
    elem_ops: int
    weight_bytes: int
    in_bytes: int
    out_bytes: int
    dtype: str = "fp32"
    op: str = ""
    gemms: tuple[tuple[int, int, int, int], ...] = ()
    weight_read_bytes: int | None = None  # weights read per inference when less than stored
    op_class: OpClass | None = None  # the anchor's kind of kernel; None: unclassified (rated
    # at the spec's compute_efficiency)
    key: str = ""  # the unit's stable name ("" for work that is not a unit of a graph)

    @property
    def weight_traffic_bytes(self) -> int:
        """Weight bytes read per inference: all of them, except for lookups (embedding rows)."""
        return self.weight_bytes if self.weight_read_bytes is None else self.weight_read_bytes


@dataclass(frozen=True)
class Placement:
    """Where a unit's operands live on the chip; the default streams everything through DRAM.

    The compiler decides residency per chip (see chipcut.backends.spec.weights_fit): weights that
    fit stay in SRAM across inferences; activations passed between fused or co-located
    units can stay in SRAM too. On an SRAM-only chip (dram_bytes == 0) everything is SRAM
    whatever the placement says.
    """

    weights_in_sram: bool = False
    inputs_in_sram: bool = False
    outputs_in_sram: bool = False


ALL_DRAM = Placement()


@dataclass(frozen=True)
class OpCost:
    """Predicted cost of one unit of work on one chip.

    time_s = max(compute_s, memory_s) + the chip's fixed per-op overhead;
    dram_bytes / sram_bytes: bytes read and written at each memory level;
    energy_j: dynamic energy (MACs + memory traffic), static power excluded;
    utilization: MACs / (peak MAC/s for the dtype x time_s), in [0, 1].
    """

    time_s: float
    compute_s: float
    memory_s: float
    dram_bytes: int
    bound: str  # "compute", "memory" or "overhead"
    sram_bytes: int = 0
    energy_j: float = 0.0
    utilization: float = 0.0


@dataclass(frozen=True)
class Memory:
    """A chip's memory levels in bytes: on-chip SRAM and off-chip DRAM (0: SRAM only)."""

    sram_bytes: int
    dram_bytes: int

    @property
    def sram_only(self) -> bool:
        return self.dram_bytes == 0

    @property
    def level(self) -> str:
        """The level that holds a stage's weights and activations: "DRAM", or "SRAM" without DRAM."""
        return "SRAM" if self.sram_only else "DRAM"

    @property
    def capacity_bytes(self) -> int:
        """Bytes of that level: what a stage's weights plus live activations must fit in."""
        return self.sram_bytes if self.sram_only else self.dram_bytes


@runtime_checkable
class Backend(Protocol):
    """A chip: everything the compiler asks of one. The compiler reads nothing else.

    ``chipcut.backends.roofline.RooflineBackend`` answers from a ``ChipSpec`` (the built-in
    presets); a plug-in may answer from anything (a profile of measured times, a simulator).

    >>> from chipcut.backends.registry import get_backend
    >>> chip = get_backend("generic")
    >>> chip.cost(Work(macs=10**9, elem_ops=0, weight_bytes=0, in_bytes=0, out_bytes=0)).bound
    'compute'
    >>> chip.memory().capacity_bytes, chip.link().overlap
    (17179869184, True)
    """

    name: str

    def cost(self, work: Work, placement: Placement = ALL_DRAM) -> OpCost:
        """Time, bytes per memory level, dynamic energy and utilization of ``work`` on this chip."""
        ...

    def link(self) -> LinkSpec:
        """The chip's link to the next chip (per-direction bytes/s, latency s, interface, and
        whether transfers overlap compute). Defaults for the switch and host links come from it."""
        ...

    def link_time_s(self, nbytes: int) -> float:
        """Seconds to send ``nbytes`` to the next chip (0 for nothing). The solver and the
        schedule both cost every chip-to-chip transfer with this, whatever its shape."""
        ...

    def memory(self) -> Memory:
        """SRAM and DRAM capacity in bytes."""
        ...

    def weights_resident(self, weight_bytes: int) -> bool:
        """Whether a stage holding ``weight_bytes`` of weights keeps them on chip (SRAM) across
        inferences instead of streaming them from DRAM each time."""
        ...

    def dtypes(self) -> tuple[str, ...]:
        """The dtypes the chip computes MACs in ("int8", "bf16", ...)."""
        ...

    def peak_macs_per_s(self, dtype: str) -> float:
        """Peak MAC/s in ``dtype`` (0 when the chip does not compute it); orders mixed chips."""
        ...

    def supports_dtype(self, dtype: str) -> bool:
        """Whether the chip computes MACs in ``dtype``."""
        ...

    def supports_op(self, op: str) -> bool:
        """Whether the chip runs ``op`` (a ``Work.op`` name such as "conv2d")."""
        ...

    def static_power_w(self) -> float:
        """Static (leakage and idle) power in watts; energy adds static_power_w() x time."""
        ...

    def describe(self) -> str:
        """One line for ``chipcut backends``: peaks, memory, link, and where the figures come from."""
        ...

    def to_dict(self) -> dict | None:
        """What rebuilds this backend (a spec as a plain dict), stored in plans so that a plan
        re-validates without the original file; None when the backend cannot be rebuilt so."""
        ...
