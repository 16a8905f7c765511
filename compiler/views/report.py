"""Report: the per-chip table, links, metrics and solver line of a plan, as text (rich)."""

from __future__ import annotations

import io
import math

from rich.console import Console
from rich.table import Table

from chipcut.compiler.plan.model import Plan
from chipcut.core.fmt import joules, nbytes, seconds

MB = 1e6


fmt_s, fmt_j, fmt_b = seconds, joules, nbytes  # the names the views use


COLUMNS = ("chip", "backend", "nodes", "MACs %", "time", "% of bottleneck", "bound", "util %",
           "weight MB", "in MB", "out MB", "DRAM MB", "DRAM MB unfused", "energy")


def table(plan: Plan) -> Table:
    total_macs = max(plan.model.macs, 1)
    t = Table(title=f"{plan.model.name}: {len(plan.stages)} x {plan.backend}", title_justify="left")
    kv = plan.serving is not None and plan.serving.phase == "decode"
    columns = COLUMNS[:9] + ("KV MB",) + COLUMNS[9:] if kv else COLUMNS
    for col in columns:
        t.add_column(col, justify="left" if col in ("backend", "bound") else "right")
    worst = plan.metrics.bottleneck_s or 1.0
    for s in plan.stages:
        mark = s.chip == plan.metrics.bottleneck_chip
        resident = "" if s.weights_resident else " (DRAM)"
        cells = [
            f"{s.chip}{' *' if mark else ''}", s.backend + (f" x{s.replicas}" if s.replicas > 1 else
                             f" (replica of {s.replica_of})" if s.replica_of >= 0 else ""),
            str(len(s.nodes)), f"{100 * s.macs / total_macs:.1f}", fmt_s(s.time_s),
            f"{100 * s.time_s / max(s.replicas, 1) / worst:.0f}", s.bound, f"{100 * s.utilization:.1f}",
            f"{s.weight_bytes / MB:.2f}{resident}", f"{s.in_bytes / MB:.3f}", f"{s.out_bytes / MB:.3f}",
            f"{s.dram_bytes / MB:.2f}", f"{s.dram_bytes_unfused / MB:.2f}", fmt_j(s.energy_j)]
        if kv:
            cells.insert(9, f"{s.kv_bytes / MB:.2f}")
        t.add_row(*cells, style="bold red" if mark else None)
    return t


def summary_lines(plan: Plan) -> list[str]:
    m, sv = plan.metrics, plan.solver
    links = ", ".join(f"{t.src}->{t.dst} {t.bytes / MB:.3f} MB {fmt_s(t.time_s)}"
                      + (" *" if m.bottleneck == f"link {t.src}->{t.dst}" else "")
                      for t in plan.transfers)
    lines = [f"note: {note}" for note in plan.notes] + empty_lines(plan) + unaccounted_lines(plan)
    if plan.passes:
        lines.append(f"passes: {plan.passes} ({plan.fused_groups} fused groups, "
                     f"{plan.model.units} partition units)")
    lines += quant_lines(plan) + serving_lines(plan)
    lines.append(f"links: {links or 'none'}")
    lines.append(f"throughput {num(m.throughput_per_s, '.4g')}/s (batch 1, pipelined), "
                 f"{num(m.throughput_at_batch_per_s, '.4g')}/s at batch {m.batch}; latency "
                 f"{fmt_s(m.latency_s)} (batch 1); bottleneck {m.bottleneck} {fmt_s(m.bottleneck_s)} (*); "
                 f"bytes moved {m.bytes_moved / MB:.3f} MB")
    if m.static_power_w or m.dynamic_energy_j:
        rate = m.throughput_per_s
        lines.append(f"energy {fmt_j(m.energy_per_inference_j)}/inference "
                     f"({fmt_j(m.dynamic_energy_j)} dynamic + {num(m.static_power_w, '.3g')} W static); "
                     f"{num(m.power_w(rate), '.3g')} W at {num(rate, '.4g')}/s")
    what = "latency" if plan.interconnect.objective == "latency" else "bottleneck"
    how = f" by {sv.method}" if sv.method else ""
    net = "" if plan.interconnect.topology == "chain" else f", {plan.interconnect.topology.value} topology"
    lines.append(f"solver: {sv.status}{how}, {what} {fmt_s(sv.objective)}, bound {fmt_s(sv.bound)}, "
                 f"gap {100 * sv.gap:.2f}%, {sv.wall_s:.2f} s{net}; bottleneck / (total/N) = "
                 f"{num(balance(plan), '.4f')}")
    return lines


def empty_lines(plan: Plan) -> list[str]:
    """Chips the plan leaves without work (neither a stage nor a replica of one)."""
    empty = [s.chip for s in plan.stages if not s.nodes and s.replica_of < 0]
    if not empty:
        return []
    used = len(plan.stages) - len(empty)
    limit = {"host in": "link from the host", "host out": "link to the host"}.get(
        plan.metrics.bottleneck, plan.metrics.bottleneck)
    why = (f"since spreading further does not make it faster (the {limit} bounds it)" if plan.solver.status == "OPTIMAL" else
           "the best found; it is not proven optimal, so a plan over more chips may be faster")
    return [f"note: chip{'s' if len(empty) > 1 else ''} {', '.join(map(str, empty))} hold{'' if len(empty) > 1 else 's'} "
            f"no work: the plan uses {used} of {len(plan.stages)} chips, {why}"]


