"""Loading: a model file loads under a private module name; its dataclasses and pickling work."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import pytest
import torch
from chipcut.compiler.cli.loading import load_model, parse_input, user_module_name
from chipcut.core.errors import ChipcutError

MODEL_FILE = '''
import dataclasses

import torch


@dataclasses.dataclass(frozen=True)
class Config:
    width: int = 8
    out: int = 3


class Net(torch.nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.fc = torch.nn.Linear(config.width, config.out)

    def forward(self, x):
        return self.fc(x)


def make():
    return Net(Config())
'''


def write(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(MODEL_FILE)
    return path


def test_a_file_named_passes_does_not_shadow_a_module(tmp_path) -> None:
    before = sys.modules.get("passes")
    path = write(tmp_path, "passes.py")
    model, inputs, name = load_model(f"{path}:make", ["2x8"])
    assert name == "make" and inputs[0].shape == (2, 8)
    assert sys.modules.get("passes") is before
    module = sys.modules[type(model).__module__]
    assert module.__name__ == user_module_name(path)
    assert module.__name__.startswith("chipcut_user_model_passes_")
    assert model.config == module.Config(8, 3)  # the dataclass was built while the file ran
    clone = pickle.loads(pickle.dumps(model))
    assert type(clone) is type(model) and clone.config == model.config
    torch.testing.assert_close(clone(inputs[0]), model(inputs[0]))


def test_files_with_one_stem_in_two_folders_stay_apart(tmp_path) -> None:
    first = write(tmp_path / "a", "model.py")
    second = write(tmp_path / "b", "model.py")
    assert user_module_name(first) != user_module_name(second)
    one, _, _ = load_model(f"{first}:make", ["1x8"])
    two, _, _ = load_model(f"{second}:make", ["1x8"])
    assert type(one).__module__ != type(two).__module__
    assert type(one).__module__ in sys.modules and type(two).__module__ in sys.modules


def test_a_file_that_fails_to_run_leaves_no_module_behind(tmp_path) -> None:
    path = tmp_path / "broken.py"
    path.write_text("raise ValueError('boom')\n")
    with pytest.raises(ValueError, match="boom"):
        load_model(f"{path}:make", ["1x8"])
    assert user_module_name(path) not in sys.modules


@pytest.mark.parametrize("text, expected", [
    ("1x3x8x8", ((1, 3, 8, 8), torch.float32)), ("1x128:int64", ((1, 128), torch.int64)),
    ("2x4:fp64", ((2, 4), torch.float64)), ("2x4:bf16", ((2, 4), torch.bfloat16)),
])
def test_parse_input(text: str, expected: tuple) -> None:
    assert parse_input(text) == expected


def test_unknown_input_dtype_lists_the_known_ones() -> None:
    with pytest.raises(ChipcutError, match=r"unknown dtype 'float99'; known: bf16, bfloat16, bool"):
        parse_input("1x8:float99")
