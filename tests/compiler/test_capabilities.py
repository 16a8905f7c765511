"""Capabilities: a unit never lands on a chip that cannot run it; none that can -> a clear error."""

from __future__ import annotations

from dataclasses import replace

import chipcut
import pytest
from chipcut.backends.registry import get_backend
from chipcut.backends.roofline import RooflineBackend
from chipcut.core.errors import ChipcutError


def int8_only() -> RooflineBackend:
    spec = get_backend("generic").spec
    return RooflineBackend(replace(spec, name="int8-only", peak_macs_per_s={"int8": 32e12}))


def test_no_chip_can_run_fp32_names_node_and_fix(residual_cnn) -> None:
    with pytest.raises(ChipcutError) as info:
        chipcut.compile(*residual_cnn, chips=2, backend=int8_only(), passes="fold-bn,fuse")
    message = str(info.value)
    assert message.startswith("node conv2d (conv2d, fp32) cannot run on any chip")
    assert "int8-only computes int8, not fp32" in message
    assert "quantize{dtype=int8}" in message


def test_mixed_chips_keep_units_where_they_can_run(residual_cnn) -> None:
    plan = chipcut.compile(*residual_cnn, chips=[get_backend("generic"), int8_only()], passes="none")
    assert plan.chips == ("generic", "int8-only")
    macs_on_int8 = plan.stages[1].macs
    assert macs_on_int8 == 0
    assert plan.stages[0].macs == plan.model.macs
    assert plan.notes[0] == "node conv2d (conv2d) kept off chip 1: int8-only computes int8, not fp32"
    assert "note: node conv2d (conv2d) kept off chip 1" in plan.report()


def test_default_pipeline_quantizes_to_what_the_chips_compute(residual_cnn) -> None:
    plan = chipcut.compile(*residual_cnn, chips=2, backend=int8_only())
    assert plan.passes == "fold-bn,quantize,fuse"
    q = plan.quantization
    assert q is not None and {(la.weights, la.activations) for la in q.layers} == {("int8", "int8")}
    assert q.weight_bytes_after * 4 == q.weight_bytes_before
