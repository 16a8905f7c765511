"""Model factories for the CLI plug-in test (``chipcut compile tests/backends/tiny_models.py:mlp``)."""

from __future__ import annotations

import torch


def mlp() -> torch.nn.Module:
    """8 -> 64 -> 64 -> 4 MLP: 512 + 4096 + 256 = 4864 MACs at batch 1."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                               torch.nn.ReLU(), torch.nn.Linear(64, 4))
