"""The models of the published rows (benchmarks/published.py), built from configs with random
weights on the meta device: a factory per ``Published.model`` id, ``(batch, input) -> (module,
example_inputs)``.

Image models take uint8 pixels and cast them to float, so that the host link carries one byte
per pixel, as the published harnesses send preprocessed int8/uint8 tensors. Architectures
chipcut.examples and transformers lack (SSD-MobileNet-v1, GoogLeNet, VGG16, SqueezeNet) are
small ``torch.nn`` definitions here; the TPU v1 production models, whose published description
is only layer count, weight count and batch, are stand-ins of that shape (see ``tpu_mlp`` and
``tpu_cnn0``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import torch
from torch import nn

from benchmarks.models import conv_bn, inception_v3

Factory = tuple[nn.Module, tuple]


class Pixels(nn.Module):
    """``model(x.float())``: the model's input arrives as uint8 pixels."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x.float())
        return out.last_hidden_state if hasattr(out, "last_hidden_state") else out


def _pixels(model: nn.Module, batch: int, size: int) -> Factory:
    return Pixels(model).eval(), (torch.zeros(batch, 3, size, size, dtype=torch.uint8),)


def _size(text: str) -> int:
    """224 from "1x3x224x224"."""
    return int(text.split("x")[-1])


def _seq(text: str) -> int:
    """384 from "seq 384"."""
    return int(re.search(r"seq (\d+)", text).group(1))


# --- transformers configs --------------------------------------------------------------------

def resnet50(batch: int, inp: str) -> Factory:
    from transformers import ResNetConfig, ResNetModel

    return _pixels(ResNetModel(ResNetConfig()), batch, _size(inp))


def mobilenet_v2(batch: int, inp: str) -> Factory:
    from transformers import MobileNetV2Config, MobileNetV2Model

    return _pixels(MobileNetV2Model(MobileNetV2Config()), batch, _size(inp))


def mobilenet_v1(batch: int, inp: str) -> Factory:
    from transformers import MobileNetV1Config, MobileNetV1Model

    return _pixels(MobileNetV1Model(MobileNetV1Config()), batch, _size(inp))


def vit_base(batch: int, inp: str) -> Factory:
    from transformers import ViTConfig, ViTModel

    return _pixels(ViTModel(ViTConfig(), add_pooling_layer=False), batch, _size(inp))


def _bert(batch: int, inp: str, large: bool) -> Factory:
    from transformers import BertConfig, BertModel

    config = (BertConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                         intermediate_size=4096) if large else BertConfig())
    return BertModel(config).eval(), (torch.zeros(batch, _seq(inp), dtype=torch.long),)


def bert_base(batch: int, inp: str) -> Factory:
    return _bert(batch, inp, large=False)


def bert_large(batch: int, inp: str) -> Factory:
    return _bert(batch, inp, large=True)


# --- small torch.nn definitions --------------------------------------------------------------

def _dw_separable(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU6(),
        nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU6())


class SSDMobileNet(nn.Module):
    """SSD-MobileNet-v1 at 300 x 300 (the TF object-detection layout MLPerf uses): MobileNet-v1
    to conv13, four extra 1x1/3x3 pairs, and 1x1 box and class predictors (6 anchors, 91
    classes) on the 19, 10, 5, 3, 2 and 1 maps. Without the box decoding and NMS."""

    def __init__(self, classes: int = 91, anchors: int = 6) -> None:
        super().__init__()
        widths = [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1),
                  (256, 512, 2)] + [(512, 512, 1)] * 5
        self.conv11 = nn.Sequential(conv_bn(3, 32, 3, 2, 1), *(_dw_separable(*w) for w in widths))
        self.conv13 = nn.Sequential(_dw_separable(512, 1024, 2), _dw_separable(1024, 1024, 1))
        extra = [(1024, 256, 512), (512, 128, 256), (256, 128, 256), (256, 64, 128)]
        self.extras = nn.ModuleList(nn.Sequential(conv_bn(cin, mid, 1), conv_bn(mid, cout, 3, 2, 1))
                                    for cin, mid, cout in extra)
        maps = [512, 1024, 512, 256, 256, 128]
        self.heads = nn.ModuleList(nn.Conv2d(c, anchors * (classes + 4), 1) for c in maps)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.conv11(x)]
        feats.append(self.conv13(feats[-1]))
        for block in self.extras:
            feats.append(block(feats[-1]))
        return [head(f).flatten(1) for head, f in zip(self.heads, feats, strict=True)]


def ssd_mobilenet(batch: int, inp: str) -> Factory:
    return _pixels(SSDMobileNet(), batch, _size(inp))


class Branches(nn.Module):
    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.branches], 1)


def _inception(cin: int, c1: int, r3: int, c3: int, r5: int, c5: int, pool: int) -> Branches:
    return Branches(conv_bn(cin, c1, 1),
                    nn.Sequential(conv_bn(cin, r3, 1), conv_bn(r3, c3, 3, padding=1)),
                    nn.Sequential(conv_bn(cin, r5, 1), conv_bn(r5, c5, 3, padding=1)),
                    nn.Sequential(nn.MaxPool2d(3, 1, 1), conv_bn(cin, pool, 1)))


