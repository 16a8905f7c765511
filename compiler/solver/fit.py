"""Capacity: why a model does not fit on the chips, by how much, and how many chips it needs.

A chip holds its stage's weights and the activations live while a unit runs
(``live_bytes``) in DRAM, or in SRAM on SRAM-only chips.
The diagnosis cuts along the unit order (a topological order), where the
fewest stages is a greedy count; the solver itself checks every pipeline.
"""

from __future__ import annotations

from chipcut.backends.protocol import Backend, Work
from chipcut.compiler.lowering.units import UnitGraph
from chipcut.core.dtypes import BYTES, ORDER, DType
from chipcut.core.errors import DoesNotFit
from chipcut.core.fmt import nbytes as fmt_b


def stages_needed(weights: list[int], live: list[int], capacity: float) -> int | None:
    """Fewest contiguous stages along the order with weights + peak live <= capacity each
    (None when one unit alone does not fit)."""
    count, held, peak = 1, 0, 0
    for w, a in zip(weights, live, strict=True):
        if w + a > capacity:
            return None
        if held + w + max(peak, a) > capacity:
            count, held, peak = count + 1, 0, 0
        held, peak = held + w, max(peak, a)
    return count


def need_per_chip(weights: list[int], live: list[int], chips: int) -> float:
    """Least capacity with which ``chips`` contiguous stages along the order hold the model."""
    lo = max((w + a for w, a in zip(weights, live, strict=True)), default=0)
    hi = sum(weights) + max(live, default=0)
    while hi - lo > max(hi * 1e-4, 1):
        mid = (lo + hi) / 2
        if stages_needed(weights, live, mid) <= chips:
            hi = mid
        else:
            lo = mid
    return hi


def memory_of(backend: Backend) -> tuple[str, int]:
    """("DRAM" or "SRAM", bytes) that hold a chip's weights and activations."""
    memory = backend.memory()
    return memory.level, memory.capacity_bytes


def live_bytes(units: UnitGraph, works: list[Work]) -> tuple[int, ...]:
    """Activation bytes live while each unit runs, in unit order: every tensor from its
    producer to its last reader, plus outputs that leave the model."""
    n = len(works)
    diff = [0] * (n + 1)
    produced = [0] * n
    for p, consumers, nbytes, _ in units.tensors:
        diff[p] += nbytes
        diff[max(consumers) + 1] -= nbytes
        produced[p] += nbytes
    out, running = [], 0
    for u in range(n):
        running += diff[u]
        out.append(running + max(works[u].out_bytes - produced[u], 0))
    return tuple(out)


def no_fit_error(units: UnitGraph, works: list[Work], backends: list[Backend]) -> DoesNotFit:
    weights = [w.weight_bytes for w in works]
    live = list(live_bytes(units, works))
    kind, capacity = min((memory_of(b) for b in backends), key=lambda km: km[1])
    name = min(backends, key=lambda b: memory_of(b)[1]).name
    n = len(backends)
    biggest = max(range(len(works)), key=lambda u: weights[u] + live[u])
    alone = weights[biggest] + live[biggest]
    if alone > capacity:
        return DoesNotFit(
            f"node {units.units[biggest][0]} alone needs {fmt_b(alone)} ({fmt_b(weights[biggest])} "
            f"weights + {fmt_b(live[biggest])} activations) but a {name} chip has {fmt_b(capacity)} "
            f"of {kind}; no chip count fits it: {_advice(works[biggest], backends)}")
    need = need_per_chip(weights, live, n)
    fits = stages_needed(weights, live, capacity)
    return DoesNotFit(
        f"the model does not fit on {n} chip{'s' if n != 1 else ''}: {kind} is short by {fmt_b(need - capacity)} per chip "
        f"(a {name} chip has {fmt_b(capacity)}; the best cut along the unit order needs "
        f"{fmt_b(need)} of weights and live activations on one chip); it fits on {fits} chips "
        f"(--chips {fits}), or {_advice(max(works, key=lambda w: w.weight_bytes), backends)}")


def _advice(work: Work, backends: list[Backend]) -> str:
    """What would make a unit smaller: a narrower dtype some chip computes, else a chip with more
    memory. (int4 is a storage dtype computed in int8, so an int8 unit may already hold int4
    weights: it is not advised again.)"""
    computes = [d for d in ORDER if d != "int4" and any(b.supports_dtype(d) for b in backends)]
    # Narrower means fewer bytes per value: fp16 frees nothing over bf16.
    narrower = [d for d in computes if work.dtype in ORDER and BYTES[d] < BYTES[DType(work.dtype)]]
    if narrower:
        d = narrower[-1]
        return (f"quantize to {d} (--passes 'fold-bn,quantize{{dtype={d}}},fuse'), or use a chip "
                "with more memory")
    return (f"it is already at {work.dtype}, the narrowest dtype these chips compute: use a chip "
            "with more memory")
