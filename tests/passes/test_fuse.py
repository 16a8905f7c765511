"""fuse: golden groups on small models, the precision and cycle rules, outputs unchanged."""

from __future__ import annotations

import torch

import chipcut
from chipcut.core.ir import get_group, is_compute
from chipcut.passes.fuse import _Groups, fusion_groups, kind
from chipcut.passes.manager import Pipeline


def groups_of(gm: torch.fx.GraphModule) -> list[list[str]]:
    return [[n.name for n in members] for members in fusion_groups(gm)]


def test_residual_cnn_groups_are_exactly_these(residual_cnn) -> None:
    gm = Pipeline.parse("fold-bn").run(chipcut.capture(*residual_cnn).graph_module)
    assert groups_of(gm) == [
        ["conv2d", "relu"],                 # stem conv (BN folded in) + ReLU
        ["conv2d_1", "relu_1"],
        ["conv2d_2", "add", "relu_2"],      # the residual add joins the branch that ends last
        ["conv2d_3"],                       # the projection shortcut
        ["conv2d_4", "relu_3"],
        ["conv2d_5", "add_1", "relu_4"],
        ["linear"],
        ["mean"],                           # a reduction anchors its own group
    ]


class RMSNormMLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up, self.down = torch.nn.Linear(16, 32), torch.nn.Linear(32, 16)
        self.scale = torch.nn.Parameter(torch.ones(16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.pow(2).mean(-1, keepdim=True)  # a chain of element ops into a reduction
        x = x * torch.rsqrt(h + 1e-6) * self.scale
        return self.down(torch.nn.functional.gelu(self.up(x)))


def test_element_chain_fuses_into_the_following_reduction() -> None:
    gm = chipcut.capture(RMSNormMLP(), (torch.randn(2, 16),)).graph_module
    assert groups_of(gm) == [
        ["linear", "gelu"],
        ["linear_1"],
        ["mean", "pow_1", "add", "rsqrt", "mul", "mul_1"],  # export names x.pow(2) pow_1
    ]


def test_never_across_a_precision_change() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3),
                                torch.nn.ReLU()).eval()
    x = torch.randn(1, 3, 16, 16)
    gm = chipcut.capture(model, (x,)).graph_module
    same = Pipeline.parse("quantize{dtype=int8,first_last=int8},fuse").run(gm)
    assert groups_of(same) == [["conv2d", "relu"], ["conv2d_1", "relu_1"]]
    mixed = Pipeline.parse("quantize{dtype=int8,first_last=int8,types=ReLU:fp32},fuse").run(gm)
    assert groups_of(mixed) == [["conv2d"], ["conv2d_1"]]
    assert all(get_group(n) is None or get_group(n).anchor.startswith("conv")
               for n in mixed.graph.nodes if is_compute(n))
    # int4 weights with int8 activations: the ReLU reads and writes int8, no change of dtype
    narrow = Pipeline.parse("quantize{dtype=int4,first_last=int4},fuse").run(gm)
    assert groups_of(narrow) == [["conv2d", "relu"], ["conv2d_1", "relu_1"]]


def test_a_join_that_would_create_a_cycle_is_refused() -> None:
    class Diamond(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            r = torch.relu(self.a(x))
            return r * self.b(r)

    gm = chipcut.capture(Diamond(), (torch.randn(2, 8),)).graph_module
    nodes = {n.name: n for n in gm.graph.nodes}
    groups = _Groups()
    ga = groups.new(nodes["linear"], "anchor")
    groups.add(nodes["relu"], ga)
    groups.new(nodes["linear_1"], "anchor")
    # mul reads linear_1, which depends on group a: joining a would make a -> b -> a.
    assert not groups.can_join(nodes["mul"], ga)
    assert groups.can_join(nodes["mul"], groups.of[nodes["linear_1"]])
    assert groups_of(gm) == [["linear", "relu"], ["linear_1", "mul"]]


def test_kinds() -> None:
    gm = chipcut.capture(RMSNormMLP(), (torch.randn(2, 16),)).graph_module
    kinds = {n.name: kind(n) for n in gm.graph.nodes if is_compute(n)}
    assert kinds["linear"] == "anchor" and kinds["mean"] == "reduction"
    assert kinds["gelu"] == kinds["rsqrt"] == "epilogue"


def test_fusion_changes_units_not_outputs(small_bert) -> None:
    model, inputs = small_bert
    plain = chipcut.compile(model, inputs, chips=2, passes="none", time_limit_s=5)
    fused = chipcut.compile(model, inputs, chips=2, passes="fuse", time_limit_s=5)
    assert fused.model.units < plain.model.units
    assert fused.model.macs == plain.model.macs
    assert fused.fused_groups > 0
    got = fused.split().run_stages(*inputs)
    with torch.no_grad():
        expected = model(*inputs).last_hidden_state
    torch.testing.assert_close(got[0], expected, rtol=0, atol=1e-5)
    # A group is never cut: every member sits on its anchor's chip.
    chip_of = {name: s.chip for s in fused.stages for name in s.nodes}
    for n in fused.graph_module.graph.nodes:
        if get_group(n) is not None:
            assert chip_of[n.name] == chip_of[get_group(n).anchor]
