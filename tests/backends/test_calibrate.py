"""CPU calibration: the microbenchmark fit, the spec file it writes (dated, naming the machine),
and the cpu preset staying the shipped default."""

from __future__ import annotations

import os
import platform
import stat
import time
import tomllib
from pathlib import Path

import pytest
import torch

from chipcut.backends import calibrate as calibration
from chipcut.backends.blockbench import blocks
from chipcut.backends.calibrate import (
    DEFAULT_FILE,
    Measured,
    Nominal,
    calibrate,
    fit,
    to_toml,
)
from chipcut.backends.linkbench import LinkFit, fit_link
from chipcut.backends.loader import from_spec
from chipcut.backends.microbench import KERNELS, REPEATS
from chipcut.backends.presets import PRESETS_DIR
from chipcut.backends.protocol import Placement, Work
from chipcut.backends.registry import get_backend
from chipcut.backends.schema import load_spec, spec_from_dict
from chipcut.core.vocab import OpClass


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """One real calibration for the module: (file, seconds it took)."""
    path = tmp_path_factory.mktemp("fit") / "fitted.toml"
    start = time.perf_counter()
    calibrate(path)
    return path, time.perf_counter() - start


def test_calibration_is_short_and_writes_a_valid_spec(calibrated: tuple[Path, float]) -> None:
    path, seconds = calibrated
    assert seconds < 40  # about 15 s on an idle 2-core machine; generous for shared CI
    spec = load_spec(path)
    assert spec.name == "fitted" and "calibrated by chipcut calibrate on " in spec.source
    assert set(spec.peak_macs_per_s) == {"fp32"}
    assert 0 < spec.compute_efficiency <= 1 and 0 < spec.memory_efficiency <= 1
    assert set(spec.class_efficiency) == set(OpClass)
    assert all(0 < eta <= 1 for eta in spec.class_efficiency.values())
    assert all(spec.extra[f"spread_{c}"] >= 1 for c in OpClass)
    assert 0 < spec.op_overhead_s < 1e-3
    assert spec.dram_bytes_per_s > 1e8 and spec.vector_ops_per_s > 1e7
    # The link between two stage processes, measured: gloo over loopback, MB/s to tens of GB/s.
    assert spec.link.interface == "gloo between processes on this host"
    assert 1e7 < spec.link.bytes_per_s < 1e11 and 0 <= spec.link.latency_s < 1e-2
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not a temporary file's 0600


def test_fitted_model_reproduces_the_benchmarks_it_was_fitted_to(calibrated: tuple[Path, float]) -> None:
    spec = load_spec(calibrated[0])
    backend = from_spec(spec)
    benchmarks = [(k.name, k.op_class, k.macs, k.elem_ops, k.nbytes) for k in KERNELS if k.op_class]
    benchmarks += [(f"{b.name}-{layer.name}", layer.op_class, layer.macs, layer.elem_ops,
                    layer.activation_bytes) for b in blocks() for layer in b.layers]
    predicted: dict[str, float] = {}
    measured: dict[str, float] = {}
    for name, op_class, macs, elem_ops, nbytes in benchmarks:
        work = Work(macs, elem_ops, 0, nbytes, 0, op_class=op_class)
        on_chip = backend.cost(work, Placement(True, True, True))  # as a model's layers run
        predicted[op_class] = predicted.get(op_class, 0.0) + on_chip.time_s
        measured[op_class] = measured.get(op_class, 0.0) + spec.extra[f"measured_{name}_s"]
    assert set(predicted) == set(OpClass)
    for op_class in predicted:
        if spec.efficiency(op_class) < 1:  # an efficiency of 1 is a clamp: faster than the peaks
            # Summed over the class's benchmarks, the fit is exact.
            assert predicted[op_class] == pytest.approx(measured[op_class], rel=1e-9), op_class
    # The classes whose benchmarks span sizes have their own fixed time or activation rate.
    assert {"depthwise", "narrow"} <= set(spec.class_overhead_s) | set(spec.activation_bytes_per_s)
    assert spec.compute_efficiency == spec.efficiency("dense")
    assert "fitted for 1 thread per process" in spec.source
    assert f"fastest of {REPEATS} repeats; spread (slowest / fastest) dense " in spec.source


def test_fitted_model_predicts_a_fresh_gemm_within_a_small_factor(calibrated: tuple[Path, float]) -> None:
    backend = from_spec(load_spec(calibrated[0]))
    a, b = torch.randn(384, 384), torch.randn(384, 384)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(5))
    predicted = backend.cost(Work(384**3, 0, 384 * 384 * 4, 384 * 384 * 4, 384 * 384 * 4)).time_s
    # Very loose on purpose: other jobs share these cores, and a calibration taken while they
    # ran is slower than a quiet moment. What it catches is a unit slip (x1000, x1e6).
    assert 1 / 30 < predicted / best < 30


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


