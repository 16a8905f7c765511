"""Capture: a PyTorch model to a flat ATen-level torch.fx GraphModule with shape metadata.

``torch.export.export`` (non-strict) is tried first; when it fails, plain
``torch.fx.symbolic_trace`` plus shape propagation. Models built on the meta
device work with no weights allocated. The fallback leaves ``torch.nn`` layers as
``call_module`` nodes; ``chipcut.passes.accounting.op_name`` names them by the ATen op
export records (an ``nn.Conv2d`` call is "conv2d" on both paths).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import traceback
import warnings
from dataclasses import dataclass

import torch
import torch.fx
import torch.utils._pytree as pytree
from torch.fx.graph import CodeGen

from chipcut.core.aliasing import has_effect
from chipcut.core.errors import ChipcutError, ChipcutWarning
from chipcut.core.ir import is_compute

# Nodes export leaves for runtime checks; they do no work on a chip.
_DROPPED_TARGETS = {
    "aten._assert_tensor_metadata.default",
    "aten._assert_scalar.default",
    "aten.sym_constrain_range_for_size.default",
    "_assert_async.msg",
}


@dataclass
class Captured:
    """A captured model: ``graph_module`` takes and returns flat tensors."""

    name: str
    graph_module: torch.fx.GraphModule
    example_inputs: tuple[torch.Tensor, ...]
    method: str  # "export" or "symbolic_trace"


def as_inputs(example_inputs: object) -> tuple:
    """The example inputs as a tuple, one element per model input: a lone tensor is one input
    (``tuple(x)`` would split it along dim 0 into many)."""
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    return tuple(example_inputs)


def capture(model: object, example_inputs: tuple = (), name: str | None = None) -> Captured:
    """Trace ``model`` on ``example_inputs`` to a flat FX graph with ``meta['val']`` on every node.

    ``model`` may be an ``nn.Module``, a ``torch.export.ExportedProgram`` or a
    ``GraphModule`` that already carries ``meta['val']``.

    >>> cap = capture(torch.nn.Linear(4, 2), (torch.randn(1, 4),))
    >>> [n.target for n in cap.graph_module.graph.nodes if n.op == "call_function"]
    [<OpOverload(op='aten.linear', overload='default')>]
    """
    example_inputs = as_inputs(example_inputs)
    if isinstance(model, torch.export.ExportedProgram):
        gm = model.module()
        label = name or "exported_program"
        gm = _flatten(gm)
        example_inputs = example_inputs or _inputs_from_graph(gm)
        _concrete_sizes(gm, example_inputs)
        return Captured(label, gm, example_inputs, "export")
    if not isinstance(model, torch.nn.Module):
        raise ChipcutError(
            f"model is a {type(model).__name__}, not a torch.nn.Module or ExportedProgram; "
            "pass the module object (or a factory returning one)"
        )
    label = name or type(model).__name__
    if isinstance(model, torch.fx.GraphModule) and _has_values(model):
        gm = _flatten(model)
        _concrete_sizes(gm, example_inputs)
        return Captured(label, gm, example_inputs, "graph_module")
    if not example_inputs:
        raise ChipcutError(
            f"no example inputs for {label}; give one shape per model input, e.g. --input 1x3x224x224"
        )
    model.eval()
    try:
        # torch prints partial graphs when tracing fails; the error we raise says what matters.
        with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()), _quiet("torch"):
            exported = torch.export.export(model, example_inputs, strict=False)
        gm = _flatten(exported.module())
    except Exception as export_error:  # noqa: BLE001 - any export failure triggers the fallback
        try:
            gm = _symbolic_trace(model, example_inputs)
        except Exception:  # noqa: BLE001 - report the export error, the more precise one
            raise ChipcutError(_describe_failure(label, export_error)) from None
        return Captured(label, _flatten(gm), example_inputs, "symbolic_trace")
    _concrete_sizes(gm, example_inputs)
    return Captured(label, gm, example_inputs, "export")


def _data_dependent(gm: torch.fx.GraphModule) -> torch.fx.Node | None:
    """The first node whose shape depends on the data (``x[x > 0]``, ``nonzero``): export
    records its sizes as symbols (``u0``), not numbers."""
    for node in gm.graph.nodes:
        vals = pytree.tree_leaves(node.meta.get("val"))
        if any(isinstance(v, torch.Tensor) and not all(isinstance(d, int) for d in v.shape)
               for v in vals):
            return node
    return None


def _concrete_sizes(gm: torch.fx.GraphModule, example_inputs: tuple) -> None:
    """Shapes that depend on the data take the sizes the example inputs give them (the graph is
    run once on them), with a warning: the plan is costed for that data."""
    node = _data_dependent(gm)
    if node is None:
        return
    tensors = [*example_inputs, *gm.parameters(), *gm.buffers()]
    if not example_inputs or any(isinstance(t, torch.Tensor) and t.is_meta for t in tensors):
        raise ChipcutError(f"node {node.name} ({node.target}) has a shape that depends on the "
                           "data, and the model or its example inputs are on the meta device (no "
                           "values); give real weights and inputs: the plan takes that node's "
                           "size from them")
    with torch.no_grad():  # on copies: the graph may write its inputs in place
        _ValueRecorder(gm).run(*[t.clone() if isinstance(t, torch.Tensor) else t
                                 for t in example_inputs])
    shapes = [tuple(v.shape) for v in pytree.tree_leaves(node.meta["val"])
              if isinstance(v, torch.Tensor)]
    sizes = shapes[0] if len(shapes) == 1 else shapes
    warnings.warn(f"node {node.name} ({node.target}) has a shape that depends on the data: costed "
                  f"at the size the example inputs give it, {sizes}; other inputs may move the "
                  "cost", ChipcutWarning, stacklevel=3)


@contextlib.contextmanager
def _quiet(logger_name: str):
    """Silence a logger for the duration (torch logs tracing failures the fallback recovers
    from); its level is restored after."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _has_values(gm: torch.fx.GraphModule) -> bool:
    return all("val" in n.meta for n in gm.graph.nodes if is_compute(n))


