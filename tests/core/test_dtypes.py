"""Dtypes: one vocabulary, its order and sizes, torch's dtypes mapped (float64 is fp64)."""

from __future__ import annotations

import json

import pytest
import torch

import chipcut
from chipcut.backends import spec
from chipcut.backends.energy import DEFAULT_PJ_PER_MAC
from chipcut.compiler.cli import loading
from chipcut.compiler.plan.model import Plan
from chipcut.core import ir
from chipcut.core.dtypes import BYTES, FROM_TORCH, INPUT_DTYPES, ORDER, DType, from_torch, wider
from chipcut.core.errors import ChipcutError
from chipcut.passes import quantize


def test_order_is_narrow_to_wide_with_bytes_per_element() -> None:
    assert ORDER == ("int4", "int8", "fp8", "fp16", "bf16", "fp32", "fp64")
    assert {d: d.bytes for d in ORDER} == {"int4": 0.5, "int8": 1, "fp8": 1, "fp16": 2, "bf16": 2,
                                           "fp32": 4, "fp64": 8}
    assert set(BYTES) == set(DType)


def test_every_dtype_list_is_this_one() -> None:
    assert spec.DTYPES is ORDER
    assert quantize.DTYPES is ORDER
    assert ir.DTYPE_ORDER is ORDER and ir.DTYPE_BYTES is BYTES
    assert loading.INPUT_DTYPES is INPUT_DTYPES
    assert set(DEFAULT_PJ_PER_MAC) <= set(ORDER)


def test_a_member_is_its_word() -> None:
    assert DType.FP32 == "fp32" and DType("int8") is DType.INT8
    assert f"{DType.BF16}" == "bf16"
    assert json.dumps({DType.FP8: [DType.INT4]}) == '{"fp8": ["int4"]}'
    assert {"fp16": 2.0}[DType.FP16] == 2.0  # a spec table written with plain words


@pytest.mark.parametrize("a, b, expected", [
    ("int4", "int8", "int8"), ("fp32", "bf16", "fp32"), ("fp8", "fp8", "fp8"),
    ("fp64", "int8", "fp64"),
])
def test_wider(a: str, b: str, expected: str) -> None:
    assert wider(a, b) is DType(expected)
    assert ir.Precision(a, b).compute is DType(expected)


@pytest.mark.parametrize("torch_dtype, expected", [
    (torch.float64, "fp64"), (torch.float32, "fp32"), (torch.float16, "fp16"),
    (torch.bfloat16, "bf16"), (torch.float8_e4m3fn, "fp8"), (torch.int8, "int8"),
    (torch.uint8, "int8"), (torch.int64, "fp32"), (torch.bool, "fp32"),
])
def test_from_torch(torch_dtype: torch.dtype, expected: str) -> None:
    assert from_torch(torch_dtype) is DType(expected)


def test_unknown_float_dtype_is_a_one_line_error_naming_where() -> None:
    with pytest.raises(ChipcutError) as info:
        from_torch(torch.complex64, "node mul_3")
    message = str(info.value)
    assert message.startswith("node mul_3 has dtype complex64, which chipcut does not cost")
    assert message.endswith("convert the model, e.g. model.float()") and "\n" not in message


def test_every_float_input_dtype_is_costed() -> None:
    floats = {name: t for name, t in INPUT_DTYPES.items() if t.is_floating_point}
    assert {name: FROM_TORCH[t] for name, t in floats.items()} == {
        "float64": "fp64", "fp64": "fp64", "float32": "fp32", "fp32": "fp32", "float16": "fp16",
        "fp16": "fp16", "bfloat16": "bf16", "bf16": "bf16"}
    assert loading.parse_input("2x3:fp64") == ((2, 3), torch.float64)


def test_plan_with_dtype_members_round_trips(residual_cnn) -> None:
    plan = chipcut.compile(*residual_cnn, chips=2, passes="fold-bn,quantize{dtype=bf16},fuse",
                           time_limit_s=5)
    layers = plan.quantization.layers
    assert [(la.weights, la.activations) for la in layers] == (
        [("fp32", "fp32")] + [("bf16", "bf16")] * (len(layers) - 2) + [("fp32", "fp32")])
    assert isinstance(layers[0].weights, DType)  # the first and last layers keep the model's dtype
    text = plan.to_json()
    assert '"bf16"' in text and "DType" not in text
    loaded = Plan.from_json(text)
    assert loaded == plan and loaded.to_json() == text


def test_a_spec_lists_dtypes_from_this_vocabulary() -> None:
    from chipcut.backends.schema import spec_from_dict

    data = {"compute": {"peak_macs_per_s": {"fp64": "10 TMAC/s", "fp32": "20 TMAC/s"},
                        "vector_ops_per_s": "1 TOPS"},
            "memory": {"sram_bytes": "8 MiB", "dram_bytes": 0},
            "link": {"bytes_per_s": "10 GB/s", "latency_s": "2 us"}}
    chip = spec_from_dict(data, "chip.toml")
    assert chip.peak_macs_per_s == {"fp64": 10e12, "fp32": 20e12}
    data["compute"]["peak_macs_per_s"] = {"fp6": "1 TMAC/s"}
    with pytest.raises(ChipcutError) as info:
        spec_from_dict(data, "chip.toml")
    assert str(info.value) == ("chip.toml: [compute] peak_macs_per_s = {'fp6': '1 TMAC/s'} has "
                               "unknown dtype 'fp6'; known dtypes: int4, int8, fp8, fp16, bf16, "
                               "fp32, fp64")
