"""Strict parsing of spec values with units: "8 MiB", "34 GB/s", "2 us", "700 MHz", "92 TOPS".

A value is a plain number (already in the field's base unit) or a string
``"<number> <unit>"``. Decimal prefixes (k, M, G, T, P) are powers of 1000 and
binary prefixes (Ki, Mi, Gi, Ti) powers of 1024, so "16 GB" is 16e9 bytes and
"16 GiB" is 17,179,869,184 bytes; they are never mixed. Units are
case-sensitive: "Gb" (bits) and "mhz" are rejected, not guessed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_NUMBER = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(\S.*?)?\s*$")
_SI = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}
_BINARY = {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40}


def _prefixed(base: str, prefixes: dict[str, float]) -> dict[str, float]:
    return {p + base: scale for p, scale in prefixes.items()}


_BYTES = _prefixed("B", _SI | _BINARY)
_OPS = _prefixed("OPS", _SI) | _prefixed("FLOPS", _SI) | _prefixed("ops/s", _SI)
_MACS = _prefixed("MAC/s", _SI) | _prefixed("MACS", _SI)


@dataclass(frozen=True)
class Kind:
    """What a field measures: its base unit (what a plain number means) and the units accepted."""

    base: str
    units: dict[str, float]  # unit text -> multiplier to the base unit
    examples: str
    allowed: str  # the accepted units, for error messages


_PREFIXES = "k, M, G, T, P (powers of 1000) or Ki, Mi, Gi, Ti (powers of 1024)"
BYTES = Kind("bytes", _BYTES, '"512 KiB", "8 MiB", "16 GB"', f"B with prefixes {_PREFIXES}")
BYTES_PER_S = Kind("bytes/s", {u + "/s": s for u, s in _BYTES.items()}, '"34 GB/s", "3.94 GB/s"',
                   f"B/s with prefixes {_PREFIXES}")
SECONDS = Kind("s", {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9},
               '"2 us", "1.5 ms"', "s, ms, us, µs, ns")
HERTZ = Kind("Hz", _prefixed("Hz", _SI), '"700 MHz", "1.4 GHz"', "Hz, kHz, MHz, GHz, THz")
# 1 MAC = 2 ops: "92 TOPS" in a MAC/s field is 46e12 MAC/s.
MACS_PER_S = Kind("MAC/s", _MACS | {u: s / 2 for u, s in _OPS.items()}, '"92 TOPS", "46 TMAC/s"',
                  "MAC/s, or OPS, FLOPS, ops/s (2 ops per MAC), with prefixes k, M, G, T, P")
OPS_PER_S = Kind("ops/s", _OPS, '"1 TOPS", "8.1 TFLOPS"', "OPS, FLOPS, ops/s with prefixes k, M, G, T, P")
WATTS = Kind("W", {"W": 1.0, "mW": 1e-3, "kW": 1e3}, '"2.5 W", "700 W"', "W, mW, kW")
PICOJOULES = Kind("pJ", {"pJ": 1.0, "fJ": 1e-3, "nJ": 1e3}, '"0.23 pJ", "1.3 nJ"', "pJ, fJ, nJ")
FRACTION = Kind("fraction", {"%": 0.01}, '0.8 or "80 %"', "%, or a plain number in (0, 1]")
COUNT = Kind("count", {}, "256", "none: write a plain integer")


def parse(value: object, kind: Kind) -> float:
    """``value`` in ``kind.base``; raises ValueError with a one-line reason and fix.

    >>> parse("28 MiB", BYTES), parse("34 GB/s", BYTES_PER_S), parse("92 TOPS", MACS_PER_S)
    (29360128.0, 34000000000.0, 46000000000000.0)
    """
    if isinstance(value, bool):
        raise ValueError(f"is a boolean; write a number in {kind.base} or a string like {kind.examples}")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        number = _parse_text(value, kind)
    else:
        raise ValueError(f"is a {type(value).__name__}; write a number in {kind.base} or a string "
                         f"like {kind.examples}")
    if not math.isfinite(number):
        raise ValueError(f"is not finite; write a finite number in {kind.base}")
    return number


def _parse_text(text: str, kind: Kind) -> float:
    match = _NUMBER.match(text)
    if match is None:
        raise ValueError(f"does not start with a number; write it like {kind.examples}")
    number, unit = float(match.group(1)), match.group(2) or ""
    if unit == "" or unit == kind.base:
        return number
    if unit in kind.units:
        return number * kind.units[unit]
    hint = ""
    if unit.rstrip("/s").endswith("b") and kind in (BYTES, BYTES_PER_S):
        hint = " (lowercase b is bits; write B for bytes)"
    elif unit.lower() in {u.lower() for u in kind.units}:
        hint = " (units are case-sensitive)"
    raise ValueError(f"has unit {unit!r}, which is not a unit of {kind.base}{hint}; "
                     f"allowed units: {kind.allowed}")