def _inputs_from_graph(gm: torch.fx.GraphModule) -> tuple[torch.Tensor, ...]:
    """Meta tensors shaped like the graph's placeholders (for programs loaded from .pt2)."""
    out = []
    for node in gm.graph.nodes:
        if node.op == "placeholder" and isinstance(node.meta.get("val"), torch.Tensor):
            val = node.meta["val"]
            out.append(torch.empty(tuple(int(s) for s in val.shape), dtype=val.dtype, device="meta"))
    return tuple(out)


def _flatten(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Drop runtime checks and pytree wrapping: forward takes and returns flat tensors."""
    graph = gm.graph
    for node in list(graph.nodes):
        dropped = str(node.target) in _DROPPED_TARGETS or (
            node.op == "call_module" and node.target == "_guards_fn"
        )
        if dropped and not node.users:
            graph.erase_node(node)
    graph._codegen = CodeGen()
    output = next(n for n in graph.nodes if n.op == "output")
    leaves, _ = pytree.tree_flatten(output.args[0])
    output.args = (tuple(leaf for leaf in leaves if isinstance(leaf, torch.fx.Node)),)
    graph.eliminate_dead_code(is_impure_node=has_effect)  # keep writes nothing reads
    if hasattr(gm, "_guards_fn"):
        delattr(gm, "_guards_fn")
    gm.recompile()
    return gm


class _ValueRecorder(torch.fx.Interpreter):
    """Runs the traced graph once and stores each node's output as a meta tensor in meta['val']."""

    def run_node(self, n: torch.fx.Node) -> object:
        result = super().run_node(n)
        n.meta["val"] = _to_meta(result)
        return result


def _to_meta(value: object) -> object:
    if isinstance(value, torch.Tensor):
        return torch.empty(value.shape, dtype=value.dtype, device="meta")
    if isinstance(value, (list, tuple)):
        return type(value)(_to_meta(v) for v in value) if isinstance(value, tuple) else [
            _to_meta(v) for v in value
        ]
    return value


def _symbolic_trace(model: torch.nn.Module, example_inputs: tuple) -> torch.fx.GraphModule:
    gm = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        _ValueRecorder(gm).run(*example_inputs)
    return gm


def _user_frame(error: BaseException) -> str | None:
    """The innermost traceback frame in the user's code (outside torch and site-packages)."""
    frames = traceback.extract_tb(error.__traceback__)
    torch_dir = os.path.dirname(torch.__file__)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ours = tuple(os.path.join(root, pkg) + os.sep for pkg in ("compiler", "passes", "backends"))
    user = [
        f
        for f in frames
        if not f.filename.startswith(torch_dir)
        and "site-packages" not in f.filename
        and not f.filename.startswith(ours)
        and not f.filename.startswith("<")
    ]
    if not user:
        return None
    f = user[-1]
    return f"{os.path.basename(f.filename)}:{f.lineno} ({f.line.strip() if f.line else f.name})"


def _describe_failure(label: str, error: BaseException) -> str:
    text = " ".join(str(error).split())
    where = _user_frame(error)
    at = f" at {where}" if where else ""
    lowered = text.lower()
    if "data-dependent" in lowered or "guardondatadependent" in type(error).__name__.lower():
        fix = (
            "control flow depends on tensor values; make it depend on shapes only, "
            "or use torch.cond for value-dependent branches"
        )
    elif any(k in lowered for k in ("cannot be multiplied", "size mismatch", "expected input",
                                    "must match the size", "shape mismatch", "same reduction dim",
                                    "size of tensor")):
        fix = "the example inputs do not fit the model; check the --input shapes and dtypes"
    elif "scalar type" in lowered or ("dtype" in lowered and "expected" in lowered):
        fix = ("the example inputs do not fit the model: an input has the wrong dtype; check "
               "the --input dtypes (token ids are integers: 1x16:int64)")
    elif "dynamic" in lowered and "shape" in lowered:
        fix = "the model needs static shapes; give concrete input shapes"
    else:
        fix = "simplify the construct, or pass concrete (non-tensor) arguments through a wrapper module"
    sentence = text.split(". ")[0].rstrip(".")
    first = sentence[:160] + ("..." if len(sentence) > 160 else "")
    return f"cannot trace {label}{at}: {type(error).__name__}: {first}; {fix}"
