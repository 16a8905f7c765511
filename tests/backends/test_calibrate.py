"""CPU calibration: the microbenchmark fit, the spec file it writes (dated, naming the machine),
and the cpu preset staying the shipped default."""

from __future__ import annotations

import math
import os
import platform
import stat
import time
import tomllib
from pathlib import Path

import pytest
import torch

from chipcut.backends import calibrate as calibration
from chipcut.backends.calibrate import (
    DEFAULT_FILE,
    Measured,
    Nominal,
    calibrate,
    fit,
    to_toml,
)
from chipcut.backends.loader import from_spec
from chipcut.backends.presets import PRESETS_DIR
from chipcut.backends.protocol import Work
from chipcut.backends.registry import get_backend
from chipcut.backends.schema import load_spec, spec_from_dict


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """One real calibration for the module: (file, seconds it took)."""
    path = tmp_path_factory.mktemp("fit") / "fitted.toml"
    start = time.perf_counter()
    calibrate(path)
    return path, time.perf_counter() - start


def test_calibration_is_short_and_writes_a_valid_spec(calibrated: tuple[Path, float]) -> None:
    path, seconds = calibrated
    assert seconds < 20  # a few seconds on an idle machine; generous for shared CI
    spec = load_spec(path)
    assert spec.name == "fitted" and "calibrated by chipcut calibrate on " in spec.source
    assert set(spec.peak_macs_per_s) == {"fp32"}
    assert 0 < spec.compute_efficiency <= 1 and 0 < spec.memory_efficiency <= 1
    assert 0 < spec.op_overhead_s < 1e-3
    assert spec.dram_bytes_per_s > 1e8 and spec.vector_ops_per_s > 1e7
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not a temporary file's 0600


def test_fitted_model_reproduces_the_benchmarks_it_was_fitted_to(calibrated: tuple[Path, float]) -> None:
    spec = load_spec(calibrated[0])
    backend = from_spec(spec)
    measured = {k.removeprefix("measured_").removesuffix("_s"): v for k, v in spec.extra.items()}
    n = 512
    gemm = backend.cost(Work(n**3, 0, n * n * 4, n * n * 4, n * n * 4))
    conv_macs = 64 * 56 * 56 * 64 * 9
    conv = backend.cost(Work(conv_macs, 0, 64 * 64 * 9 * 4, 64 * 56 * 56 * 4, 64 * 56 * 56 * 4))
    spread = max(measured["gemm"] / gemm.time_s, gemm.time_s / measured["gemm"])
    assert spread < 3

    def busy_s(name: str) -> float:  # as fit() takes it: past the overhead, at least 5% of all
        return max(measured[name] - measured["overhead"], 0.05 * measured[name])

    # eta_c is the geometric mean of the two rates, so past the overhead the model is off by
    # sqrt(gemm rate / conv rate) for both, one too slow and one too fast: a closed form.
    factor = math.sqrt((n**3 / busy_s("gemm")) / (conv_macs / busy_s("conv")))
    assert gemm.compute_s / busy_s("gemm") == pytest.approx(factor, rel=1e-9)
    assert busy_s("conv") / conv.compute_s == pytest.approx(factor, rel=1e-9)


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
SYNTHETIC = {
    "overhead": Measured("overhead", OVERHEAD_S),
    "gemm": Measured("gemm", OVERHEAD_S + 2**27 / 64e9, 2**27),   # 64 GMAC/s: eta 0.5
    "conv": Measured("conv", OVERHEAD_S + 2**27 / 64e9, 2**27),
    "elementwise": Measured("elementwise", OVERHEAD_S + 2**16 / 8e9, 0, 2**16),
    "stream": Measured("stream", OVERHEAD_S + 3 * 2**26 / 10e9, 0, 2**24, 3 * 2**26),
    "copy": Measured("copy", OVERHEAD_S + 2**27 / 20e9, 0, 0, 2**27),
}


def synthetic_nominal() -> Nominal:  # nominal peak 128 GMAC/s
    return Nominal(threads=4, clock_hz=2e9, fp32_lanes=8, fma_units=2, cache_bytes=2**25,
                   memory_bytes=2**34, cpu_model="Example CPU 9000")


def test_fit_is_exact_on_synthetic_measurements() -> None:
    overhead = OVERHEAD_S
    table = fit(synthetic_nominal(), SYNTHETIC)
    spec = spec_from_dict(tomllib.loads(to_toml(table)), "synthetic.toml")  # the TOML round-trips
    assert spec.peak_macs_per_s == {"fp32": 128e9}
    assert spec.compute_efficiency == pytest.approx(0.5)
    assert spec.vector_ops_per_s == pytest.approx(8e9 / 0.5)
    assert spec.dram_bytes_per_s == pytest.approx(20e9)
    assert spec.memory_efficiency == pytest.approx(0.5)
    assert spec.op_overhead_s == pytest.approx(overhead)


def test_measured_rate_above_nominal_raises_the_peak() -> None:
    nominal = Nominal(1, 1e9, 4, 1, 2**20, 2**30)  # nominal 4 GMAC/s
    measured = {k: Measured(k, 1e-3, 10**7, 10**5, 10**6) for k in
                ("overhead", "gemm", "conv", "elementwise", "stream", "copy")}
    measured["overhead"] = Measured("overhead", 1e-6)
    table = fit(nominal, measured)
    assert table["compute"]["peak_macs_per_s"]["fp32"] == pytest.approx(10**7 / (1e-3 - 1e-6))
    assert table["compute"]["compute_efficiency"] == pytest.approx(1.0)


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

    monkeypatch.setattr(calibration, "measure", lambda: SYNTHETIC)
    monkeypatch.setattr(calibration, "nominal", synthetic_nominal)
    monkeypatch.chdir(tmp_path)
    assert main(["calibrate"]) == 0
    out = capsys.readouterr().out.splitlines()
    spec = load_spec(tmp_path / "cpu-calibrated.toml")
    assert out[0] == f"wrote cpu-calibrated.toml: {spec.description}"
    assert "Example CPU 9000" in out[0] and "4 threads" in out[0]
    assert out[1] == ("  fp32 128 GMAC/s peak x compute efficiency 0.500; vector 16 Gop/s; DRAM 20 GB/s "
                      "x memory efficiency 0.500; per-op overhead 2 us")
    assert out[2] == ("use it with --backend cpu-calibrated.toml (backend 'cpu' stays the shipped "
                      "default)")
    assert main(["calibrate", "--out", "sub/cpu-fitted.toml"]) == 0
    assert capsys.readouterr().out.startswith("wrote sub/cpu-fitted.toml: CPU measured on ")
    assert load_spec(tmp_path / "sub" / "cpu-fitted.toml").name == "cpu-fitted"
    assert sorted(p.name for p in tmp_path.rglob("*.toml")) == ["cpu-calibrated.toml", "cpu-fitted.toml"]
