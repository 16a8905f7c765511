"""Pass manager: pipelines parse and print, unknown names and options are one clear line."""

from __future__ import annotations

import pytest

import chipcut
from chipcut.core.errors import ChipcutError
from chipcut.passes.fold_bn import FoldBatchNorm
from chipcut.passes.fuse import Fuse
from chipcut.passes.manager import DEFAULT_PIPELINE, Pipeline, verify_graph
from chipcut.passes.quantize import Quantize


def test_pipeline_round_trips_through_text() -> None:
    text = "fold-bn,quantize{dtype=int8,first_last=int8,types=LayerNorm:fp32;Softmax:bf16},fuse"
    pipeline = Pipeline.parse(text)
    assert pipeline.passes == (FoldBatchNorm(),
                               Quantize(dtype="int8", first_last="int8",
                                        types=(("LayerNorm", "fp32"), ("Softmax", "bf16"))),
                               Fuse())
    assert str(pipeline) == text
    assert Pipeline.parse(str(pipeline)) == pipeline


def test_default_and_none() -> None:
    assert str(Pipeline.parse("default")) == "fold-bn,quantize,fuse"
    assert Pipeline.parse("default") == Pipeline.parse(DEFAULT_PIPELINE)
    assert Pipeline.parse("none").passes == ()


@pytest.mark.parametrize(("text", "expected"), [
    ("fold-bn,fusion", "unknown pass 'fusion'; known passes: cse, fold-bn, fuse, quantize{dtype,"),
    ("quantize{bits=8}", "pass quantize: unknown option 'bits=8'; its options are: dtype, weights,"),
    ("quantize{dtype=int3}", "pass quantize: dtype='int3' is not one of native, auto, int4, int8,"),
    ("quantize{threshold_db=high}", "option threshold_db='high' is invalid"),
    ("quantize{types=LayerNorm}", "write NAME:DTYPE pairs joined by ';'"),
    ("fuse{dtype=int8", "unbalanced braces"),
])
def test_bad_pipelines_are_one_line(text: str, expected: str) -> None:
    with pytest.raises(ChipcutError) as info:
        Pipeline.parse(text)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_failing_pass_names_pass_and_node(residual_cnn) -> None:
    # An int8-only chip cannot honour a request for fp32 compute on the head.
    from dataclasses import replace

    from chipcut.backends.registry import get_backend
    from chipcut.backends.roofline import RooflineBackend

    int8 = RooflineBackend(replace(get_backend("generic").spec, name="int8-only",
                                   peak_macs_per_s={"int8": 32e12}))
    with pytest.raises(ChipcutError) as info:
        chipcut.compile(*residual_cnn, chips=2, backend=int8,
                         passes="quantize{dtype=int8,modules=head:fp32}")
    message = str(info.value)
    assert message.startswith("pass quantize{dtype=int8,modules=head:fp32} failed at node linear: ")
    assert "linear (head) would compute in fp32" in message
    assert "int8-only computes int8" in message


def test_every_pass_keeps_the_graph_valid(residual_cnn, small_bert) -> None:
    for model, inputs in (residual_cnn, small_bert):
        gm = chipcut.capture(model, inputs).graph_module
        for p in Pipeline.parse("fold-bn,quantize{dtype=int8},fuse").passes:
            gm = Pipeline((p,)).run(gm, verify=False)
            assert verify_graph(gm) is None


def test_verify_names_a_node_without_metadata(residual_cnn) -> None:
    gm = chipcut.capture(*residual_cnn).graph_module
    relu = next(n for n in gm.graph.nodes if n.name == "relu")
    relu.meta.pop("val")
    relu.meta.pop("tensor_meta", None)
    assert verify_graph(gm) == f"node relu ({relu.target}) has no shape metadata"
    relu.meta["val"] = relu.args[0].meta["val"]
    assert verify_graph(gm) is None  # relu was the only node the message could name
