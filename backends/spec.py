"""Chip specs: the frozen dataclasses a backend is built from (loading lives in chipcut.backends.schema)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from chipcut.core.dtypes import ORDER
from chipcut.core.vocab import PARENT_CLASS

DTYPES = ORDER  # the dtypes a spec may list in peak_macs_per_s and pj_per_mac
DATAFLOWS = ("weight-stationary", "output-stationary")


@dataclass(frozen=True)
class LinkSpec:
    """Chip-to-chip (or chip-to-host) link; ``bytes_per_s`` is per direction.

    ``interface`` names the physical link for reports, e.g. "PCIe Gen3 x16". ``overlap``:
    the chip sends and receives while it computes (DMA engines); when false, its transfer
    time adds to its busy time.
    """

    bytes_per_s: float
    latency_s: float
    interface: str = ""
    overlap: bool = True


@dataclass(frozen=True)
class ArraySpec:
    """A rows x cols systolic MAC array clocked at ``clock_hz`` (SCALE-Sim style mapping)."""

    rows: int
    cols: int
    clock_hz: float
    dataflow: str = "weight-stationary"

    @property
    def peak_macs_per_s(self) -> float:
        return self.rows * self.cols * self.clock_hz


@dataclass(frozen=True)
class EnergySpec:
    """Dynamic energy per MAC (by dtype) and per byte moved (by memory level), and static power.

    Units: picojoules per MAC, picojoules per byte, watts. See chipcut.backends.energy for the
    45 nm defaults these take when a spec does not set them.
    """

    pj_per_mac: dict[str, float]
    pj_per_byte_sram: float
    pj_per_byte_dram: float
    static_power_w: float = 0.0


@dataclass(frozen=True)
class Capabilities:
    """Which ops (``Work.op`` names, e.g. "conv2d") the chip runs.

    ``ops`` is an allow-list (None: every op not in ``unsupported_ops``).
    """

    ops: frozenset[str] | None = None
    unsupported_ops: frozenset[str] = frozenset()

    def supports(self, op: str) -> bool:
        if self.ops is not None:
            return op in self.ops
        return op not in self.unsupported_ops


@dataclass(frozen=True)
class ChipSpec:
    """Published figures of one chip. Rates are per second; bandwidths per direction.

    peak_macs_per_s maps dtype name -> MAC/s (1 MAC = 2 ops). A chip with
    ``dram_bytes == 0`` keeps everything on chip (SRAM only; ``dram_bytes_per_s`` is 0).
    ``array`` is set for systolic-array chips; ``energy`` defaults to the 45 nm
    figures for the chip's SRAM size (chipcut.backends.energy.default_energy).
    ``class_efficiency`` maps an op class (chipcut.core.vocab.OpClass) to its own compute
    efficiency; a class it does not list runs at ``compute_efficiency``. ``class_overhead_s``
    gives a class its own fixed time per unit in place of ``op_overhead_s``;
    ``activation_bytes_per_s`` the rate at which a class's kernels read and write their
    activations, a time added to their compute (load/store-bound kernels such as a CPU's
    depthwise convolutions). Unlike efficiencies, these two apply to the class named only:
    they are measured per class, and a parent's fixed time would not fit a child's
    efficiency.
    ``validation`` says in a few words whether the figures were checked against measurements
    ("fitted to ...") or are not ("unvalidated: ..."); ``describe`` shows it.
    ``weights_in_sram``: a stage's weights stay on chip when they fit (true), or stream from
    DRAM on every inference whatever their size, SRAM holding activations only (false; TPU v1).
    """

    name: str
    peak_macs_per_s: dict[str, float]
    vector_ops_per_s: float
    sram_bytes: int
    dram_bytes: int
    dram_bytes_per_s: float
    link: LinkSpec
    compute_efficiency: float = 1.0
    class_efficiency: dict[str, float] = field(default_factory=dict)  # op class -> fraction
    memory_efficiency: float = 1.0
    op_overhead_s: float = 0.0
    class_overhead_s: dict[str, float] = field(default_factory=dict)  # op class -> seconds
    activation_bytes_per_s: dict[str, float] = field(default_factory=dict)  # op class -> B/s
    description: str = ""
    source: str = ""
    extra: dict[str, object] = field(default_factory=dict)
    array: ArraySpec | None = None
    energy: EnergySpec = None  # type: ignore[assignment]  # filled in __post_init__
    capabilities: Capabilities = Capabilities()
    weights_in_sram: bool = True
    validation: str = ""

    def __post_init__(self) -> None:
        if self.energy is None:
            from chipcut.backends.energy import default_energy  # energy imports this module

            object.__setattr__(self, "energy", default_energy(self.sram_bytes))

    def efficiency(self, op_class: str | None) -> float:
        """Compute efficiency of work of ``op_class`` (None: unclassified): its own, else its
        parent class's (``chipcut.core.vocab.PARENT_CLASS``: narrow -> dense), else
        ``compute_efficiency``.

        >>> from chipcut.backends.registry import get_backend
        >>> spec = get_backend("generic").spec
        >>> spec.efficiency("depthwise") == spec.compute_efficiency
        True
        """
        if op_class in self.class_efficiency:
            return self.class_efficiency[op_class]
        parent = PARENT_CLASS.get(op_class)  # type: ignore[call-overload]
        return self.class_efficiency.get(parent, self.compute_efficiency)

    def overhead_s(self, op_class: str | None) -> float:
        """Fixed time per unit of ``op_class``: its own, else ``op_overhead_s``."""
        return self.class_overhead_s.get(op_class, self.op_overhead_s)  # type: ignore[arg-type]

    def activation_s(self, op_class: str | None, nbytes: int) -> float:
        """Time for a unit of ``op_class`` to read and write ``nbytes`` of activations at its
        class's ``activation_bytes_per_s`` (0 when the class is not rated)."""
        rate = self.activation_bytes_per_s.get(op_class, 0.0)  # type: ignore[arg-type]
        return nbytes / rate if rate > 0 else 0.0

    @property
    def sram_only(self) -> bool:
        """True when the chip has no DRAM: weights and activations all live in SRAM."""
        return self.dram_bytes == 0

    @property
    def ridge_ops_per_byte(self) -> float:
        """Roofline ridge point for the fastest dtype: peak ops/s over DRAM bytes/s (inf without DRAM)."""
        if self.dram_bytes_per_s <= 0:
            return math.inf
        return 2 * max(self.peak_macs_per_s.values()) / self.dram_bytes_per_s


def weights_fit(spec: ChipSpec, weight_bytes: int, activation_bytes: int = 0) -> bool:
    """Whether ``weight_bytes`` of weights (plus ``activation_bytes`` kept alongside) fit in SRAM.

    The compiler sums the weights of the units it places on one chip and, when they fit,
    costs them with ``Placement(weights_in_sram=True)``.

    >>> from chipcut.backends.registry import get_backend
    >>> weights_fit(get_backend("tpu-v1").spec, 25 * 2**20)
    True
    """
    return weight_bytes + activation_bytes <= spec.sram_bytes
