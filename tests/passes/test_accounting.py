"""Accounting: MACs against FlopCounterMode (FLOPs / 2) and closed forms; bytes from shapes."""

from __future__ import annotations

import warnings

import pytest
import torch
from chipcut.compiler.capture import capture
from chipcut.core.ir import get_cost, is_compute
from chipcut.passes.accounting import UnaccountedOpsWarning, accounting
from torch.utils.flop_counter import FlopCounterMode


def total_macs(model: torch.nn.Module, inputs: tuple) -> int:
    gm = accounting(capture(model, inputs).graph_module)
    return sum(get_cost(n).macs for n in gm.graph.nodes if is_compute(n))


def flop_counter_macs(model: torch.nn.Module, inputs: tuple) -> float:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(*inputs)
    return counter.get_total_flops() / 2


class Wrap(torch.nn.Module):
    def __init__(self, fn, *params: torch.Tensor) -> None:
        super().__init__()
        self.fn = fn
        self.params = torch.nn.ParameterList(params)

    def forward(self, *xs):
        return self.fn(*xs, *self.params)


CASES = {
    "conv2d": (torch.nn.Conv2d(8, 16, 3, padding=1), (torch.randn(2, 8, 20, 20),)),
    "grouped": (torch.nn.Conv2d(8, 16, 3, groups=4), (torch.randn(1, 8, 20, 20),)),
    "depthwise": (torch.nn.Conv2d(16, 16, 5, groups=16, stride=2), (torch.randn(1, 16, 21, 21),)),
    "transposed": (torch.nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1), (torch.randn(1, 8, 9, 9),)),
    "transposed-grouped": (torch.nn.ConvTranspose2d(8, 6, 3, stride=2, groups=2),
                           (torch.randn(1, 8, 7, 7),)),
    "conv1d": (torch.nn.Conv1d(4, 8, 5, dilation=2), (torch.randn(3, 4, 40),)),
    "conv3d": (torch.nn.Conv3d(2, 4, 3), (torch.randn(1, 2, 6, 7, 8),)),
    "linear": (torch.nn.Linear(32, 48), (torch.randn(3, 7, 32),)),
    "addmm": (Wrap(lambda x, w, b: torch.addmm(b, x, w), torch.randn(16, 24), torch.randn(24)),
              (torch.randn(5, 16),)),
    "mm": (Wrap(lambda x, w: torch.mm(x, w), torch.randn(16, 24)), (torch.randn(5, 16),)),
    "bmm": (Wrap(torch.bmm), (torch.randn(4, 5, 6), torch.randn(4, 6, 7))),
    "matmul-broadcast": (Wrap(torch.matmul), (torch.randn(2, 3, 5, 6), torch.randn(6, 7))),
    "baddbmm": (Wrap(lambda c, a, b: torch.baddbmm(c, a, b)),
                (torch.randn(4, 5, 7), torch.randn(4, 5, 6), torch.randn(4, 6, 7))),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_macs_match_flop_counter(case: str) -> None:
    model, inputs = CASES[case]
    assert total_macs(model, inputs) == flop_counter_macs(model, inputs) > 0


def test_resnet50_matches_flop_counter_and_reference() -> None:
    from chipcut.examples.models import resnet50

    model, inputs = resnet50()
    macs = total_macs(model, inputs)
    assert macs == flop_counter_macs(model, inputs)
    assert macs == pytest.approx(4.09e9, rel=0.005)


def test_reference_conv_225m_macs() -> None:
    conv = torch.nn.Conv2d(100, 100, 3, padding=1, bias=False)
    assert total_macs(conv, (torch.randn(1, 100, 50, 50),)) == 225_000_000


def test_einsum_closed_form() -> None:
    model = Wrap(lambda a, b: torch.einsum("bij,bjk->bik", a, b))
    assert total_macs(model, (torch.randn(3, 4, 5), torch.randn(3, 5, 6))) == 3 * 4 * 5 * 6


