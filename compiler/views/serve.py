"""Views of a serving plan: the pools and options as text, a Chrome trace of every chip of the
system, and a PNG of the pools and each pipeline's period."""

from __future__ import annotations

import io
import json
import os

from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table

from chipcut.compiler.plan.serve import ServePlan
from chipcut.compiler.views.plots import gantt_panel
from chipcut.compiler.views.report import fmt_b, fmt_s, num, render
from chipcut.compiler.views.trace import chrome_trace
from chipcut.core.files import write_atomic

ROLE_COLORS = {"prefill": "#4C72B0", "decode": "#DD8452", "shared": "#55A868"}


def _options_table(plan: ServePlan) -> Table:
    t = Table(title="pipelines considered (one replica each)", title_justify="left")
    for col in ("option", "role", "chips", "batch", "TTFT", "TPOT", "requests/s", "tokens/s",
                "meets", "why not"):
        t.add_column(col, justify="left" if col in ("role", "meets", "why not") else "right")
    for k, o in enumerate(plan.options):
        t.add_row(str(k), o.role, str(o.chips), str(o.batch),
                  fmt_s(o.ttft_s) if o.role != "decode" else "-",
                  fmt_s(o.tpot_s) if o.role != "prefill" else "-",
                  num(o.requests_per_s if o.role == "prefill"
                      else o.tokens_per_s / plan.targets.output, ",.1f"),
                  num(o.tokens_per_s, ",.0f") if o.role != "prefill" else "-",
                  "yes" if o.meets else "no", o.why)
    return t


def _pools_table(plan: ServePlan) -> Table:
    t = Table(title=f"{plan.model}: {plan.chips} x {plan.backend}, pools chosen",
              title_justify="left")
    for col in ("pool", "chips", "option", "replicas", "chips/replica", "batch", "TTFT", "TPOT",
                "serves"):
        t.add_column(col, justify="left" if col in ("pool", "chips") else "right")
    for p in plan.pools:
        o = plan.options[p.option]
        last = p.first_chip + p.replicas * o.chips - 1
        serves = (f"{num(p.replicas * o.requests_per_s, ',.1f')} requests/s" if o.role == "prefill"
                  else f"{num(p.replicas * o.tokens_per_s, ',.0f')} tokens/s")
        t.add_row(o.role, f"{p.first_chip}..{last}", str(p.option), str(p.replicas), str(o.chips),
                  str(o.batch), fmt_s(o.ttft_s) if o.role != "decode" else "-",
                  fmt_s(o.tpot_s) if o.role != "prefill" else "-", serves)
    return t


def summary_lines(plan: ServePlan) -> list[str]:
    t = plan.targets
    lines = [
        f"serving: prompts of {t.prompt} tokens, {t.output} output tokens each; targets TTFT <= "
        f"{fmt_s(t.ttft_s)}, TPOT <= {fmt_s(t.tpot_s)}; KV cache {plan.kv_dtype} at context "
        f"{t.context}",
        f"serving: {num(plan.tokens_per_s, ',.0f')} output tokens/s "
        f"({num(plan.requests_per_s, ',.2f')} requests/s) on {plan.chips_used} of {plan.chips} "
        f"chips; TTFT {fmt_s(plan.ttft_s)}, TPOT {fmt_s(plan.tpot_s)}; limited by the "
        f"{plan.limit}",
        f"choice: {plan.chosen}",
    ]
    if plan.handoff_bytes:
        rate = plan.handoff_bytes * plan.requests_per_s
        lines.append(f"handoff: each prompt's KV cache ({fmt_b(plan.handoff_bytes)}) moves from "
                     f"the prefill pool to the decode pool: {fmt_b(rate)}/s at this rate")
    return lines


def _used_plans(plan: ServePlan) -> list[tuple[str, int]]:
    """(heading, plan index) of each pipeline a pool runs, once."""
    out, seen = [], set()
    for p in plan.pools:
        o = plan.options[p.option]
        for phase, i in (("prefill", o.prefill_plan), ("decode", o.decode_plan)):
            if i >= 0 and i not in seen:
                seen.add(i)
                out.append((f"{o.role} pool, {phase} pipeline ({o.chips} chip(s), option "
                            f"{p.option}, x{p.replicas})", i))
    return out


def render_serve(plan: ServePlan, width: int = 160) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=width, color_system=None, force_terminal=False)
    console.print(_pools_table(plan))
    for line in summary_lines(plan):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    console.print(_options_table(plan))
    text = buf.getvalue()
    for heading, i in _used_plans(plan):
        text += f"\n{heading}\n" + render(plan.plans[i], width)
    return text


def serve_trace(plan: ServePlan) -> dict:
    """One process per chip of the system: the period of the pipeline stage it runs (every
    replica of a pool runs the same one), named by pool, replica and stage."""
    events: list[dict] = []
    for p in plan.pools:
        o = plan.options[p.option]
        phases = [(ph, i) for ph, i in (("prefill", o.prefill_plan), ("decode", o.decode_plan))
                  if i >= 0]
        for r in range(p.replicas):
            for stage in range(o.chips):
                chip = p.first_chip + r * o.chips + stage
                events.append({"ph": "M", "name": "process_name", "pid": chip, "args": {
                    "name": f"chip {chip}: {o.role} replica {r}, stage {stage}"}})
                events.append({"ph": "M", "name": "process_sort_index", "pid": chip,
                               "args": {"sort_index": chip}})
                for tid, (phase, i) in enumerate(phases):
                    events.append({"ph": "M", "name": "thread_name", "pid": chip, "tid": tid,
                                   "args": {"name": phase}})
                    for e in chrome_trace(plan.plans[i])["traceEvents"]:
                        if e["ph"] == "X" and e["pid"] == stage:
                            events.append({**e, "pid": chip, "tid": tid})
    return {"traceEvents": events, "displayTimeUnit": "ns",
            "otherData": {"model": plan.model, "tokens_per_s": plan.tokens_per_s,
                          "ttft_s": plan.ttft_s, "tpot_s": plan.tpot_s, "limit": plan.limit}}


def write_serve_trace(plan: ServePlan, path: str | os.PathLike) -> None:
    write_atomic(path, json.dumps(serve_trace(plan)))


def plot_serve(plan: ServePlan, path: str | os.PathLike) -> None:
    """A PNG: the chips by pool (top), then the period of each pipeline the pools run."""
    used = _used_plans(plan)
    fig = Figure(figsize=(12, 2.5 + 3 * len(used)))
    axes = fig.subplots(1 + len(used), 1, height_ratios=[1] + [3] * len(used), squeeze=False)[:, 0]
    top = axes[0]
    for p in plan.pools:
        o = plan.options[p.option]
        for r in range(p.replicas):
            start = p.first_chip + r * o.chips
            top.broken_barh([(start, o.chips)], (0, 1), facecolors=ROLE_COLORS[o.role],
                            edgecolor="white")
            top.text(start + o.chips / 2, 0.5, f"{o.role}\nx{o.chips}" + (
                f" b{o.batch}" if o.role != "prefill" else ""), ha="center", va="center",
                fontsize=8)
    top.set_xlim(0, plan.chips)
    top.set_yticks([])
    top.set_xlabel("chip")
    top.set_title(f"{plan.model}: {num(plan.tokens_per_s, ',.0f')} tokens/s, TTFT "
                  f"{fmt_s(plan.ttft_s)}, TPOT {fmt_s(plan.tpot_s)}")
    for ax, (heading, i) in zip(axes[1:], used, strict=True):
        gantt_panel(ax, plan.plans[i])
        ax.set_title(heading)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    write_atomic(path, buf.getvalue())
