"""quantize: policy, bytes at the annotated precision, measured SQNR, auto, bad input."""

from __future__ import annotations

import math

import pytest
import torch

import chipcut
from chipcut.backends.registry import get_backend
from chipcut.core.errors import ChipcutError
from chipcut.core.ir import get_cost, get_precision
from chipcut.passes.manager import Pipeline, Target

INT8 = "fold-bn,quantize{dtype=int8}"


def layers(plan) -> dict[str, tuple[str, str]]:
    return {la.module: (la.weights, la.activations) for la in plan.quantization.layers}


def params(model: torch.nn.Module, prefix: str) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if n.startswith(prefix + "."))


def test_int8_keeps_first_and_last_layers_wide_and_counts_bytes(residual_cnn) -> None:
    model, inputs = residual_cnn
    plan = chipcut.compile(model, inputs, chips=1, passes=INT8)
    assert layers(plan) == {"stem.0": ("fp32", "fp32"), "a1": ("int8", "int8"), "a2": ("int8", "int8"),
                            "b1": ("int8", "int8"), "b2": ("int8", "int8"),
                            "proj": ("int8", "int8"), "head": ("fp32", "fp32")}
    q = plan.quantization
    stem = params(model, "stem.0")  # BN folded into the conv: its weight and (new) bias
    middle = sum(params(model, m) for m in ("a1", "a2", "b1", "b2", "proj"))
    assert q.weight_bytes_after == 4 * stem + middle + 4 * params(model, "head")
    assert q.weight_bytes_before == 4 * (stem + middle + params(model, "head"))
    assert q.activation_bytes_after < q.activation_bytes_before
    assert q.energy_j_after < q.energy_j_before
    gm = plan.graph_module
    conv = next(n for n in gm.graph.nodes if n.name == "conv2d_1")
    assert get_cost(conv).out_bytes == 16 * 32 * 32  # one byte per int8 element
    # Measured, not assumed: int8 costs some SQNR, but not 30 dB on this model.
    assert q.output_sqnr_db is not None and 30 < q.output_sqnr_db < 60
    assert all(la.sqnr_db is not None for la in q.layers if la.activations == "int8")
    assert "quantize: quantize{dtype=int8}: MAC layers fp32 x2, int8 x5; output SQNR" in chipcut.report(plan)


def test_overrides_by_module_name_and_type(residual_cnn) -> None:
    plan = chipcut.compile(*residual_cnn, chips=1,
                            passes="quantize{dtype=int8,modules=a1:fp16;b*:bf16,types=Linear:int4}")
    chosen = layers(plan)
    assert chosen["a1"] == ("fp16", "fp16")
    assert chosen["b1"] == chosen["b2"] == ("bf16", "bf16")
    assert chosen["head"] == ("int4", "int8")  # the type override beats the last-layer rule
    assert chosen["a2"] == ("int8", "int8") and chosen["stem.0"] == ("fp32", "fp32")


def test_others_sets_every_layer_but_the_mac_layers(residual_cnn) -> None:
    plan = chipcut.compile(*residual_cnn, chips=1, backend="h100-sxm",
                           passes="quantize{dtype=fp8,first_last=fp8,measure=false,others=fp16}")
    assert set(layers(plan).values()) == {("fp8", "fp8")}
    rest = [n for n in plan.graph_module.graph.nodes
            if get_precision(n) is not None and n.target in (torch.ops.aten.relu.default,
                                                             torch.ops.aten.add.Tensor)]
    assert rest and {get_precision(n).activations for n in rest} == {"fp16"}
    for node in rest:  # two bytes per element of its output
        assert get_cost(node).out_bytes == 2 * node.meta["val"].numel(), node.name
    with pytest.raises(ChipcutError, match="pass quantize: others='fp6' is not one of int4, int8,"):
        Pipeline.parse("quantize{others=fp6}")


def test_int4_weights_store_half_a_byte(residual_cnn) -> None:
    model, inputs = residual_cnn
    plan = chipcut.compile(model, inputs, chips=1,
                            passes="fold-bn,quantize{dtype=int8,weights=int4,first_last=int8}")
    assert set(layers(plan).values()) == {("int4", "int8")}
    total = sum(p.numel() for p in plan.graph_module.parameters())
    assert plan.quantization.weight_bytes_after == total // 2