OVERHEAD_S = 2e-6
PEAK, VECTOR = 128e9, 8e9  # MAC/s (the nominal peak below), element ops/s
ETA = {"dense": 0.5, "gemm": 0.45, "depthwise": 0.1, "small-map": 0.4, "narrow": 0.3,
       "attention": 0.6, "pool": 0.02, "elementwise": 0.25}


def _class(name: str, op_class: str, macs: int, elem_ops: int, spread: float = 1.0) -> Measured:
    """A benchmark that took exactly its roofline time at efficiency ``ETA[op_class]``."""
    seconds = OVERHEAD_S + (macs / PEAK + elem_ops / VECTOR) / ETA[op_class]
    return Measured(name, seconds, macs, elem_ops, 0, spread, op_class)


SYNTHETIC = {
    "overhead": Measured("overhead", OVERHEAD_S),
    "vector": Measured("vector", OVERHEAD_S + 2**16 / VECTOR, 0, 2**16),
    "max-pool": _class("max-pool", "pool", 0, 2**20, 1.5),
    "pad-add": _class("pad-add", "elementwise", 0, 2**20),
    "layer-norm": _class("layer-norm", "elementwise", 0, 2**18, 1.25),
    "dw-56": _class("dw-56", "depthwise", 2**24, 2**20),
    "sdpa": _class("sdpa", "attention", 2**26, 2**20),
    "conv-56": _class("conv-56", "dense", 2**27, 2**18, 1.1),
    "conv-28": _class("conv-28", "dense", 2**25, 2**18),
    "conv-7": _class("conv-7", "small-map", 2**27, 2**15),
    "expand-56": _class("expand-56", "narrow", 2**24, 2**20),
    "gemm": _class("gemm", "gemm", 2**27, 2**18),
    "stream": Measured("stream", OVERHEAD_S + 3 * 2**26 / 10e9, 0, 2**24, 3 * 2**26),
    "copy": Measured("copy", OVERHEAD_S + 2**27 / 20e9, 0, 0, 2**27),
}


def synthetic_nominal() -> Nominal:  # nominal peak 128 GMAC/s
    return Nominal(threads=4, clock_hz=2e9, fp32_lanes=8, fma_units=2, cache_bytes=2**25,
                   memory_bytes=2**34, cpu_model="Example CPU 9000")


def test_fit_is_exact_on_synthetic_measurements() -> None:
    table = fit(synthetic_nominal(), SYNTHETIC)
    spec = spec_from_dict(tomllib.loads(to_toml(table)), "synthetic.toml")  # the TOML round-trips
    assert spec.peak_macs_per_s == {"fp32": PEAK}
    assert spec.vector_ops_per_s == pytest.approx(VECTOR)
    assert spec.class_efficiency == pytest.approx(ETA)
    assert list(spec.class_efficiency) == list(ETA)  # in OpClass order
    assert spec.compute_efficiency == pytest.approx(0.5)  # unclassified work runs as dense
    assert spec.dram_bytes_per_s == pytest.approx(20e9)
    assert spec.memory_efficiency == pytest.approx(0.5)
    assert spec.op_overhead_s == pytest.approx(OVERHEAD_S)
    backend = from_spec(spec)
    for m in SYNTHETIC.values():  # the fitted model predicts each benchmark it was fitted to
        if m.op_class:
            work = Work(m.macs, m.elem_ops, 0, 0, 0, op_class=m.op_class)
            assert backend.cost(work).time_s == pytest.approx(m.seconds, rel=1e-9), m.name


def test_fit_reports_the_spread_of_each_class() -> None:
    table = fit(synthetic_nominal(), SYNTHETIC)
    assert table["source"].endswith(
        "fastest of 7 repeats; spread (slowest / fastest) dense 1.10, gemm 1.00, depthwise 1.00, "
        "small-map 1.00, narrow 1.00, attention 1.00, pool 1.50, elementwise 1.25; link: assumed a "
        "memory copy")
    assert table["extra"]["spread_dense"] == 1.1 and table["extra"]["spread_gemm"] == 1.0
    assert table["extra"]["measured_gemm_s"] == SYNTHETIC["gemm"].seconds


