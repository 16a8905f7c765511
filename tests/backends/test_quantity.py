"""Unit strings: decimal vs binary prefixes, rates, times, frequencies, TOPS -> MAC/s, strictness."""

from __future__ import annotations

import pytest

from chipcut.backends import quantity as q


@pytest.mark.parametrize(("text", "kind", "expected"), [
    ("8 MiB", q.BYTES, 8 * 2**20),
    ("28 MiB", q.BYTES, 29_360_128),
    ("16 GB", q.BYTES, 16e9),
    ("16 GiB", q.BYTES, 17_179_869_184),
    ("512 KiB", q.BYTES, 524_288),
    ("8 MB", q.BYTES, 8_000_000),
    ("34 GB/s", q.BYTES_PER_S, 34e9),
    ("3.94 GB/s", q.BYTES_PER_S, 3.94e9),
    ("3.35 TB/s", q.BYTES_PER_S, 3.35e12),
    ("2 us", q.SECONDS, 2e-6),
    ("1.5 ms", q.SECONDS, 1.5e-3),
    ("700 MHz", q.HERTZ, 700e6),
    ("92 TOPS", q.MACS_PER_S, 46e12),           # MAC/s = ops/s / 2
    ("989.4 TFLOPS", q.MACS_PER_S, 494.7e12),
    ("45.875 TMAC/s", q.MACS_PER_S, 45.875e12),
    ("1 TOPS", q.OPS_PER_S, 1e12),
    ("2.5 W", q.WATTS, 2.5),
    ("1.3 nJ", q.PICOJOULES, 1300.0),
    ("80 %", q.FRACTION, 0.8),
    ("1e3", q.BYTES, 1000.0),
])
def test_units_parse_to_the_base_unit(text: str, kind: q.Kind, expected: float) -> None:
    assert q.parse(text, kind) == pytest.approx(expected, rel=1e-12)


def test_plain_numbers_are_already_in_the_base_unit() -> None:
    assert q.parse(34e9, q.BYTES_PER_S) == 34e9
    assert q.parse(256, q.COUNT) == 256.0


@pytest.mark.parametrize(("value", "kind", "fragment"), [
    ("8 Mb", q.BYTES, "lowercase b is bits"),
    ("34 Gb/s", q.BYTES_PER_S, "lowercase b is bits"),
    ("700 mhz", q.HERTZ, "case-sensitive"),
    ("8 MiB/s", q.BYTES, "not a unit of bytes"),
    ("2 parsecs", q.SECONDS, "allowed units: s, ms, us, µs, ns"),
    ("fast", q.HERTZ, "does not start with a number"),
    (True, q.BYTES, "is a boolean"),
    ([1], q.BYTES, "is a list"),
    (float("inf"), q.BYTES, "not finite"),
    ("92 TOPS", q.BYTES, "not a unit of bytes"),
])
def test_bad_values_are_rejected_with_the_reason(value: object, kind: q.Kind, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        q.parse(value, kind)