def inception_v1(batch: int, inp: str) -> Factory:
    """GoogLeNet / Inception-v1 (torchvision layout: BN, 3x3 in the '5x5' branch, no aux heads)."""
    blocks = [(192, 64, 96, 128, 16, 32, 32), (256, 128, 128, 192, 32, 96, 64), "pool",
              (480, 192, 96, 208, 16, 48, 64), (512, 160, 112, 224, 24, 64, 64),
              (512, 128, 128, 256, 24, 64, 64), (512, 112, 144, 288, 32, 64, 64),
              (528, 256, 160, 320, 32, 128, 128), "pool", (832, 256, 160, 320, 32, 128, 128),
              (832, 384, 192, 384, 48, 128, 128)]
    body = [nn.MaxPool2d(3, 2, 1) if b == "pool" else _inception(*b) for b in blocks]
    model = nn.Sequential(conv_bn(3, 64, 7, 2, 3), nn.MaxPool2d(3, 2, 1), conv_bn(64, 64, 1),
                          conv_bn(64, 192, 3, padding=1), nn.MaxPool2d(3, 2, 1), *body,
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1024, 1000))
    return _pixels(model, batch, _size(inp))


def vgg16(batch: int, inp: str) -> Factory:
    layers: list[nn.Module] = []
    cin = 3
    for cout in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                 512, 512, 512, "M"):
        if cout == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU()]
            cin = cout
    model = nn.Sequential(*layers, nn.Flatten(), nn.Linear(512 * 7 * 7, 4096), nn.ReLU(),
                          nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 1000))
    return _pixels(model, batch, _size(inp))


class Fire(nn.Module):
    def __init__(self, cin: int, squeeze: int, expand: int) -> None:
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(cin, squeeze, 1), nn.ReLU())
        self.expand = Branches(nn.Sequential(nn.Conv2d(squeeze, expand, 1), nn.ReLU()),
                               nn.Sequential(nn.Conv2d(squeeze, expand, 3, padding=1), nn.ReLU()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expand(self.squeeze(x))


def squeezenet(batch: int, inp: str) -> Factory:
    """SqueezeNet 1.0 (Iandola et al. 2016)."""
    pool = nn.MaxPool2d(3, 2, ceil_mode=True)
    model = nn.Sequential(
        nn.Conv2d(3, 96, 7, 2), nn.ReLU(), pool, Fire(96, 16, 64), Fire(128, 16, 64),
        Fire(128, 32, 128), pool, Fire(256, 32, 128), Fire(256, 48, 192), Fire(384, 48, 192),
        Fire(384, 64, 256), pool, Fire(512, 64, 256), nn.Conv2d(512, 1000, 1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return _pixels(model, batch, _size(inp))


def inception_v3_299(batch: int, inp: str) -> Factory:
    model, _ = inception_v3(batch)
    return _pixels(model, batch, _size(inp))


# --- TPU v1 production models: stand-ins of the published shape -------------------------------

class Int8Input(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.float())


def tpu_mlp(layers: int, weights: float) -> Callable[[int, str], Factory]:
    """``layers`` square fully connected layers (ReLU between) holding ``weights`` in all: the
    published MLP description (layer count, weight count, batch) and nothing more."""
    width = round(math.sqrt(weights / layers))

    def build(batch: int, inp: str) -> Factory:
        body = [m for _ in range(layers) for m in (nn.Linear(width, width), nn.ReLU())]
        return Int8Input(nn.Sequential(*body)).eval(), (torch.zeros(batch, width, dtype=torch.int8),)

    return build


def tpu_cnn0(batch: int, inp: str) -> Factory:
    """16 3x3 convolutions of 256 channels on a 19 x 19 map: each weight does 361 MACs per
    inference, so a batch of 8 does 2,888 per weight byte, Table 1's figure for CNN0 (9.4 M
    weights here against the published 8 M: 256 channels fill the 256-wide array)."""
    body = [m for _ in range(16) for m in (nn.Conv2d(256, 256, 3, padding=1), nn.ReLU())]
    return Int8Input(nn.Sequential(*body)).eval(), (torch.zeros(batch, 256, 19, 19, dtype=torch.int8),)


FACTORIES: dict[str, Callable[[int, str], Factory]] = {
    "resnet50": resnet50, "mobilenet_v2": mobilenet_v2, "mobilenet_v1": mobilenet_v1,
    "vit_base": vit_base, "bert-base": bert_base, "bert-large": bert_large,
    "ssd-mobilenet": ssd_mobilenet, "inception_v1": inception_v1, "vgg16": vgg16,
    "squeezenet": squeezenet, "inception_v3": inception_v3_299,
    "tpu-mlp0": tpu_mlp(5, 20e6), "tpu-mlp1": tpu_mlp(4, 5e6), "tpu-cnn0": tpu_cnn0,
    # LSTM stand-ins: each layer's gate GEMM as one fully connected layer of the same weights
    "tpu-lstm0": tpu_mlp(58, 52e6), "tpu-lstm1": tpu_mlp(56, 34e6),
}


def build(model: str, batch: int, inp: str) -> Factory:
    """The row's model on the meta device (KeyError: no factory for ``model``)."""
    factory = FACTORIES[model]
    torch.manual_seed(0)
    with torch.device("meta"):
        return factory(batch, inp)
