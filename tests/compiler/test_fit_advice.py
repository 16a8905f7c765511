"""A model that does not fit gets advice that would help: a narrower dtype only when one exists."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import chipcut
from chipcut.backends.registry import get_backend
from chipcut.backends.roofline import RooflineBackend


def _embedding() -> tuple[torch.nn.Module, tuple]:
    class Lookup(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.table = torch.nn.Embedding(50_000, 256)  # 51 MB at fp32, 12.8 MB at int8
            self.head = torch.nn.Linear(256, 8)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.head(self.table(ids))

    torch.manual_seed(0)
    return Lookup().eval(), (torch.zeros(1, 16, dtype=torch.long),)


def _small(name: str, dram_bytes: int) -> RooflineBackend:
    generic = get_backend("generic")
    return RooflineBackend(replace(generic.spec, name=name, dram_bytes=dram_bytes))


def test_fp32_that_does_not_fit_is_advised_a_narrower_dtype_the_chip_computes() -> None:
    with pytest.raises(chipcut.DoesNotFit, match=r"quantize to bf16 \(--passes"):
        chipcut.compile(*_embedding(), chips=1, backend=_small("small", 20 * 10**6),
                        passes="fold-bn,fuse", time_limit_s=2)


def test_already_at_the_narrowest_dtype_is_advised_more_memory() -> None:
    with pytest.raises(chipcut.DoesNotFit, match="already at int8, the narrowest dtype these chips "
                                                  "compute: use a chip with more memory"):
        chipcut.compile(*_embedding(), chips=1, backend=_small("tiny", 2 * 10**6),
                        passes="fold-bn,quantize{dtype=int8,first_last=int8},fuse", time_limit_s=2)


def test_a_bf16_model_is_not_advised_fp16_which_frees_nothing() -> None:
    from chipcut.backends.protocol import Work
    from chipcut.compiler.solver.fit import _advice

    generic = get_backend("generic")
    assert generic.supports_dtype("fp16") and generic.supports_dtype("int8")
    work = Work(macs=1, elem_ops=0, weight_bytes=2, in_bytes=0, out_bytes=0, dtype="bf16")
    advice = _advice(work, [generic])
    assert advice.startswith("quantize to int8 ") and "fp16" not in advice
    fp32 = _advice(replace(work, dtype="fp32"), [generic])
    assert fp32.startswith("quantize to ")  # the narrowest the chips compute below 4 bytes
    assert "already" in _advice(replace(work, dtype="int8"), [generic])
