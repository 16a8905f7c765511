"""Property tests: random small DAG models through every pass and the partitioner.

Invariants: outputs unchanged by fold-bn and fuse (and by the split), every compute
node in exactly one partition unit, fused groups whole on one chip, no edge back to an
earlier chip (no cycle between chips).
"""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chipcut
from chipcut.compiler.lowering.units import build_units
from chipcut.core.ir import get_group, is_compute
from chipcut.passes.manager import Pipeline

C = 4
OPS = ("conv", "conv_bn", "linear", "relu", "add", "cat")


class RandomDAG(torch.nn.Module):
    """Each step reads earlier values (picked by index) and appends one of shape (1, C, 6, 6)."""

    def __init__(self, steps: list[tuple[str, int, int]]) -> None:
        super().__init__()
        self.steps = steps
        self.layers = torch.nn.ModuleList()
        for op, _, _ in steps:
            if op == "conv":
                self.layers.append(torch.nn.Conv2d(C, C, 3, padding=1))
            elif op == "conv_bn":
                self.layers.append(torch.nn.Sequential(torch.nn.Conv2d(C, C, 3, padding=1, bias=False),
                                                       torch.nn.BatchNorm2d(C)))
            elif op == "linear":
                self.layers.append(torch.nn.Linear(6, 6))
            elif op == "cat":
                self.layers.append(torch.nn.Conv2d(2 * C, C, 1))
            else:
                self.layers.append(torch.nn.Identity())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values = [x]
        for (op, i, j), layer in zip(self.steps, self.layers, strict=True):
            a, b = values[i % len(values)], values[j % len(values)]
            if op in ("conv", "conv_bn", "linear"):
                values.append(layer(a))
            elif op == "relu":
                values.append(torch.relu(a))
            elif op == "add":
                values.append(a + b)
            else:
                values.append(layer(torch.cat([a, b], dim=1)))
        return values[-1], values[len(values) // 2]


def randomize(model: torch.nn.Module) -> None:
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(C, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(C, generator=gen) + 0.5)


steps = st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 50), st.integers(0, 50)),
                 min_size=2, max_size=12)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=steps, chips=st.integers(2, 3))
def test_passes_and_partition_keep_invariants(steps, chips) -> None:
    torch.manual_seed(0)
    model = RandomDAG(steps).eval()
    randomize(model)
    x = torch.randn(1, C, 6, 6)
    with torch.no_grad():
        expected = model(x)
    captured = chipcut.capture(model, (x,))
    gm = Pipeline.parse("fold-bn,fuse").run(captured.graph_module)  # verifies after each pass
    with torch.no_grad():
        for got, want in zip(gm(x), expected, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    units = build_units(gm)  # raises when groups form a cycle
    compute = [n.name for n in gm.graph.nodes if is_compute(n)]
    assert sorted(name for unit in units.units for name in unit) == sorted(compute)
    chips = min(chips, len(units.units))
    plan = chipcut.compile(captured, chips=chips, passes="fold-bn,fuse", time_limit_s=1)
    chip_of = {name: s.chip for s in plan.stages for name in s.nodes}
    assert sorted(chip_of) == sorted(compute)
    for node in plan.graph_module.graph.nodes:
        if not is_compute(node):
            continue
        for user in node.users:
            if is_compute(user):
                assert chip_of[node.name] <= chip_of[user.name]  # a pipeline: no cycle
        group = get_group(node)
        if group is not None:
            assert chip_of[node.name] == chip_of[group.anchor]
    with torch.no_grad():
        for got, want in zip(plan.split().run_stages(x), expected, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
