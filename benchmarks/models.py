"""Benchmark models beyond ``chipcut.examples``: mixture-of-experts and 405B language models on
the meta device, and Inception-v3, DenseNet-201 and a NASNet-A-large-like network in plain
``torch.nn``. Configs only, random weights, nothing downloaded.

Each factory returns ``(module, example_inputs)``, like ``chipcut.examples.models``.

Mixture-of-experts layers use a static-capacity dispatch (:class:`CapacityExperts`) in place
of transformers' data-dependent one, so that they export on the meta device with fixed shapes.
"""

from __future__ import annotations

import math

import torch
from torch import nn

Factory = tuple[nn.Module, tuple]


# --- mixture of experts: static-capacity dispatch --------------------------------------------

class CapacityExperts(nn.Module):
    """The experts of an MoE layer with a fixed capacity per expert: a drop-in for a transformers
    5 experts module (3-D ``gate_up_proj`` (E, 2I, H) and ``down_proj`` (E, H, I)), sharing its
    parameters.

    Every expert processes exactly ``capacity = ceil(capacity_factor x tokens x top_k / E)``
    rows, chosen by top-k routing: of the tokens routed to it, the ``capacity`` with the highest
    routing weight (zero-weight padding when fewer were routed, the lowest-weight ones dropped
    when more were, as Switch/GShard capacity does). All experts run as one batched GEMM per
    projection, so the work is capacity x experts rows; at capacity factor 1.0 that equals the
    routed work, tokens x top_k rows.
    """

    def __init__(self, experts: nn.Module, top_k: int, capacity_factor: float = 1.0) -> None:
        super().__init__()
        self.gate_up_proj = experts.gate_up_proj
        self.down_proj = experts.down_proj
        self.act_fn = experts.act_fn
        self.top_k = top_k
        self.capacity_factor = capacity_factor

    def forward(self, hidden_states: torch.Tensor, top_k_index: torch.Tensor,
                top_k_weights: torch.Tensor) -> torch.Tensor:
        tokens, hidden = hidden_states.shape
        experts = self.gate_up_proj.shape[0]
        capacity = min(tokens, math.ceil(self.capacity_factor * tokens * self.top_k / experts))
        weights = top_k_weights.to(hidden_states.dtype)
        routed = hidden_states.new_zeros(tokens, experts).scatter(1, top_k_index, weights)
        slot_weight, slot_token = routed.t().topk(capacity, dim=1)  # (E, capacity)
        rows = slot_token.reshape(-1)
        x = hidden_states.index_select(0, rows).view(experts, capacity, hidden)
        gate, up = torch.bmm(x, self.gate_up_proj.transpose(1, 2)).chunk(2, dim=-1)
        y = torch.bmm(self.act_fn(gate) * up, self.down_proj.transpose(1, 2))
        y = (y * slot_weight.unsqueeze(-1)).reshape(-1, hidden)
        return torch.zeros_like(hidden_states).index_add(0, rows, y)


def with_capacity_experts(model: nn.Module, top_k: int, capacity_factor: float = 1.0) -> nn.Module:
    """``model`` with every ``mlp.experts`` module replaced by a :class:`CapacityExperts`."""
    for layer in model.model.layers:
        if hasattr(layer.mlp, "experts"):
            layer.mlp.experts = CapacityExperts(layer.mlp.experts, top_k, capacity_factor)
    return model


def _on_meta(build, config, seq: int) -> Factory:
    with torch.device("meta"):
        model = build(config).to(torch.bfloat16).eval()
    return model, (torch.zeros(1, seq, dtype=torch.long, device="meta"),)


def mixtral_8x7b(seq: int = 128, capacity_factor: float = 1.0) -> Factory:
    """Mixtral-8x7B (32 layers, hidden 4096, 8 experts top-2 of intermediate 14336, GQA with 8
    KV heads, vocab 32000) in bf16 on the meta device, static-capacity experts."""
    from transformers import MixtralConfig, MixtralForCausalLM

    config = MixtralConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                           num_attention_heads=32, num_key_value_heads=8, num_local_experts=8,
                           num_experts_per_tok=2, vocab_size=32000, use_cache=False)
    model, inputs = _on_meta(MixtralForCausalLM, config, seq)
    return with_capacity_experts(model, 2, capacity_factor), inputs


