"""Loading user input for the CLI: ``package.module:factory`` / ``file.py:factory`` / ``.pt2``, and shapes."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import math
import re
import sys
from pathlib import Path

import torch

from chipcut.core.dtypes import INPUT_DTYPES
from chipcut.core.errors import ChipcutError
from chipcut.core.fmt import capacity, rate

_SHAPE = re.compile(r"^\d+(x\d+)*$")
# Example inputs are allocated whole before capture; past this, the shape is a typo.
MAX_INPUT_BYTES = 4 * 2**30


def parse_input(text: str) -> tuple[tuple[int, ...], torch.dtype]:
    """'1x3x224x224' -> ((1, 3, 224, 224), float32); '1x128:int64' -> ((1, 128), int64)."""
    shape_text, _, dtype_text = text.strip().partition(":")
    if not _SHAPE.match(shape_text) or any(int(d) == 0 for d in shape_text.split("x")):
        raise ChipcutError(f"bad --input {text!r}: the shape must be positive integers joined by "
                           "'x', e.g. 1x3x224x224 (or 1x128:int64 with a dtype)")
    dtype_text = dtype_text or "float32"
    if dtype_text not in INPUT_DTYPES:
        raise ChipcutError(f"bad --input {text!r}: unknown dtype {dtype_text!r}; known: "
                           f"{', '.join(sorted(INPUT_DTYPES))}")
    return tuple(int(d) for d in shape_text.split("x")), INPUT_DTYPES[dtype_text]


def make_input(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An example tensor: standard normal for floats, zeros for integers (valid indices)."""
    gen = torch.Generator().manual_seed(0)
    if device.type == "meta":
        return torch.empty(shape, dtype=dtype, device="meta")
    if dtype.is_floating_point:
        return torch.randn(shape, generator=gen).to(dtype)
    return torch.zeros(shape, dtype=dtype)


def check_input_size(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> None:
    """Refuse an example input too large to allocate (meta tensors are free: any size passes).

    >>> check_input_size((100_000_000_000, 4), torch.float32, torch.device("meta"))
    """
    if device.type == "meta":
        return
    size_bytes = math.prod(shape) * dtype.itemsize
    if size_bytes > MAX_INPUT_BYTES:
        text = "x".join(map(str, shape))
        raise ChipcutError(
            f"--input {text}:{str(dtype).removeprefix('torch.')} is {math.prod(shape):,} elements "
            f"({rate(size_bytes, 'B')}), over the {capacity(MAX_INPUT_BYTES)} limit for example "
            f"inputs on {device.type}; give a smaller shape, or build the model on the meta device")


def check_arity(model: torch.nn.Module, count: int) -> None:
    """Refuse ``count`` --input shapes that ``model.forward`` cannot take positionally."""
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return  # a forward inspect cannot read: capture reports a bad call itself
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    positional = [p for p in params if p.kind in kinds]
    required = sum(p.default is p.empty for p in positional)
    variadic = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)
    if required <= count and (variadic or count <= len(positional)):
        return
    if variadic:
        takes = f"at least {required}"
    else:
        takes = str(required) if required == len(positional) else f"{required} to {len(positional)}"
    shown = ", ".join(str(p.replace(annotation=p.empty)) for p in params
                      if p.kind in kinds or p.kind is inspect.Parameter.VAR_POSITIONAL)
    raise ChipcutError(
        f"--input given {count} time{'s' * (count != 1)}, but {type(model).__name__}.forward"
        f"({shown}) takes {takes} positional input{'s' * (takes != '1')}; give one --input per "
        "forward argument")


def program_inputs(program: torch.export.ExportedProgram) -> list[str]:
    """The user input shapes of an exported program, as --input writes them ('1x3x32x32:float32')."""
    names = set(program.graph_signature.user_inputs)
    out = []
    for node in program.graph.nodes:
        val = node.meta.get("val")
        if node.op == "placeholder" and node.name in names and isinstance(val, torch.Tensor):
            out.append("x".join(map(str, val.shape)) + ":" + str(val.dtype).removeprefix("torch."))
    return out


