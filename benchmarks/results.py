"""RESULTS.md writer: each benchmark owns one marked section and rewrites only that (atomically)."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from chipcut.core.files import write_atomic

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = "# chipcut benchmark results\n\nEach section is written by the program it names.\n"


def machine() -> str:
    import os

    return (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"torch {torch.__version__}")


def write_section(name: str, body: str) -> None:
    """Replace the section ``name`` of RESULTS.md (or append it) with ``body``."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    write_atomic(RESULTS, text)


def table(headers: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
