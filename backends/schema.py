"""Spec TOML schema: every section and field, its unit and range; loading with one-line errors.

Errors are ``ChipcutError`` and read ``<file>: [section] field = <value> <problem>; <fix>``.
"""

from __future__ import annotations

import math
import tomllib
import warnings
from dataclasses import dataclass
from pathlib import Path

from chipcut.backends import quantity as q
from chipcut.backends.energy import default_energy
from chipcut.backends.spec import (
    DATAFLOWS,
    ArraySpec,
    Capabilities,
    ChipSpec,
    EnergySpec,
    LinkSpec,
)
from chipcut.core.dtypes import ORDER
from chipcut.core.errors import ChipcutError
from chipcut.core.vocab import OpClass


class FieldError(ValueError):
    """A value that does not fit its field; the message continues after ``field = value``.

    ``entry`` names the offending entry of a table field (a dtype) and ``value`` its value.
    """

    def __init__(self, message: str, entry: str = "", value: object = None) -> None:
        super().__init__(message)
        self.entry, self.value = entry, value


@dataclass(frozen=True)
class Num:
    """A quantity in ``kind`` units, within (lo, hi] (or [lo, hi] when ``zero_ok``)."""

    kind: q.Kind
    lo: float = 0.0
    hi: float = math.inf
    zero_ok: bool = False
    integer: bool = False
    example: str = ""

    def check(self, value: object) -> float | int:
        try:
            number = q.parse(value, self.kind)
        except ValueError as e:
            raise FieldError(str(e)) from None
        shown = f"({number:g} {self.kind.base}) " if isinstance(value, str) else ""
        low_ok = number >= self.lo if self.zero_ok else number > self.lo
        if not (low_ok and number <= self.hi):
            bound = f">= {self.lo:g}" if self.zero_ok else f"> {self.lo:g}"
            upper = f" and <= {self.hi:g}" if self.hi != math.inf else ""
            raise FieldError(f"{shown}is out of range; it must be {bound}{upper} {self.kind.base}")
        if self.integer and number != int(number):
            raise FieldError(f"{shown}is not a whole number of {self.kind.base}")
        if self.integer:
            return int(number)
        return number


@dataclass(frozen=True)
class PerDtype:
    """A table ``{ dtype = quantity }``, e.g. ``{ int8 = "92 TOPS", fp16 = "46 TOPS" }``."""

    num: Num

    @property
    def example(self) -> str:
        return self.num.example

    def check(self, value: object) -> dict[str, float]:
        if not isinstance(value, dict) or not value:
            raise FieldError(f"must be a table of dtype = {self.num.kind.base}, e.g. {self.example}")
        out = {}
        for dtype, rate in value.items():
            if dtype not in ORDER:
                raise FieldError(f"has unknown dtype {dtype!r}; known dtypes: {', '.join(ORDER)}")
            try:
                out[dtype] = float(self.num.check(rate))
            except FieldError as e:
                raise FieldError(str(e), entry=dtype, value=rate) from None
        return out


@dataclass(frozen=True)
class PerClass:
    """A table ``{ op class = fraction }``, e.g. ``{ dense = 0.8, depthwise = 0.2 }``; the classes
    are chipcut.core.vocab.OpClass."""

    num: Num

    @property
    def example(self) -> str:
        return self.num.example

    def check(self, value: object) -> dict[str, float]:
        known = ", ".join(OpClass)
        if not isinstance(value, dict) or not value:
            what = "fraction" if self.num.kind is q.FRACTION else f"value in {self.num.kind.base}"
            raise FieldError(f"must be a table of op class = {what}, e.g. {self.example} "
                             f"(classes: {known})")
        out = {}
        for name, number in value.items():
            if name not in set(OpClass):
                raise FieldError(f"has unknown op class {name!r}; use one of {known}")
            try:
                out[name] = float(self.num.check(number))
            except FieldError as e:
                raise FieldError(str(e), entry=name, value=number) from None
        return out


@dataclass(frozen=True)
class Text:
    """A string; ``choices`` restricts it."""

    choices: tuple[str, ...] = ()
    example: str = '"text"'

    def check(self, value: object) -> str:
        if not isinstance(value, str):
            raise FieldError(f"is a {type(value).__name__}; write a string")
        if self.choices and value not in self.choices:
            raise FieldError(f"is not one of: {', '.join(self.choices)}")
        return value


