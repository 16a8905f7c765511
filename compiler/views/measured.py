"""Measured beside predicted: per stage and link times and their ratio, throughput, latency,
bottleneck and the outputs' agreement with the unsplit model, as text (rich)."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from chipcut.compiler.plan.measured import Measured
from chipcut.core.fmt import nbytes, seconds


def ratio(measured: float, predicted: float) -> str:
    """measured / predicted, or n/a when nothing was predicted.

    >>> ratio(2e-3, 1e-3), ratio(1.0, 0.0)
    ('2', 'n/a')
    """
    return f"{measured / predicted:.3g}" if predicted > 0 else "n/a"


def table(m: Measured) -> Table:
    processes = f"{len(m.stages)} stage process{'es' * (len(m.stages) > 1)}"
    threads = f"{m.threads} thread{'s' * (m.threads > 1)} each"
    t = Table(title=f"{m.model}: {processes}, {m.schedule}, {m.microbatches} microbatches, "
                    f"{threads} ({m.device})", title_justify="left")
    for col in ("stage", "chip", "cores", "bytes pred.", "bytes meas.", "predicted", "measured",
                "meas. / pred.", "% of slowest"):
        t.add_column(col, justify="right")
    slowest = max([s.busy_s for s in m.stages] + [x.time_s for x in m.links]) or 1.0
    for s in m.stages:
        mark = m.bottleneck == f"chip {s.chip}"
        t.add_row(f"{s.stage}{' *' if mark else ''}", str(s.chip),
                  ",".join(map(str, s.cores)) or "-", "", "", seconds(s.predicted_s),
                  seconds(s.busy_s), ratio(s.busy_s, s.predicted_s),
                  f"{100 * s.busy_s / slowest:.0f}", style="bold red" if mark else None)
    for x in m.links:
        name = f"link {x.src}->{x.dst}"
        mark = m.bottleneck == name
        t.add_row(name + (" *" if mark else ""), "", "", nbytes(x.predicted_bytes), nbytes(x.bytes),
                  seconds(x.predicted_s), seconds(x.time_s), ratio(x.time_s, x.predicted_s),
                  f"{100 * x.time_s / slowest:.0f}", style="bold red" if mark else None)
    return t


def summary_lines(m: Measured) -> list[str]:
    lines = [
        f"throughput: predicted {m.predicted_throughput_per_s:.4g}/s, measured "
        f"{m.throughput_per_s:.4g}/s sustained (measured / predicted "
        f"{ratio(m.throughput_per_s, m.predicted_throughput_per_s)}); "
        f"{m.run_throughput_per_s:.4g}/s over the {m.frames} timed frames with each step's fill "
        f"and drain ({m.microbatches} frames per step)",
        f"latency (one frame alone): predicted {seconds(m.predicted_latency_s)}, measured "
        f"{seconds(m.latency_s)} ({ratio(m.latency_s, m.predicted_latency_s)})",
        f"bottleneck: predicted {m.predicted_bottleneck}, measured {m.bottleneck} (*)"
        + ("" if m.predicted_bottleneck == m.bottleneck else ": they differ"),
        f"outputs: max abs diff {m.max_abs_diff:.3g} against the unsplit model (output scale "
        f"{m.output_scale:.3g})" + ("" if m.outputs_agree else
                                    ": they DIFFER, the pipeline did not compute the model"),
    ]
    if m.oversubscribed:
        lines.append("note: stages shared CPU cores (--oversubscribe); their times include waiting "
                     "for a core")
    lines.append(f"stage time: inside the stage's forward, median per frame; link time: from both "
                 f"ends ready to the data received; {m.machine}")
    return lines


def render(m: Measured, width: int = 160) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=width, color_system=None, force_terminal=False)
    console.print(table(m))
    for line in summary_lines(m):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    return buf.getvalue()


__all__ = ["render", "table", "summary_lines", "ratio"]
