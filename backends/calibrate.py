"""CPU calibration: fit a ``cpu`` spec file to this machine with 15 seconds of microbenchmarks.

Nominal peaks come from the CPU's features (cores x clock x SIMD lanes x FMA units); the
benchmarks (chipcut.backends.microbench) then fit what the roofline cannot know: a compute
efficiency per op class, from the layers of common motifs run in sequence as a model runs
them (chipcut.backends.blockbench: residual bottlenecks, inverted residuals, a transformer
encoder layer; each class's efficiency is its layers' time at peak over their measured time,
summed, so that a stage of many layers is predicted on the whole; a class measured at sizes far
apart, as depthwise, narrow and small-map convs are, also gets a fixed time per unit and a rate
for its activation bytes of its own), plus a max pool and a pad and add; the element-wise rate
(an in-cache add), DRAM bandwidth (a large copy), memory efficiency (a large out-of-cache add
against the copy) and the fixed per-op overhead (an add of one-element tensors). Each is the fastest of several repeats; the spread (slowest /
fastest) says how steady the machine was.

The fit runs with the threads the costed work will run with (``--threads``, default 1: each
pipeline stage is one single-threaded process), and inverts the roofline itself, so the fitted
spec predicts every benchmark it was fitted to.

``chipcut calibrate --out cpu-fitted.toml`` (or ``python -m chipcut.backends.calibrate``)
writes the fitted spec to an explicit file, ``./cpu-calibrated.toml`` by default; its
description and source say when, on which machine and with how many threads it was measured.
Nothing reads it behind the user's back: the ``cpu`` preset stays the shipped default, and a
compile uses the fit only when given ``--backend cpu-fitted.toml``.
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chipcut.backends.linkbench import LinkFit, measure_link
from chipcut.backends.loader import from_dict
from chipcut.backends.microbench import REPEATS, Measured, measure
from chipcut.backends.protocol import Work
from chipcut.backends.schema import load_spec, spec_from_dict
from chipcut.backends.spec import ChipSpec
from chipcut.core.errors import ChipcutError
from chipcut.core.files import write_atomic
from chipcut.core.heap import kept_heap
from chipcut.core.vocab import OpClass

DEFAULT_FILE = "cpu-calibrated.toml"  # in the current folder


@dataclass(frozen=True)
class Nominal:
    """This CPU's nominal figures, read from the OS (not measured)."""

    threads: int
    clock_hz: float
    fp32_lanes: int
    fma_units: int
    cache_bytes: int
    memory_bytes: int
    cpu_model: str = ""

    @property
    def peak_macs_per_s(self) -> float:
        return self.threads * self.clock_hz * self.fp32_lanes * self.fma_units


def _cpuinfo() -> tuple[set[str], float, str]:
    """(feature flags, clock in Hz, CPU model) from /proc/cpuinfo and cpufreq; empty/0 where
    unavailable."""
    flags: set[str] = set()
    mhz = 0.0
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features") and not flags:
                flags = set(value.split())
            elif key.strip() == "cpu MHz" and not mhz:
                mhz = float(value)
            elif key.strip() in ("model name", "Model", "Hardware") and not model:
                model = " ".join(value.split())
    except (OSError, ValueError):
        pass
    try:  # the rated maximum beats the momentary "cpu MHz"
        mhz = int(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text()) / 1e3
    except (OSError, ValueError):
        pass
    return flags, mhz * 1e6, model


def _largest_cache_bytes() -> int:
    sizes = []
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            text = (index / "size").read_text().strip()
            sizes.append(int(text[:-1]) * {"K": 2**10, "M": 2**20}[text[-1]])
        except (OSError, ValueError, KeyError):
            continue
    return max(sizes, default=8 * 2**20)  # assumption when sysfs is silent: 8 MiB


