"""Step graphs of a transformers causal LM: prefill (the prompt) and one decode step.

The decode step takes one new token per sequence (``input_ids`` B x 1) and its position
(``position``, a 1-element int64 tensor, 0 <= position < context) and reads a static KV cache
of ``context`` tokens per layer: two buffers (K and V) of shape B x kv_heads x context x
head_dim. The step writes the new token's K and V at ``position`` (``index_copy_``) and
attends over the whole cache, masked to the positions up to ``position``; the mask changes no
cost, so a step plans as the step at a full cache. Grouped-query attention reads the cache's
kv_heads as they are (``enable_gqa``), never a copy repeated per query head. The cache
buffers carry a :class:`~chipcut.core.ir.KVCache` annotation: their bytes, at the cache
dtype, count as state resident on the attention's chip (capacity) and read by every step.

Prefill is the model on the whole prompt (``input_ids`` B x prompt, no cache in the graph),
keeping only the last position's logits, those the first new token needs.
"""

from __future__ import annotations

import contextlib
import inspect

import torch

from chipcut.compiler.capture import Captured
from chipcut.compiler.llm.stamp import capture_repeated
from chipcut.core.dtypes import BYTES, DType, from_torch
from chipcut.core.errors import ChipcutError
from chipcut.core.ir import KVCache, Phase, set_kv, set_phase

PHASES = ("prefill", "decode")
ATTENTION = "chipcut_gqa_sdpa"  # the attention the decode step registers with transformers


def causal_lm_config(model: object, phase: str = "decode") -> object:
    """The text config of a transformers causal LM (a class ``AutoModelForCausalLM`` builds);
    a one-line error naming the model for anything else."""
    try:
        from transformers import PreTrainedModel
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    except ImportError:
        raise ChipcutError(f"--phase {phase} needs transformers (pip install "
                           "'chipcut[models]')") from None
    names = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    if not isinstance(model, PreTrainedModel) or type(model).__name__ not in names:
        raise ChipcutError(f"--phase {phase}: {type(model).__name__} is not a causal LM (a "
                           "transformers *ForCausalLM such as LlamaForCausalLM); give one, or "
                           "drop --phase")
    return model.config.get_text_config()


def kv_shape(config: object, batch: int, context: int) -> tuple[int, int, int, int]:
    """(batch, kv_heads, context, head_dim): the shape of one layer's K (or V) cache."""
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return batch, kv_heads, context, head_dim


def kv_cache_bytes(config: object, batch: int, context: int, dtype: str) -> int:
    """Bytes of the whole KV cache: layers x batch x context x kv_heads x head_dim x 2 (K and V)
    x the dtype's bytes.

    >>> from transformers import LlamaConfig
    >>> kv_cache_bytes(LlamaConfig(num_hidden_layers=80, num_attention_heads=64,
    ...     num_key_value_heads=8, hidden_size=8192), batch=1, context=4096, dtype="bf16")
    1342177280
    """
    b, kv_heads, c, head_dim = kv_shape(config, batch, context)
    return int(config.num_hidden_layers * b * c * kv_heads * head_dim * 2 * BYTES[DType(dtype)])


def check_tokens(config: object, tokens: int, flag: str) -> None:
    """Refuse a prompt or context longer than the model's positions."""
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
        raise ChipcutError(f"{flag} {tokens!r}: must be a whole number >= 1 token")
    limit = getattr(config, "max_position_embeddings", None)
    if limit is not None and tokens > limit:
        raise ChipcutError(f"{flag} {tokens} is longer than the model's {limit} positions "
                           f"(max_position_embeddings); give {flag} {limit} or less")


def _check_batch(batch: int) -> None:
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ChipcutError(f"--batch {batch!r}: must be a whole number >= 1 sequence")


def _device(model: torch.nn.Module) -> torch.device:
    return next(iter(model.parameters()), torch.empty(0)).device


