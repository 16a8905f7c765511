"""Plots (matplotlib, PNG): the cut picture and a per-chip Gantt of one pipelined period."""

from __future__ import annotations

import io
import os

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from chipcut.compiler.plan.model import Plan
from chipcut.core.files import write_atomic

BOUND_COLORS = {"compute": "#4C72B0", "memory": "#DD8452", "overhead": "#8C8C8C"}


def _cut_panel(ax: Axes, plan: Plan) -> None:
    """Activation bytes per layer (bars), cumulative MACs (line), chosen cuts (vertical lines)."""
    ops = [op for t in plan.timeline for op in t.ops]
    x = range(len(ops))
    ax.bar(x, [op.out_bytes / 1e6 for op in ops], color="#55A868", width=1.0,
           label="output activation (MB)")
    ax.set_xlabel("layer (fused unit, pipeline order)")
    ax.set_ylabel("activation MB")
    twin = ax.twinx()
    total = max(plan.model.macs, 1)
    running, cumulative = 0, []
    for op in ops:
        running += op.macs
        cumulative.append(100 * running / total)
    twin.plot(list(x), cumulative, color="#C44E52", label="cumulative MACs (%)")
    twin.set_ylabel("cumulative MACs %")
    twin.set_ylim(0, 100)
    edge = 0
    for t in plan.timeline[:-1]:
        edge += len(t.ops)
        moved = next((tr.bytes for tr in plan.transfers if tr.src == t.chip), 0)
        ax.axvline(edge - 0.5, color="black", linestyle="--")
        ax.text(edge - 0.5, ax.get_ylim()[1] * 0.95, f" cut {t.chip}->{t.chip + 1}\n {moved / 1e6:.2f} MB",
                fontsize=8, va="top")
    ax.set_title(f"{plan.model.name}: activation bytes, cumulative MACs and cuts")


def gantt_panel(ax: Axes, plan: Plan) -> None:
    rows = []
    for t in plan.timeline:
        rows.append((f"chip {t.chip}", [(op.start_s, op.end_s - op.start_s, op.bound) for op in t.ops]))
    for tr in plan.transfers:
        rows.append((f"link {tr.src}->{tr.dst}", [(0.0, tr.time_s, "transfer")]))
    for i, (_, spans) in enumerate(rows):
        for start, width, kind in spans:
            ax.broken_barh([(start * 1e3, width * 1e3)], (i - 0.4, 0.8),
                           facecolors=BOUND_COLORS.get(kind, "#8172B3"), edgecolor="white",
                           linewidth=0.2)
    ax.axvline(plan.metrics.bottleneck_s * 1e3, color="red", linestyle=":",
               label=f"period {plan.metrics.bottleneck_s * 1e3:.3g} ms ({plan.metrics.bottleneck})")
    ax.set_yticks(range(len(rows)), [label for label, _ in rows])
    ax.invert_yaxis()
    ax.set_xlabel("time in one pipelined period (ms)")
    handles = [Rectangle((0, 0), 1, 1, color=c) for c in BOUND_COLORS.values()]
    ax.legend(handles + ax.get_legend_handles_labels()[0],
              [f"{k}-bound" for k in BOUND_COLORS] + ax.get_legend_handles_labels()[1],
              loc="lower right", fontsize=8)
    ax.set_title("per-chip schedule of one period")


def plot_plan(plan: Plan, path: str | os.PathLike) -> None:
    """Write a PNG with (a) the cut picture and (b) the per-chip Gantt chart."""
    # A Figure, not pyplot: the user's backend is left alone, no window opens and no figure
    # registry needs closing; savefig picks the PNG renderer by itself.
    fig = Figure(figsize=(12, 9))
    top, bottom = fig.subplots(2, 1, height_ratios=[3, 2])
    _cut_panel(top, plan)
    gantt_panel(bottom, plan)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    write_atomic(path, buf.getvalue())
