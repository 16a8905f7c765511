"""Numbers with units for people: seconds, bytes, joules, rates. Decimal prefixes for rates and
transfer sizes (1 GB/s = 1e9 bytes/s), binary ones for capacities that are whole KiB/MiB/GiB."""

from __future__ import annotations

import math


def rate(value: float, unit: str) -> str:
    """``value`` with a decimal prefix: rate(34e9, "B/s") == "34 GB/s"."""
    if not math.isfinite(value):
        return "n/a"
    for prefix, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale * (1 - 1e-9):  # 1 / 1e-9 is 999999999.9999999: still 1 G
            return f"{value / scale:.4g} {prefix}{unit}"
    return f"{value:.4g} {unit}"


def capacity(nbytes: int) -> str:
    """Binary prefixes for sizes that are whole KiB/MiB/GiB (as SRAMs are), decimal otherwise.

    >>> capacity(28 * 2**20), capacity(80 * 10**9)
    ('28 MiB', '80 GB')
    """
    for prefix, scale in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if scale <= nbytes < 10_000 * scale and nbytes % scale == 0:
            return f"{nbytes / scale:.4g} {prefix}B"
    return rate(nbytes, "B")


def seconds(value: float) -> str:
    """Seconds with a readable unit: 1.23 ms, 45.6 us, 12 ns.

    >>> seconds(0.00123), seconds(4.56e-5)
    ('1.23 ms', '45.6 us')
    """
    if not math.isfinite(value):
        return "n/a"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


def joules(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    for unit, scale in (("J", 1.0), ("mJ", 1e-3), ("uJ", 1e-6)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} nJ"


def nbytes(value: float) -> str:
    """Bytes with a readable decimal unit: 1.5 MB, 20.5 kB."""
    if not math.isfinite(value):
        return "n/a"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.0f} B"
