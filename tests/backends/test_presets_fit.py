"""Fitted presets reproduce the published figures they were fitted to (the small-model fit rows of
benchmarks/presets_bench.py; the full table is that program's)."""

from __future__ import annotations

import pytest

from benchmarks.presets_bench import FIT_PLAN, key, make_case
from benchmarks.published import PUBLISHED
from chipcut.backends.registry import get_backend

SMALL = ["tpu-v1/tpu-mlp0/int8/b200/MLP0:5layers,20Mweights/TOPS",
         "hailo-8/mobilenet_v2/int8/b1/224x224/frames/s",
         "coral-edge-tpu/inception_v1/int8/b1/224x224/ms",
         "coral-edge-tpu/vgg16/int8/b1/224x224/ms"]


@pytest.mark.parametrize("row_key", SMALL)
def test_fitted_preset_reproduces_its_fit_row(row_key: str) -> None:
    row = next(r for r in PUBLISHED if key(r) == row_key)
    assert any(row_key in rows for _, rows in FIT_PLAN[row.chip])
    ratio = make_case(row).ratio(get_backend(row.chip))
    assert ratio == pytest.approx(1.0, abs=0.05)  # preset values are the fit's, rounded


def test_a_row_with_its_own_precision_for_the_rest_keeps_the_other_layers_there() -> None:
    import torch
    from transformers import BertConfig, BertModel

    import chipcut
    from benchmarks.presets_bench import passes
    from chipcut.core.ir import get_precision

    row = next(r for r in PUBLISHED if r.chip == "h100-sxm" and r.precision == "fp8")
    assert row.others == "fp16"  # MLPerf BERT-99.9: matmuls and linears in FP8, the rest fp16
    config = BertConfig(hidden_size=64, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=128)
    lowered = chipcut.lower(BertModel(config).eval(), (torch.ones(1, 8, dtype=torch.long),),
                            backend="h100-sxm",
                            options=chipcut.CompileOptions(passes=passes("fp8", "fp16")))
    dtypes = {n.name: get_precision(n).activations for n in lowered.graph_module.graph.nodes
              if n.op == "call_function" and get_precision(n) is not None}
    assert dtypes["layer_norm"] == dtypes["gelu"] == dtypes["add_4"] == "fp16"
    assert dtypes["linear"] == dtypes["scaled_dot_product_attention"] == "fp8"
