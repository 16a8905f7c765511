"""Pass manager: a pipeline is data (``"fold-bn,quantize{dtype=int8},fuse"``), run linearly.

A pass is a frozen dataclass whose fields are its options and whose ``__call__``
takes and returns a GraphModule. Options that depend on the compile target (the
chips, calibration inputs) are filled in by ``bind(target)`` before running and
never appear in the text form. The manager verifies the graph after each pass
and reports a failure with the pass and the node named.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx

from chipcut.core.errors import ChipcutError
from chipcut.core.ir import is_compute

DEFAULT_PIPELINE = "fold-bn,quantize{dtype=native},fuse"
PASSES: dict[str, type] = {}


def register_pass(name: str) -> Callable[[type], type]:
    """Register a pass class under its text name (``fold-bn``, ``quantize``, ``fuse``)."""

    def deco(cls: type) -> type:
        if name in PASSES:
            raise ValueError(f"pass {name} registered twice: {PASSES[name].__module__} and {cls.__module__}")
        PASSES[name] = cls
        cls.pass_name = name
        return cls

    return deco


@dataclass(frozen=True)
class Target:
    """What passes may need from the compile: the chips, and inputs to run the model on."""

    backends: tuple[Any, ...] = ()
    example_inputs: tuple[torch.Tensor, ...] = ()
    calibration_inputs: tuple[tuple[torch.Tensor, ...], ...] = ()
    progress: Callable[[str], None] | None = field(default=None, compare=False)


class PassError(ChipcutError):
    """A pass failed on a node; the manager adds the pass name."""

    def __init__(self, node: torch.fx.Node | str | None, message: str) -> None:
        self.node = node.name if isinstance(node, torch.fx.Node) else node
        super().__init__(message)


@dataclass(frozen=True)
class Pipeline:
    """An ordered list of configured passes.

    >>> str(Pipeline.parse("fold-bn, quantize{dtype=int8}, fuse"))
    'fold-bn,quantize{dtype=int8},fuse'
    """

    passes: tuple[Any, ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, text: str) -> Pipeline:
        """Parse ``name{opt=value,...},name,...``; ``default`` expands to :data:`DEFAULT_PIPELINE`."""
        _load_builtins()
        text = text.strip()
        if text in ("", "none"):
            return cls(())
        if text == "default":
            text = DEFAULT_PIPELINE
        items = _split_top(text)
        for i, item in enumerate(items):
            if not item:
                raise ChipcutError(f"pass pipeline {text!r}: entry {i + 1} is empty; remove the "
                                   "extra comma")
        parsed = tuple(_parse_one(item) for item in items)
        _check_order(text, [p.pass_name for p in parsed])
        return cls(parsed)

    def __str__(self) -> str:
        return ",".join(format_pass(p) for p in self.passes)

    def bind(self, target: Target) -> Pipeline:
        return Pipeline(tuple(p.bind(target) if hasattr(p, "bind") else p for p in self.passes))

    def run(self, gm: torch.fx.GraphModule, target: Target | None = None,
            verify: bool = True, progress: Callable[[str], None] | None = None) -> torch.fx.GraphModule:
        """Run every pass in order; with ``verify`` check the graph after each one."""
        target = target or Target()
        if progress is not None:
            target = dataclasses.replace(target, progress=progress)
        bound = self.bind(target)
        for p in bound.passes:
            name = p.pass_name
            if progress:
                progress(f"pass {name}")
            try:
                gm = p(gm)
            except PassError as e:
                at = f" at node {e.node}" if e.node else ""
                raise ChipcutError(f"pass {format_pass(p)} failed{at}: {e}") from None
            if verify:
                problem = verify_graph(gm)
                if problem:
                    raise ChipcutError(f"pass {format_pass(p)} left an invalid graph: {problem}")
        return gm


def verify_graph(gm: torch.fx.GraphModule) -> str | None:
    """None when the graph is well formed (lint passes, every compute node has a value)."""
    try:
        gm.graph.lint()
    except Exception as e:  # noqa: BLE001 - lint raises plain RuntimeErrors
        return str(e).splitlines()[0]
    for node in gm.graph.nodes:
        if is_compute(node) and "val" not in node.meta and "tensor_meta" not in node.meta:
            return f"node {node.name} ({node.target}) has no shape metadata"
    return None


_ITEM = re.compile(r"^([a-z][a-z0-9-]*)(?:\{(.*)\})?$", re.S)


def _split_top(text: str) -> list[str]:
    """Split on commas outside braces."""
    items, depth, cur = [], 0, []
    for ch in text:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            items.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    items.append("".join(cur).strip())
    if depth != 0:
        raise ChipcutError(f"pass pipeline {text!r}: unbalanced braces; write e.g. "
                           "'fold-bn,quantize{dtype=int8},fuse'")
    return items


# The order passes must run in: cse and fold-bn rewrite the graph that quantize annotates, and
# fuse groups nodes by the precision quantize chose. Each pass runs at most once.
ORDER = ("cse", "fold-bn", "quantize", "fuse")


def _check_order(text: str, names: list[str]) -> None:
    seen: list[str] = []
    for name in names:
        if name in seen:
            raise ChipcutError(f"pass pipeline {text!r}: {name} appears twice; keep one")
        later = [s for s in seen if name in ORDER and s in ORDER and ORDER.index(s) > ORDER.index(name)]
        if later:
            raise ChipcutError(f"pass pipeline {text!r}: {name} must come before {later[0]} "
                               f"(order: {', '.join(ORDER)}); write e.g. {DEFAULT_PIPELINE!r}")
        seen.append(name)


def _known() -> str:
    lines = []
    for name, cls in sorted(PASSES.items()):
        opts = [f.name for f in dataclasses.fields(cls) if not f.metadata.get("target")]
        lines.append(name + ("{" + ",".join(opts) + "}" if opts else ""))
    return ", ".join(lines)


def _parse_one(item: str) -> Any:
    match = _ITEM.match(item)
    if not match:
        raise ChipcutError(f"pass {item!r} is not 'name' or 'name{{opt=value,...}}'; known passes: {_known()}")
    name, body = match.group(1), match.group(2)
    if name not in PASSES:
        raise ChipcutError(f"unknown pass {name!r}; known passes: {_known()}")
    cls = PASSES[name]
    options = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("target")}
    kwargs: dict[str, Any] = {}
    parts = _split_top(body) if body else []
    for part in parts:
        key, eq, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not part:
            raise ChipcutError(f"pass {name}: an empty option in {item!r}; remove the extra comma")
        if key in kwargs:
            raise ChipcutError(f"pass {name}: option {key} is given twice in {item!r}; keep one")
        if not eq or key not in options:
            known = ", ".join(options) or "none"
            raise ChipcutError(f"pass {name}: unknown option {part!r}; its options are: {known}")
        kwargs[key] = _coerce(name, options[key], value)
    try:
        return cls(**kwargs)
    except (ValueError, ChipcutError) as e:
        raise ChipcutError(f"pass {name}: {e}") from None


def _coerce(pass_name: str, f: dataclasses.Field, value: str) -> Any:
    parse = f.metadata.get("parse")
    try:
        if parse is not None:
            return parse(value)
        if f.type in ("float", float):
            number = float(value)
            if not math.isfinite(number):
                raise ValueError("expected a finite number")
            return number
        if f.type in ("int", int):
            return int(value)
        if f.type in ("bool", bool):
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError("expected true or false")
            return value.lower() in ("true", "1")
    except ValueError as e:
        raise ChipcutError(f"pass {pass_name}: option {f.name}={value!r} is invalid ({e})") from None
    return value


def format_pass(p: Any) -> str:
    parts = []
    for f in dataclasses.fields(p):
        if f.metadata.get("target"):
            continue
        value = getattr(p, f.name)
        if value == f.default:
            continue
        fmt = f.metadata.get("format")
        parts.append(f"{f.name}={fmt(value) if fmt else _scalar(value)}")
    return p.pass_name + ("{" + ",".join(parts) + "}" if parts else "")


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _load_builtins() -> None:
    # The built-in passes register themselves on import.
    import chipcut.passes.cse  # noqa: F401
    import chipcut.passes.fold_bn  # noqa: F401
    import chipcut.passes.fuse  # noqa: F401
    import chipcut.passes.quantize  # noqa: F401


def as_pipeline(passes: str | Pipeline | None) -> Pipeline:
    if passes is None:
        return Pipeline.parse("default")
    if isinstance(passes, Pipeline):
        return passes
    if isinstance(passes, str):
        return Pipeline.parse(passes)
    raise ChipcutError(f"passes = {passes!r}: give a pipeline string such as "
                       f"{DEFAULT_PIPELINE!r} or a chipcut.passes.manager.Pipeline")