def unaccounted_lines(plan: Plan) -> list[str]:
    """The ops no accounting rule covers, when there are any: their MACs are missing."""
    ops, nodes = plan.model.unaccounted, max(plan.model.nodes, 1)
    count = sum(n for _, n in ops)
    return [f"unaccounted ops: {', '.join(f'{op} x{n}' for op, n in ops)} ({count} of {nodes} "
            f"nodes, {100 * count / nodes:.1f}%): counted as element-wise work with 0 MACs; "
            "register a rule with chipcut.passes.rules.register_macs"] if ops else []


def quant_lines(plan: Plan, worst: int = 3) -> list[str]:
    """What quantization chose, the SQNR it measured, and what it saved."""
    q = plan.quantization
    if q is None:
        return []
    counts: dict[str, int] = {}
    for layer in q.layers:
        key = layer.activations if layer.weights == layer.activations else f"w{layer.weights}/a{layer.activations}"
        counts[key] = counts.get(key, 0) + 1
    chosen = ", ".join(f"{k} x{v}" for k, v in sorted(counts.items()))
    sqnr = (f"output SQNR {q.output_sqnr_db:.1f} dB (threshold {q.threshold_db:g} dB)"
            if q.output_sqnr_db is not None else "SQNR not measured (no real weights or inputs)")
    lines = [f"quantize: {q.policy}: MAC layers {chosen}; {sqnr}",
             f"quantize saved: weights {fmt_b(q.weight_bytes_before)} -> {fmt_b(q.weight_bytes_after)}, "
             f"activations {fmt_b(q.activation_bytes_before)} -> {fmt_b(q.activation_bytes_after)}, "
             f"dynamic energy {fmt_j(q.energy_j_before)} -> {fmt_j(q.energy_j_after)} per inference"]
    measured = sorted((layer for layer in q.layers if layer.sqnr_db is not None), key=lambda la: la.sqnr_db)
    if measured:
        lines.append("quantize: lowest layer SQNR: " + ", ".join(
            f"{la.node} ({la.module or '-'}, {la.activations}) {la.sqnr_db:.1f} dB" for la in measured[:worst]))
    return lines


def serving_lines(plan: Plan) -> list[str]:
    """An LLM phase's figures (see chipcut.compiler.plan.serving for the conventions)."""
    v = plan.serving
    if v is None:
        return []
    if v.phase == "prefill":
        return [f"prefill: batch {v.batch} x {v.tokens} prompt tokens; TTFT {fmt_s(v.step_s)} (the "
                f"batch through every stage), {num(v.tokens_per_s, ',.0f')} prompt tokens/s"]
    chip = plan.stages[v.bound_chip] if v.bound_chip >= 0 else None
    slowest = (f"; chip {chip.chip} reads {fmt_b(chip.weight_traffic_bytes)} weights + "
               f"{fmt_b(chip.kv_bytes)} KV in {fmt_s(v.bound_chip_s)}") if chip else ""
    return [f"decode: batch {v.batch}, context {v.tokens}, KV cache {v.kv_dtype} "
            f"{fmt_b(v.kv_bytes)} (resident on the chips of their layers: KV MB)",
            f"decode: TPOT {fmt_s(v.step_s)} (one step of the batch through every stage), "
            f"{num(v.tokens_per_s, ',.0f')} tokens/s (batch / TPOT; "
            f"{num(v.interleaved_tokens_per_s, ',.0f')} with one batch per stage interleaved)",
            f"decode: memory-bandwidth bound {fmt_s(v.bound_s)} (every chip reads its weights, of "
            f"a lookup table the rows it gathers, and KV once per step at its DRAM rate{slowest}); TPOT / bound = {num(v.bound_ratio, '.2f')}"
            if v.bound_s > 0 else
            "decode: memory-bandwidth bound n/a: every chip's weights and KV stay resident in its "
            "SRAM, whose reads this backend does not cost as a DRAM stream"]


def num(value: float, spec: str) -> str:
    """``value`` formatted with ``spec``; "n/a" when it is not a finite number (a figure from
    absurd but valid spec values overflows rather than prints inf or nan)."""
    return format(value, spec) if math.isfinite(value) else "n/a"


def balance(plan: Plan) -> float:
    """Bottleneck over the mean stage time (total / N): 1.0 is a perfect split."""
    mean = sum(s.time_s for s in plan.stages) / sum(s.replicas for s in plan.stages)
    return plan.metrics.bottleneck_s / mean if mean > 0 else 1.0


def render(plan: Plan, width: int = 160) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=width, color_system=None, force_terminal=False)
    console.print(table(plan))
    for line in summary_lines(plan):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    return buf.getvalue()
