"""chipcut compiler: capture a PyTorch model, cut it across chips, and plan the schedule.

>>> import compiler
>>> plan = compiler.compile(model, (x,), chips=4, backend="generic")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from compiler.capture import capture  # binds the function over the submodule name
from compiler.errors import ChipcutError
from compiler.plan import Plan

__all__ = ["compile", "capture", "Plan", "ChipcutError"]


def __getattr__(name: str) -> Any:
    # compile is lazy so that passes/ and backends/ can import compiler.ir without a cycle.
    if name == "compile":
        from compiler.api import compile as fn

        return fn
    raise AttributeError(f"module 'compiler' has no attribute {name!r}")
