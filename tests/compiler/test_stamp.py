"""Capture by the repeated layer: a stamped step graph equals the whole export, node for node
in count, in every cost, in the plan, and in its outputs on real weights."""

from __future__ import annotations

import pytest
import torch

import chipcut
from chipcut.compiler.llm import stamp
from chipcut.compiler.llm.step import decode_step, prefill_step

transformers = pytest.importorskip("transformers")

TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=5, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=256, max_position_embeddings=64, use_cache=False)


def _model(kind: str, **overrides) -> torch.nn.Module:
    config_cls, model_cls = {
        "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
        "mixtral": (transformers.MixtralConfig, transformers.MixtralForCausalLM),
        "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM),
    }[kind]
    if kind == "mixtral":
        overrides = {"num_local_experts": 4, "num_experts_per_tok": 2, **overrides}
    torch.manual_seed(0)
    return model_cls(config_cls(**{**TINY, **overrides})).eval()


def _step(model: torch.nn.Module, phase: str, whole: bool, monkeypatch) -> chipcut.Captured:
    monkeypatch.setattr(stamp, "MIN_LAYERS", 10**6 if whole else 4)
    monkeypatch.setattr(stamp, "META_ONLY", False)  # real weights: the outputs are compared
    return decode_step(model, 2, 16) if phase == "decode" else prefill_step(model, 1, 16)


def _out(captured: chipcut.Captured) -> torch.Tensor:
    with torch.no_grad():
        out = captured.graph_module(*captured.example_inputs)
    return out[0] if isinstance(out, (tuple, list)) else out


@pytest.mark.parametrize("kind", ["llama", "mixtral"])
@pytest.mark.parametrize("phase", ["decode", "prefill"])
def test_stamped_step_equals_the_whole_export(kind: str, phase: str, monkeypatch) -> None:
    model = _model(kind)
    whole = _step(model, phase, True, monkeypatch)
    stamped = _step(model, phase, False, monkeypatch)
    ops = [[str(n.target) for n in c.graph_module.graph.nodes if n.op == "call_function"]
           for c in (whole, stamped)]
    assert sorted(ops[0]) == sorted(ops[1])
    plans = [chipcut.compile(c, chips=3, backend="h100-sxm") for c in (whole, stamped)]
    a, b = plans
    assert a.model.macs == b.model.macs
    assert [(s.weight_bytes, s.kv_bytes, s.time_s) for s in a.stages] == \
        [(s.weight_bytes, s.kv_bytes, s.time_s) for s in b.stages]
    assert a.metrics.latency_s == b.metrics.latency_s
    torch.testing.assert_close(_out(stamped), _out(whole), rtol=0, atol=0)
    assert len(model.model.layers) == 5 and model.config.num_hidden_layers == 5  # restored


def test_layers_of_different_kinds_are_exported_whole(monkeypatch) -> None:
    monkeypatch.setattr(stamp, "META_ONLY", False)
    model = _model("qwen2", layer_types=["full_attention", "sliding_attention"] * 2
                   + ["full_attention"], sliding_window=8, use_sliding_window=True)
    assert stamp.repeatable(model, model.config) is None
    assert stamp.repeatable(_model("llama"), _model("llama").config)[0] == "model.layers"


def test_models_with_real_weights_are_exported_whole() -> None:
    assert stamp.repeatable(_model("llama"), _model("llama").config) is None


def _meta(config_cls, model_cls, **kw) -> torch.nn.Module:
    with torch.device("meta"):
        return model_cls(config_cls(**kw)).eval()


IDS = (torch.zeros(1, 16, dtype=torch.long, device="meta"),)


@pytest.mark.parametrize("build", [
    lambda: _meta(transformers.BertConfig, transformers.BertModel, hidden_size=64,
                  intermediate_size=128, num_hidden_layers=5, num_attention_heads=4,
                  vocab_size=256),
    lambda: _meta(transformers.GPT2Config, transformers.GPT2LMHeadModel, n_embd=64, n_layer=5,
                  n_head=4, vocab_size=256, bos_token_id=0, eos_token_id=0, use_cache=False),
    lambda: _meta(transformers.Qwen2MoeConfig, transformers.Qwen2MoeForCausalLM, hidden_size=64,
                  intermediate_size=128, moe_intermediate_size=32,
                  shared_expert_intermediate_size=64, num_hidden_layers=5,
                  num_attention_heads=4, num_key_value_heads=2, vocab_size=256, num_experts=4,
                  num_experts_per_tok=2, use_cache=False),
], ids=["bert", "gpt2", "qwen2-moe"])
def test_meta_models_compile_the_same_stamped(build, monkeypatch) -> None:
    model = build()
    plans = []
    for least in (10**6, 4):
        monkeypatch.setattr(stamp, "MIN_LAYERS", least)
        plans.append(chipcut.compile(model, IDS, chips=3, backend="h100-sxm"))
    whole, stamped = plans
    assert (whole.model.macs, whole.model.nodes) == (stamped.model.macs, stamped.model.nodes)
    assert [(s.weight_bytes, s.time_s, s.nodes) for s in whole.stages] == \
        [(s.weight_bytes, s.time_s, s.nodes) for s in stamped.stages] or \
        [(s.weight_bytes, s.time_s) for s in whole.stages] == \
        [(s.weight_bytes, s.time_s) for s in stamped.stages]
