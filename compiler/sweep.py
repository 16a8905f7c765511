"""Chip-count sweep: does a second chip double throughput? Throughput, speedup, efficiency per N."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chipcut.backends.protocol import Backend
from chipcut.compiler.api import CompileOptions, Lowered, schedule, solve
from chipcut.compiler.plan.model import Plan
from chipcut.core.errors import ChipcutError, DoesNotFit
from chipcut.core.files import write_atomic


@dataclass(frozen=True)
class SweepPoint:
    chips: int
    throughput_per_s: float
    latency_s: float
    speedup: float  # throughput over the 1-chip (or first) point
    efficiency: float  # speedup / chips relative to the first point
    limit: str  # what limits throughput: "chip 2 (memory)", "link 0->1", ...
    status: str
    gap: float
    bytes_moved: int


def parse_counts(text: str) -> list[int]:
    """'1..8' -> [1..8]; '1,2,4' -> [1, 2, 4]."""
    try:
        if ".." in text:
            lo, hi = (int(t) for t in text.split(".."))
            if hi < lo:
                raise ChipcutError(f"--chips {text!r}: the range runs backwards; write {hi}..{lo}")
            counts = list(range(lo, hi + 1))
        else:
            counts = [int(t) for t in text.split(",")]
    except ValueError:
        raise ChipcutError(f"--chips {text!r}: write a range like 1..8 or a list like 1,2,4") from None
    if not counts or min(counts) < 1:
        raise ChipcutError(f"--chips {text!r}: chip counts must be >= 1, e.g. 1..8")
    return counts


def limit_of(plan: Plan) -> str:
    m = plan.metrics
    if m.bottleneck_chip < 0:
        return m.bottleneck
    return f"chip {m.bottleneck_chip} ({plan.stages[m.bottleneck_chip].bound})"


def sweep(lowered: Lowered, counts: Sequence[int], backend: str | Backend = "generic",
          options: CompileOptions | None = None,
          progress: Callable[[str], None] | None = None) -> list[SweepPoint]:
    """Solve and schedule one lowering for each chip count. A count on which the model does not
    fit is a point limited by memory; speedups are relative to the first count that fits. Each
    count starts from the previous count's plan, so more chips never give a worse plan."""
    points: list[SweepPoint] = []
    base: tuple[int, float] | None = None
    previous: tuple[int, ...] | None = None  # the last plan: valid on more chips (some empty)
    for n in counts:
        try:
            solved = solve(lowered, n, backend, options, progress, start=previous)
            previous = solved.partitioned.solution.chip_of_unit
            plan = schedule(lowered, solved, options)
        except DoesNotFit as e:
            unfit = e
            points.append(SweepPoint(n, 0.0, 0.0, 0.0, 0.0, "memory (does not fit)", "NO FIT",
                                     0.0, 0))
            continue
        m = plan.metrics
        if base is None:
            base = (n, m.throughput_per_s)
        speedup = m.throughput_per_s / base[1] if base[1] else 0.0
        points.append(SweepPoint(n, m.throughput_per_s, m.latency_s, speedup,
                                 speedup * base[0] / n, limit_of(plan), plan.solver.status,
                                 plan.solver.gap, m.bytes_moved))
    if base is None:
        raise unfit
    return points


def render(points: list[SweepPoint]) -> str:
    from rich.console import Console
    from rich.table import Table

    from chipcut.compiler.views.report import fmt_s

    t = Table(title="chip-count sweep", title_justify="left")
    for col in ("chips", "throughput/s", "speedup", "efficiency %", "latency", "limited by",
                "MB moved", "solver"):
        t.add_column(col, justify="right" if col not in ("limited by", "solver") else "left")
    for p in points:
        t.add_row(str(p.chips), f"{p.throughput_per_s:.4g}", f"{p.speedup:.2f}x",
                  f"{100 * p.efficiency:.0f}", fmt_s(p.latency_s), p.limit,
                  f"{p.bytes_moved / 1e6:.2f}", f"{p.status} gap {100 * p.gap:.1f}%")
    buf = io.StringIO()
    Console(file=buf, width=140, color_system=None).print(t)
    return buf.getvalue()


