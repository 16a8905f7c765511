"""fold-bn: batch norm folded into conv / linear weights; outputs unchanged."""

from __future__ import annotations

import copy

import torch

import chipcut
from chipcut.passes.fold_bn import FoldBatchNorm


def ops(gm: torch.fx.GraphModule) -> list[str]:
    return [str(n.target) for n in gm.graph.nodes if n.op == "call_function"]


class LinearBN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.bn1 = torch.nn.Linear(16, 32), torch.nn.BatchNorm1d(32)
        self.fc2, self.bn2 = torch.nn.Linear(32, 8, bias=False), torch.nn.BatchNorm1d(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.fc2(torch.relu(self.bn1(self.fc1(x)))))


def randomize_bn(model: torch.nn.Module) -> None:
    """Non-trivial running statistics and affine parameters, so folding has work to do."""
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen))
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=gen))
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen))


def test_linear_batchnorm_folds_and_matches() -> None:
    torch.manual_seed(0)
    model = LinearBN().eval()
    randomize_bn(model)
    x = torch.randn(4, 16)
    gm = chipcut.capture(model, (x,)).graph_module
    assert ops(gm).count("aten.batch_norm.default") == 2
    folded = FoldBatchNorm()(copy.deepcopy(gm))
    assert "aten.batch_norm.default" not in ops(folded)
    assert ops(folded) == ["aten.linear.default", "aten.relu.default", "aten.linear.default"]
    with torch.no_grad():
        torch.testing.assert_close(folded(x)[0], model(x), rtol=0, atol=1e-5)
    # The folded second layer gained a bias (it had none).
    linear = [n for n in folded.graph.nodes if n.target is torch.ops.aten.linear.default][1]
    assert linear.args[2] is not None


def test_resnet50_folds_every_batchnorm_and_matches(resnet50_captured) -> None:
    gm, (x,) = resnet50_captured.graph_module, resnet50_captured.example_inputs
    assert ops(gm).count("aten.batch_norm.default") == 53
    folded = FoldBatchNorm()(copy.deepcopy(gm))
    assert ops(folded).count("aten.batch_norm.default") == 0
    assert ops(folded).count("aten.conv2d.default") == 53
    with torch.no_grad():
        ref, got = gm(x)[0], folded(x)[0]
        # fp32: the fold is exact up to rounding at the outputs' scale.
        assert (got - ref).abs().max().item() <= 1e-5 * ref.abs().max().item()
        # float64: the rewrite is exact.
        g64 = copy.deepcopy(gm).double()
        folded64 = FoldBatchNorm()(copy.deepcopy(g64))
        torch.testing.assert_close(folded64(x.double())[0], g64(x.double())[0], rtol=0, atol=1e-9)
    # Each BN layer's weight and bias (C values each) become one conv bias of C values.
    channels = sum(n.meta["val"].shape[1] for n in gm.graph.nodes
                   if str(n.target) == "aten.batch_norm.default")
    params = sum(p.numel() for p in folded.parameters())
    assert params == sum(p.numel() for p in gm.parameters()) - channels


def test_batchnorm_without_a_foldable_producer_stays() -> None:
    model = torch.nn.Sequential(torch.nn.BatchNorm2d(3), torch.nn.Conv2d(3, 4, 1)).eval()
    gm = FoldBatchNorm()(chipcut.capture(model, (torch.randn(1, 3, 8, 8),)).graph_module)
    assert ops(gm) == ["aten.batch_norm.default", "aten.conv2d.default"]


def test_meta_model_folds_without_weights() -> None:
    with torch.device("meta"):
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8)).eval()
    gm = chipcut.capture(model, (torch.empty(1, 3, 16, 16, device="meta"),)).graph_module
    gm = FoldBatchNorm()(gm)
    assert ops(gm) == ["aten.conv2d.default"]
    assert all(p.is_meta for p in gm.parameters())