@dataclass(frozen=True)
class Flag:
    """A TOML boolean."""

    example: str = "true"

    def check(self, value: object) -> bool:
        if not isinstance(value, bool):
            raise FieldError(f"is a {type(value).__name__}; write true or false")
        return value


@dataclass(frozen=True)
class Names:
    """A non-empty list of op names (``Work.op`` values such as "conv2d")."""

    example = '["conv2d", "linear"]'

    def check(self, value: object) -> frozenset[str]:
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise FieldError(f"must be a non-empty list of op names, e.g. {self.example}")
        return frozenset(value)


_TOPS = '{ int8 = "92 TOPS" }'
SCHEMA: dict[str, dict[str, Num | PerDtype | PerClass | Text | Flag | Names]] = {
    "compute": {
        "peak_macs_per_s": PerDtype(Num(q.MACS_PER_S, example=_TOPS)),
        "vector_ops_per_s": Num(q.OPS_PER_S, example='"1 TOPS"'),
        "compute_efficiency": Num(q.FRACTION, 0, 1, example="0.8"),
        # per op class; a class not listed runs at compute_efficiency
        "efficiency": PerClass(Num(q.FRACTION, 0, 1, example="{ dense = 0.8, depthwise = 0.2 }")),
        "op_overhead_s": Num(q.SECONDS, 0, 1, zero_ok=True, example='"5 us"'),
        # per op class: its own fixed time per unit, in place of op_overhead_s
        "class_overhead_s": PerClass(Num(q.SECONDS, 0, 1, zero_ok=True,
                                         example='{ depthwise = "120 us" }')),
        # per op class: the rate its kernels read and write their activations (inputs and
        # outputs), a time added to their compute time (load/store-bound kernels)
        "activation_bytes_per_s": PerClass(Num(q.BYTES_PER_S, example='{ depthwise = "7 GB/s" }')),
    },
    "memory": {
        "sram_bytes": Num(q.BYTES, zero_ok=True, integer=True, example='"8 MiB"'),
        "dram_bytes": Num(q.BYTES, zero_ok=True, integer=True, example='"16 GB"'),
        "dram_bytes_per_s": Num(q.BYTES_PER_S, example='"34 GB/s"'),
        "memory_efficiency": Num(q.FRACTION, 0, 1, example="0.8"),
        # false: weights stream from DRAM every inference even when they fit in SRAM
        "weights_in_sram": Flag(example="false"),
    },
    "link": {
        "bytes_per_s": Num(q.BYTES_PER_S, example='"15.75 GB/s"'),
        "latency_s": Num(q.SECONDS, 0, 1, zero_ok=True, example='"2 us"'),
        "interface": Text(),
        "overlap": Flag(),
    },
    "array": {
        "rows": Num(q.COUNT, integer=True, example="256"),
        "cols": Num(q.COUNT, integer=True, example="256"),
        "clock_hz": Num(q.HERTZ, example='"700 MHz"'),
        "dataflow": Text(DATAFLOWS, '"weight-stationary"'),
    },
    "energy": {
        "pj_per_mac": PerDtype(Num(q.PICOJOULES, example='{ int8 = "0.3 pJ" }')),
        "pj_per_byte_sram": Num(q.PICOJOULES, example='"12.5 pJ"'),
        "pj_per_byte_dram": Num(q.PICOJOULES, example='"162.5 pJ"'),
        "static_power_w": Num(q.WATTS, zero_ok=True, example='"2 W"'),
    },
    "capabilities": {"ops": Names(), "unsupported_ops": Names()},
}
OPTIONAL_SECTIONS = ("array", "energy", "capabilities")
REQUIRED = {
    "compute": ("peak_macs_per_s", "vector_ops_per_s"),
    "memory": ("sram_bytes", "dram_bytes"),
    "link": ("bytes_per_s", "latency_s"),
    "array": ("rows", "cols", "clock_hz"),
}
# validation: "fitted to <measurements>" or "unvalidated: <why>", shown by ``chipcut backends``
TOP_LEVEL = {"name": Text(), "description": Text(), "source": Text(), "validation": Text()}
FREE_FORM = "extra"  # a table of notes, never interpreted