def nominal() -> Nominal:
    """Nominal figures of this machine for the threads torch uses."""
    import torch

    flags, clock_hz, model = _cpuinfo()
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags or "avx" in flags else 4
    fma_units = 2 if {"fma", "avx512f", "asimd"} & flags else 1
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    return Nominal(torch.get_num_threads(), clock_hz or 2.5e9, lanes, fma_units,
                   _largest_cache_bytes(), int(memory) or 16 * 2**30,
                   model or platform.processor())


def machine(nom: Nominal) -> str:
    """Which machine a fit describes: CPU model, OS and architecture, threads used.

    >>> machine(Nominal(8, 3e9, 8, 2, 2**25, 2**34, "Example CPU"))  # doctest: +ELLIPSIS
    'Example CPU, ... 8 threads'
    """
    system = " ".join(filter(None, (platform.system(), platform.release(), platform.machine())))
    return f"{nom.cpu_model or 'unknown CPU model'}, {system or 'unknown platform'}, {_threads(nom.threads)}"


def _threads(n: int) -> str:
    return f"{n} thread" + ("" if n == 1 else "s")


def busy_s(m: Measured, overhead_s: float) -> float:
    """A benchmark's time past the fixed per-op overhead (which the roofline adds back), never
    below 5% of its measured time."""
    return max(m.seconds - overhead_s, 0.05 * m.seconds)


@dataclass(frozen=True)
class ClassFit:
    """One op class's fitted time: ``overhead_s + (time at peak) / efficiency + activation
    bytes / activation_bytes_per_s`` (0: activations not rated); ``peak_fraction`` is its
    benchmarks' time at peak over their measured time, all terms together."""

    efficiency: float
    overhead_s: float
    activation_bytes_per_s: float
    peak_fraction: float


# A class gets its own fixed time and activation rate when its benchmarks can tell them from
# its efficiency: at least this many, whose times at peak span at least this factor (a fixed
# time fitted on layers of one size would be a slope's error, not a kernel's cost).
SHAPE_FIT_MIN, SHAPE_FIT_SPAN = 5, 8.0


def _least_squares(rows: list[list[float]], targets: list[float]) -> list[float]:
    import torch

    a = torch.tensor(rows, dtype=torch.float64)
    b = torch.tensor(targets, dtype=torch.float64).unsqueeze(1)
    return torch.linalg.lstsq(a, b, driver="gelsd").solution.squeeze(1).tolist()


def _shape_fit(bench: list[Measured], peaks: list[float], overhead_s: float) -> ClassFit:
    """t = a + s x (time at peak) + k x (activation bytes), with a >= the machine's per-op
    overhead, s >= 1 (efficiency at most 1) and k >= 0, fitted to relative error by least
    squares (every combination of terms free or held at its bound, the best that keeps to the
    bounds); then s and k scaled so that the class's summed time is exact, as a stage of many
    layers is predicted on the whole (unless that needs an efficiency above 1)."""
    columns = [[1.0] * len(bench), peaks, [float(b.nbytes) for b in bench]]
    bounds = (overhead_s, 1.0, 0.0)
    best: tuple[float, list[float]] | None = None
    for free in itertools.product((True, False), repeat=3):
        rows = [[columns[j][i] / b.seconds for j in range(3) if free[j]] for i, b in enumerate(bench)]
        rest = [1.0 - sum(bounds[j] * columns[j][i] for j in range(3) if not free[j]) / b.seconds
                for i, b in enumerate(bench)]
        solved = iter(_least_squares(rows, rest) if any(free) else [])
        x = [next(solved) if free[j] else bounds[j] for j in range(3)]
        if any(x[j] < bounds[j] * (1 - 1e-12) for j in range(3)):
            continue
        sse = sum((sum(x[j] * columns[j][i] for j in range(3)) / b.seconds - 1) ** 2
                  for i, b in enumerate(bench))
        if best is None or sse < best[0]:
            best = (sse, x)
    assert best is not None  # every term held at its bound is always within them
    a, slope, per_byte = best[1]
    # A term that adds next to nothing is round-off of its bound: hold it there.
    total_s = sum(b.seconds for b in bench)
    if (a - overhead_s) * len(bench) <= 1e-9 * total_s:
        a = overhead_s
    if (slope - 1.0) * sum(columns[1]) <= 1e-9 * total_s:
        slope = 1.0
    if per_byte * sum(columns[2]) <= 1e-9 * total_s:
        per_byte = 0.0
    varying = sum(slope * p + per_byte * n for p, n in zip(columns[1], columns[2], strict=True))
    scale = (total_s - a * len(bench)) / varying if varying > 0 else 1.0
    slope, per_byte = max(1.0, slope * scale), max(0.0, per_byte * scale)
    return ClassFit(1 / slope, a, 1 / per_byte if per_byte > 0 else 0.0, sum(peaks) / total_s)