def deepseek_moe_16b(seq: int = 128, capacity_factor: float = 1.0) -> Factory:
    """A DeepSeek-MoE-16B-like model in bf16 on the meta device: 28 layers, hidden 2048, 16
    heads, the first layer a dense MLP (intermediate 10944), the others 64 routed experts top-6
    (intermediate 1408) plus 2 shared experts, vocab 102400.

    Built on transformers' Qwen2-MoE, which has DeepSeek-MoE's shape: standard attention, a
    dense first layer (``mlp_only_layers``), routed experts plus a shared expert. The two shared
    experts are its one shared MLP of twice the width (2 x 1408), the same weights and MACs;
    Qwen2-MoE adds a sigmoid gate on the shared expert (one 2048 x 1 projection per layer).
    """
    from transformers import Qwen2MoeConfig, Qwen2MoeForCausalLM

    config = Qwen2MoeConfig(hidden_size=2048, intermediate_size=10944, num_hidden_layers=28,
                            num_attention_heads=16, num_key_value_heads=16, num_experts=64,
                            num_experts_per_tok=6, moe_intermediate_size=1408,
                            shared_expert_intermediate_size=2 * 1408, mlp_only_layers=[0],
                            norm_topk_prob=False, qkv_bias=False, vocab_size=102400,
                            use_cache=False)
    model, inputs = _on_meta(Qwen2MoeForCausalLM, config, seq)
    return with_capacity_experts(model, 6, capacity_factor), inputs


def llama3_405b(seq: int = 128) -> Factory:
    """LLaMA-3-405B (126 layers, hidden 16384, 128 heads, 8 KV heads, intermediate 53248, vocab
    128256) in bf16 on the meta device."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=16384, intermediate_size=53248, num_hidden_layers=126,
                         num_attention_heads=128, num_key_value_heads=8, vocab_size=128256,
                         rope_theta=500000.0, use_cache=False)
    return _on_meta(LlamaForCausalLM, config, seq)


# --- Inception-v3 ------------------------------------------------------------------------------

def conv_bn(cin: int, cout: int, kernel, stride=1, padding=0) -> nn.Sequential:
    """Conv (no bias) + BatchNorm + ReLU, Inception's BasicConv2d."""
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding, bias=False),
                         nn.BatchNorm2d(cout, eps=0.001), nn.ReLU(inplace=True))


class Branches(nn.Module):
    """Parallel branches over one input, concatenated on channels."""

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.branches], 1)


def _seq(*mods: nn.Module) -> nn.Sequential:
    return nn.Sequential(*mods)


def _pool_proj(cin: int, cout: int) -> nn.Sequential:
    return _seq(nn.AvgPool2d(3, 1, 1), conv_bn(cin, cout, 1))


def inception_a(cin: int, pool: int) -> Branches:
    return Branches(conv_bn(cin, 64, 1),
                    _seq(conv_bn(cin, 48, 1), conv_bn(48, 64, 5, padding=2)),
                    _seq(conv_bn(cin, 64, 1), conv_bn(64, 96, 3, padding=1),
                         conv_bn(96, 96, 3, padding=1)),
                    _pool_proj(cin, pool))


def inception_b(cin: int) -> Branches:
    return Branches(conv_bn(cin, 384, 3, 2),
                    _seq(conv_bn(cin, 64, 1), conv_bn(64, 96, 3, padding=1), conv_bn(96, 96, 3, 2)),
                    nn.MaxPool2d(3, 2))


def _c17(cin: int, cout: int) -> nn.Sequential:
    return conv_bn(cin, cout, (1, 7), padding=(0, 3))


def _c71(cin: int, cout: int) -> nn.Sequential:
    return conv_bn(cin, cout, (7, 1), padding=(3, 0))


def inception_c(cin: int, c7: int) -> Branches:
    return Branches(conv_bn(cin, 192, 1),
                    _seq(conv_bn(cin, c7, 1), _c17(c7, c7), _c71(c7, 192)),
                    _seq(conv_bn(cin, c7, 1), _c71(c7, c7), _c17(c7, c7), _c71(c7, c7),
                         _c17(c7, 192)),
                    _pool_proj(cin, 192))


