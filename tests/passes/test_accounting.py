"""Accounting: MACs against FlopCounterMode (FLOPs / 2) and closed forms; bytes from shapes."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import chipcut
from chipcut.compiler.capture import capture
from chipcut.core.ir import get_cost, is_compute, node_value
from chipcut.passes import accounting as accounting_module
from chipcut.passes.accounting import UnaccountedOpsWarning, accounting, node_work, op_name


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


def resnet50_macs(size: int = 224) -> int:
    """ResNet-50 (v1.5: stride in the 3x3 conv) MACs by hand: a 7x7 stride-2 stem and a
    stride-2 pool, then bottlenecks of 1x1 in, 3x3, 1x1 out, a 1x1 projection opening each
    stage; no classifier head (ResNetModel)."""
    macs = (size // 2) ** 2 * 64 * 3 * 7 * 7
    side, c_in = size // 4, 64
    for stage, (c_out, depth) in enumerate(((256, 3), (512, 4), (1024, 6), (2048, 3))):
        mid = c_out // 4
        for block in range(depth):
            out = side // 2 if stage > 0 and block == 0 else side
            macs += side * side * c_in * mid + out * out * mid * (9 * mid + c_out)
            if block == 0:
                macs += out * out * c_in * c_out
            side, c_in = out, c_out
    return macs


def test_resnet50_matches_flop_counter_and_closed_form(resnet50_captured) -> None:
    gm = accounting(copy.deepcopy(resnet50_captured.graph_module))  # accounting writes node.meta
    macs = sum(get_cost(n).macs for n in gm.graph.nodes if is_compute(n))
    assert macs == flop_counter_macs(resnet50_captured.graph_module, resnet50_captured.example_inputs)
    # Exact: ResNetModel has no classifier, 2.048 M MACs short of the usual 4.09 G.
    assert macs == resnet50_macs() == 4_087_136_256


def test_reference_conv_225m_macs() -> None:
    conv = torch.nn.Conv2d(100, 100, 3, padding=1, bias=False)
    assert total_macs(conv, (torch.randn(1, 100, 50, 50),)) == 225_000_000


def test_einsum_closed_form() -> None:
    model = Wrap(lambda a, b: torch.einsum("bij,bjk->bik", a, b))
    assert total_macs(model, (torch.randn(3, 4, 5), torch.randn(3, 5, 6))) == 3 * 4 * 5 * 6


@pytest.mark.parametrize("equation, shapes", [
    ("ij,jk,kl->il", [(8, 16), (16, 4), (4, 32)]),
    ("ij,jk,kl->il", [(8, 4), (4, 16), (16, 32)]),
    ("bij,bjk,bkl->bil", [(2, 8, 16), (2, 16, 4), (2, 4, 8)]),
    ("ij,jk,kl,lm", [(4, 8), (8, 16), (16, 2), (2, 8)]),
])
def test_einsum_of_three_or_more_operands_counts_the_pairwise_contractions(equation,
                                                                            shapes) -> None:
    model = Wrap(lambda *ts: torch.einsum(equation, *ts))
    inputs = tuple(torch.randn(s) for s in shapes)
    assert total_macs(model, inputs) == flop_counter_macs(model, inputs) > 0


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


def refuse_export(*args, **kwargs):
    """Stands in for torch.export.export, so capture takes the symbolic_trace fallback."""
    raise RuntimeError("export refused")


def compute_nodes(model: torch.nn.Module, inputs: tuple, method: str) -> list[torch.fx.Node]:
    cap = capture(model, inputs)
    assert cap.method == method
    gm = accounting(cap.graph_module)
    return [n for n in gm.graph.nodes if is_compute(n)]


nn = torch.nn
IMAGE, SEQUENCE, FEATURES = (1, 4, 8, 8), (2, 4, 12), (3, 4)
# One module of each kind MODULE_OPS names, and the input it takes.
MODULES = [
    (nn.Conv1d(4, 6, 3), SEQUENCE), (nn.Conv2d(4, 6, 3, groups=2), IMAGE),
    (nn.Conv3d(4, 2, 3), (1, 4, 5, 5, 5)), (nn.ConvTranspose1d(4, 2, 3), SEQUENCE),
    (nn.ConvTranspose2d(4, 2, 3, stride=2), IMAGE), (nn.Linear(4, 5), FEATURES),
    (nn.BatchNorm1d(4), FEATURES), (nn.BatchNorm2d(4), IMAGE), (nn.LayerNorm(4), FEATURES),
    (nn.GroupNorm(2, 4), IMAGE), (nn.RMSNorm(4), FEATURES), (nn.InstanceNorm2d(4), IMAGE),
    (nn.ReLU(), FEATURES), (nn.ReLU6(), FEATURES), (nn.GELU(), FEATURES), (nn.SiLU(), FEATURES),
    (nn.Sigmoid(), FEATURES), (nn.Tanh(), FEATURES), (nn.Hardswish(), FEATURES),
    (nn.LeakyReLU(), FEATURES), (nn.PReLU(), FEATURES), (nn.Softmax(-1), FEATURES),
    (nn.LogSoftmax(-1), FEATURES), (nn.Dropout(), FEATURES), (nn.Dropout2d(), IMAGE),
    (nn.Flatten(), IMAGE), (nn.MaxPool1d(2), SEQUENCE), (nn.MaxPool2d(2), IMAGE),
    (nn.AvgPool2d(2), IMAGE), (nn.AdaptiveAvgPool2d(1), IMAGE), (nn.AdaptiveMaxPool2d(1), IMAGE),
    (nn.Upsample(scale_factor=2), IMAGE), (nn.Upsample(scale_factor=2, mode="bilinear"), IMAGE),
    (nn.PixelShuffle(2), IMAGE), (nn.ZeroPad2d(1), IMAGE), (nn.ReflectionPad2d(1), IMAGE),
    (nn.Embedding(10, 4), (2, 3)),
]


@pytest.mark.parametrize("module, shape", MODULES, ids=lambda m: type(m).__name__)
def test_module_call_is_named_and_costed_as_export_does(module, shape, monkeypatch) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(module).eval()  # a module below the root stays one call_module node
    inputs = (torch.zeros(shape, dtype=torch.long) if isinstance(module, nn.Embedding)
              else torch.randn(shape),)
    exported = compute_nodes(model, inputs, "export")[0]
    monkeypatch.setattr(torch.export, "export", refuse_export)
    called = compute_nodes(model, inputs, "symbolic_trace")[0]
    assert called.op == "call_module"
    assert op_name(called) == op_name(exported)
    assert node_work(called) == node_work(exported)
    if isinstance(node_value(exported), torch.Tensor):  # not (values, indices) of a max pool
        assert get_cost(called) == get_cost(exported)


class Functional(torch.nn.Module):
    """``fn(x, weight, bias)`` with its own parameters: the fallback records torch functions."""

    def __init__(self, fn, weight: tuple[int, ...], bias: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.fn = fn
        self.weight = torch.nn.Parameter(torch.randn(weight))
        self.bias = torch.nn.Parameter(torch.randn(bias)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x, self.weight, self.bias)


class Baddbmm(torch.nn.Module):
    def forward(self, c: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(c, a, b)


F = torch.nn.functional
FALLBACK_CASES = {
    "conv2d-grouped": (Functional(lambda x, w, b: F.conv2d(x, w, None, 1, 1, 1, 2), (8, 2, 3, 3)),
                       (torch.randn(1, 4, 9, 9),)),
    "conv2d-keywords": (Functional(lambda x, w, b: F.conv2d(x, w, groups=4, stride=2),
                                   (8, 1, 3, 3)), (torch.randn(1, 4, 9, 9),)),
    "conv1d": (Functional(lambda x, w, b: F.conv1d(x, w, b), (6, 3, 5), (6,)),
               (torch.randn(2, 3, 20),)),
    "conv-transpose2d": (Functional(lambda x, w, b: F.conv_transpose2d(x, w, None, 2, 1, 0, 2),
                                    (4, 3, 4, 4)), (torch.randn(1, 4, 5, 5),)),
    "addmm": (Functional(lambda x, w, b: torch.addmm(b, x, w), (16, 24), (24,)),
              (torch.randn(5, 16),)),
    "baddbmm": (Baddbmm(), (torch.randn(4, 5, 7), torch.randn(4, 5, 6), torch.randn(4, 6, 7))),
    "modules": (torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, groups=1), torch.nn.ReLU(),
                                    torch.nn.ConvTranspose2d(8, 4, 3, stride=2, groups=2),
                                    torch.nn.Flatten(), torch.nn.Linear(4 * 13 * 13, 10)),
                (torch.randn(2, 3, 8, 8),)),
}


@pytest.mark.parametrize("case", sorted(FALLBACK_CASES))
def test_fallback_macs_match_flop_counter(case: str, monkeypatch) -> None:
    model, inputs = FALLBACK_CASES[case]
    expected = flop_counter_macs(model, inputs)
    exported = sum(get_cost(n).macs for n in compute_nodes(model, inputs, "export"))
    monkeypatch.setattr(torch.export, "export", refuse_export)
    traced = sum(get_cost(n).macs for n in compute_nodes(model, inputs, "symbolic_trace"))
    assert traced == exported == expected > 0


def test_fallback_names_interpolate_by_its_aten_op(monkeypatch) -> None:
    class Resample(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (F.interpolate(x, scale_factor=2, mode="bilinear")
                    + F.interpolate(x, scale_factor=2)
                    + F.interpolate(x, size=(4, 4), mode="area").mean())

    inputs = (torch.randn(1, 2, 4, 4),)
    exported = [op_name(n) for n in compute_nodes(Resample(), inputs, "export")]
    monkeypatch.setattr(torch.export, "export", refuse_export)
    traced = [op_name(n) for n in compute_nodes(Resample(), inputs, "symbolic_trace")]
    assert traced == exported
    assert exported[:2] == ["upsample_bilinear2d", "upsample_nearest2d"]


def _tag_family(op: torch._ops.OpOverload) -> str:
    if torch.Tag.pointwise in op.tags:
        return "pointwise"
    if op.is_view:
        return "layout"
    return "reduction" if torch.Tag.reduction in op.tags else "none"


@pytest.mark.parametrize("family, table", [
    ("pointwise", accounting_module.POINTWISE_OPS), ("layout", accounting_module.LAYOUT_OPS),
    ("reduction", accounting_module.REDUCTION_OPS),
])
def test_explicit_op_tables_hold_only_aten_ops_the_tags_miss(family: str, table: set[str]) -> None:
    for name in sorted(table - {"getitem"}):  # getitem is Python's (a pick from a tuple)
        packet = getattr(torch.ops.aten, name, None)
        assert isinstance(packet, torch._ops.OpOverloadPacket), f"{name} is not an ATen op"
        overloads = [getattr(packet, o) for o in packet.overloads()]
        assert any(_tag_family(op) != family for op in overloads), f"tags already cover {name}"
        assert {accounting_module.overload_family(op) for op in overloads} == {family}, name


# --- causal attention: the same count however the mask is spelled ---------------------------

BATCH, HEADS, SEQ, DIM = 2, 4, 16, 8
FULL = BATCH * HEADS * SEQ * SEQ * 2 * DIM  # B H Sq Sk (Dqk + Dv)


class MaskedAttention(nn.Module):
    """One attention call whose mask is spelled as ``spelling`` says."""

    def __init__(self, spelling: str) -> None:
        super().__init__()
        self.spelling = spelling
        self.register_buffer("causal", torch.ones(SEQ, SEQ, dtype=torch.bool).tril())

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                padding: torch.Tensor | None = None) -> torch.Tensor:
        s, n = self.spelling, SEQ
        if s == "is_causal":
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        masks = {
            "none": lambda: None,
            "ones-tril": lambda: torch.ones(n, n, dtype=torch.bool, device=q.device).tril(),
            "arange": lambda: torch.arange(n)[:, None] >= torch.arange(n)[None, :],
            "buffer": lambda: self.causal[:n, :n],
            "additive-triu": lambda: torch.full((n, n), float("-inf")).triu(1),
            "padding-and-tril": lambda: padding & torch.ones(n, n, dtype=torch.bool).tril(),
            "upper": lambda: torch.ones(n, n, dtype=torch.bool).triu(),
            "input": lambda: padding,
        }
        return F.scaled_dot_product_attention(q, k, v, attn_mask=masks[s]())


def attention_macs(spelling: str) -> int:
    q = torch.randn(BATCH, HEADS, SEQ, DIM)
    given = spelling in ("input", "padding-and-tril")
    padding = (torch.ones(BATCH, 1, 1, SEQ, dtype=torch.bool),) if given else ()
    gm = accounting(capture(MaskedAttention(spelling), (q, q, q, *padding)).graph_module)
    assert accounting_module.unaccounted(gm) == ()
    return sum(get_cost(n).macs for n in gm.graph.nodes if is_compute(n))


CAUSAL_SPELLINGS = ["is_causal", "ones-tril", "arange", "buffer", "additive-triu",
                    "padding-and-tril"]


@pytest.mark.parametrize("method", ["export", "symbolic_trace"])
@pytest.mark.parametrize("spelling", CAUSAL_SPELLINGS)
def test_causal_mask_counts_as_is_causal(spelling: str, method: str, monkeypatch) -> None:
    """is_causal=True and a lower-triangular mask (built from constants, or such a mask ANDed
    with a padding mask from the inputs) are one computation: half the score matrix."""
    if method == "symbolic_trace":
        monkeypatch.setattr(torch.export, "export", refuse_export)
    assert attention_macs(spelling) == FULL // 2


@pytest.mark.parametrize("spelling", ["none", "upper", "input"])
def test_other_masks_count_in_full(spelling: str) -> None:
    """No mask, a mask above the diagonal, or one only the inputs decide: the full matrix."""
    assert attention_macs(spelling) == FULL


@pytest.mark.parametrize("padding", [False, True])
def test_gpt2_attention_is_causal_by_formula(padding: bool) -> None:
    """HF GPT-2 passes an explicit causal mask (ANDed with attention_mask when one is given):
    attention counts B H Sq Sk (Dqk + Dv) / 2, the rest of a block 12 T E^2."""
    from transformers import GPT2Config, GPT2Model

    layers, embed, heads, batch, seq = 2, 64, 4, 2, 16
    config = GPT2Config(n_embd=embed, n_layer=layers, n_head=heads, vocab_size=100,
                        n_positions=64, use_cache=False, bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    ids = torch.randint(0, 100, (batch, seq))
    inputs = (ids, None, torch.ones(batch, seq, dtype=torch.long)) if padding else (ids,)
    gm = accounting(capture(GPT2Model(config).eval(), inputs).graph_module)
    costs = [(str(n.target), get_cost(n).macs) for n in gm.graph.nodes if is_compute(n)]
    attention = sum(m for target, m in costs if "scaled_dot_product" in target)
    per_layer = batch * heads * seq * seq * (2 * embed // heads) // 2
    assert attention == layers * per_layer
    assert sum(m for _, m in costs) == layers * (12 * batch * seq * embed * embed + per_layer)


# --- higher-order ops: the bodies of cond, map, scan and while_loop are counted ---------------

class Branches(nn.Module):
    """torch.cond between a two-layer branch (4 x 16 -> 32 -> 16: 4,096 MACs) and a one-layer
    branch (4 x 16 -> 16: 1,024 MACs); ``big_first`` says which is the true branch."""

    def __init__(self, big_first: bool) -> None:
        super().__init__()
        self.big_first = big_first
        self.up, self.down, self.one = nn.Linear(16, 32), nn.Linear(32, 16), nn.Linear(16, 16)

    def big(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(torch.relu(self.up(x)))

    def small(self, x: torch.Tensor) -> torch.Tensor:
        return self.one(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = (self.big, self.small) if self.big_first else (self.small, self.big)
        return torch.cond(x.sum() > 0, *branches, (x,))


class Method(nn.Module):
    """One method of a module as a module, to run a branch alone under FlopCounterMode."""

    def __init__(self, method) -> None:
        super().__init__()
        self.method = method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.method(x)


@pytest.mark.parametrize("big_first", [True, False])
def test_cond_costs_its_costlier_branch(big_first: bool) -> None:
    """Whichever branch is the true one, cond counts the costlier. The reference runs each
    branch alone under FlopCounterMode (not the cond eagerly: that leaves torch's compiler
    state such that later exports of a cond fail)."""
    model, x = Branches(big_first).eval(), torch.ones(4, 16)
    gm = accounting(capture(model, (x,)).graph_module)
    cond = next(n for n in gm.graph.nodes if op_name(n) == "cond")
    big, small = (flop_counter_macs(Method(f), (x,)) for f in (model.big, model.small))
    assert get_cost(cond).macs == big == 4 * 16 * 32 + 4 * 32 * 16 > small
    assert sum(b * m * k * n for b, m, k, n in get_cost(cond).gemms) == big
    # The branches' own nodes are annotated too.
    branches = [sum(get_cost(n).macs for n in body.graph.nodes if is_compute(n))
                for body in accounting_module.subgraphs(cond)]
    assert sorted(branches) == [small, big]


class Mapped(nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind, self.layer = kind, nn.Linear(16, 16)

    def forward(self, a: torch.Tensor, b: torch.Tensor):
        from torch._higher_order_ops.map import map as hop_map
        from torch._higher_order_ops.scan import scan
        from torch._higher_order_ops.while_loop import while_loop

        if self.kind == "map":  # a: 3 slices of 4 x 16
            return hop_map(lambda x, y: self.layer(x) + y, a, b)
        if self.kind == "scan":  # b: 3 steps of 4 x 16, a the carry
            return scan(lambda c, x: (self.layer(c) + x, c.clone()), a, b)
        # while_loop: a counts to 3; one iteration is one layer
        return while_loop(lambda i, x: i < 3, lambda i, x: (i + 1, self.layer(x)), (a, b))


@pytest.mark.parametrize("kind", ["map", "scan", "while_loop"])
def test_loops_count_their_body(kind: str) -> None:
    """map and scan: the body times the length, 3; while_loop: one iteration, a lower bound
    (it runs 3). FlopCounterMode counts nothing inside these ops eagerly, so the reference is
    the body's layer under FlopCounterMode, times the length."""
    torch.manual_seed(0)
    model = Mapped(kind).eval()
    steps, row = torch.randn(3, 4, 16), torch.randn(4, 16)
    inputs = {"map": (steps, row), "scan": (row, steps), "while_loop": (torch.tensor(0), row)}[kind]
    gm = accounting(capture(model, inputs).graph_module)
    loop = next(n for n in gm.graph.nodes if accounting_module.subgraphs(n))
    body = flop_counter_macs(model.layer, (torch.randn(4, 16),))
    assert get_cost(loop).macs == body * (1 if kind == "while_loop" else 3) > 0
    assert sum(b * m * k * n for b, m, k, n in get_cost(loop).gemms) == get_cost(loop).macs


