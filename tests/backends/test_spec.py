"""Spec schema: TOML with units loads into ChipSpec; every bad input is one line naming file and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from chipcut.backends.energy import DEFAULT_PJ_PER_MAC
from chipcut.backends.schema import load_spec
from chipcut.backends.spec import ChipSpec, LinkSpec, weights_fit
from chipcut.core.errors import ChipcutError

GOOD = """
name = "unit-chip"
source = "test figures"

[compute]
peak_macs_per_s = { int8 = "92 TOPS", fp16 = "23 TMAC/s" }
vector_ops_per_s = "1 TOPS"
compute_efficiency = 0.8
efficiency = { dense = 0.9, depthwise = "25 %" }
op_overhead_s = "2 us"

[memory]
sram_bytes = "8 MiB"
dram_bytes = "16 GB"
dram_bytes_per_s = "34 GB/s"
memory_efficiency = "90 %"

[link]
interface = "PCIe Gen3 x4"
bytes_per_s = "3.94 GB/s"
latency_s = "1.5 us"

[array]
rows = 128
cols = 64
clock_hz = "700 MHz"
dataflow = "output-stationary"

[energy]
pj_per_mac = { int8 = "0.23 pJ" }
pj_per_byte_dram = "1.3 nJ"
static_power_w = "2 W"

[capabilities]
unsupported_ops = ["scaled_dot_product_attention"]

