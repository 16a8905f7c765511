"""chipcut compiler: capture a PyTorch model, cut it across chips, and plan the schedule.

>>> import compiler
>>> plan = compiler.compile(model, (x,), chips=4, backend="generic")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

__all__ = ["compile", "capture", "Plan", "ChipcutError"]


def __getattr__(name: str) -> Any:
    # Lazy, so that passes/ and backends/ can import compiler.ir without a cycle.
    if name == "compile":
        from compiler.api import compile as fn

        return fn
    if name == "capture":
        from compiler.capture import capture as fn

        return fn
    if name == "Plan":
        from compiler.plan import Plan

        return Plan
    if name == "ChipcutError":
        from compiler.errors import ChipcutError

        return ChipcutError
    raise AttributeError(f"module 'compiler' has no attribute {name!r}")