def model_device(model: torch.nn.Module) -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def _import_object(spec: str) -> object:
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise ChipcutError(f"model {spec!r}: write package.module:factory, path/to/file.py:factory "
                           "or a .pt2 file from torch.export.save")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise ChipcutError(f"model file {target} does not exist; check the path")
        try:
            module = _exec_file(path)
        except Exception as e:  # noqa: BLE001 - the user's file failed; say so in one line
            raise ChipcutError(f"model file {target} raised {type(e).__name__} while loading: {e}; "
                               "fix the file") from None
    else:
        if str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as e:
            raise ChipcutError(f"model {spec!r}: cannot import {target!r} ({e}); run from the folder "
                               "that holds the package or pass path/to/file.py:factory") from None
        except Exception as e:  # noqa: BLE001 - the user's module failed on import
            raise ChipcutError(f"model {spec!r}: importing {target} raised {type(e).__name__}: "
                               f"{e}; fix the module") from None
    if not hasattr(module, attr):
        raise ChipcutError(f"model {spec!r}: {target} has no attribute {attr!r}")
    return getattr(module, attr)


def user_module_name(path: Path) -> str:
    """The ``sys.modules`` name a model file loads under: private and unique to its path.

    Never the bare stem, so a user's ``passes.py`` or ``torch.py`` cannot stand in for a real
    module, and two files with one stem in different folders stay apart.

    >>> user_module_name(Path("/models/passes.py")).startswith("chipcut_user_model_passes_")
    True
    """
    stem = re.sub(r"\W", "_", path.stem)
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    return f"chipcut_user_model_{stem}_{digest}"


def _exec_file(path: Path) -> object:
    # Registered before it runs: dataclasses look their module up in sys.modules while the
    # class body executes, and pickle finds the file's classes through it afterwards.
    name = user_module_name(path)
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_model(spec: str, inputs: list[str], needs_inputs: bool = True) -> tuple[object, tuple, str]:
    """(model or ExportedProgram, example inputs, name) from a CLI MODEL argument and --input
    list; ``needs_inputs`` False where the command makes its own (an LLM phase)."""
    parsed = [parse_input(s) for s in inputs]
    if spec.endswith(".pt2"):
        if not Path(spec).is_file():
            raise ChipcutError(f"model file {spec} does not exist; write one with torch.export.save")
        try:
            program = torch.export.load(spec)
        except Exception as e:  # noqa: BLE001 - any unreadable archive is a user error
            raise ChipcutError(f"cannot load {spec} as an exported program ({type(e).__name__}); "
                               "write it with torch.export.save") from None
        if parsed:
            raise ChipcutError(f"--input does not apply to {spec}: an exported program runs at its "
                               f"own input shapes ({', '.join(program_inputs(program)) or 'none'}); "
                               "drop --input, or export the model again at the shapes you want")
        return program, (), Path(spec).stem
    obj = _import_object(spec)
    name = spec.rpartition(":")[2]
    made = obj
    if callable(obj) and not isinstance(obj, torch.nn.Module):
        try:
            made = obj()
        except Exception as e:  # noqa: BLE001 - the user's factory failed; say so in one line
            raise ChipcutError(f"model factory {spec} raised {type(e).__name__}: {e}; "
                               "fix the factory (it is called with no arguments)") from None
    given: tuple = ()
    if isinstance(made, tuple) and len(made) == 2 and isinstance(made[0], torch.nn.Module):
        made, given = made[0], tuple(made[1]) if isinstance(made[1], (tuple, list)) else (made[1],)
    if not isinstance(made, torch.nn.Module):
        raise ChipcutError(f"model {spec!r} gave a {type(made).__name__}; the factory must return "
                           "an nn.Module or (module, example_inputs)")
    if parsed:
        check_arity(made, len(parsed))
        device = model_device(made)
        for shape, dtype in parsed:
            check_input_size(shape, dtype, device)
        given = tuple(make_input(shape, dtype, device) for shape, dtype in parsed)
    if not given and needs_inputs:
        raise ChipcutError(f"model {spec!r} needs example inputs: add --input per model input, "
                           "e.g. --input 1x3x224x224")
    return made, given, name
