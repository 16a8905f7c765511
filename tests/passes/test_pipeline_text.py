"""Pass pipeline text: every malformed pipeline is one ChipcutError naming the fix, never accepted."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chipcut.core.errors import ChipcutError
from chipcut.passes.manager import Pipeline


@pytest.mark.parametrize(("text", "message"), [
    ("fuse,fuse", "fuse appears twice"),
    ("fuse,fold-bn", "fold-bn must come before fuse"),
    ("quantize,fold-bn", "fold-bn must come before quantize"),
    ("fold-bn,,fuse", "entry 2 is empty"),
    ("fuse,", "entry 2 is empty"),
    ("quantize{dtype=int8,dtype=fp16}", "option dtype is given twice"),
    ("quantize{dtype=int8,}", "an empty option"),
    ("quantize{dtype=auto,threshold_db=nan}", "expected a finite number"),
    ("quantize{dtype=auto,threshold_db=inf}", "expected a finite number"),
])
def test_malformed_pipelines_are_refused(text: str, message: str) -> None:
    with pytest.raises(ChipcutError, match=message):
        Pipeline.parse(text)


@pytest.mark.parametrize("text", ["default", "none", "", "quantize{}", "fold-bn,fuse",
                                  "fold-bn,quantize{dtype=int8,first_last=fp32},fuse"])
def test_well_formed_pipelines_round_trip(text: str) -> None:
    pipeline = Pipeline.parse(text)
    assert Pipeline.parse(str(pipeline)) == pipeline


ALPHABET = st.sampled_from(["fold-bn", "quantize", "fuse", "none", "default", "{", "}", ",", "=",
                            ";", ":", "dtype", "int8", "auto", "nan", "threshold_db", "modules",
                            "types", "weights", "first_last", "measure", "true", "-1", "1e400",
                            " ", "x", "fp16", "*", "head"])


@settings(max_examples=int(os.environ.get("CHIPCUT_FUZZ_EXAMPLES", 500)), deadline=None,
          derandomize=True)
@given(st.lists(ALPHABET, max_size=14).map("".join) | st.text(max_size=40))
def test_random_pipeline_text_parses_or_fails_in_one_line(text: str) -> None:
    try:
        pipeline = Pipeline.parse(text)
    except ChipcutError as e:
        assert "\n" not in str(e)
    else:
        assert Pipeline.parse(str(pipeline)) == pipeline
