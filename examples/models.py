"""Example models built from configs with random weights (never downloaded).

Each factory returns ``(module, example_inputs)``, so ``chipcut compile
chipcut.examples.models:resnet50`` needs no --input. Large models are built on the
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
                         num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
                         use_cache=False)
    with torch.device("meta"):
        model = LlamaForCausalLM(config).eval()
    return model, (torch.zeros(1, seq, dtype=torch.long, device="meta"),)


def mobilenet_v2(batch: int = 1, size: int = 224) -> tuple[torch.nn.Module, tuple]:
    """MobileNetV2 (transformers MobileNetV2Model, default config: width 1.0) at size x size."""
    from transformers import MobileNetV2Config, MobileNetV2Model

    torch.manual_seed(0)
    return MobileNetV2Model(MobileNetV2Config()).eval(), (torch.randn(batch, 3, size, size),)


def vit_b16(batch: int = 1) -> tuple[torch.nn.Module, tuple]:
    """ViT-B/16 at 224 x 224 (transformers ViTModel, default config)."""
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    return ViTModel(ViTConfig(), add_pooling_layer=False).eval(), (torch.randn(batch, 3, 224, 224),)


def yolov3() -> tuple[torch.nn.Module, tuple]:
    """YOLOv3 (Darknet-53, 80 classes) at 1920 x 1088 (2.1 Mpixel); see chipcut.examples.yolo."""
    from chipcut.examples.yolo import yolov3 as build

    return build()


def llama_70b(seq: int = 128) -> tuple[torch.nn.Module, tuple]:
    """A LLaMA-70B config on the meta device: 80 layers, hidden 8192, GQA with 8 KV heads."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80,
                         num_attention_heads=64, num_key_value_heads=8, vocab_size=32000,
                         max_position_embeddings=4096,
                         use_cache=False)
    with torch.device("meta"):
        model = LlamaForCausalLM(config).eval()
    return model, (torch.zeros(1, seq, dtype=torch.long, device="meta"),)
