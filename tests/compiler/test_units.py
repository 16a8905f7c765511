"""Partition units: what joins what before the solver sees the graph."""

from __future__ import annotations

import torch

import chipcut
from chipcut.compiler.lowering.units import build_units


class PositionBias(torch.nn.Module):
    """Two layers that each add a bias computed from constants alone (an arange branch)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(16, 16)
        self.b = torch.nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pos_a = torch.arange(16, dtype=torch.float32) * 0.5 + 1.0
        pos_b = torch.arange(16, dtype=torch.float32).sin() + 2.0
        return self.b(self.a(x) + pos_a) * pos_b


def test_a_branch_computed_from_constants_joins_its_only_consumer() -> None:
    torch.manual_seed(0)
    model, x = PositionBias().eval(), torch.randn(2, 16)
    gm = chipcut.lower(model, (x,), chips=1, options=chipcut.CompileOptions(passes="none")).graph_module
    units = build_units(gm)
    sources = [u for u in range(len(units.units))
               if not any(u in consumers for _, consumers, _, _ in units.tensors)]
    assert sources == [0]  # only the unit reading the input: no constant branch stands alone
    plan = chipcut.compile(model, (x,), chips=2, options=chipcut.CompileOptions(passes="none"))
    torch.testing.assert_close(plan.split()(x)[0], model(x), rtol=0, atol=1e-6)


class FilledInPlace(torch.nn.Module):
    """``y = zeros(); y[:, 1:] = x``: y is written from the input, so what reads it is not a
    constant branch to fold into its consumer."""

    def __init__(self) -> None:
        super().__init__()
        self.pre = torch.nn.Linear(64, 64)
        self.post = torch.nn.ModuleList(torch.nn.Linear(64, 64) for _ in range(8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.pre(x))
        y = torch.zeros(x.shape[0], x.shape[1] + 1, 64)
        y[:, 1:] = x
        for layer in self.post:
            y = torch.relu(layer(y))
        return y


def test_a_tensor_filled_in_place_from_the_input_is_not_a_constant_branch() -> None:
    torch.manual_seed(0)
    model, x = FilledInPlace().eval(), torch.randn(4, 63, 64)
    gm = chipcut.lower(model, (x,), chips=1).graph_module
    assert len(build_units(gm).units) >= 8  # one unit per layer after the write, at least
    plan = chipcut.compile(model, (x,), chips=4, backend="cpu")
    assert [s.macs for s in plan.stages].count(0) == 0
    assert max(s.macs for s in plan.stages) <= 3 * 4 * 64 * 64 * 64  # not all in one stage
    torch.testing.assert_close(plan.split()(x)[0], model(x), rtol=0, atol=0)