def test_measured_rate_above_nominal_raises_the_peak_and_efficiency_stays_a_fraction() -> None:
    nominal = Nominal(1, 1e9, 4, 1, 2**20, 2**30)  # nominal 4 GMAC/s
    measured = dict(SYNTHETIC)
    measured["gemm"] = Measured("gemm", 1e-3, 10**7, 0, 0, 1.0, "gemm")  # 10 GMAC/s
    measured["conv-56"] = Measured("conv-56", 2e-3, 10**7, 0, 0, 1.0, "dense")
    measured["conv-28"] = Measured("conv-28", 5e-3, 3 * 10**7, 0, 0, 1.0, "dense")
    table = fit(nominal, measured)
    assert table["compute"]["peak_macs_per_s"]["fp32"] == pytest.approx(10**7 / (1e-3 - OVERHEAD_S))
    assert table["compute"]["efficiency"]["gemm"] == pytest.approx(1.0)
    # time-weighted over the class: (time at peak, summed) / (time past the overhead, summed)
    assert table["compute"]["efficiency"]["dense"] == pytest.approx(
        4 * (1e-3 - OVERHEAD_S) / (7e-3 - 2 * OVERHEAD_S))
    assert table["compute"]["efficiency"]["small-map"] == 1.0  # faster than both peaks: clamped


def test_fit_says_when_and_on_which_machine_it_was_measured() -> None:
    days = {time.strftime("%Y-%m-%d")}
    table = fit(synthetic_nominal(), SYNTHETIC, name="cpu-fitted")
    days.add(time.strftime("%Y-%m-%d"))  # a run across midnight has either date
    machine = f"Example CPU 9000, {platform.system()} {platform.release()} {platform.machine()}, 4 threads"
    assert table["name"] == "cpu-fitted"
    assert any(table["description"].startswith(f"CPU measured on {day} ") for day in days)
    assert table["description"].endswith(f": {machine} at 2 GHz")
    assert any(f"calibrated by chipcut calibrate on {day} " in table["source"] for day in days)
    assert f" on {machine}; nominal peak = 4 threads x 2 GHz" in table["source"]
    header = to_toml(table).splitlines()[0]
    assert header == f"# Written by chipcut calibrate. {table['description']}."


