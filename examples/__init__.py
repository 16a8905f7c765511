"""Example models for the README, the tests and the benchmarks: built from configs with random
weights, never downloaded (``chipcut compile chipcut.examples:resnet50``)."""

from chipcut.examples.models import (
    bert_base,
    llama_7b,
    llama_70b,
    mobilenet_v2,
    resnet50,
    vit_b16,
    yolov3,
)

__all__ = ["resnet50", "bert_base", "llama_7b", "llama_70b", "mobilenet_v2", "vit_b16", "yolov3"]
