"""Aliasing in an FX graph: which node writes a tensor in place, which returns a view of one.

Read from the ops' schemas (a written argument is marked ``(a!)``, ``out=`` included; a view
returns its first argument's alias set), and for graphs from the ``symbolic_trace`` fallback,
which call Tensor methods and Python operators, from two tables.
"""

from __future__ import annotations

import operator

import torch
import torch.fx

# symbolic_trace graphs call Tensor methods: these return a view of the tensor they are called on
VIEW_METHODS = frozenset({
    "view", "view_as", "reshape", "transpose", "permute", "t", "unsqueeze", "squeeze", "expand",
    "expand_as", "narrow", "select", "flatten", "unflatten", "chunk", "split", "unbind",
    "movedim", "as_strided", "diagonal", "unfold", "__getitem__",
})

# symbolic_trace graphs call Python operators: these write their first operand in place
IN_PLACE_OPERATORS = frozenset({operator.setitem, operator.iadd, operator.isub, operator.imul,
                                operator.itruediv, operator.ifloordiv, operator.ipow,
                                operator.iand, operator.ior, operator.ixor})


def _schema(node: torch.fx.Node) -> torch.FunctionSchema | None:
    target = node.target
    return target._schema if isinstance(target, torch._ops.OpOverload) else None


def written(node: torch.fx.Node) -> torch.fx.Node | None:
    """The tensor node writes in place (its ``(a!)`` argument, ``out=`` included), or None."""
    schema = _schema(node)
    if schema is not None:
        for i, arg in enumerate(schema.arguments):
            if arg.alias_info is None or not arg.alias_info.is_write:
                continue
            value = node.args[i] if i < len(node.args) and not arg.kwarg_only \
                else node.kwargs.get(arg.name)
            if isinstance(value, torch.fx.Node):
                return value
        return None
    first = node.args[0] if node.args and isinstance(node.args[0], torch.fx.Node) else None
    if node.op == "call_method" and _trailing_underscore(str(node.target)):
        return first
    if node.op == "call_function" and (node.target in IN_PLACE_OPERATORS
                                       or node.kwargs.get("inplace") is True
                                       or _trailing_underscore(getattr(node.target, "__name__", ""))):
        return first  # x += y, F.relu(x, inplace=True), torch.relu_(x)
    if node.op == "call_module" and getattr(_module(node), "inplace", False) is True:
        return first  # nn.ReLU(inplace=True) and the other activations that take the flag
    return None


def _trailing_underscore(name: str) -> bool:
    """torch's naming of an in-place method or function: ``add_``, ``relu_`` (not ``__add__``)."""
    return name.endswith("_") and not name.startswith("__")


def _module(node: torch.fx.Node) -> torch.nn.Module | None:
    owner = node.graph.owning_module
    try:
        return owner.get_submodule(str(node.target)) if owner is not None else None
    except AttributeError:
        return None


def viewed(node: torch.fx.Node) -> torch.fx.Node | None:
    """The tensor node's value is a view of (its first argument), or None."""
    first = node.args[0] if node.args and isinstance(node.args[0], torch.fx.Node) else None
    if first is None or written(node) is not None:
        return None
    if node.target is operator.getitem:  # an element of a view list, or basic indexing
        return first if viewed(first) is not None or first.op == "call_method" \
            and first.target in VIEW_METHODS else None
    schema = _schema(node)
    if schema is not None:
        ret = schema.returns[0].alias_info if schema.returns else None
        arg = schema.arguments[0].alias_info if schema.arguments else None
        return first if ret is not None and arg is not None \
            and ret.before_set == arg.before_set else None
    return first if node.op == "call_method" and node.target in VIEW_METHODS else None


def base_of(node: torch.fx.Node) -> torch.fx.Node:
    """The tensor whose storage ``node``'s value is: up through views and writes."""
    while (up := written(node) or viewed(node)) is not None:
        node = up
    return node


def has_effect(node: torch.fx.Node) -> bool:
    """The node must stay even when nothing reads its result (it writes in place)."""
    return node.is_impure() or written(node) is not None


__all__ = ["written", "viewed", "base_of", "has_effect", "VIEW_METHODS", "IN_PLACE_OPERATORS"]