def inception_d(cin: int) -> Branches:
    return Branches(_seq(conv_bn(cin, 192, 1), conv_bn(192, 320, 3, 2)),
                    _seq(conv_bn(cin, 192, 1), _c17(192, 192), _c71(192, 192),
                         conv_bn(192, 192, 3, 2)),
                    nn.MaxPool2d(3, 2))


def _split_13_31(cin: int) -> Branches:
    return Branches(conv_bn(cin, 384, (1, 3), padding=(0, 1)),
                    conv_bn(cin, 384, (3, 1), padding=(1, 0)))


def inception_e(cin: int) -> Branches:
    return Branches(conv_bn(cin, 320, 1),
                    _seq(conv_bn(cin, 384, 1), _split_13_31(384)),
                    _seq(conv_bn(cin, 448, 1), conv_bn(448, 384, 3, padding=1), _split_13_31(384)),
                    _pool_proj(cin, 192))


def _classifier(features: int, classes: int = 1000) -> nn.Sequential:
    return _seq(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(features, classes))


def inception_v3(batch: int = 1) -> Factory:
    """Inception-v3 at 299 x 299 (the torchvision layout, without the auxiliary head): stem,
    3 x InceptionA, B, 4 x C, D, 2 x E, classifier."""
    torch.manual_seed(0)
    model = _seq(
        conv_bn(3, 32, 3, 2), conv_bn(32, 32, 3), conv_bn(32, 64, 3, padding=1), nn.MaxPool2d(3, 2),
        conv_bn(64, 80, 1), conv_bn(80, 192, 3), nn.MaxPool2d(3, 2),
        inception_a(192, 32), inception_a(256, 64), inception_a(288, 64), inception_b(288),
        inception_c(768, 128), inception_c(768, 160), inception_c(768, 160), inception_c(768, 192),
        inception_d(768), inception_e(1280), inception_e(2048), _classifier(2048))
    return model.eval(), (torch.randn(batch, 3, 299, 299),)


# --- DenseNet-201 ------------------------------------------------------------------------------

class DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv (4 x growth) then BN-ReLU-3x3 conv (growth), on all earlier features."""

    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.body = _seq(nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
                         nn.Conv2d(cin, 4 * growth, 1, bias=False), nn.BatchNorm2d(4 * growth),
                         nn.ReLU(inplace=True), nn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.body(torch.cat(features, 1))


class DenseBlock(nn.Module):
    def __init__(self, layers: int, cin: int, growth: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DenseLayer(cin + i * growth, growth) for i in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(features))
        return torch.cat(features, 1)


def densenet201(batch: int = 1, growth: int = 32, blocks=(6, 12, 48, 32)) -> Factory:
    """DenseNet-201 at 224 x 224: growth 32, blocks (6, 12, 48, 32), compression 0.5."""
    torch.manual_seed(0)
    width = 2 * growth
    mods: list[nn.Module] = [nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width),
                             nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
    for i, layers in enumerate(blocks):
        mods.append(DenseBlock(layers, width, growth))
        width += layers * growth
        if i < len(blocks) - 1:
            mods += [nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                     nn.Conv2d(width, width // 2, 1, bias=False), nn.AvgPool2d(2, 2)]
            width //= 2
    mods += [nn.BatchNorm2d(width), nn.ReLU(inplace=True), _classifier(width)]
    return _seq(*mods).eval(), (torch.randn(batch, 3, 224, 224),)


# --- NASNet-A-large-like -----------------------------------------------------------------------

def sep_conv(c: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """NASNet's separable conv: (ReLU, depthwise k x k, pointwise 1x1, BN) twice, the first with
    the stride."""
    def once(s: int) -> list[nn.Module]:
        return [nn.ReLU(), nn.Conv2d(c, c, kernel, s, kernel // 2, groups=c, bias=False),
                nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c, eps=0.001)]
    return _seq(*once(stride), *once(1))


def relu_conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return _seq(nn.ReLU(), nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout, eps=0.001))


class NormalCell(nn.Module):
    """NASNet-A normal cell: five pairs of branches over the last two cell outputs (separable
    3x3/5x5 convs, 3x3 average pools, identities), each pair summed; the previous input and
    the five sums concatenated (6 x filters channels)."""

    def __init__(self, c_prev: int, c: int, filters: int, reduce_prev: bool) -> None:
        super().__init__()
        self.prev = relu_conv_bn(c_prev, filters, 2 if reduce_prev else 1)
        self.cur = relu_conv_bn(c, filters)
        self.sep = nn.ModuleList([sep_conv(filters, 3), sep_conv(filters, 3), sep_conv(filters, 5),
                                  sep_conv(filters, 5), sep_conv(filters, 3)])
        self.pool = nn.AvgPool2d(3, 1, 1, count_include_pad=False)

    def forward(self, prev: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
        p, h = self.prev(prev), self.cur(cur)
        s = self.sep
        sums = [s[0](h) + h, s[1](p) + s[2](h), self.pool(h) + p,
                self.pool(p) + self.pool(p), s[3](p) + s[4](p)]
        return torch.cat([p, *sums], 1)


class ReductionCell(nn.Module):
    """NASNet-A reduction cell: separable 5x5/7x7 convs and 3x3 pools at stride 2, halving the
    resolution; four sums concatenated (4 x filters channels)."""

    def __init__(self, c_prev: int, c: int, filters: int, reduce_prev: bool) -> None:
        super().__init__()
        self.prev = relu_conv_bn(c_prev, filters, 2 if reduce_prev else 1)
        self.cur = relu_conv_bn(c, filters)
        self.sep = nn.ModuleList([sep_conv(filters, 5, 2), sep_conv(filters, 7, 2),
                                  sep_conv(filters, 7, 2), sep_conv(filters, 5, 2),
                                  sep_conv(filters, 3)])
        self.max = nn.MaxPool2d(3, 2, 1)
        self.avg = nn.AvgPool2d(3, 2, 1, count_include_pad=False)
        self.avg1 = nn.AvgPool2d(3, 1, 1, count_include_pad=False)

    def forward(self, prev: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
        p, h = self.prev(prev), self.cur(cur)
        s = self.sep
        c1 = s[0](h) + s[1](p)
        c2 = self.max(h) + s[2](p)
        c3 = self.avg(h) + s[3](p)
        c4 = self.max(h) + s[4](c1)
        c5 = self.avg1(c1) + c2
        return torch.cat([c2, c3, c4, c5], 1)


class NASNetLike(nn.Module):
    """Stem conv, two stem reduction cells, then ``repeats`` normal cells, a reduction cell,
    ``repeats`` normal cells, a reduction cell, ``repeats`` normal cells, classifier."""

    def __init__(self, filters: int = 168, repeats: int = 6, stem: int = 96) -> None:
        super().__init__()
        self.stem = _seq(nn.Conv2d(3, stem, 3, 2, bias=False), nn.BatchNorm2d(stem, eps=0.001))
        cells: list[nn.Module] = []
        # (channels two cells back, channels of the last cell, whether the last one reduced)
        prev, cur, reduced = stem, stem, False
        plan = [("R", filters // 4), ("R", filters // 2)]
        for stage in range(3):
            if stage:
                plan.append(("R", filters * 2 ** stage))
            plan += [("N", filters * 2 ** stage)] * repeats
        for kind, f in plan:
            cell = (ReductionCell if kind == "R" else NormalCell)(prev, cur, f, reduced)
            cells.append(cell)
            prev, cur, reduced = cur, (4 if kind == "R" else 6) * f, kind == "R"
        self.cells = nn.ModuleList(cells)
        self.head = _seq(nn.ReLU(), _classifier(cur))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        prev = cur = self.stem(x)
        for cell in self.cells:
            prev, cur = cur, cell(prev, cur)
        return self.head(cur)


def nasnet_large_like(batch: int = 1, size: int = 331) -> Factory:
    """A NASNet-A-large-like network at size x size: 18 normal cells of 5 parallel branch pairs
    (filters 168, 336, 672) with 4 reduction cells, about 4032 channels at the end."""
    torch.manual_seed(0)
    return NASNetLike().eval(), (torch.randn(batch, 3, size, size),)