def _gqa_sdpa(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """transformers' attention signature: SDPA that reads K and V at their own kv_heads."""
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, scale=scaling,
        enable_gqa=query.shape[1] != key.shape[1])
    return out.transpose(1, 2).contiguous(), None


@contextlib.contextmanager
def _attention(model: torch.nn.Module):
    """The model's attention set to :func:`_gqa_sdpa` for the duration (restored after)."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION, _gqa_sdpa)  # transformers' registry of attentions
    config = model.config
    before = config._attn_implementation
    config._attn_implementation = ATTENTION
    try:
        yield
    finally:
        config._attn_implementation = before


def _cache(config: object, batch: int, context: int, dtype: torch.dtype, device: torch.device):
    """A transformers Cache of one static layer per decoder layer that writes at the step's
    ``position`` (``cache.position``, set by the step before the model runs)."""
    from transformers.cache_utils import Cache, StaticLayer

    class PositionedLayer(StaticLayer):
        def update(self, key_states, value_states, *args, **kwargs):
            self.keys.index_copy_(2, cache.position, key_states)
            self.values.index_copy_(2, cache.position, value_states)
            return self.keys, self.values

    cache = Cache(layers=[PositionedLayer(context) for _ in range(config.num_hidden_layers)])
    _, kv_heads, _, head_dim = kv_shape(config, batch, context)
    cache.early_initialization(batch, kv_heads, head_dim, dtype, device)
    return cache


class DecodeStep(torch.nn.Module):
    """One decode step of ``model`` for ``batch`` sequences against a cache of ``context``
    tokens: ``forward(input_ids (B x 1), position (1,)) -> logits (B x 1 x vocab)``.
    ``kv_k_i`` / ``kv_v_i`` are layer i's cache buffers (B x kv_heads x context x head_dim)."""

    def __init__(self, model: torch.nn.Module, batch: int, context: int) -> None:
        super().__init__()
        self.model = model
        self.context = context
        dtype = next(iter(model.parameters())).dtype
        self.cache = _cache(model.config.get_text_config(), batch, context, dtype, _device(model))
        for i, layer in enumerate(self.cache.layers):
            self.register_buffer(f"kv_k_{i}", layer.keys, persistent=False)
            self.register_buffer(f"kv_v_{i}", layer.values, persistent=False)

    def forward(self, input_ids: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        self.cache.position = position
        batch = input_ids.shape[0]
        keys = torch.arange(self.context, device=input_ids.device)
        mask = (keys <= position).view(1, 1, 1, self.context).expand(batch, 1, 1, self.context)
        return self.model(input_ids=input_ids, attention_mask=mask,
                          position_ids=position.view(1, 1).expand(batch, 1),
                          past_key_values=self.cache, use_cache=True).logits


class PrefillStep(torch.nn.Module):
    """``model`` on a whole prompt: ``forward(input_ids (B x prompt)) -> logits`` of the last
    position (B x 1 x vocab), with no cache in the graph."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.keep = "logits_to_keep" in inspect.signature(model.forward).parameters

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        extra = {"logits_to_keep": 1} if self.keep else {}
        return self.model(input_ids=input_ids, use_cache=False, **extra).logits[:, -1:]


def decode_inputs(step: DecodeStep, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Example inputs of a decode step: token 0 for every sequence, at the last position."""
    return _decode_inputs(step.model, batch, step.context)


def _decode_inputs(model: torch.nn.Module, batch: int, context: int) -> tuple[torch.Tensor, ...]:
    device = _device(model)
    return (torch.zeros(batch, 1, dtype=torch.long, device=device),
            torch.full((1,), context - 1, dtype=torch.long, device=device))


def _mark_cache(captured: Captured, config: object, batch: int, context: int,
                kv_dtype: str) -> None:
    """Annotate the cache buffers: the first argument of each ``index_copy_``, K then V per
    layer in graph order (the order the step writes them)."""
    gm = captured.graph_module
    writes = [n for n in gm.graph.nodes if n.op == "call_function"
              and getattr(n.target, "__name__", "") == "index_copy_.default"]
    buffers = [w.args[0] for w in writes]
    expected = kv_shape(config, batch, context)
    layers = config.num_hidden_layers
    shapes = {tuple(b.meta["val"].shape) if "val" in b.meta else None for b in buffers}
    attrs = all(b.op == "get_attr" for b in buffers)
    if len(buffers) != 2 * layers or not attrs or shapes != {expected}:
        raise ChipcutError(f"decode step of {captured.name}: found {len(buffers)} cache writes, "
                           f"expected {2 * layers} of shape {'x'.join(map(str, expected))}; the "
                           "model's attention does not update its cache through "
                           "past_key_values.update")
    for i, node in enumerate(buffers):
        set_kv(node, KVCache(layer=i // 2, kind="kv"[i % 2], dtype=kv_dtype))


def decode_step(model: torch.nn.Module, batch: int, context: int, kv_dtype: str | None = None,
                name: str | None = None) -> Captured:
    """One decode step of a causal LM, captured: ``batch`` sequences, a cache of ``context``
    tokens stored at ``kv_dtype`` (default: the model's dtype). Compile it like any model.

    >>> step = decode_step(llama, batch=32, context=4096, kv_dtype="fp8")  # doctest: +SKIP
    >>> plan = chipcut.compile(step, chips=8, backend="h100-sxm")          # doctest: +SKIP
    """
    config = causal_lm_config(model, "decode")
    _check_batch(batch)
    check_tokens(config, context, "--context")
    dtype = from_torch(next(iter(model.parameters())).dtype, "the model's parameters")
    if kv_dtype and kv_dtype not in set(DType):
        raise ChipcutError(f"--kv-dtype {kv_dtype!r}: give one of {', '.join(DType)}")
    kv = str(DType(kv_dtype)) if kv_dtype else str(dtype)
    model.eval()
    inputs = _decode_inputs(model, batch, context)
    with _attention(model):
        captured = capture_repeated(model, config, lambda: DecodeStep(model, batch, context),
                                    inputs, name or type(model).__name__)
    _mark_cache(captured, config, batch, context, kv)
    set_phase(captured.graph_module, Phase("decode", batch, context, kv))
    return captured


def prefill_step(model: torch.nn.Module, batch: int, prompt: int,
                 name: str | None = None) -> Captured:
    """The prefill of a causal LM, captured: ``batch`` prompts of ``prompt`` tokens."""
    config = causal_lm_config(model, "prefill")
    _check_batch(batch)
    check_tokens(config, prompt, "--prompt")
    ids = torch.zeros(batch, prompt, dtype=torch.long, device=_device(model))
    model.eval()
    captured = capture_repeated(model, config, lambda: PrefillStep(model), (ids,),
                                name or type(model).__name__)
    set_phase(captured.graph_module, Phase("prefill", batch, prompt))
    return captured


def llm_step(model: torch.nn.Module, phase: str, batch: int = 1, tokens: int = 2048,
             kv_dtype: str | None = None, name: str | None = None) -> Captured:
    """The captured step of ``phase`` ("prefill": ``tokens`` is the prompt; "decode": the
    cache's context). ``chipcut.compile(llm_step(...), ...)`` plans it; the plan's ``serving``
    holds TTFT or TPOT, tokens/s, KV bytes and the decode bandwidth bound."""
    if phase not in PHASES:
        raise ChipcutError(f"phase {phase!r}: give one of {', '.join(PHASES)}")
    if phase == "decode":
        return decode_step(model, batch, tokens, kv_dtype, name)
    if kv_dtype:
        raise ChipcutError("--kv-dtype applies to --phase decode (prefill holds no cache)")
    return prefill_step(model, batch, tokens, name)