# --- unaccounted ops: listed in the plan and its report -------------------------------------

@torch.library.custom_op("chipcut_tests::smear", mutates_args=())
def smear(x: torch.Tensor) -> torch.Tensor:
    """An op no rule knows."""
    return x.cumsum(-1) / x.shape[-1]


@smear.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


class Smeared(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(smear(smear(self.a(x)).relu()))


def test_plan_lists_unaccounted_ops() -> None:
    import chipcut
    from chipcut.compiler.plan.model import Plan

    with pytest.warns(UnaccountedOpsWarning, match=r"smear \(x2\)"):
        plan = chipcut.compile(Smeared().eval(), (torch.randn(2, 8),), chips=2, time_limit_s=5)
    assert plan.model.unaccounted == (("smear", 2),)
    assert Plan.from_json(plan.to_json()).model.unaccounted == (("smear", 2),)
    line = next(li for li in chipcut.report(plan).splitlines() if li.startswith("unaccounted"))
    nodes = plan.model.nodes
    assert line.startswith(f"unaccounted ops: smear x2 (2 of {nodes} nodes, {200 / nodes:.1f}%)")
    assert "register_macs" in line


def test_known_model_lists_nothing(residual_cnn) -> None:
    import chipcut

    model, inputs = residual_cnn
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnaccountedOpsWarning)
        plan = chipcut.compile(model, inputs, chips=2, time_limit_s=5)
    assert plan.model.unaccounted == ()
    assert "unaccounted" not in chipcut.report(plan)


