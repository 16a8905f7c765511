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
