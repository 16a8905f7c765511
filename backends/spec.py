"""Chip specs: frozen dataclasses loaded from TOML files, validated with file, field, unit and fix."""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from compiler.errors import ChipcutError

DTYPES = ("int4", "int8", "fp8", "fp16", "bf16", "fp32")


@dataclass(frozen=True)
class LinkSpec:
    """Chip-to-chip link; bandwidth is per direction."""

    bytes_per_s: float
    latency_s: float


@dataclass(frozen=True)
class ChipSpec:
    """Published figures of one chip. Rates are per second; bandwidths per direction.

    peak_macs_per_s maps dtype name -> MAC/s (1 MAC = 2 ops). A chip with
    ``dram_bytes == 0`` keeps everything on chip (SRAM only).
    """

    name: str
    peak_macs_per_s: dict[str, float]
    vector_ops_per_s: float
    sram_bytes: int
    dram_bytes: int
    dram_bytes_per_s: float
    link: LinkSpec
    compute_efficiency: float = 1.0
    memory_efficiency: float = 1.0
    op_overhead_s: float = 0.0
    description: str = ""
    source: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def ridge_ops_per_byte(self) -> float:
        """Roofline ridge point for the fastest dtype: peak ops/s over DRAM bytes/s."""
        return 2 * max(self.peak_macs_per_s.values()) / self.dram_bytes_per_s


# field -> (section, unit, lower bound, upper bound, allow zero)
_NUMBERS = {
    "vector_ops_per_s": ("compute", "ops/s", 0, math.inf, False),
    "compute_efficiency": ("compute", "fraction", 0, 1, False),
    "op_overhead_s": ("compute", "s", 0, 1, True),
    "sram_bytes": ("memory", "bytes", 0, math.inf, True),
    "dram_bytes": ("memory", "bytes", 0, math.inf, True),
    "dram_bytes_per_s": ("memory", "bytes/s", 0, math.inf, False),
    "memory_efficiency": ("memory", "fraction", 0, 1, False),
    "bytes_per_s": ("link", "bytes/s", 0, math.inf, False),
    "latency_s": ("link", "s", 0, 1, True),
}
_SECTIONS = {
    "compute": {"peak_macs_per_s", "vector_ops_per_s", "compute_efficiency", "op_overhead_s"},
    "memory": {"sram_bytes", "dram_bytes", "dram_bytes_per_s", "memory_efficiency"},
    "link": {"bytes_per_s", "latency_s"},
}
_TOP = {"name", "description", "source", "compute", "memory", "link", "extra"}
_REQUIRED = {"peak_macs_per_s", "vector_ops_per_s", "sram_bytes", "dram_bytes",
             "dram_bytes_per_s", "bytes_per_s", "latency_s"}


def _check_number(origin: str, key: str, value: object) -> float:
    section, unit, lo, hi, zero_ok = _NUMBERS[key]
    where = f"{origin}: [{section}] {key}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ChipcutError(f"{where} = {value!r} is not a number; write a number in {unit}")
    low_ok = value >= lo if zero_ok else value > lo
    if not (low_ok and value <= hi) or math.isnan(value):
        bound = f">= {lo}" if zero_ok else f"> {lo}"
        upper = f" and <= {hi}" if hi != math.inf else ""
        raise ChipcutError(f"{where} = {value!r} {unit} is out of range; it must be {bound}{upper}")
    return float(value)


def spec_from_dict(data: dict, origin: str) -> ChipSpec:
    """Validate a parsed TOML table and build a ChipSpec; ``origin`` names the file in errors."""
    for key in data:
        if key not in _TOP:
            raise ChipcutError(
                f"{origin}: unknown key {key!r}; allowed top-level keys: {', '.join(sorted(_TOP))}")
    values: dict[str, object] = {}
    for section, allowed in _SECTIONS.items():
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise ChipcutError(f"{origin}: [{section}] must be a table, got {table!r}")
        for key, value in table.items():
            if key not in allowed:
                raise ChipcutError(f"{origin}: unknown key [{section}] {key!r}; allowed: "
                                   f"{', '.join(sorted(allowed))}")
            values[key] = value
    missing = sorted(_REQUIRED - values.keys())
    if missing:
        sec = next(s for s, keys in _SECTIONS.items() if missing[0] in keys)
        raise ChipcutError(f"{origin}: missing [{sec}] {missing[0]}; add it (see backends/presets/generic.toml)")
    peaks = values.pop("peak_macs_per_s")
    if not isinstance(peaks, dict) or not peaks:
        raise ChipcutError(f"{origin}: [compute] peak_macs_per_s must be a table of dtype = MAC/s, "
                           'e.g. { fp32 = 1e12, int8 = 4e12 }')
    for dtype, rate in peaks.items():
        if dtype not in DTYPES:
            raise ChipcutError(f"{origin}: [compute] peak_macs_per_s has unknown dtype {dtype!r}; "
                               f"known: {', '.join(DTYPES)}")
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0:
            raise ChipcutError(f"{origin}: [compute] peak_macs_per_s.{dtype} = {rate!r} must be a "
                               "positive number in MAC/s")
    nums = {k: _check_number(origin, k, v) for k, v in values.items()}
    name = data.get("name", Path(origin).stem)
    if not isinstance(name, str) or not name:
        raise ChipcutError(f"{origin}: name = {name!r} must be a non-empty string")
    return ChipSpec(
        name=name,
        peak_macs_per_s={k: float(v) for k, v in peaks.items()},
        vector_ops_per_s=nums["vector_ops_per_s"],
        sram_bytes=int(nums["sram_bytes"]),
        dram_bytes=int(nums["dram_bytes"]),
        dram_bytes_per_s=nums["dram_bytes_per_s"],
        link=LinkSpec(nums["bytes_per_s"], nums["latency_s"]),
        compute_efficiency=nums.get("compute_efficiency", 1.0),
        memory_efficiency=nums.get("memory_efficiency", 1.0),
        op_overhead_s=nums.get("op_overhead_s", 0.0),
        description=str(data.get("description", "")),
        source=str(data.get("source", "")),
        extra=dict(data.get("extra", {})),
    )


def load_spec(path: str | Path) -> ChipSpec:
    """Load and validate a chip spec TOML file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ChipcutError(f"cannot read backend spec {path}: {e.strerror}; check the path") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ChipcutError(f"{path}: not valid TOML ({e}); fix the syntax") from None
    return spec_from_dict(data, str(path))


SPEC_FIELDS = tuple(f.name for f in fields(ChipSpec))
