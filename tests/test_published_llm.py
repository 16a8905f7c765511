"""The published LLM rows (benchmarks/published_llm.py) are well formed; the bench that predicts
them (benchmarks/llm_published_bench.py) is too heavy for the tests and is not run here."""

from __future__ import annotations

import math

import pytest

from benchmarks.published_llm import MODELS, PUBLISHED_LLM, SCENARIOS, UNITS, PublishedLLM
from chipcut.backends.registry import available
from chipcut.core.dtypes import DType


def _id(row: PublishedLLM) -> str:
    return f"{row.chip}-{row.model}-{row.scenario}-b{row.batch}-{row.input_len}/{row.output_len}"


def test_enough_rows_on_more_than_one_chip() -> None:
    assert len(PUBLISHED_LLM) >= 3
    assert len({r.chip for r in PUBLISHED_LLM}) >= 2


def test_rows_are_distinct() -> None:
    keys = [(r.chip, r.gpus, r.model, r.precision, r.scenario, r.batch, r.input_len,
             r.output_len) for r in PUBLISHED_LLM]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("row", PUBLISHED_LLM, ids=_id)
def test_row_is_well_formed(row: PublishedLLM) -> None:
    assert row.chip in available()  # a registered preset
    assert row.model in MODELS
    assert row.scenario in SCENARIOS
    assert row.unit == UNITS[row.scenario]
    assert math.isfinite(row.value) and row.value > 0
    assert row.gpus >= 1 and row.batch >= 1 and row.input_len >= 1 and row.output_len >= 1
    assert (row.parallelism == "-") == (row.gpus == 1)
    assert row.precision in set(DType) and row.kv_dtype in set(DType)
    if row.scenario != "ttft":  # the bench splits the batch into one microbatch per GPU
        assert row.batch % row.gpus == 0
    # a source precise enough to find the figure again: a repository or document, and the figure
    assert len(row.source) > 40 and ("github.com" in row.source or "arXiv" in row.source)
    assert row.note.strip()


@pytest.mark.parametrize("row", PUBLISHED_LLM, ids=_id)
def test_the_quoted_figure_is_in_the_source(row: PublishedLLM) -> None:
    """The value appears in the quote (divided by the GPU count where the note says so)."""
    quoted = row.value * row.gpus if "divided by" in row.note else row.value
    text = row.source.replace(",", "")
    assert any(f"{quoted:.{d}f}" in text for d in range(0, 5)), (quoted, row.source)


@pytest.mark.parametrize("key", sorted(MODELS))
def test_model_configs_are_consistent(key: str) -> None:
    cfg = MODELS[key]
    assert cfg.arch in ("llama", "qwen2")
    assert cfg.hidden % cfg.heads == 0 and cfg.heads % cfg.kv_heads == 0
    assert cfg.layers > 0 and cfg.intermediate > cfg.hidden and cfg.vocab > 0
    assert cfg.source
