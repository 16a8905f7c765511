"""Registry: lazy listing, unknown and duplicate names, Protocol validation, and an installed plug-in."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import pytest

from chipcut.backends import registry
from chipcut.backends.registry import available, clear_cache, describe, get_backend
from chipcut.core.errors import ChipcutError

HERE = Path(__file__).parent
PLUGIN = "loopback"
MLP_MACS = 8 * 64 + 64 * 64 + 64 * 4


@pytest.fixture(scope="session")
def plugin() -> str:
    """The loopback plug-in (tests/backends/plugin), a separate distribution that setup.sh installs."""
    if not any(e.name == PLUGIN for e in entry_points(group=registry.GROUP)):
        pytest.skip("the loopback test plug-in is not installed; run setup.sh "
                    "(it runs: .venv/bin/pip install -e tests/backends/plugin)")
    return PLUGIN


@pytest.fixture
def fake_entry_points(monkeypatch: pytest.MonkeyPatch):
    """Replace the installed entry points with the given ones for one test."""
    def install(*eps: EntryPoint) -> None:
        monkeypatch.setattr(registry, "entry_points", lambda group: [e for e in eps if e.group == group])
        clear_cache()

    yield install
    monkeypatch.undo()
    clear_cache()


def ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name, value, registry.GROUP)


def test_listing_names_imports_no_backend() -> None:
    code = ("import sys; from chipcut.backends.registry import available; names = available(); "
            "print('tpu-v1' in names, 'chipcut.backends.presets' in sys.modules, 'chipcut.backends.calibrate' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.split() == ["True", "False", "False"]


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ChipcutError) as info:
        get_backend("tpu-v9")
    message = str(info.value)
    assert message.startswith("unknown backend 'tpu-v9'; known backends: ")
    assert all(name in message for name in ("coral-edge-tpu", "generic", "h100-sxm", "tpu-v1"))


def test_duplicate_name_fails_naming_both_sources(fake_entry_points) -> None:
    fake_entry_points(ep("npu", "vendor_a.chips:npu"), ep("npu", "vendor_b:make"))
    with pytest.raises(ChipcutError) as info:
        available()
    message = str(info.value)
    assert "backend name 'npu' is registered twice" in message
    assert "vendor_a.chips:npu" in message and "vendor_b:make" in message and "\n" not in message


def test_same_entry_point_seen_twice_is_not_a_conflict(fake_entry_points) -> None:
    fake_entry_points(ep("generic", "chipcut.backends.presets:generic"), ep("generic", "chipcut.backends.presets:generic"))
    assert available() == ["generic"]


@pytest.mark.parametrize(("value", "fragment"), [
    ("chipcut.backends.spec:DTYPES", "lacks methods cost, link, link_time_s, memory, weights_resident, dtypes"),
    ("no_such_module_xyz:make", "failed to load: ModuleNotFoundError"),
    ("chipcut.backends.presets:tpu_v1", "is registered as 'npu' but calls itself 'tpu-v1'"),
])
def test_a_bad_plugin_is_rejected_when_loaded_with_its_source(fake_entry_points, value: str,
                                                              fragment: str) -> None:
    fake_entry_points(ep("npu", value))
    assert available() == ["npu"]  # listing does not load it
    with pytest.raises(ChipcutError) as info:
        get_backend("npu")
    assert f"'npu' ({value} (from unknown distribution))" in str(info.value)
    assert fragment in str(info.value)


def test_old_cost_signature_without_placement_is_rejected(fake_entry_points, monkeypatch) -> None:
    generic = get_backend("generic")

    class OldStyle:
        name, spec = "npu", generic.spec

        def cost(self, work):  # no placement argument
            return generic.cost(work)

        link_time_s, supports_dtype = generic.link_time_s, generic.supports_dtype
        supports_op, static_power_w = generic.supports_op, generic.static_power_w
        link, memory, weights_resident = generic.link, generic.memory, generic.weights_resident
        dtypes, peak_macs_per_s = generic.dtypes, generic.peak_macs_per_s
        describe, to_dict = generic.describe, generic.to_dict

    monkeypatch.setattr(sys.modules[__name__], "OLD_STYLE", OldStyle(), raising=False)
    fake_entry_points(ep("npu", f"{__name__}:OLD_STYLE"))
    with pytest.raises(ChipcutError, match=r"cost\(work\) must accept \(work: Work, placement"):
        get_backend("npu")


def test_a_spec_file_path_is_a_backend(tmp_path: Path) -> None:
    path = tmp_path / "my-npu.toml"
    path.write_text((HERE.parent.parent / "backends/presets/hailo-8.toml").read_text()
                    .replace('name = "hailo-8"', 'name = "my-npu"'))
    assert get_backend(str(path)).spec.name == "my-npu"


def test_describe_is_one_line_with_peaks_sram_dram_and_link() -> None:
    assert describe("t4") == ("t4: int4 130 TMAC/s, int8 65 TMAC/s, fp16 32.5 TMAC/s, fp32 4.05 TMAC/s; "
                              "SRAM 4 MiB; DRAM 320 GB/s (16 GiB); link PCIe Gen3 x16 15.75 GB/s + 5 us; "
                              "efficiency dense 0.48, gemm 0.35, narrow as dense, others 0.70; "
                              "fitted to MLPerf Inference v1.1 and TensorRT demoBERT (T4, int8)")
    assert "no DRAM (SRAM only); link PCIe Gen3 x4 3.94 GB/s + 2 us;" in describe("hailo-8")
    assert describe("generic").endswith("; unvalidated: illustrative figures, not a real chip")
    assert "SRAM 8 MB;" in describe("coral-edge-tpu")  # published decimal MB stays decimal


def test_installed_plugin_is_selected_by_name(plugin: str) -> None:
    assert plugin in available()
    backend = get_backend(plugin)
    assert type(backend).__module__ == "chipcut_loopback"
    assert backend.link_time_s(1000) == pytest.approx(1e-6 + 1000e-9)
    assert describe(plugin).startswith("loopback: fp32 1 GMAC/s; SRAM 1 MiB; no DRAM")


def test_compile_api_runs_on_the_plugin(plugin: str) -> None:
    from chipcut.compiler.api import compile as compile_model
    from chipcut.compiler.cli.loading import load_model

    model, inputs, _ = load_model(f"{HERE / 'tiny_models.py'}:mlp", ["1x8"])
    plan = compile_model(model, inputs, chips=2, backend=plugin, time_limit_s=5)
    assert plan.backend == plugin and plan.chips == (plugin, plugin)
    assert sum(s.macs for s in plan.stages) == plan.model.macs == MLP_MACS
    # The plug-in charges exactly 1 ns per MAC, so the stages' busy times add up to 4864 ns.
    assert sum(s.time_s for s in plan.stages) == pytest.approx(MLP_MACS * 1e-9)
    for t in plan.transfers:
        assert t.time_s == pytest.approx(1e-6 + t.bytes * 1e-9)
    assert plan.metrics.static_power_w == pytest.approx(2.0)  # 1 W per chip


def test_cli_compile_runs_on_the_plugin(plugin: str, capsys: pytest.CaptureFixture) -> None:
    from chipcut.compiler.cli.main import main

    code = main(["compile", str(HERE / "tiny_models.py") + ":mlp", "--input", "1x8", "--chips", "2",
                 "--backend", plugin, "--time-limit", "5"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"2 x {plugin}" in out