def test_cpu_preset_is_the_shipped_default_whatever_was_calibrated(calibrated, tmp_path,
                                                                   monkeypatch) -> None:
    # Where a calibration used to be picked up from: the user cache, and the current folder.
    for folder in (tmp_path / "cache", tmp_path / "home" / ".cache" / "chipcut", tmp_path):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "cpu.toml").write_bytes(calibrated[0].read_bytes())
    (tmp_path / DEFAULT_FILE).write_bytes(calibrated[0].read_bytes())
    monkeypatch.setenv("CHIPCUT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    get_backend.cache_clear()
    try:
        assert get_backend("cpu").spec == load_spec(PRESETS_DIR / "cpu.toml")
        assert "uncalibrated" in get_backend("cpu").spec.description
        fitted = get_backend(DEFAULT_FILE)  # the fit is used where it is passed, by its file
        assert fitted.spec == load_spec(calibrated[0]) and fitted.name == "fitted"
    finally:
        get_backend.cache_clear()


def test_calibrate_command_writes_an_explicit_file_and_says_how_to_use_it(tmp_path, monkeypatch,
                                                                         capsys) -> None:
    from chipcut.compiler.cli.main import main

    threads = []
    monkeypatch.setattr(calibration, "measure", lambda: threads.append(torch.get_num_threads()) or SYNTHETIC)
    monkeypatch.setattr(calibration, "measure_link", lambda: LinkFit(2e9, 3e-5, ()))
    monkeypatch.setattr(calibration, "nominal", synthetic_nominal)
    monkeypatch.chdir(tmp_path)
    before = torch.get_num_threads()
    assert main(["calibrate"]) == 0
    out = capsys.readouterr().out.splitlines()
    spec = load_spec(tmp_path / "cpu-calibrated.toml")
    assert out[0] == f"wrote cpu-calibrated.toml: {spec.description}"
    assert "Example CPU 9000" in out[0] and "4 threads" in out[0]
    assert out[1] == ("  fp32 128 GMAC/s peak; vector 8 Gop/s; DRAM 20 GB/s x memory efficiency "
                      "0.500; per-op overhead 2 us; link 2 GB/s + 30 us (gloo between processes "
                      "on this host)")
    assert out[2] == ("  per op class, compute efficiency (+ fixed time, + activation rate): dense 0.500 (spread 1.10); gemm 0.450 "
                      "(spread 1.00); depthwise 0.100 (spread 1.00); small-map 0.400 (spread 1.00); "
                      "narrow 0.300 (spread 1.00); attention 0.600 (spread 1.00); "
                      "pool 0.020 (spread 1.50); elementwise 0.250 (spread 1.25)")
    assert out[3] == ("use it with --backend cpu-calibrated.toml (backend 'cpu' stays the shipped "
                      "default)")
    shaped = _depthwise_at_sizes(1.2e-4, 0.3, 1.5e10)
    monkeypatch.setattr(calibration, "measure", lambda: shaped)
    assert main(["calibrate", "--out", "shaped.toml"]) == 0
    at_peak_s = sum(m.macs for m in shaped.values() if m.op_class == "depthwise") / PEAK
    took_s = sum(m.seconds for m in shaped.values() if m.op_class == "depthwise")
    assert (f"; depthwise 0.300 + 120 us per unit + activations at 15 GB/s = "
            f"{at_peak_s / took_s:.3f} of peak over its benchmarks (spread 1.00); "
            in capsys.readouterr().out.splitlines()[2])
    monkeypatch.setattr(calibration, "measure",
                        lambda: threads.append(torch.get_num_threads()) or SYNTHETIC)
    assert main(["calibrate", "--out", "sub/cpu-fitted.toml", "--threads", "2"]) == 0
    assert capsys.readouterr().out.startswith("wrote sub/cpu-fitted.toml: CPU measured on ")
    assert load_spec(tmp_path / "sub" / "cpu-fitted.toml").name == "cpu-fitted"
    assert sorted(p.name for p in tmp_path.rglob("*.toml")) == ["cpu-calibrated.toml", "cpu-fitted.toml",
                                                                "shaped.toml"]
    assert threads == [1, 2] and torch.get_num_threads() == before  # measured at T, then restored
    assert main(["calibrate", "--threads", "0"]) == 2
    err = capsys.readouterr().err
    assert err == ("chipcut: error: calibrate threads = 0: use a whole number, 1 or more (--threads T: "
                   "the threads each costed process runs with; default 1)\n")


def test_link_fit_recovers_an_affine_transfer_time() -> None:
    points = [(b, 4e-5 + b / 3e9) for b in (4096, 65536, 2**20, 2**22)]
    fitted = fit_link(points)
    assert fitted.bytes_per_s == pytest.approx(3e9, rel=1e-9)
    assert fitted.latency_s == pytest.approx(4e-5, rel=1e-6)
    flat = fit_link([(4096, 1e-4), (2**20, 1e-4)])  # no cost per byte measurable
    assert flat.bytes_per_s == pytest.approx(2**20 / 1e-4) and flat.latency_s >= 0


def _depthwise_at_sizes(fixed_s: float, eta: float, bytes_per_s: float) -> dict[str, Measured]:
    """SYNTHETIC with its one depthwise benchmark replaced by six of sizes spanning 32x, each
    taking exactly ``fixed_s`` + its MACs at ``eta`` of peak + its activations at the rate."""
    measured = {k: v for k, v in SYNTHETIC.items() if k != "dw-56"}
    sizes = [(2**20, 2**22), (2**21, 2**20), (2**22, 2**23), (2**23, 2**21), (2**24, 2**24),
             (2**25, 2**22)]
    for i, (macs, nbytes) in enumerate(sizes):
        seconds = fixed_s + macs / PEAK / eta + (nbytes / bytes_per_s if bytes_per_s else 0.0)
        measured[f"dw-{i}"] = Measured(f"dw-{i}", seconds, macs, 0, nbytes, 1.0, "depthwise")
    return measured


def test_a_class_measured_at_many_sizes_gets_its_own_fixed_time_and_activation_rate() -> None:
    measured = _depthwise_at_sizes(1.2e-4, 0.3, 1.5e10)
    spec = spec_from_dict(tomllib.loads(to_toml(fit(synthetic_nominal(), measured))), "s.toml")
    assert spec.class_overhead_s == {"depthwise": pytest.approx(1.2e-4, rel=1e-6)}
    assert spec.activation_bytes_per_s == {"depthwise": pytest.approx(1.5e10, rel=1e-6)}
    assert spec.efficiency("depthwise") == pytest.approx(0.3, rel=1e-6)
    assert spec.overhead_s("dense") == pytest.approx(OVERHEAD_S)  # one benchmark: its old fit
    assert spec.efficiency("dense") == pytest.approx(0.5)
    backend = from_spec(spec)
    for m in measured.values():
        if m.op_class == "depthwise":
            work = Work(m.macs, 0, 0, m.nbytes, 0, op_class="depthwise")
            assert backend.cost(work, Placement(True, True, True)).time_s == pytest.approx(m.seconds, rel=1e-6), m.name


def test_the_shape_fit_keeps_to_its_bounds_where_the_data_has_no_fixed_time_or_byte_cost() -> None:
    # Times proportional to MACs past the machine's overhead: no fixed time of the class's own,
    # no activation rate (the fit holds both at their bounds rather than going below them).
    # Round-off near a bound is the bound: no 2 us less 1e-18, no rate of 1e25 bytes/s.
    for eta in (0.05, 0.1, 0.2, 0.25, 0.3, 0.45, 0.6, 0.75, 0.9, 0.99):
        table = fit(synthetic_nominal(), _depthwise_at_sizes(OVERHEAD_S, eta, 0.0))
        assert "class_overhead_s" not in table["compute"], eta
        assert "activation_bytes_per_s" not in table["compute"], eta
        assert table["compute"]["efficiency"]["depthwise"] == pytest.approx(eta, rel=1e-9)
