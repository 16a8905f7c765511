"""LLM decode: LLaMA-7B and a LLaMA-70B config (bf16, on the meta device), context 4096, batch
1, 8, 64 on 1, 2, 4, 8 h100-sxm: compile seconds, KV bytes per chip against the closed form,
TPOT against the memory-bandwidth bound. Writes its RESULTS.md section.

Each (model, batch) step is captured once and lowered once; each chip count is then solved and
scheduled from that lowering (what ``chipcut sweep`` does). Targets: each compile under 5 s;
KV bytes per chip equal to the closed form exactly; LLaMA-70B on 8 chips at batch 1 within
2x of its bound.
"""

from __future__ import annotations

import time

import torch

import chipcut
from benchmarks.results import machine, table, write_section
from chipcut.compiler.llm.step import decode_step, kv_cache_bytes
from chipcut.core.errors import DoesNotFit
from chipcut.examples.models import llama_7b, llama_70b

MODELS = {"LLaMA-7B": llama_7b, "LLaMA-70B": llama_70b}
BATCHES = (1, 8, 64)
CHIPS = (1, 2, 4, 8)
CONTEXT = 4096
BACKEND = "h100-sxm"


def _per_chip_closed_form(plan: chipcut.Plan, config: object, batch: int) -> list[int]:
    """Each chip's KV bytes by the closed form: its attention layers x one layer's cache."""
    per_layer = kv_cache_bytes(config, batch, CONTEXT, "bf16") // config.num_hidden_layers
    return [per_layer * sum(n.startswith("scaled_dot_product_attention") for n in s.nodes)
            for s in plan.stages]


def run_model(label: str, factory) -> list[list[object]]:
    model, _ = factory()
    model = model.to(torch.bfloat16)
    rows = []
    for batch in BATCHES:
        start = time.perf_counter()
        step = decode_step(model, batch, CONTEXT, name=label)
        capture_s = time.perf_counter() - start
        start = time.perf_counter()
        options = chipcut.CompileOptions(time_limit_s=5, batch=1)
        lowered = chipcut.lower(step, (), max(CHIPS), BACKEND, options)
        lower_s = time.perf_counter() - start
        for chips in CHIPS:
            start = time.perf_counter()
            try:
                plan = chipcut.schedule(lowered, chipcut.solve(lowered, chips, BACKEND, options),
                                        options)
            except DoesNotFit as e:
                fits = str(e).split("fits on ")[1].split(" chips")[0] if "fits on " in str(e) else "-"
                rows.append([label, batch, chips, f"{capture_s:.1f}", "-", "does not fit",
                             f"needs {fits} chips", "-", "-", "-", "-", "-"])
                continue
            compile_s = lower_s + time.perf_counter() - start
            v = plan.serving
            per_chip = [s.kv_bytes for s in plan.stages]
            exact = per_chip == _per_chip_closed_form(plan, model.config, batch) and \
                v.kv_bytes == kv_cache_bytes(model.config, batch, CONTEXT, "bf16")
            rows.append([label, batch, chips, f"{capture_s:.1f}", f"{compile_s:.2f}",
                         f"{max(per_chip) / 2**30:.3f}", "yes" if exact else "NO",
                         f"{v.step_s * 1e3:.2f}", f"{v.bound_s * 1e3:.2f}", f"{v.bound_ratio:.2f}",
                         f"{v.tokens_per_s:,.0f}", f"{v.interleaved_tokens_per_s:,.0f}"])
            print(" | ".join(map(str, rows[-1])), flush=True)
    return rows


def main() -> None:
    rows = [row for label, factory in MODELS.items() for row in run_model(label, factory)]
    target = next(r for r in rows if r[0] == "LLaMA-70B" and r[1] == 1 and r[2] == 8)
    compiles = [float(r[4]) for r in rows if r[4] != "-"]
    exact = all(r[6] == "yes" for r in rows if r[5] != "does not fit")
    body = (
        "## LLM decode (`benchmarks/llm_bench.py`)\n\n"
        f"One decode step against a static KV cache of {CONTEXT} tokens (bf16 weights and cache, "
        f"meta device) on `{BACKEND}` chips; {machine()}. capture s: the step captured once per "
        "model and batch; compile s: lower + solve + schedule (lowering shared by the chip "
        "counts). KV GiB: the fullest chip's cache; exact: every chip's KV bytes equal its "
        "attention layers x batch x context x kv_heads x head_dim x 2 x 2 bytes. TPOT: one step "
        "of the batch through every stage (the plan's latency); bound: every chip reads its "
        "weights and KV once at its DRAM rate (h100-sxm: 3.35 TB/s x 0.97), summed over the "
        "stages; tokens/s = batch / TPOT (one batch in flight); interleaved: batch / bottleneck, "
        "with one batch per stage in flight.\n\n"
        + table(["model", "batch", "chips", "capture s", "compile s", "KV GiB/chip", "exact",
                 "TPOT ms", "bound ms", "TPOT/bound", "tokens/s", "interleaved tokens/s"], rows)
        + f"\n\nTargets: compile < 5 s each: {'met' if max(compiles) < 5 else 'NOT met'} "
        f"(slowest {max(compiles):.2f} s), the capture before it excluded (up to "
        f"{max(float(r[3]) for r in rows):.1f} s: torch.export of the step); KV bytes exact: {'met' if exact else 'NOT met'}; "
        f"LLaMA-70B x 8, batch 1 within 2x of the bound: "
        f"{'met' if target[9] != '-' and float(target[9]) <= 2 else 'NOT met'} (TPOT/bound "
        f"{target[9]}).\n")
    print(body)
    write_section("llm", body)


if __name__ == "__main__":
    main()
