"""Aliasing tables on graphs from torch.export and from the symbolic_trace fallback."""

from __future__ import annotations

import torch
import torch.fx
import torch.nn.functional as F

from chipcut.core.aliasing import base_of, has_effect, viewed, written


class _Writes(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.act, self.keep = torch.nn.ReLU(inplace=True), torch.nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = x * 2
        self.act(a)
        b = x * 3
        F.relu(b, inplace=True)
        c = x * 4
        torch.relu_(c)
        d = x * 5
        d.add_(1)
        e = self.keep(x * 6)
        return a.view(-1) + b.flatten() + c.reshape(-1) + d.view(-1) + e.view(-1)


def test_symbolic_trace_writes_are_read_from_flags_names_and_operators() -> None:
    gm = torch.fx.symbolic_trace(_Writes())
    found = {n.name: written(n).name for n in gm.graph.nodes if written(n) is not None}
    assert found == {"act": "mul", "relu": "mul_1", "relu_": "mul_2", "add_": "mul_3"}
    assert all(has_effect(n) for n in gm.graph.nodes if n.name in found)
    views = {n.name: viewed(n).name for n in gm.graph.nodes if viewed(n) is not None}
    assert views == {"view": "mul", "flatten": "mul_1", "reshape": "mul_2", "view_1": "mul_3",
                     "view_2": "keep"}  # a view of the tensor written, read after the write
    assert {n.name: base_of(n).name for n in gm.graph.nodes if n.name.startswith("view")} == {
        "view": "mul", "view_1": "mul_3", "view_2": "keep"}


def test_exported_writes_come_from_the_schemas() -> None:
    gm = torch.export.export(_Writes(), (torch.randn(2, 3),)).module()
    targets = {n.target for n in gm.graph.nodes if written(n) is not None}
    assert targets == {torch.ops.aten.relu_.default, torch.ops.aten.add_.Tensor}
    assert sum(written(n) is not None for n in gm.graph.nodes) == 4