def test_native_is_a_no_op_where_the_chip_computes_the_model_dtype(residual_cnn) -> None:
    plan = chipcut.compile(*residual_cnn, chips=1, passes="quantize")
    assert plan.quantization is None
    assert all(get_precision(n) is None for n in plan.graph_module.graph.nodes)


def test_native_computes_a_model_in_a_wider_dtype_where_the_chip_lacks_the_models() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 8)).to(torch.bfloat16).eval()
    x = torch.randn(4, 16, dtype=torch.bfloat16)
    plan = chipcut.compile(model, (x,), chips=1, backend="cpu")  # the cpu preset: fp32 only
    assert layers(plan) == {"0": ("bf16", "fp32"), "2": ("bf16", "fp32")}
    assert plan.stages[0].weight_bytes == 2 * sum(p.numel() for p in model.parameters())
    assert plan.fused_groups == 1  # the ReLU joins the first linear: fp32 in and out
    spec = get_backend("cpu").spec
    macs = 4 * (16 * 32 + 32 * 8)
    assert plan.model.macs == macs
    assert plan.stages[0].compute_s >= macs / (spec.peak_macs_per_s["fp32"] * spec.compute_efficiency)
    explicit = chipcut.compile(model, (x,), chips=1, backend="cpu",
                               passes="fold-bn,quantize{dtype=fp32},fuse")
    assert layers(explicit) == {"0": ("fp32", "fp32"), "2": ("fp32", "fp32")}


class _Lookup(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb, self.norm = torch.nn.Embedding(500, 64), torch.nn.LayerNorm(64)
        self.head = torch.nn.Linear(64, 32)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.emb(ids)))


def test_native_widening_stores_every_weight_at_the_models_dtype() -> None:
    torch.manual_seed(0)
    model = _Lookup().to(torch.bfloat16).eval()
    plan = chipcut.compile(model, (torch.randint(0, 500, (2, 8)),), chips=1, backend="cpu")
    annotated = {n.name: get_precision(n) for n in plan.graph_module.graph.nodes
                 if get_precision(n) is not None}
    assert {n: (p.weights, p.activations) for n, p in annotated.items()
            if n in ("embedding", "layer_norm", "linear")} == {
        n: ("bf16", "fp32") for n in ("embedding", "layer_norm", "linear")}
    assert plan.stages[0].weight_bytes == 2 * sum(p.numel() for p in model.parameters())


def test_auto_meets_the_threshold_and_says_what_it_chose(residual_cnn) -> None:
    plan = chipcut.compile(*residual_cnn, chips=1, passes="fold-bn,quantize{dtype=auto},fuse")
    q = plan.quantization
    assert q.output_sqnr_db >= 30.0
    assert {a for _, a in layers(plan).values()} <= {"int8", "fp16", "fp32"}
    strict = chipcut.compile(*residual_cnn, chips=1,
                              passes="fold-bn,quantize{dtype=auto,threshold_db=200},fuse")
    assert set(layers(strict).values()) == {("fp32", "fp32")}  # nothing narrower is that exact
    loose = chipcut.compile(*residual_cnn, chips=1,
                             passes="fold-bn,quantize{dtype=auto,threshold_db=0},fuse")
    assert set(layers(loose).values()) == {("int8", "int8")}
    assert loose.quantization.weight_bytes_after < q.weight_bytes_before


def test_meta_models_annotate_but_do_not_measure() -> None:
    with torch.device("meta"):
        model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                                    torch.nn.Linear(64, 8)).eval()
    x = torch.empty(1, 64, device="meta")
    plan = chipcut.compile(model, (x,), chips=1, passes="quantize{dtype=int8}")
    assert plan.quantization.output_sqnr_db is None
    assert layers(plan)["2"] == ("int8", "int8")
    with pytest.raises(ChipcutError, match="dtype=auto measures SQNR by running the model"):
        chipcut.compile(model, (x,), chips=1, passes="quantize{dtype=auto}")


def test_calibration_inputs_of_the_wrong_shape_name_the_expected_shape(residual_cnn) -> None:
    model, inputs = residual_cnn
    with pytest.raises(ChipcutError) as info:
        chipcut.compile(model, inputs, chips=1, passes=INT8,
                         calibration_inputs=[(torch.randn(1, 3, 64, 64),)])
    assert str(info.value) == ("calibration input 0, argument 0: shape 1x3x64x64, expected 1x3x32x32 "
                               "(the shape the model was captured with); give tensors of that shape")
    plan = chipcut.compile(model, inputs, chips=1, passes=INT8,
                            calibration_inputs=[(torch.randn(1, 3, 32, 32),), (torch.randn(1, 3, 32, 32),)])
    assert plan.quantization.output_sqnr_db > 30


