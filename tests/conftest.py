"""Shared fixtures: small models whose structure the tests rely on, and ResNet-50 captured once."""

from __future__ import annotations

import pytest
import torch

from chipcut.compiler.capture import Captured, capture
from chipcut.examples.models import resnet50


class ResidualCNN(torch.nn.Module):
    """conv-bn-relu stem, two residual blocks (one with a projection), pooled linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.BatchNorm2d(16),
                                        torch.nn.ReLU())
        self.a1 = torch.nn.Conv2d(16, 16, 3, padding=1)
        self.a2 = torch.nn.Conv2d(16, 16, 3, padding=1)
        self.b1 = torch.nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.b2 = torch.nn.Conv2d(32, 32, 3, padding=1)
        self.proj = torch.nn.Conv2d(16, 32, 1, stride=2)
        self.head = torch.nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(x + self.a2(torch.relu(self.a1(x))))
        x = torch.relu(self.proj(x) + self.b2(torch.relu(self.b1(x))))
        return self.head(x.mean(dim=(2, 3)))


class TwoInTwoOut(torch.nn.Module):
    """Two inputs, two outputs, a shared trunk and a cross connection."""

    def __init__(self) -> None:
        super().__init__()
        self.fa = torch.nn.Linear(12, 24)
        self.fb = torch.nn.Linear(6, 24)
        self.trunk = torch.nn.Sequential(torch.nn.Linear(24, 24), torch.nn.GELU(), torch.nn.Linear(24, 24))
        self.out_a = torch.nn.Linear(24, 5)
        self.out_b = torch.nn.Linear(48, 3)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ha, hb = self.fa(a), self.fb(b)
        t = self.trunk(ha * hb)
        return self.out_a(t), self.out_b(torch.cat([t, ha], dim=-1))


@pytest.fixture
def residual_cnn() -> tuple[torch.nn.Module, tuple]:
    torch.manual_seed(0)
    return ResidualCNN().eval(), (torch.randn(1, 3, 32, 32),)


@pytest.fixture
def two_in_two_out() -> tuple[torch.nn.Module, tuple]:
    torch.manual_seed(0)
    return TwoInTwoOut().eval(), (torch.randn(2, 12), torch.randn(2, 6))


@pytest.fixture
def small_bert() -> tuple[torch.nn.Module, tuple]:
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=128, vocab_size=100, max_position_embeddings=64)
    return BertModel(config).eval(), (torch.randint(0, 100, (1, 16)),)


@pytest.fixture(scope="session")
def resnet50_captured() -> Captured:
    """ResNet-50 at 224 x 224, captured once for the whole run. Shared: a test that changes its
    graph works on ``copy.deepcopy(resnet50_captured.graph_module)``."""
    model, inputs = resnet50()
    return capture(model, inputs)


SMALL_DRAM_CHIP = """
name = "small-dram"
description = "a chip with 2 MiB of DRAM: an LLM's cache binds on it"
[compute]
peak_macs_per_s = { fp32 = 4e12 }
vector_ops_per_s = 1e12
[memory]
sram_bytes = "256 KiB"
dram_bytes = "2 MiB"
dram_bytes_per_s = "200 GB/s"
[link]
bytes_per_s = "31.5 GB/s"
latency_s = "2 us"
"""


@pytest.fixture
def small_dram_chip(tmp_path) -> str:
    """A spec file's path: a chip with 2 MiB of DRAM."""
    path = tmp_path / "small.toml"
    path.write_text(SMALL_DRAM_CHIP)
    return str(path)