def _class_fits(m: dict[str, Measured], at_peak_s: Callable[[Measured], float],
                overhead_s: float) -> dict[str, ClassFit]:
    """Per op class: with ``SHAPE_FIT_MIN`` or more benchmarks spanning ``SHAPE_FIT_SPAN`` in
    time at peak, its own fixed time and activation rate beside its efficiency
    (:func:`_shape_fit`); else the efficiency alone: (roofline time at efficiency 1) /
    (measured time past the overhead), summed over the class's benchmarks (a time-weighted
    mean: a model's stage is a sum of layers), at most 1."""
    per_class: dict[str, list[Measured]] = {}
    for b in m.values():
        if b.op_class:
            per_class.setdefault(b.op_class, []).append(b)
    out = {}
    for c, bench in per_class.items():
        peaks = [at_peak_s(b) for b in bench]
        spans = min(peaks) > 0 and max(peaks) >= SHAPE_FIT_SPAN * min(peaks)
        past_overhead = all(b.seconds > 2 * overhead_s for b in bench)  # else busy_s's floor
        if len(bench) >= SHAPE_FIT_MIN and spans and past_overhead:
            out[c] = _shape_fit(bench, peaks, overhead_s)
        else:
            busy = sum(busy_s(b, overhead_s) for b in bench)
            out[c] = ClassFit(min(1.0, sum(peaks) / busy), overhead_s, 0.0,
                              sum(peaks) / sum(b.seconds for b in bench))
    return out


def class_spread(m: dict[str, Measured]) -> dict[str, float]:
    """Per op class: the largest spread (slowest / fastest timing) among its benchmarks."""
    out: dict[str, float] = {}
    for b in m.values():
        if b.op_class:
            out[b.op_class] = max(out.get(b.op_class, 1.0), b.spread)
    return out


