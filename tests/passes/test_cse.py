"""cse: repeated computations of one value merged; outputs, MACs and splits unchanged."""

from __future__ import annotations

import pytest
import torch

import chipcut
from chipcut.core.errors import ChipcutError
from chipcut.passes.cse import CommonSubexpressions
from tests.compiler.test_split import FREE_LINK


class Branches(torch.nn.Module):
    """A NASNet-like cell: three branches each apply ReLU to the same input, then a conv."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.branches = torch.nn.ModuleList(torch.nn.Conv2d(8, 8, 3, padding=1) for _ in range(3))
        self.head = torch.nn.Conv2d(24, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        return self.head(torch.cat([conv(torch.relu(h)) for conv in self.branches], dim=1))


def _relus(gm: torch.fx.GraphModule) -> int:
    return sum(1 for n in gm.graph.nodes if n.op == "call_function" and "relu" in str(n.target))


def test_the_branches_share_one_relu_and_compute_the_same() -> None:
    torch.manual_seed(0)
    model, x = Branches().eval(), torch.randn(1, 3, 16, 16)
    captured = chipcut.capture(model, (x,))
    assert _relus(captured.graph_module) == 3
    merged = CommonSubexpressions()(captured.graph_module)
    assert _relus(merged) == 1
    with torch.no_grad():
        assert torch.equal(merged(x)[0], model(x))


def test_a_graph_without_repeats_is_left_as_it_is() -> None:
    captured = chipcut.capture(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU()).eval(),
                               (torch.randn(2, 4),))
    assert CommonSubexpressions()(captured.graph_module) is captured.graph_module


def test_a_plan_with_cse_writes_fewer_bytes_and_splits_exactly() -> None:
    # The stem's unit writes its ReLU'd output once instead of three times; the MACs are the
    # same (ReLU does none), and the split stages reproduce the model.
    torch.manual_seed(0)
    model, inputs = Branches().eval(), (torch.randn(1, 3, 16, 16),)
    plain = chipcut.compile(model, inputs, chips=2, time_limit_s=5, backend=FREE_LINK,
                            passes="fold-bn,quantize,fuse")
    merged = chipcut.compile(model, inputs, chips=2, time_limit_s=5, backend=FREE_LINK,
                             passes="cse,fold-bn,quantize,fuse")
    assert merged.passes.startswith("cse,")
    assert merged.model.macs == plain.model.macs
    assert merged.model.nodes == plain.model.nodes - 2
    written = [sum(w.out_bytes for w in chipcut.lower(model, inputs, options=chipcut.CompileOptions(
        passes=passes)).works) for passes in ("fold-bn,quantize,fuse", "cse,fold-bn,quantize,fuse")]
    stem_out = 8 * 16 * 16 * 4
    assert written[0] - written[1] == 2 * stem_out
    with torch.no_grad():
        expected = model(*inputs)
    got = merged.split().run_stages(*inputs)
    assert (got[0] - expected).abs().max().item() <= 1e-5


def test_cse_runs_first() -> None:
    with pytest.raises(ChipcutError, match="cse must come before fold-bn"):
        chipcut.compile(Branches().eval(), (torch.randn(1, 3, 8, 8),), passes="fold-bn,cse")
