"""LLM phases: the decode step's graph and numerics, KV bytes as resident state, the serving
figures, and the CLI's --phase flags."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import chipcut
from chipcut.backends.registry import get_backend
from chipcut.backends.roofline import RooflineBackend
from chipcut.compiler.cli.main import main
from chipcut.compiler.llm.step import (
    DecodeStep,
    _attention,
    decode_step,
    kv_cache_bytes,
    llm_step,
)
from chipcut.compiler.plan.model import Plan
from chipcut.core.errors import ChipcutError
from chipcut.core.ir import get_kv, get_phase

transformers = pytest.importorskip("transformers")

TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=256, max_position_embeddings=64, use_cache=False)


def _model(kind: str = "llama", device: str = "meta", **overrides) -> torch.nn.Module:
    config_cls, model_cls = {
        "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
        "mistral": (transformers.MistralConfig, transformers.MistralForCausalLM),
        "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM),
        "mixtral": (transformers.MixtralConfig, transformers.MixtralForCausalLM),
    }[kind]
    if kind == "mixtral":
        overrides = {"num_local_experts": 4, "num_experts_per_tok": 2, **overrides}
    torch.manual_seed(0)
    with torch.device(device):
        return model_cls(config_cls(**{**TINY, **overrides})).eval()


@pytest.mark.parametrize("kind", ["llama", "mistral", "qwen2", "mixtral"])
def test_decode_graph_reads_and_writes_the_cache_at_its_shape(kind: str) -> None:
    captured = decode_step(_model(kind), batch=3, context=32)
    gm = captured.graph_module
    caches = [n for n in gm.graph.nodes if get_kv(n) is not None]
    assert [(get_kv(n).layer, get_kv(n).kind) for n in caches] == [(0, "k"), (0, "v"), (1, "k"), (1, "v")]
    assert {tuple(n.meta["val"].shape) for n in caches} == {(3, 2, 32, 16)}  # B x kv_heads x C x D
    writes = [u for n in caches for u in n.users]
    assert [w.target for w in writes] == [torch.ops.aten.index_copy_.default] * 4
    assert {tuple(w.args[3].meta["val"].shape) for w in writes} == {(3, 2, 1, 16)}  # one token
    readers = {u.target for w in writes for u in w.users}
    assert readers == {torch.ops.aten.scaled_dot_product_attention.default}  # no repeated K/V
    assert get_phase(gm) == chipcut.compiler.llm.step.Phase("decode", 3, 32, "fp32")


def test_decode_step_equals_the_model_given_the_same_cache() -> None:
    model = _model(device="cpu")
    prompt = torch.randint(0, 256, (2, 9), generator=torch.Generator().manual_seed(1))
    token = torch.randint(0, 256, (2, 1), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        past = model(prompt, use_cache=True).past_key_values
        cached = [(layer.keys.clone(), layer.values.clone()) for layer in past.layers]
        expected = model(token, past_key_values=past, use_cache=True).logits
        step = DecodeStep(model, batch=2, context=16)
        for layer, (k, v) in zip(step.cache.layers, cached, strict=True):
            layer.keys[:, :, :9] = k
            layer.values[:, :, :9] = v
        with _attention(model):
            got = step(token, torch.tensor([9]))
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("kv_dtype", [None, "fp8"])
def test_kv_bytes_per_chip_equal_the_closed_form(kv_dtype: str | None) -> None:
    model = _model()
    plan = chipcut.compile(decode_step(model, batch=4, context=48, kv_dtype=kv_dtype), chips=2,
                           backend="h100-sxm", time_limit_s=5)
    dtype = kv_dtype or "fp32"
    per_layer = kv_cache_bytes(model.config, 4, 48, dtype) // model.config.num_hidden_layers
    assert per_layer == 4 * 48 * 2 * 16 * 2 * (1 if kv_dtype else 4)
    layers = [{n for n in s.nodes if n.startswith("scaled_dot_product_attention")}
              for s in plan.stages]
    assert [s.kv_bytes for s in plan.stages] == [per_layer * len(ls) for ls in layers]
    assert plan.serving.kv_bytes == kv_cache_bytes(model.config, 4, 48, dtype)
    assert plan.serving.kv_dtype == dtype
    assert Plan.from_json(plan.to_json()) == plan


def _chip(dram_bytes: int) -> RooflineBackend:
    generic = get_backend("generic")
    return RooflineBackend(replace(generic.spec, name="small", dram_bytes=dram_bytes, sram_bytes=0))


def test_capacity_counts_the_cache_beside_the_weights() -> None:
    step = decode_step(_model(), batch=16, context=64)
    roomy = chipcut.compile(step, chips=1, backend=_chip(10**9), time_limit_s=5)
    weights, cache = roomy.stages[0].weight_bytes, roomy.stages[0].kv_bytes
    assert cache == kv_cache_bytes(_model().config, 16, 64, "fp32") and cache > weights / 2
    with pytest.raises(chipcut.DoesNotFit, match=r"fits on \d+ chips"):
        chipcut.compile(step, chips=1, backend=_chip(weights + cache // 2), time_limit_s=5)


@pytest.mark.parametrize(("hidden", "ffn", "limit"), [(4096, 11008, "memory"), (1024, 2816, "overhead")])
def test_decode_at_batch_1_on_h100_is_memory_or_overhead_bound(hidden: int, ffn: int, limit: str) -> None:
    model = _model(hidden_size=hidden, intermediate_size=ffn, num_attention_heads=16,
                   num_key_value_heads=4, vocab_size=32000, max_position_embeddings=4096)
    plan = chipcut.compile(llm_step(model.to(torch.bfloat16), "decode", 1, 2048), chips=2,
                           backend="h100-sxm", time_limit_s=5)
    # LLaMA-7B's layer sizes read more bytes per kernel than the kernel's fixed time; at a
    # quarter of its width the per-kernel overhead takes most of each stage's time.
    assert [s.bound for s in plan.stages] == [limit, limit]
    for timeline in plan.timeline:
        spent = {b: sum(op.end_s - op.start_s for op in timeline.ops if op.bound == b)
                 for b in ("compute", "memory", "overhead")}
        assert max(spent, key=spent.__getitem__) == limit
    v = plan.serving
    assert v.step_s == plan.metrics.latency_s and v.tokens_per_s == pytest.approx(1 / v.step_s)
    assert v.bound_ratio > 1.0
    text = chipcut.report(plan)
    assert "KV MB" in text and "memory-bandwidth bound" in text and "TPOT" in text


@pytest.mark.parametrize("tied", [False, True])
def test_decode_bound_reads_only_the_looked_up_rows_of_an_untied_embedding(tied: bool) -> None:
    model = _model("qwen2", hidden_size=256, intermediate_size=512, vocab_size=32000,
                   max_position_embeddings=256, tie_word_embeddings=tied)
    h100 = get_backend("h100-sxm")
    free = RooflineBackend(replace(h100.spec, name="h100-no-overhead", op_overhead_s=0.0,
                                   class_overhead_s={}, sram_bytes=0))
    plan = chipcut.compile(llm_step(model, "decode", 2, 128), chips=2, backend=free,
                           time_limit_s=5)
    table, rows = 32000 * 256 * 4, 2 * 256 * 4  # the embedding, and the 2 rows a step gathers
    first = next(s for s in plan.stages if "embedding" in s.nodes)
    head = next(s for s in plan.stages if plan.graph.nodes[-1].name in s.nodes)
    assert head is not first  # a tied table is then stored on both chips, read whole on one
    for s in plan.stages:
        assert s.weight_traffic_bytes == s.weight_bytes - (table - rows if s is first else 0)
    v = plan.serving
    bandwidth = h100.spec.dram_bytes_per_s * h100.spec.memory_efficiency
    read = sum(s.weight_traffic_bytes for s in plan.stages)
    assert v.bound_s == pytest.approx((read + v.kv_bytes) / bandwidth, rel=1e-9)
    assert v.bound_ratio >= 1.0  # no step runs faster than it can read what it reads
    assert Plan.from_json(plan.to_json()) == plan


def test_bound_is_not_applicable_when_everything_stays_in_sram() -> None:
    plan = chipcut.compile(decode_step(_model(), batch=1, context=16), chips=1,
                           backend="h100-sxm", time_limit_s=5)
    assert plan.serving.bound_s == 0.0 and plan.stages[0].weights_resident
    assert "memory-bandwidth bound n/a" in chipcut.report(plan)


def test_prefill_reports_ttft_and_prompt_tokens_per_second() -> None:
    plan = chipcut.compile(llm_step(_model(), "prefill", batch=2, tokens=32), chips=2,
                           backend="h100-sxm", time_limit_s=5)
    v = plan.serving
    assert (v.phase, v.kv_bytes, v.bound_s) == ("prefill", 0, 0.0)
    assert v.tokens_per_s == pytest.approx(2 * 32 / plan.metrics.latency_s)
    assert "TTFT" in chipcut.report(plan)


def test_bad_steps_are_one_line_errors() -> None:
    with pytest.raises(ChipcutError, match="not a causal LM"):
        decode_step(torch.nn.Linear(4, 4), batch=1, context=8)
    with pytest.raises(ChipcutError, match="longer than the model's 64 positions"):
        decode_step(_model(), batch=1, context=65)
    with pytest.raises(ChipcutError, match="--kv-dtype 'fp7'"):
        decode_step(_model(), batch=1, context=8, kv_dtype="fp7")


FACTORY = textwrap.dedent("""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    def tiny():
        config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, vocab_size=256,
                             max_position_embeddings=64, use_cache=False)
        with torch.device("meta"):
            return LlamaForCausalLM(config).eval(), (torch.zeros(1, 8, dtype=torch.long, device="meta"),)

    def mlp():
        return torch.nn.Sequential(torch.nn.Linear(4, 4)), (torch.randn(1, 4),)
