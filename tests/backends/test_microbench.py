"""Calibration microbenchmarks: each one's work is what the accounting pass counts for its
kernel, in the op class it fits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from chipcut.backends.microbench import KERNELS, Measured
from chipcut.compiler.capture import capture
from chipcut.core.ir import get_cost, is_compute
from chipcut.passes.accounting import accounting


class Call(torch.nn.Module):
    """``fn(*inputs, *weights)`` with the weights as parameters, as a model holds them."""

    def __init__(self, fn, *weights: torch.Tensor) -> None:
        super().__init__()
        self.fn = fn
        self.weights = torch.nn.ParameterList(weights)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.fn(*inputs, *self.weights)


# The same kernels at the same shapes as the benchmarks, written as a model would hold them.
KERNEL_MODELS = {
    "max-pool": lambda: (Call(lambda x: F.max_pool2d(x, 3, 2, 1)), (torch.randn(1, 64, 112, 112),)),
    "pad-add": lambda: (Call(lambda x, y: F.pad(x, (1, 1, 1, 1)) + y),
                        (torch.randn(1, 144, 56, 56), torch.randn(1, 144, 58, 58))),
}


@pytest.mark.parametrize("kernel", [k for k in KERNELS if k.op_class], ids=lambda k: k.name)
def test_benchmark_work_and_class_are_what_accounting_counts(kernel) -> None:
    model, inputs = KERNEL_MODELS[kernel.name]()
    gm = accounting(capture(model.eval(), inputs).graph_module)
    costs = [get_cost(n) for n in gm.graph.nodes if is_compute(n)]
    assert (sum(c.macs for c in costs), sum(c.elem_ops for c in costs)) == (kernel.macs, kernel.elem_ops)
    anchor = max(costs, key=lambda c: (c.macs, c.elem_ops))  # as a unit's anchor is chosen
    assert anchor.op_class == kernel.op_class


def test_every_op_class_has_a_benchmark() -> None:
    from chipcut.backends.blockbench import blocks
    from chipcut.core.vocab import OpClass

    layers = {layer.op_class for b in blocks() for layer in b.layers}
    assert {k.op_class for k in KERNELS if k.op_class} | layers == set(OpClass)


def test_measured_defaults_are_steady_and_unclassified() -> None:
    m = Measured("overhead", 1e-6)
    assert (m.spread, m.op_class, m.macs) == (1.0, "", 0)
