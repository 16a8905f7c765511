"""Capabilities: which chips can run which units (dtype and op support), checked before solving."""

from __future__ import annotations

from chipcut.backends.protocol import Backend, Work
from chipcut.compiler.lowering.costing import is_free
from chipcut.compiler.lowering.units import UnitGraph
from chipcut.core.errors import ChipcutError

# A unit on a chip that cannot run it costs this many times the whole model on one chip,
# so any plan that puts it there is worse than one that does not (and integers stay small).
FORBIDDEN_FACTOR = 10.0


def _why_not(work: Work, backend: Backend) -> str | None:
    if work.macs and not backend.supports_dtype(work.dtype):
        dtypes = ", ".join(backend.dtypes())
        return f"{backend.name} computes {dtypes}, not {work.dtype}"
    if not backend.supports_op(work.op):
        return f"{backend.name} does not support op {work.op}"
    return None


def restrictions(units: UnitGraph, works: list[Work], backends: list[Backend]) -> dict[tuple[int, int], str]:
    """(unit, chip) -> why the chip cannot run the unit; an error when no chip can run it."""
    out: dict[tuple[int, int], str] = {}
    for u, work in enumerate(works):
        if is_free(work):
            continue
        reasons = {k: _why_not(work, b) for k, b in enumerate(backends)}
        bad = {k for k, why in reasons.items() if why}
        if len(bad) == len(backends):
            why = "; ".join(sorted({reasons[k] for k in bad}))
            fix = (f"quantize it, e.g. --passes 'fold-bn,quantize{{dtype={_best(backends)}}},fuse'"
                   if work.macs and not any(b.supports_dtype(work.dtype) for b in backends)
                   else "add a chip that supports it")
            raise ChipcutError(f"node {units.units[u][0]} ({work.op}, {work.dtype}) cannot run on any "
                               f"chip: {why}; {fix}")
        out.update({(u, k): f"node {units.units[u][0]} ({work.op}) kept off chip {k}: {reasons[k]}"
                    for k in bad})
    return out


def notes(restricted: dict[tuple[int, int], str], limit: int = 5) -> tuple[str, ...]:
    """A few lines for the plan saying which nodes were kept off which chips, and why."""
    lines = [restricted[key] for key in sorted(restricted)]
    more = len(lines) - limit
    return tuple(lines[:limit]) + ((f"... and {more} more node/chip pairs",) if more > 0 else ())


def _best(backends: list[Backend]) -> str:
    """The widest dtype every chip computes, else the first chip's widest."""
    order = ("fp32", "bf16", "fp16", "fp8", "int8", "int4")
    common = [d for d in order if all(b.supports_dtype(d) for b in backends)]
    return common[0] if common else next(d for d in order if backends[0].supports_dtype(d))


def apply(times: list[list[float]], banned: set[tuple[int, int]]) -> list[list[float]]:
    if banned:
        penalty = FORBIDDEN_FACTOR * (sum(max(row) for row in times) + 1e-9)
        for u, k in banned:
            times[u][k] = penalty
    return times


def violations(chip_of_unit: tuple[int, ...], banned: set[tuple[int, int]]) -> list[tuple[int, int]]:
    return [(u, k) for u, k in enumerate(chip_of_unit) if (u, k) in banned]