class _Bags(torch.nn.Module):
    """Two bag lookups: bags of a fixed size (2-D ids), and bags given by offsets (1-D ids)."""

    def __init__(self) -> None:
        super().__init__()
        self.fixed = torch.nn.EmbeddingBag(1000, 16, mode="sum")
        self.table = torch.nn.Parameter(torch.randn(300, 8))

    def forward(self, ids: torch.Tensor, flat: torch.Tensor, offsets: torch.Tensor):
        return self.fixed(ids), torch.nn.functional.embedding_bag(flat, self.table, offsets)


def test_a_bag_reads_every_row_it_gathers_and_adds_them() -> None:
    ids, flat = torch.randint(0, 1000, (4, 50)), torch.randint(0, 300, (30,))
    gm = chipcut.lower(_Bags().eval(), (ids, flat, torch.tensor([0, 10, 25])), chips=1,
                       options=chipcut.CompileOptions(passes="none")).graph_module
    costs = [get_cost(n) for n in gm.graph.nodes
             if n.op == "call_function" and "embedding_bag" in str(n.target)]
    assert [(c.weight_read_bytes, c.elem_ops, c.weight_bytes) for c in costs] == [
        (200 * 16 * 4, 200 * 16, 1000 * 16 * 4), (30 * 8 * 4, 30 * 8, 300 * 8 * 4)]