def plot(points: list[SweepPoint], path: str | os.PathLike) -> None:
    from matplotlib.figure import Figure

    # A Figure, not pyplot: the user's backend is left alone and no window opens.
    fig = Figure(figsize=(11, 4))
    left, right = fig.subplots(1, 2)
    xs = [p.chips for p in points]
    left.plot(xs, [p.throughput_per_s for p in points], marker="o")
    left.set_xlabel("chips")
    left.set_ylabel("throughput (inferences/s, batch 1)")
    for p in points:
        left.annotate(p.limit, (p.chips, p.throughput_per_s), fontsize=7, rotation=20)
    right.plot(xs, [p.speedup for p in points], marker="o", label="speedup")
    right.plot(xs, [x / xs[0] for x in xs], linestyle="--", color="gray", label="ideal")
    right.plot(xs, [p.efficiency for p in points], marker="s", label="efficiency")
    right.set_xlabel("chips")
    right.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    write_atomic(path, buf.getvalue())


@dataclass(frozen=True)
class GridPoint:
    """One decode step of the batch x context grid: does it fit on the chips, and how fast.
    tpot_s: the step's latency; kv_bytes_max: the fullest chip's KV cache; needs: the chips it
    would fit on when it does not (0 when unknown)."""

    batch: int
    context: int
    fits: bool
    tpot_s: float = 0.0
    tokens_per_s: float = 0.0
    kv_bytes_max: int = 0
    bound_ratio: float = 0.0
    needs: int = 0
    status: str = ""


def _needs(error: DoesNotFit) -> int:
    text = str(error)
    if "fits on " not in text:
        return 0
    return int(text.split("fits on ", 1)[1].split(" ", 1)[0])


def decode_grid(model: object, batches: Sequence[int], contexts: Sequence[int], chips: int,
                backend: str | Backend = "generic", options: CompileOptions | None = None,
                kv_dtype: str | None = None,
                progress: Callable[[str], None] | None = None) -> list[GridPoint]:
    """The decode step of a causal LM at every batch x context, each an exact plan on
    ``chips``: which fit beside the weights (the KV cache on the chips of its layers), their
    TPOT and tokens/s. A batch larger than one that does not fit at a context is not tried."""
    from chipcut.compiler.api import lower
    from chipcut.compiler.llm.step import decode_step

    options = options or CompileOptions()
    say = progress or (lambda _m: None)
    points: list[GridPoint] = []
    for context in sorted(set(contexts)):
        unfit: GridPoint | None = None
        for batch in sorted(set(batches)):
            if unfit is not None:  # the cache only grows with the batch
                points.append(GridPoint(batch, context, False, needs=0, status="NO FIT"))
                continue
            say(f"decode step: batch {batch}, context {context}")
            step = decode_step(model, batch, context, kv_dtype, options.name)
            lowered = lower(step, (), chips, backend, options)
            try:
                plan = schedule(lowered, solve(lowered, chips, backend, options), options)
            except DoesNotFit as e:
                unfit = GridPoint(batch, context, False, needs=_needs(e), status="NO FIT")
                points.append(unfit)
                continue
            v = plan.serving
            points.append(GridPoint(batch, context, True, v.step_s, v.tokens_per_s,
                                    max(s.kv_bytes for s in plan.stages), v.bound_ratio,
                                    status=plan.solver.status))
    return points


def largest_fitting(points: list[GridPoint]) -> dict[int, int]:
    """context -> the largest batch of the grid that fits there (contexts where one fits)."""
    out: dict[int, int] = {}
    for p in points:
        if p.fits:
            out[p.context] = max(out.get(p.context, 0), p.batch)
    return out


def render_grid(points: list[GridPoint], chips: int, backend: str) -> str:
    from rich.console import Console
    from rich.table import Table

    from chipcut.compiler.views.report import fmt_b, fmt_s

    t = Table(title=f"decode: batch x context on {chips} x {backend}", title_justify="left")
    for col in ("context", "batch", "fits", "TPOT", "tokens/s", "KV/chip (max)", "TPOT/bound",
                "solver"):
        t.add_column(col, justify="left" if col in ("fits", "solver") else "right")
    for p in points:
        if p.fits:
            t.add_row(str(p.context), str(p.batch), "yes", fmt_s(p.tpot_s),
                      f"{p.tokens_per_s:,.0f}", fmt_b(p.kv_bytes_max), f"{p.bound_ratio:.2f}",
                      p.status)
        else:
            needs = f"no (fits on {p.needs} chips)" if p.needs else "no"
            t.add_row(str(p.context), str(p.batch), needs, "-", "-", "-", "-", p.status)
    buf = io.StringIO()
    Console(file=buf, width=140, color_system=None).print(t)
    best = largest_fitting(points)
    for context in sorted({p.context for p in points}):
        if context in best:
            buf.write(f"largest batch that fits at context {context}: {best[context]}\n")
        else:
            buf.write(f"context {context}: no batch of the grid fits on {chips} chips\n")
    return buf.getvalue()