[extra]
note = "free-form"
"""


def write(tmp_path: Path, text: str, name: str = "chip.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_good_spec_with_units_loads_every_field(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, GOOD))
    assert spec.name == "unit-chip"
    assert spec.peak_macs_per_s == {"int8": 46e12, "fp16": 23e12}
    assert spec.vector_ops_per_s == 1e12
    assert (spec.compute_efficiency, spec.memory_efficiency) == (0.8, 0.9)
    assert spec.class_efficiency == {"dense": 0.9, "depthwise": 0.25}
    assert (spec.efficiency("dense"), spec.efficiency("depthwise")) == (0.9, 0.25)
    assert spec.efficiency("pool") == spec.efficiency(None) == 0.8  # unlisted, unclassified
    # A GEMM or a narrow conv the spec does not rate runs as dense work.
    assert spec.efficiency("gemm") == spec.efficiency("narrow") == 0.9
    assert spec.op_overhead_s == pytest.approx(2e-6)
    assert (spec.sram_bytes, spec.dram_bytes, spec.dram_bytes_per_s) == (8 * 2**20, 16 * 10**9, 34e9)
    assert spec.link == LinkSpec(3.94e9, pytest.approx(1.5e-6), "PCIe Gen3 x4")
    assert (spec.array.rows, spec.array.cols, spec.array.clock_hz) == (128, 64, 700e6)
    assert spec.array.dataflow == "output-stationary"
    assert spec.energy.pj_per_mac["int8"] == 0.23
    assert spec.energy.pj_per_mac["fp32"] == DEFAULT_PJ_PER_MAC["fp32"]  # defaults fill the rest
    assert spec.energy.pj_per_byte_dram == 1300.0
    assert spec.energy.pj_per_byte_sram == 12.5  # 8 MiB SRAM -> the 1 MB bank figure
    assert spec.energy.static_power_w == 2.0
    assert not spec.capabilities.supports("scaled_dot_product_attention")
    assert spec.capabilities.supports("conv2d")
    assert spec.extra == {"note": "free-form"}


def replace(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new)


@pytest.mark.parametrize(("old", "new", "expected"), [
    ('sram_bytes = "8 MiB"', 'sram_bytes = "8 MiBs"',
     "[memory] sram_bytes = '8 MiBs' has unit 'MiBs', which is not a unit of bytes"),
    ('dram_bytes_per_s = "34 GB/s"', 'dram_bytes_per_s = "34 Gb/s"',
     "[memory] dram_bytes_per_s = '34 Gb/s' has unit 'Gb/s', which is not a unit of bytes/s (lowercase b is bits"),
    ('dram_bytes_per_s = "34 GB/s"', 'dram_bytes_per_s = 0',
     "[memory] dram_bytes_per_s = 0 is out of range; it must be > 0 bytes/s"),
    ('bytes_per_s = "3.94 GB/s"', 'bytes_per_s = "-1 GB/s"',
     "[link] bytes_per_s = '-1 GB/s' (-1e+09 bytes/s) is out of range; it must be > 0 bytes/s"),
    ('latency_s = "1.5 us"', 'latency_s = "1.5 parsecs"',
     "[link] latency_s = '1.5 parsecs' has unit 'parsecs', which is not a unit of s; allowed units: s, ms, us, µs, ns"),
    ('clock_hz = "700 MHz"', 'clock_hz = "700 mhz"',
     "[array] clock_hz = '700 mhz' has unit 'mhz', which is not a unit of Hz (units are case-sensitive)"),
    ("rows = 128", "rows = 12.5", "[array] rows = 12.5 is not a whole number of count"),
    ('dataflow = "output-stationary"', 'dataflow = "row-stationary"',
     "[array] dataflow = 'row-stationary' is not one of: weight-stationary, output-stationary"),
    ("compute_efficiency = 0.8", "compute_efficiency = 1.5",
     "[compute] compute_efficiency = 1.5 is out of range; it must be > 0 and <= 1 fraction"),
    ("dense = 0.9,", "dense = 1.2,",
     "[compute] efficiency.dense = 1.2 is out of range; it must be > 0 and <= 1 fraction"),
    ("dense = 0.9,", "dense = 0,",
     "[compute] efficiency.dense = 0 is out of range; it must be > 0 and <= 1 fraction"),
    ("dense = 0.9,", "conv = 0.9,", "[compute] efficiency = {'conv': 0.9, 'depthwise': '25 %'} has "
     "unknown op class 'conv'; use one of dense, gemm, depthwise, small-map, narrow, attention, "
     "pool, elementwise"),
    ('efficiency = { dense = 0.9, depthwise = "25 %" }', "efficiency = 0.9",
     "[compute] efficiency = 0.9 must be a table of op class = fraction, e.g. { dense = 0.8, "
     "depthwise = 0.2 } (classes: dense, gemm, depthwise, small-map"),
    ('fp16 = "23 TMAC/s"', 'fp16 = "23 TB/s"',
     "[compute] peak_macs_per_s.fp16 = '23 TB/s' has unit 'TB/s', which is not a unit of MAC/s"),
    ('fp16 = "23 TMAC/s"', 'fp6 = "23 TMAC/s"',
     "[compute] peak_macs_per_s = {'int8': '92 TOPS', 'fp6': '23 TMAC/s'} has unknown dtype 'fp6'"),
    ("vector_ops_per_s", "vector_ops_per_sec",
     "unknown key [compute] 'vector_ops_per_sec'; allowed: peak_macs_per_s, vector_ops_per_s"),
    ("[extra]", "[extras]", "unknown key 'extras'; allowed top-level keys: name, description, source"),
    ('static_power_w = "2 W"', 'static_power_w = "2 V"',
     "[energy] static_power_w = '2 V' has unit 'V', which is not a unit of W"),
    ('pj_per_mac = { int8 = "0.23 pJ" }', 'pj_per_mac = { int8 = true }',
     "[energy] pj_per_mac.int8 = True is a boolean"),
    ('unsupported_ops = ["scaled_dot_product_attention"]', 'unsupported_ops = "conv2d"',
     "[capabilities] unsupported_ops = 'conv2d' must be a non-empty list of op names"),
    ('unsupported_ops = ["scaled_dot_product_attention"]',
     'unsupported_ops = ["a"]\nops = ["conv2d"]', "[capabilities] sets both ops and unsupported_ops"),
    ('vector_ops_per_s = "1 TOPS"\n', "", "missing [compute] vector_ops_per_s; add it, e.g."),
    ("rows = 128\n", "", "missing [array] rows; add it, e.g. rows = 256"),
    ('dram_bytes = "16 GB"', "dram_bytes = 0",
     "[memory] dram_bytes_per_s = 3.4e+10 bytes/s but dram_bytes = 0 (an SRAM-only chip)"),
    ('dram_bytes_per_s = "34 GB/s"\n', "", "missing [memory] dram_bytes_per_s (the chip has DRAM)"),
    ('name = "unit-chip"', "name = 7", "name = 7 is a int; write a string"),
])
def test_each_bad_input_is_one_line_naming_file_and_field(tmp_path: Path, old: str, new: str,
                                                          expected: str) -> None:
    path = write(tmp_path, replace(GOOD, old, new), "bad-chip.toml")
    with pytest.raises(ChipcutError) as info:
        load_spec(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert expected in message


def test_unreadable_and_malformed_files_say_so(tmp_path: Path) -> None:
    with pytest.raises(ChipcutError, match=r"cannot read backend spec .*missing.toml"):
        load_spec(tmp_path / "missing.toml")
    with pytest.raises(ChipcutError, match=r"broken.toml: not valid TOML .*; fix the syntax"):
        load_spec(write(tmp_path, "name = ", "broken.toml"))


def test_sram_only_chip_needs_no_dram_rate(tmp_path: Path) -> None:
    text = replace(replace(GOOD, 'dram_bytes = "16 GB"', "dram_bytes = 0"),
                   'dram_bytes_per_s = "34 GB/s"\n', "")
    spec = load_spec(write(tmp_path, text))
    assert spec.sram_only and spec.dram_bytes_per_s == 0.0
    assert spec.ridge_ops_per_byte == float("inf")


def test_name_defaults_to_the_file_stem(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, replace(GOOD, 'name = "unit-chip"\n', ""), "my-npu.toml"))
    assert spec.name == "my-npu"


def test_python_built_spec_gets_size_dependent_energy_defaults() -> None:
    link = LinkSpec(1e9, 0.0)
    small = ChipSpec("s", {"int8": 1e12}, 1e9, 8 * 2**10, 2**30, 1e10, link)
    large = ChipSpec("l", {"int8": 1e12}, 1e9, 64 * 2**20, 2**30, 1e10, link)
    assert small.energy.pj_per_byte_sram == 1.25
    assert large.energy.pj_per_byte_sram == 12.5


def test_weights_fit_counts_weights_and_resident_activations() -> None:
    spec = ChipSpec("s", {"int8": 1e12}, 1e9, 8 * 2**20, 2**30, 1e10, LinkSpec(1e9, 0.0))
    assert weights_fit(spec, 8 * 2**20)
    assert not weights_fit(spec, 8 * 2**20 + 1)
    assert not weights_fit(spec, 7 * 2**20, activation_bytes=2 * 2**20)


def test_weights_in_sram_defaults_true_and_false_needs_dram(tmp_path: Path) -> None:
    assert load_spec(write(tmp_path, GOOD)).weights_in_sram
    streamed = replace(GOOD, 'memory_efficiency = "90 %"', 'memory_efficiency = "90 %"\nweights_in_sram = false')
    assert not load_spec(write(tmp_path, streamed)).weights_in_sram
    with pytest.raises(ChipcutError, match=r"\[memory\] weights_in_sram = 'no' is a str; write true or false"):
        load_spec(write(tmp_path, streamed.replace("weights_in_sram = false", 'weights_in_sram = "no"')))
    sram_only = replace(replace(streamed, 'dram_bytes = "16 GB"', "dram_bytes = 0"),
                        'dram_bytes_per_s = "34 GB/s"\n', "")
    with pytest.raises(ChipcutError, match=r"weights_in_sram = false but dram_bytes = 0"):
        load_spec(write(tmp_path, sram_only))


def test_per_class_fixed_time_and_activation_rate_load_with_units_and_bad_ones_say_why(
        tmp_path: Path) -> None:
    rated = GOOD.replace('op_overhead_s = "2 us"', 'op_overhead_s = "2 us"\n'
                         'class_overhead_s = { depthwise = "140 us" }\n'
                         'activation_bytes_per_s = { depthwise = "14 GB/s", narrow = 3e10 }')
    spec = load_spec(write(tmp_path, rated))
    assert spec.class_overhead_s == {"depthwise": pytest.approx(1.4e-4)}
    assert spec.activation_bytes_per_s == {"depthwise": 1.4e10, "narrow": 3e10}
    assert spec.overhead_s("depthwise") == pytest.approx(1.4e-4) and spec.overhead_s("dense") == 2e-6
    assert spec.activation_s("narrow", 3 * 10**10) == 1.0 and spec.activation_s("gemm", 10**9) == 0.0
    for old, new, message in [
        ('"14 GB/s"', '"14 GB"', "[compute] activation_bytes_per_s.depthwise = '14 GB' has unit "
         "'GB', which is not a unit of bytes/s"),
        ('"140 us"', '"-5 us"', "[compute] class_overhead_s.depthwise = '-5 us' (-5e-06 s) is out "
         "of range; it must be >= 0 and <= 1 s"),
        ('class_overhead_s = { depthwise = "140 us" }', 'class_overhead_s = "140 us"',
         "[compute] class_overhead_s = '140 us' must be a table of op class = value in s, e.g. "
         '{ depthwise = "120 us" }'),
    ]:
        with pytest.raises(ChipcutError) as info:
            load_spec(write(tmp_path, rated.replace(old, new), "bad.toml"))
        line = str(info.value)
        assert "\n" not in line and message in line, line