def fit(nom: Nominal, m: dict[str, Measured], name: str = "cpu-calibrated",
        link: LinkFit | None = None) -> dict:
    """The spec table fitted to measurements ``m`` (see the module docstring for which fits what),
    its description and source naming the date, the machine and the threads (:func:`machine`).
    ``link``: the measured transfer between two processes (else a memory copy is assumed)."""
    overhead_s = m["overhead"].seconds
    # The fastest element-wise kernel sets the vector rate and the fastest dense one the MAC
    # peak (when it beats the nominal one: turbo clocks, a clock sysfs under-reports), so that
    # every class's efficiency is a fraction of them.
    vector_ops_per_s = max(b.elem_ops / busy_s(b, overhead_s) for b in m.values()
                           if b.elem_ops and not b.macs)
    peak = max(nom.peak_macs_per_s, *(b.macs / busy_s(b, overhead_s) for b in m.values()
                                      if b.op_class in (OpClass.DENSE, OpClass.GEMM)))
    dram_bytes_per_s = m["copy"].nbytes / busy_s(m["copy"], overhead_s)
    eta_m = min(1.0, m["stream"].nbytes / dram_bytes_per_s / busy_s(m["stream"], overhead_s))
    ghz = nom.clock_hz / 1e9
    when = time.strftime("%Y-%m-%d %H:%M %Z").strip()
    table = {
        "name": name,
        "description": f"CPU measured on {when}: {machine(nom)} at {ghz:.3g} GHz",
        "source": "",
        "compute": {"peak_macs_per_s": {"fp32": peak}, "vector_ops_per_s": vector_ops_per_s,
                    "compute_efficiency": 1.0, "op_overhead_s": overhead_s},
        "memory": {"sram_bytes": nom.cache_bytes, "dram_bytes": nom.memory_bytes,
                   "dram_bytes_per_s": dram_bytes_per_s, "memory_efficiency": eta_m},
        # Chips on one host hand activations over through memory: a copy, plus dispatch
        # (unless the transfer between stage processes was measured).
        "link": ({"interface": "gloo between processes on this host", "bytes_per_s":
                  link.bytes_per_s, "latency_s": link.latency_s} if link is not None else
                 {"interface": "shared memory", "bytes_per_s": dram_bytes_per_s,
                  "latency_s": overhead_s}),
    }
    # Invert the cost model itself: at efficiency 1 it gives each benchmark's time at peak.
    at_peak = from_dict(table, name)

    def at_peak_s(b: Measured) -> float:
        return at_peak.compute_time_s(Work(b.macs, b.elem_ops, 0, 0, 0))

    fits = _class_fits(m, at_peak_s, overhead_s)
    spread = class_spread(m)
    table["compute"]["compute_efficiency"] = (fits[OpClass.DENSE].efficiency
                                              if OpClass.DENSE in fits else 1.0)
    table["compute"]["efficiency"] = {str(c): fits[c].efficiency for c in OpClass if c in fits}
    own = [c for c in OpClass if c in fits and fits[c].overhead_s != overhead_s]
    if own:
        table["compute"]["class_overhead_s"] = {str(c): fits[c].overhead_s for c in own}
    rated = [c for c in OpClass if c in fits and fits[c].activation_bytes_per_s > 0]
    if rated:
        table["compute"]["activation_bytes_per_s"] = {str(c): fits[c].activation_bytes_per_s
                                                      for c in rated}
    spreads = ", ".join(f"{c} {spread[c]:.2f}" for c in OpClass if c in spread)
    table["source"] = (
        f"calibrated by chipcut calibrate on {when} on {machine(nom)}; nominal peak = "
        f"{_threads(nom.threads)} x {ghz:.3g} GHz x {nom.fp32_lanes} fp32 lanes x "
        f"{nom.fma_units} FMA units; fitted for {_threads(nom.threads)} per process; "
        f"efficiency per op class (layers of residual, inverted-residual and encoder blocks in "
        f"sequence; a fixed time and activation rate of its own for a class measured at sizes "
        f"{SHAPE_FIT_SPAN:g}x apart), vector rate, DRAM bandwidth and overhead measured, each the "
        f"fastest of {REPEATS} repeats; spread (slowest / fastest) {spreads}"
        + ("; link: gloo send/recv between two processes, fastest of round trips per size, "
           "affine fit" if link is not None else "; link: assumed a memory copy"))
    # A class with a fixed time or activation rate of its own: what fraction of peak its
    # benchmarks ran at in all (its efficiency rates the MAC term alone).
    shaped = [c for c in OpClass if c in own or c in rated]
    table["extra"] = ({f"measured_{k}_s": v.seconds for k, v in m.items()}
                      | {f"spread_{k}": v.spread for k, v in m.items()}
                      | {f"spread_{c}": v for c, v in spread.items()}
                      | {f"peak_fraction_{c}": fits[c].peak_fraction for c in shaped})
    return table


def _value(v: object) -> str:
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + " }"
    return repr(v)


