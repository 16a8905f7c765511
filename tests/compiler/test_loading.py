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
    with pytest.raises(ChipcutError, match="raised ValueError while loading: boom"):
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


ARITY_FILE = '''
import torch


class Two(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(8, 3)

    def forward(self, x, mask=None):
        return self.fc(x) if mask is None else self.fc(x * mask)


class Many(torch.nn.Module):
    def forward(self, first, *rest):
        return first + sum(rest)


def two():
    return Two()


def many():
    return Many()


def on_meta():
    with torch.device("meta"):
        return Two()
'''


@pytest.fixture
def arity_file(tmp_path) -> Path:
    path = tmp_path / "arity.py"
    path.write_text(ARITY_FILE)
    return path


def test_more_inputs_than_forward_takes_is_an_error_before_capture(tmp_path) -> None:
    path = write(tmp_path, "one.py")
    with pytest.raises(ChipcutError) as info:
        load_model(f"{path}:make", ["2x8", "2x8"])
    assert str(info.value) == ("--input given 2 times, but Net.forward(x) takes 1 positional input; "
                               "give one --input per forward argument")


@pytest.mark.parametrize("factory, count, takes", [
    ("two", 3, "takes 1 to 2 positional inputs"), ("many", 0, None), ("many", 4, None),
    ("two", 2, None), ("two", 1, None),
])
def test_the_input_count_is_checked_against_the_forward_signature(arity_file, factory: str, count: int,
                                                                  takes: str | None) -> None:
    shapes = ["2x8"] * count
    if count == 0:  # --input absent: the factory gives no inputs, which is its own error
        with pytest.raises(ChipcutError, match="needs example inputs"):
            load_model(f"{arity_file}:{factory}", shapes)
    elif takes is None:
        model, inputs, _ = load_model(f"{arity_file}:{factory}", shapes)
        assert len(inputs) == count and all(t.shape == (2, 8) for t in inputs)
    else:
        with pytest.raises(ChipcutError) as info:
            load_model(f"{arity_file}:{factory}", shapes)
        assert f"Two.forward(x, mask=None) {takes};" in str(info.value)


def test_an_absurd_input_shape_is_refused_before_allocating(arity_file) -> None:
    with pytest.raises(ChipcutError) as info:
        load_model(f"{arity_file}:two", ["100000000000x4"])
    assert str(info.value) == (
        "--input 100000000000x4:float32 is 400,000,000,000 elements (1.6 TB), over the 4 GiB limit "
        "for example inputs on cpu; give a smaller shape, or build the model on the meta device")
    model, inputs, _ = load_model(f"{arity_file}:on_meta", ["100000000000x4"])  # meta: free
    assert inputs[0].is_meta and inputs[0].shape == (100_000_000_000, 4)


def test_input_with_an_exported_program_names_its_own_shapes(tmp_path) -> None:
    path = tmp_path / "lin.pt2"
    program = torch.export.export(torch.nn.Linear(8, 3), (torch.randn(2, 8),))
    torch.export.save(program, path)
    with pytest.raises(ChipcutError) as info:
        load_model(str(path), ["4x8"])
    assert str(info.value) == (
        f"--input does not apply to {path}: an exported program runs at its own input shapes "
        "(2x8:float32); drop --input, or export the model again at the shapes you want")
    loaded, inputs, name = load_model(str(path), [])
    assert isinstance(loaded, torch.export.ExportedProgram) and inputs == () and name == "lin"