def test_a_dtype_the_backend_lacks_names_node_and_backend(residual_cnn) -> None:
    from chipcut.backends.registry import get_backend

    gm = chipcut.capture(*residual_cnn).graph_module
    with pytest.raises(ChipcutError) as info:
        Pipeline.parse("quantize{dtype=fp8}").run(gm, Target(backends=(get_backend("generic"),)))
    message = str(info.value)
    assert "failed at node conv2d_1: conv2d_1 (a1) would compute in fp8" in message
    assert "generic computes" in message


def test_savings_leave_the_quantized_graph_untouched(residual_cnn) -> None:
    from chipcut.core.ir import get_cost, get_precision

    lowered = chipcut.lower(*residual_cnn, options=chipcut.CompileOptions(passes=INT8))
    before = {n.name: (get_precision(n), get_cost(n)) for n in lowered.graph_module.graph.nodes}
    plan = chipcut.schedule(lowered, chipcut.solve(lowered, chips=2))
    after = {n.name: (get_precision(n), get_cost(n)) for n in lowered.graph_module.graph.nodes}
    assert after == before
    q = plan.quantization
    # fp32 weights are 4 bytes, int8 ones 1 (first and last layers stay fp32): a 1-4x saving.
    assert q.weight_bytes_after < q.weight_bytes_before <= 4 * q.weight_bytes_after
    assert q.energy_j_after < q.energy_j_before


class RelativeBuckets(torch.nn.Module):
    """T5-style relative-position bias: a float log of each distance, cast to an embedding index."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = torch.nn.Embedding(8, 16)
        self.fc1, self.fc2, self.fc3 = (torch.nn.Linear(16, 16) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(x.shape[0])
        dist = (pos[None, :] - pos[:, None]).abs()
        large = (torch.log(dist.float() / 4) * 3).to(torch.long) + 4  # log(0) is -inf, never picked
        bucket = torch.where(dist < 4, dist, torch.clamp(large, max=7))
        return self.fc3(self.fc2(self.fc1(x)) + self.bias(bucket).mean(dim=1))


@pytest.mark.parametrize("passes", ["quantize{dtype=int8}", "quantize{dtype=auto}"])
def test_floats_that_only_compute_indices_are_not_quantized(passes: str) -> None:
    torch.manual_seed(0)
    model, x = RelativeBuckets().eval(), torch.randn(12, 16)
    plan = chipcut.compile(model, (x,), chips=1, passes=passes)
    nodes = {n.name: n for n in plan.graph_module.graph.nodes}
    log = next(n for n in nodes.values() if n.target == torch.ops.aten.log.default)
    assert get_precision(log) is None and get_precision(log.args[0]) is None
    assert get_precision(nodes["embedding"]) is not None  # the table's values are data: quantized
    assert math.isfinite(plan.quantization.output_sqnr_db) and plan.quantization.output_sqnr_db > 20
    if passes == "quantize{dtype=int8}":
        assert layers(plan)["fc2"] == ("int8", "int8")


def _t5() -> torch.nn.Module:
    from transformers import T5Config, T5Model

    config = T5Config(d_model=64, d_ff=128, num_layers=2, num_heads=4, vocab_size=100, use_cache=False)

    class EncoderDecoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.t5 = T5Model(config)

        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return self.t5(input_ids=a, decoder_input_ids=b).last_hidden_state

    return EncoderDecoder().eval()


@pytest.mark.parametrize("options", [{"passes": "fold-bn,quantize{dtype=int8},fuse"},
                                     {"backend": "hailo-8"}], ids=["int8", "hailo-8-default"])
def test_t5_relative_position_bias_quantizes_with_a_measured_sqnr(options: dict) -> None:
    torch.manual_seed(0)
    model, ids = _t5(), torch.randint(0, 100, (1, 32))  # distances past 8 take T5's log buckets
    plan = chipcut.compile(model, (ids, ids), chips=2, **options)
    q = plan.quantization
    assert q.output_sqnr_db is not None and math.isfinite(q.output_sqnr_db) and q.output_sqnr_db > 10
    assert {la.activations for la in q.layers} >= {"int8"}