""")


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "llm_models.py"
    path.write_text(FACTORY)
    return path


def test_cli_decode_plan(capsys, model_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    code = main(["compile", f"{model_file}:tiny", "--phase", "decode", "--context", "32",
                 "--batch", "4", "--kv-dtype", "fp8", "--chips", "2", "--backend", "h100-sxm",
                 "--time-limit", "5", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0 and "TPOT" in text and "KV cache fp8" in text
    assert Plan.from_json(out).serving.kv_bytes == 2 * 4 * 32 * 2 * 16 * 2


@pytest.mark.parametrize("args, message", [
    (["mlp", "--phase", "decode", "--context", "8"], "is not a causal LM"),
    (["tiny", "--phase", "decode", "--context", "128"], "longer than the model's 64 positions"),
    (["tiny", "--phase", "decode"], "needs --context"),
    (["tiny", "--context", "8"], "--context applies to --phase decode"),
    (["tiny", "--phase", "prefill", "--prompt", "8", "--kv-dtype", "fp8"], "--kv-dtype applies"),
])
def test_cli_bad_phase_is_one_line_exit_2(capsys, model_file: Path, tmp_path: Path,
                                          args: list[str], message: str) -> None:
    out = tmp_path / "plan.json"
    code = main(["compile", f"{model_file}:{args[0]}", *args[1:], "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1 and not out.exists()
