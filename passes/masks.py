"""What an attention mask allows, when it is built from constants: a superset of the
(query, key) pairs it lets through, computed by running the mask's producers again on CPU.

The accounting rules use it to count a causal mask the same as ``is_causal=True``.
"""

from __future__ import annotations

import functools
import operator

import torch
import torch.fx

from chipcut.core.ir import attr_value, iter_tensors, node_value

aten = torch.ops.aten

MASK_EVAL_BYTES = 1 << 28  # a mask's producers are run (on CPU) only while each is this small
MASK_EVAL_NODES = 2000  # ... and only this many of them
MASKED_BELOW = -1e4  # an additive mask value at or below this (-inf, the dtype's min) masks
_UNKNOWN = object()
_AND_OPS = {aten.__and__.Tensor, aten.bitwise_and.Tensor, aten.logical_and.default,
            operator.and_, torch.logical_and, torch.bitwise_and}
_METADATA = {"size", "sym_size", "sym_numel", "numel", "dim", "stride", "sym_stride", "shape",
             "ndim", "dtype", "device"}
_UNSEEDED = ("empty", "rand", "normal", "bernoulli", "dropout", "multinomial", "uniform")


def _producers(root: torch.fx.Node) -> list[torch.fx.Node] | None:
    """``root`` and its ancestors, each after its inputs (None past MASK_EVAL_NODES)."""
    order: list[torch.fx.Node] = []
    done: set[torch.fx.Node] = set()
    stack = [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if node in done:
            continue
        if inputs_done:
            done.add(node)
            order.append(node)
            continue
        stack.append((node, True))
        stack += [(n, False) for n in node.all_input_nodes if n not in done]
        if len(stack) + len(done) > MASK_EVAL_NODES:
            return None
    return order


def _pure(node: torch.fx.Node) -> bool:
    """A call whose result depends on its arguments alone (not seeded, not uninitialized, no
    mutation), so running it again on CPU reproduces it: an ATen op, a torch function, an
    operator or a tensor method."""
    target = node.target
    if isinstance(target, torch._ops.OpOverload):
        if target._schema.is_mutable or torch.Tag.nondeterministic_seeded in target.tags:
            return False
        name = target._schema.name.split("::")[-1]
    else:
        name = str(target) if node.op == "call_method" else getattr(target, "__name__", "")
        if node.op == "call_function" and getattr(target, "__module__", None) not in (
                "torch", "_operator", "operator"):
            return False
        if name.endswith("_") and not name.endswith("__"):  # in place: masked_fill_
            return False
    return not any(word in name for word in _UNSEEDED)


def _metadata(node: torch.fx.Node) -> bool:
    """A read of a tensor's size, dtype or device (``x.size(1)``, ``q.device``, sym_size)."""
    if node.target is getattr:
        return node.args[1] in _METADATA
    name = str(node.target) if node.op == "call_method" else getattr(node.target, "__name__", "")
    return name.split(".")[0] in _METADATA


def _cpu(arg: object) -> object:
    """A meta device argument as the CPU, where the values are computed."""
    meta = isinstance(arg, (torch.device, str)) and str(arg) == "meta"
    return torch.device("cpu") if meta else arg


def _evaluate(node: torch.fx.Node, values: dict) -> object:
    """The node's value when it follows from constants alone, else _UNKNOWN."""
    recorded = node_value(node)
    if node.op == "get_attr":
        tensor = attr_value(node)
        return tensor if isinstance(tensor, torch.Tensor) and not tensor.is_meta else _UNKNOWN
    if _metadata(node):  # shapes, dtypes and devices are static: the recorded value holds
        return recorded if recorded is not None else _UNKNOWN
    if node.op not in ("call_function", "call_method") or not _pure(node):
        return _UNKNOWN
    if any(values[n] is _UNKNOWN for n in node.all_input_nodes):
        return _UNKNOWN
    if any(t.numel() * t.element_size() > MASK_EVAL_BYTES for t in iter_tensors(recorded)):
        return _UNKNOWN
    args = torch.fx.node.map_aggregate(torch.fx.node.map_arg(node.args, values.get), _cpu)
    kwargs = torch.fx.node.map_aggregate(torch.fx.node.map_arg(node.kwargs, values.get), _cpu)
    try:
        if node.op == "call_method":
            return getattr(args[0], node.target)(*args[1:], **kwargs)
        return node.target(*args, **kwargs)
    except Exception:  # noqa: BLE001 - whatever fails to run again is simply not known
        return _UNKNOWN


def _allowed(value: object) -> torch.Tensor | None:
    """Where a mask value lets a query see a key: a bool mask itself, an additive one above
    MASKED_BELOW."""
    if not isinstance(value, torch.Tensor):
        return None
    if value.dtype == torch.bool:
        return value
    return value > MASKED_BELOW if value.is_floating_point() else None


def mask_signature(mask: torch.fx.Node) -> tuple:
    """What ``mask_bound`` reads: the names, targets and inputs of the mask's producers
    (strings only, so a memo keyed by it holds no node alive)."""
    order = _producers(mask) or [mask]
    return tuple((n.name, str(n.target), tuple(a.name for a in n.all_input_nodes))
                 for n in order)


def mask_bound(mask: torch.fx.Node) -> torch.Tensor | None:
    """A superset of the (query, key) pairs ``mask`` allows, or None when nothing is known.

    Values that follow from constants are computed; ANDing with an unknown mask keeps the
    known side (it can only allow less), and views of a bool mask carry its bound along.
    """
    order = _producers(mask)
    if order is None:
        return None
    values: dict[torch.fx.Node, object] = {}
    bounds: dict[torch.fx.Node, torch.Tensor | None] = {}
    for node in order:
        values[node] = _evaluate(node, values)
        if values[node] is not _UNKNOWN:
            bounds[node] = _allowed(values[node])
        elif node.target in _AND_OPS:
            known = [bounds.get(n) for n in node.all_input_nodes if bounds.get(n) is not None]
            bounds[node] = functools.reduce(operator.and_, known) if known else None
        else:
            bounds[node] = _view_bound(node, values, bounds)
    return bounds[mask]


def _view_bound(node: torch.fx.Node, values: dict, bounds: dict) -> torch.Tensor | None:
    """A view or copy of a bool mask applied to that mask's bound."""
    target = node.target
    source = node.args[0] if node.args else None
    if not (isinstance(target, torch._ops.OpOverload) and isinstance(source, torch.fx.Node)
            and bounds.get(source) is not None):
        return None
    name = target._schema.name.split("::")[-1]
    if not (target.is_view or name in ("clone", "contiguous", "to", "_to_copy", "expand_copy")):
        return None
    out, src = _first_tensor(node_value(node)), _first_tensor(node_value(source))
    if out is None or src is None or out.dtype != torch.bool or src.dtype != torch.bool:
        return None
    rest = node.all_input_nodes[1:]
    if any(values[n] is _UNKNOWN for n in rest):
        return None
    def lookup(n: torch.fx.Node) -> object:
        return bounds[source] if n is source else values[n]

    args = torch.fx.node.map_aggregate(torch.fx.node.map_arg(node.args, lookup), _cpu)
    kwargs = torch.fx.node.map_aggregate(torch.fx.node.map_arg(node.kwargs, lookup), _cpu)
    try:
        return _allowed(target(*args, **kwargs))
    except Exception:  # noqa: BLE001 - a view that does not apply to the bound says nothing
        return None


def _first_tensor(value: object) -> torch.Tensor | None:
    return next(iter_tensors(value), None)