@pytest.mark.parametrize("causal", [False, True])
def test_attention_closed_form(causal: bool) -> None:
    b, h, sq, sk, d, dv = 2, 4, 16, 16, 8, 8
    model = Wrap(lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(
        q, k, v, is_causal=causal))
    q, k, v = torch.randn(b, h, sq, d), torch.randn(b, h, sk, d), torch.randn(b, h, sk, dv)
    expected = b * h * sq * sk * (d + dv) // (2 if causal else 1)
    assert total_macs(model, (q, k, v)) == expected


SDPA_VARIANTS = [
    "_scaled_dot_product_attention_math", "_scaled_dot_product_flash_attention_for_cpu",
    "_scaled_dot_product_flash_attention", "_scaled_dot_product_efficient_attention",
    "_scaled_dot_product_cudnn_attention", "scaled_dot_product_attention",
]


@pytest.mark.parametrize("variant", SDPA_VARIANTS)
@pytest.mark.parametrize("causal", [False, True])
def test_every_sdpa_variant(variant: str, causal: bool) -> None:
    """Each ATen attention op, including the CPU ones FlopCounterMode reports as 0."""
    op = getattr(torch.ops.aten, variant).default
    graph = torch.fx.Graph()
    shapes = {"q": (1, 12, 128, 64), "k": (1, 12, 96, 64), "v": (1, 12, 96, 32)}
    args = []
    for name, shape in shapes.items():
        node = graph.placeholder(name)
        node.meta["val"] = torch.empty(shape, device="meta")
        args.append(node)
    kwargs = {"is_causal": causal}
    names = [a.name for a in op._schema.arguments]
    if "attn_bias" in names:
        kwargs.update(attn_bias=None, compute_log_sumexp=False)
    call = graph.call_function(op, tuple(args), kwargs)
    call.meta["val"] = torch.empty(1, 12, 128, 32, device="meta")
    graph.output(call)
    accounting(torch.fx.GraphModule(torch.nn.Module(), graph))
    expected = 12 * 128 * 96 * (64 + 32) // (2 if causal else 1)
    assert get_cost(call).macs == expected


def test_bert_base_closed_form() -> None:
    from chipcut.examples.models import bert_base

    model, inputs = bert_base()
    s, h, ff, layers, heads = 128, 768, 3072, 12, 12
    per_layer = 4 * s * h * h + 2 * s * h * ff + heads * s * s * (h // heads) * 2
    assert total_macs(model, inputs) == layers * per_layer + h * h  # + pooler


def test_bytes_from_shapes_and_dtypes() -> None:
    model = torch.nn.Sequential(torch.nn.Embedding(1000, 64), torch.nn.Linear(64, 32)).eval()
    gm = accounting(capture(model, (torch.zeros(2, 10, dtype=torch.long),)).graph_module)
    costs = {str(n.target).split(".")[1]: get_cost(n) for n in gm.graph.nodes if is_compute(n)}
    assert costs["embedding"].macs == 0
    assert costs["embedding"].weight_bytes == 1000 * 64 * 4
    assert costs["embedding"].out_bytes == 2 * 10 * 64 * 4
    assert costs["linear"].weight_bytes == (64 * 32 + 32) * 4
    assert costs["linear"].in_bytes == 2 * 10 * 64 * 4
    assert costs["linear"].macs == 2 * 10 * 64 * 32
    assert costs["linear"].gemms == ((1, 20, 64, 32),)


def test_unaccounted_op_is_warned_once() -> None:
    model = Wrap(lambda x: torch.cdist(x, x) + torch.cdist(x, x))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        total_macs(model, (torch.randn(5, 3),))
    ours = [w for w in caught if issubclass(w.category, UnaccountedOpsWarning)]
    assert len(ours) == 1
    assert "cdist (x2)" in str(ours[0].message) or "_cdist_forward (x2)" in str(ours[0].message)
