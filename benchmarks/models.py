"""Example models built from configs with random weights (never downloaded).

Each factory returns ``(module, example_inputs)``, so ``chipcut compile
benchmarks.models:resnet50`` needs no --input. Large models are built on the
meta device: no weights are allocated.
"""

from __future__ import annotations

import torch


def resnet50(batch: int = 1, size: int = 224) -> tuple[torch.nn.Module, tuple]:
    """ResNet-50 (transformers ResNetModel, default config) at size x size."""
    from transformers import ResNetConfig, ResNetModel

    torch.manual_seed(0)
    return ResNetModel(ResNetConfig()).eval(), (torch.randn(batch, 3, size, size),)


def bert_base(seq: int = 128) -> tuple[torch.nn.Module, tuple]:
    """BERT-base encoder at sequence length ``seq``."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    return BertModel(BertConfig()).eval(), (torch.zeros(1, seq, dtype=torch.long),)


def llama_7b(seq: int = 128) -> tuple[torch.nn.Module, tuple]:
    """LLaMA-7B (32 layers, hidden 4096) on the meta device."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                         num_attention_heads=32, num_key_value_heads=32, use_cache=False)
    with torch.device("meta"):
        model = LlamaForCausalLM(config).eval()
    return model, (torch.zeros(1, seq, dtype=torch.long, device="meta"),)
