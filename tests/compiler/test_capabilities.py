"""Capabilities: a unit never lands on a chip that cannot run it; none that can -> a clear error."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch

import chipcut
from chipcut.backends.registry import get_backend
from chipcut.backends.roofline import RooflineBackend
from chipcut.backends.spec import Capabilities
from chipcut.compiler.capture import capture
from chipcut.core.errors import ChipcutError
from chipcut.core.ir import is_compute
from chipcut.passes.accounting import op_name


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
    assert "note: node conv2d (conv2d) kept off chip 1" in chipcut.report(plan)


def test_default_pipeline_quantizes_to_what_the_chips_compute(residual_cnn) -> None:
    plan = chipcut.compile(*residual_cnn, chips=2, backend=int8_only())
    assert plan.passes == "fold-bn,quantize,fuse"
    q = plan.quantization
    assert q is not None and {(la.weights, la.activations) for la in q.layers} == {("int8", "int8")}
    assert q.weight_bytes_after * 4 == q.weight_bytes_before


def no_conv() -> RooflineBackend:
    spec = get_backend("generic").spec
    caps = Capabilities(unsupported_ops=frozenset({"conv2d"}))
    return RooflineBackend(replace(spec, name="no-conv", capabilities=caps))


def slow() -> RooflineBackend:
    spec = get_backend("generic").spec
    rates = {dtype: rate / 100 for dtype, rate in spec.peak_macs_per_s.items()}
    return RooflineBackend(replace(spec, name="slow", peak_macs_per_s=rates))


@pytest.mark.parametrize("method", ["export", "symbolic_trace"])
def test_unsupported_op_stays_off_the_chip_on_both_capture_paths(residual_cnn, monkeypatch,
                                                                 method: str) -> None:
    if method == "symbolic_trace":
        def refuse(*args, **kwargs):
            raise RuntimeError("export refused")

        monkeypatch.setattr(torch.export, "export", refuse)
    cap = capture(*residual_cnn)
    assert cap.method == method
    convs = {n.name for n in cap.graph_module.graph.nodes
             if is_compute(n) and op_name(n) == "conv2d"}
    assert len(convs) == 6
    free = chipcut.compile(*residual_cnn, chips=[slow(), get_backend("generic")], passes="none")
    nodes = {stage.backend: set(stage.nodes) for stage in free.stages}
    assert convs <= nodes["generic"]  # unrestricted, the fast chip takes every convolution
    plan = chipcut.compile(*residual_cnn, chips=[slow(), no_conv()], passes="none")
    nodes = {stage.backend: set(stage.nodes) for stage in plan.stages}
    assert convs <= nodes["slow"] and not convs & nodes["no-conv"]
    assert plan.notes[0].endswith(": no-conv does not support op conv2d")


def fp64_chip() -> RooflineBackend:
    spec = get_backend("generic").spec
    rates = dict(spec.peak_macs_per_s, fp64=spec.peak_macs_per_s["fp32"] / 2)
    return RooflineBackend(replace(spec, name="fp64-chip", peak_macs_per_s=rates))


def as_float64(model_and_inputs: tuple) -> tuple:
    model, inputs = model_and_inputs
    return copy.deepcopy(model).double(), tuple(x.double() for x in inputs)


def test_float64_model_is_not_costed_as_fp32(residual_cnn) -> None:
    with pytest.raises(ChipcutError) as info:
        chipcut.compile(*as_float64(residual_cnn), chips=2, passes="none")
    message = str(info.value)
    assert message.startswith("node conv2d (conv2d, fp64) cannot run on any chip")
    assert "not fp64" in message and "quantize{dtype=fp32}" in message


def test_float64_runs_at_the_chips_fp64_rate(residual_cnn) -> None:
    chip = fp64_chip()
    wide = chipcut.compile(*as_float64(residual_cnn), chips=[chip], passes="none")
    narrow = chipcut.compile(*residual_cnn, chips=[chip], passes="none")
    assert wide.model.macs == narrow.model.macs
    assert wide.stages[0].weight_bytes == 2 * narrow.stages[0].weight_bytes
    # The MACs take twice as long at the fp64 rate (half the fp32 rate); element ops do not.
    fp32_s = narrow.model.macs / (chip.peak_macs_per_s("fp32") * chip.spec.compute_efficiency)
    assert wide.stages[0].compute_s - narrow.stages[0].compute_s == pytest.approx(fp32_s)


def test_default_pipeline_narrows_float64_to_what_the_chips_compute(residual_cnn) -> None:
    plan = chipcut.compile(*as_float64(residual_cnn), chips=2)
    q = plan.quantization
    assert {(la.weights, la.activations) for la in q.layers} == {("fp32", "fp32")}
    assert q.weight_bytes_before == 2 * q.weight_bytes_after