def to_toml(table: dict) -> str:
    """TOML text of a spec table (top-level strings, then one [section] per sub-table)."""
    lines = [f"# Written by chipcut calibrate. {table['description']}.",
             "# Figures hold for that machine only: use them with --backend path/to/this.toml,",
             "# and run chipcut calibrate again to refresh them."]
    lines += [f"{k} = {_value(v)}" for k, v in table.items() if not isinstance(v, dict)]
    for section, values in ((k, v) for k, v in table.items() if isinstance(v, dict)):
        lines += ["", f"[{section}]", *(f"{k} = {_value(v)}" for k, v in values.items())]
    return "\n".join(lines) + "\n"


def calibrate(path: Path | str = DEFAULT_FILE, threads: int = 1, link: bool = True) -> ChipSpec:
    """Measure this machine with ``threads`` torch threads, write the fitted spec to ``path``,
    return it. The spec is named after the file (``cpu-calibrated.toml`` is backend
    ``cpu-calibrated``). ``link``: also time the transfer between two stage processes (gloo),
    the link ``chipcut run`` uses.

    >>> spec = calibrate(threads=1)  # doctest: +SKIP
    >>> 0 < spec.efficiency("depthwise") <= 1  # doctest: +SKIP
    True
    """
    import torch

    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ChipcutError(f"calibrate threads = {threads!r}: use a whole number, 1 or more "
                           "(--threads T: the threads each costed process runs with; default 1)")
    path = Path(path)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with kept_heap():  # the allocator as stage processes use it
            table = fit(nominal(), measure(), path.stem, measure_link() if link else None)
    finally:
        torch.set_num_threads(before)
    spec_from_dict(table, str(path))  # validate before anything touches the disk
    write_atomic(path, to_toml(table))
    return load_spec(path)


def _shape(spec: ChipSpec, op_class: str) -> str:
    """A class's own fixed time and activation rate, as the summary shows them ("" for none)."""
    parts = []
    if op_class in spec.class_overhead_s:
        parts.append(f"+ {spec.class_overhead_s[op_class] * 1e6:.3g} us per unit")
    if op_class in spec.activation_bytes_per_s:
        parts.append(f"+ activations at {spec.activation_bytes_per_s[op_class] / 1e9:.3g} GB/s")
    overall = spec.extra.get(f"peak_fraction_{op_class}")
    if parts and isinstance(overall, float):
        parts.append(f"= {overall:.3f} of peak over its benchmarks")
    return "".join(f" {p}" for p in parts)


def summary(path: Path | str, spec: ChipSpec) -> str:
    """What a calibration wrote, where and when it was measured, the efficiency and spread of
    each op class, and how to use it."""
    spread = {k.removeprefix("spread_"): v for k, v in spec.extra.items() if k.startswith("spread_")}
    classes = "; ".join(f"{c} {e:.3f}" + _shape(spec, c)
                        + (f" (spread {spread[c]:.2f})" if c in spread else "")
                        for c, e in spec.class_efficiency.items())
    return (f"wrote {path}: {spec.description}\n"
            f"  fp32 {spec.peak_macs_per_s['fp32'] / 1e9:.4g} GMAC/s peak; vector "
            f"{spec.vector_ops_per_s / 1e9:.4g} Gop/s; DRAM {spec.dram_bytes_per_s / 1e9:.4g} GB/s "
            f"x memory efficiency {spec.memory_efficiency:.3f}; per-op overhead "
            f"{spec.op_overhead_s * 1e6:.3g} us; link {spec.link.bytes_per_s / 1e9:.4g} GB/s + "
            f"{spec.link.latency_s * 1e6:.3g} us ({spec.link.interface})\n"
            f"  per op class, compute efficiency (+ fixed time, + activation rate): {classes}\n"
            f"use it with --backend {path} (backend 'cpu' stays the shipped default)\n")


if __name__ == "__main__":
    print(summary(DEFAULT_FILE, calibrate(DEFAULT_FILE)), end="")