# What real chips span, per unit: a value outside is accepted but warned about (a unit slip,
# "1 TB/s" for "1 GB/s", is the usual cause).
PLAUSIBLE: dict[str, tuple[float, float]] = {
    "MAC/s": (1e6, 1e18), "ops/s": (1e6, 1e18), "bytes/s": (1e3, 1e14), "Hz": (1e3, 1e11),
    "bytes": (1e3, 1e15), "pJ": (1e-4, 1e6), "W": (1e-4, 1e5), "s": (1e-10, 1.0),
}


class SpecWarning(UserWarning):
    """A spec value outside the range real chips span."""


def _plausible(origin: str, field: str, value: object, kind: q.Kind) -> None:
    values = value.items() if isinstance(value, dict) else [("", value)]
    lo, hi = PLAUSIBLE.get(kind.base, (0.0, math.inf))
    for entry, number in values:
        if isinstance(number, (int, float)) and number and not lo <= number <= hi:
            where = f"{field}.{entry}" if entry else field
            warnings.warn(SpecWarning(
                f"{origin}: {where} = {number:g} {kind.base} is outside the range real chips span "
                f"({lo:g} to {hi:g} {kind.base}); check the value and its unit"), stacklevel=3)


def _known_ops(origin: str, key: str, ops: object) -> None:
    """A warning for each listed op no ATen op is named (a misspelling never matches a node;
    a custom op's own name is fine), with the closest ATen names."""
    import difflib

    import torch

    unknown = sorted(op for op in ops if not hasattr(torch.ops.aten, op))
    if not unknown:
        return
    names = {n.split("::")[1].split(".")[0] for n in torch._C._dispatch_get_all_op_names()
             if n.startswith("aten::")}
    for op in unknown:
        close = difflib.get_close_matches(op, names, 3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        warnings.warn(SpecWarning(
            f"{origin}: [capabilities] {key} lists {op!r}, which no ATen op is named (nodes are "
            f"named as ATen names their ops; a custom op's own name is fine){hint}"), stacklevel=3)


def _fail(origin: str, message: str) -> ChipcutError:
    return ChipcutError(f"{origin}: {message}")


def _section_values(data: dict, origin: str, section: str) -> dict[str, object]:
    table = data.get(section, {})
    if not isinstance(table, dict):
        raise _fail(origin, f"[{section}] = {table!r} must be a table; write a [{section}] header")
    fields = SCHEMA[section]
    values: dict[str, object] = {}
    for key, raw in table.items():
        if key not in fields:
            raise _fail(origin, f"unknown key [{section}] {key!r}; allowed: {', '.join(fields)}")
        try:
            values[key] = fields[key].check(raw)
            kind = getattr(fields[key], "kind", None) or getattr(getattr(fields[key], "num", None), "kind", None)
            if kind is not None:
                _plausible(origin, f"[{section}] {key}", values[key], kind)
        except FieldError as e:
            field = f"{key}.{e.entry}" if e.entry else key
            shown = e.value if e.entry else raw
            raise _fail(origin, f"[{section}] {field} = {shown!r} {e}") from None
    if section in OPTIONAL_SECTIONS and section not in data:
        return values
    for key in REQUIRED.get(section, ()):
        if key not in values:
            raise _fail(origin, f"missing [{section}] {key}; add it, e.g. {key} = {fields[key].example}")
    return values


def spec_from_dict(data: dict, origin: str) -> ChipSpec:
    """Validate a parsed TOML table and build a ChipSpec; ``origin`` names the file in errors."""
    allowed = [*TOP_LEVEL, *SCHEMA, FREE_FORM]
    for key in data:
        if key not in allowed:
            raise _fail(origin, f"unknown key {key!r}; allowed top-level keys: {', '.join(allowed)}")
    top = {}
    for key, kind in TOP_LEVEL.items():
        if key in data:
            try:
                top[key] = kind.check(data[key])
            except FieldError as e:
                raise _fail(origin, f"{key} = {data[key]!r} {e}") from None
    if not isinstance(data.get(FREE_FORM, {}), dict):
        raise _fail(origin, f"{FREE_FORM} = {data[FREE_FORM]!r} must be a table; write an [{FREE_FORM}] header")
    s = {section: _section_values(data, origin, section) for section in SCHEMA}
    memory, link, caps = s["memory"], s["link"], s["capabilities"]
    if memory["dram_bytes"] > 0 and "dram_bytes_per_s" not in memory:
        raise _fail(origin, "missing [memory] dram_bytes_per_s (the chip has DRAM); add it, "
                            'e.g. dram_bytes_per_s = "34 GB/s", or set dram_bytes = 0 for an SRAM-only chip')
    if memory["dram_bytes"] == 0 and "dram_bytes_per_s" in memory:
        raise _fail(origin, f"[memory] dram_bytes_per_s = {memory['dram_bytes_per_s']:g} bytes/s but "
                            "dram_bytes = 0 (an SRAM-only chip); remove dram_bytes_per_s or set dram_bytes")
    if memory["dram_bytes"] == 0 and memory.get("weights_in_sram") is False:
        raise _fail(origin, "[memory] weights_in_sram = false but dram_bytes = 0 (an SRAM-only chip "
                            "has nowhere else to keep weights); remove weights_in_sram or set dram_bytes")
    if "ops" in caps and "unsupported_ops" in caps:
        raise _fail(origin, "[capabilities] sets both ops and unsupported_ops; keep one (an allow-list "
                            "or a deny-list)")
    for key in ("ops", "unsupported_ops"):
        _known_ops(origin, key, caps.get(key, ()))
    name = top.get("name") or Path(origin).stem
    return ChipSpec(
        name=name,
        peak_macs_per_s=s["compute"]["peak_macs_per_s"],
        vector_ops_per_s=s["compute"]["vector_ops_per_s"],
        sram_bytes=memory["sram_bytes"],
        dram_bytes=memory["dram_bytes"],
        dram_bytes_per_s=memory.get("dram_bytes_per_s", 0.0),
        link=LinkSpec(link["bytes_per_s"], link["latency_s"], link.get("interface", ""),
                      link.get("overlap", True)),
        compute_efficiency=s["compute"].get("compute_efficiency", 1.0),
        class_efficiency=s["compute"].get("efficiency", {}),
        memory_efficiency=memory.get("memory_efficiency", 1.0),
        op_overhead_s=s["compute"].get("op_overhead_s", 0.0),
        class_overhead_s=s["compute"].get("class_overhead_s", {}),
        activation_bytes_per_s=s["compute"].get("activation_bytes_per_s", {}),
        description=top.get("description", ""),
        source=top.get("source", ""),
        extra=dict(data.get(FREE_FORM, {})),
        array=ArraySpec(**s["array"]) if s["array"] else None,
        energy=_energy(s["energy"], memory["sram_bytes"]),
        capabilities=Capabilities(caps.get("ops"), caps.get("unsupported_ops", frozenset())),
        weights_in_sram=memory.get("weights_in_sram", True),
        validation=top.get("validation", ""),
    )


def _energy(values: dict[str, object], sram_bytes: int) -> EnergySpec:
    """The 45 nm defaults for this SRAM size, overridden field by field (and dtype by dtype)."""
    base = default_energy(sram_bytes)
    return EnergySpec(
        pj_per_mac=base.pj_per_mac | values.get("pj_per_mac", {}),
        pj_per_byte_sram=values.get("pj_per_byte_sram", base.pj_per_byte_sram),
        pj_per_byte_dram=values.get("pj_per_byte_dram", base.pj_per_byte_dram),
        static_power_w=values.get("static_power_w", base.static_power_w),
    )


def load_spec(path: str | Path) -> ChipSpec:
    """Load and validate a chip spec TOML file.

    >>> from chipcut.backends.presets import PRESETS_DIR
    >>> load_spec(PRESETS_DIR / "tpu-v1.toml").array.rows
    256
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ChipcutError(f"cannot read backend spec {path}: {e.strerror}; check the path") from None
    except UnicodeDecodeError:
        raise ChipcutError(f"{path}: not a text file (a chip spec is UTF-8 TOML); see "
                           "chipcut/backends/presets/*.toml for examples") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ChipcutError(f"{path}: not valid TOML ({e}); fix the syntax") from None
    return spec_from_dict(data, str(path))
