"""Mixture-of-experts MACs: grouped GEMMs against closed forms and FlopCounterMode (FLOPs / 2)."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from chipcut.compiler.capture import capture
from chipcut.core.ir import get_cost, is_compute
from chipcut.passes.accounting import UnaccountedOpsWarning, accounting, op_name, unaccounted

transformers = pytest.importorskip("transformers")

# A small Mixtral: GQA attention, a router over 4 experts, top-2 routing, SwiGLU experts.
TOKENS, HIDDEN, INTER, LAYERS, VOCAB = 16, 128, 256, 2, 500
HEADS, KV_HEADS, EXPERTS, TOP_K = 4, 2, 4, 2
HEAD_DIM = HIDDEN // HEADS
ATTENTION = HEADS * TOKENS * TOKENS * 2 * HEAD_DIM // 2  # causal: half the score matrix
EXPERT_MACS = TOP_K * TOKENS * 3 * HIDDEN * INTER  # gate, up, down for every routed row
PER_LAYER = (TOKENS * HIDDEN * (2 * HIDDEN + 2 * KV_HEADS * HEAD_DIM)  # q, k, v, o projections
             + ATTENTION + TOKENS * HIDDEN * EXPERTS + EXPERT_MACS)  # + router
CLOSED_FORM = LAYERS * PER_LAYER + TOKENS * HIDDEN * VOCAB  # + lm_head
GROUPED = {"grouped_mm_fallback", "_grouped_mm"}


def mixtral(device: str = "cpu", dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    config = transformers.MixtralConfig(
        hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, num_local_experts=EXPERTS,
        num_experts_per_tok=TOP_K, vocab_size=VOCAB, use_cache=False)
    torch.manual_seed(0)
    with torch.device(device):
        return transformers.MixtralForCausalLM(config).to(dtype).eval()


def accounted(model: torch.nn.Module, device: str = "cpu") -> torch.fx.GraphModule:
    ids = torch.randint(0, VOCAB, (1, TOKENS)) if device == "cpu" else torch.zeros(
        1, TOKENS, dtype=torch.long, device=device)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnaccountedOpsWarning)  # nothing may go uncounted
        return accounting(capture(model, (ids,)).graph_module)


def macs_by_op(gm: torch.fx.GraphModule) -> dict[str, int]:
    out: dict[str, int] = {}
    for node in gm.graph.nodes:
        if is_compute(node):
            out[op_name(node)] = out.get(op_name(node), 0) + get_cost(node).macs
    return out


# fp32 weights take transformers' own grouped_mm_fallback op under export; bf16 weights take
# aten._grouped_mm; the meta device runs the fallback's shape function only.
@pytest.mark.parametrize("device, dtype", [("cpu", torch.float32), ("cpu", torch.bfloat16),
                                           ("meta", torch.float32)])
def test_small_mixtral_matches_closed_form(device: str, dtype: torch.dtype) -> None:
    gm = accounted(mixtral(device, dtype), device)
    by_op = macs_by_op(gm)
    assert sum(by_op[name] for name in GROUPED if name in by_op) == LAYERS * EXPERT_MACS
    assert by_op["scaled_dot_product_attention"] == LAYERS * ATTENTION
    assert sum(by_op.values()) == CLOSED_FORM == 8_970_240
    assert unaccounted(gm) == ()


def test_small_mixtral_matches_flop_counter() -> None:
    """FlopCounterMode counts no grouped GEMM (neither aten._grouped_mm nor transformers'
    fallback op), so the reference runs the same weights with transformers' ``batched_mm``
    experts: one bmm per routed row, which it counts. It reports 0 for CPU attention, so
    attention is compared by formula (the closed-form test above)."""
    model = mixtral()
    by_op = macs_by_op(accounted(model))
    model.set_experts_implementation("batched_mm")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randint(0, VOCAB, (1, TOKENS)))
    flops = {str(op): n / 2 for op, n in counter.get_flop_counts()["Global"].items()}
    assert sum(by_op[name] for name in GROUPED if name in by_op) == flops["aten.bmm"]
    without_attention = sum(by_op.values()) - by_op["scaled_dot_product_attention"]
    assert without_attention == counter.get_total_flops() / 2


def grouped_mm_node(a: tuple[int, ...], b: tuple[int, ...], out: tuple[int, ...],
                    offs: int | None) -> torch.fx.Node:
    """One aten._grouped_mm node on meta tensors (no kernel needs to exist for the shapes)."""
    graph = torch.fx.Graph()
    args = []
    for name, shape in (("a", a), ("b", b)):
        node = graph.placeholder(name)
        node.meta["val"] = torch.empty(shape, device="meta")
        args.append(node)
    kwargs = {}
    if offs is not None:
        kwargs["offs"] = graph.placeholder("offs")
        kwargs["offs"].meta["val"] = torch.empty(offs, dtype=torch.int32, device="meta")
    call = graph.call_function(torch.ops.aten._grouped_mm.default, tuple(args), kwargs)
    call.meta["val"] = torch.empty(out, device="meta")
    graph.output(call)
    accounting(torch.fx.GraphModule(torch.nn.Module(), graph))
    return call


# (a, b, out, groups, MACs by hand) for torch.nn.functional.grouped_mm's four forms.
FORMS = {
    "2d-3d": ((10, 16), (3, 16, 8), (10, 8), 3, 10 * 16 * 8),  # rows routed to 3 experts
    "3d-3d": ((3, 4, 16), (3, 16, 8), (3, 4, 8), None, 3 * 4 * 16 * 8),
    "2d-2d": ((4, 24), (24, 8), (3, 4, 8), 3, 4 * 24 * 8),  # K cut into 3 groups
    "3d-2d": ((3, 4, 16), (16, 24), (4, 24), 3, 4 * 16 * 24),  # N cut into 3 groups
}


@pytest.mark.skipif(not hasattr(torch.ops.aten, "_grouped_mm"), reason="no aten._grouped_mm")
@pytest.mark.parametrize("form", sorted(FORMS))
def test_grouped_mm_forms(form: str) -> None:
    a, b, out, offs, expected = FORMS[form]
    cost = get_cost(grouped_mm_node(a, b, out, offs))
    assert cost.macs == expected
    assert sum(batch * m * k * n for batch, m, k, n in cost.gemms) == expected
    assert sum(g[0] for g in cost.gemms) == 3  # one GEMM per group


def test_grouped_mm_rows_split_evenly_over_experts() -> None:
    """10 routed rows over 3 experts: GEMMs of 4, 3 and 3 rows (the split is data-dependent)."""
    cost = get_cost(grouped_mm_node((10, 16), (3, 16, 8), (10, 8), 3))
    assert sorted(cost.gemms) == [(1, 4, 16, 8), (2, 3, 16, 8)]
