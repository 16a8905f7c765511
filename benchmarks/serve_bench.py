"""LLM serving pools: Mixtral-8x7B and LLaMA-70B configs (bf16, meta device) on 8 h100-sxm
chips, prompts of 2048 tokens and 256 generated, TTFT <= 500 ms and TPOT <= 50 ms; then targets
no pool can meet, which must be one line naming what binds. Writes its RESULTS.md section.

Target (issue 14): a plan with pools, batch and tokens/s for Mixtral-8x7B on 8 chips;
infeasible targets one line naming the binding resource.
"""

from __future__ import annotations

import time

import torch

import chipcut
from benchmarks.results import machine, table, write_section
from chipcut.core.errors import ChipcutError
from chipcut.examples.models import llama_70b

CHIPS = 8
BACKEND = "h100-sxm"
TARGETS = chipcut.Targets(ttft_s=0.5, tpot_s=0.05, prompt=2048, output=256)


def mixtral_8x7b() -> torch.nn.Module:
    """Mixtral-8x7B's published config (transformers' own top-2 routing), on meta, bf16."""
    from transformers import MixtralConfig, MixtralForCausalLM

    config = MixtralConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                           num_attention_heads=32, num_key_value_heads=8, num_local_experts=8,
                           num_experts_per_tok=2, vocab_size=32000,
                           max_position_embeddings=32768, use_cache=False)
    with torch.device("meta"):
        return MixtralForCausalLM(config).to(torch.bfloat16).eval()


MODELS = {"Mixtral-8x7B": mixtral_8x7b,
          "LLaMA-70B": lambda: llama_70b()[0].to(torch.bfloat16)}


def _pools(plan: chipcut.ServePlan) -> str:
    parts = []
    for p in plan.pools:
        o = plan.options[p.option]
        parts.append(f"{o.role} {p.replicas} x {o.chips} chip(s)"
                     + (f", batch {o.batch}" if o.role != "prefill" else ""))
    return "; ".join(parts)


def main() -> None:
    rows, refusals = [], []
    for label, factory in MODELS.items():
        model = factory()
        start = time.perf_counter()
        plan = chipcut.serve(model, TARGETS, CHIPS, BACKEND, chipcut.CompileOptions(name=label),
                             progress=lambda m, t0=start: print(f"  {time.perf_counter() - t0:5.1f} s {m}", flush=True))
        wall = time.perf_counter() - start
        rows.append([label, CHIPS, _pools(plan), f"{plan.tokens_per_s:,.0f}",
                     f"{plan.requests_per_s:.2f}", f"{plan.ttft_s * 1e3:.1f}",
                     f"{plan.tpot_s * 1e3:.2f}", plan.limit, len(plan.options), plan.chosen,
                     f"{wall:.0f}"])
        print(rows[-1], flush=True)
    model = MODELS["Mixtral-8x7B"]()
    for what, targets, chips in (
            ("TTFT 20 ms", chipcut.Targets(0.02, 0.05, 2048, 256), CHIPS),
            ("TPOT 2 ms", chipcut.Targets(0.5, 0.002, 2048, 256), CHIPS),
            ("1 chip", TARGETS, 1)):
        try:
            chipcut.serve(model, targets, chips, BACKEND)
            refusals.append([what, chips, "planned (expected a refusal)"])
        except ChipcutError as e:
            refusals.append([what, chips, str(e)])
        print(refusals[-1], flush=True)
    body = (f"{machine()}. Prompts of {TARGETS.prompt} tokens, {TARGETS.output} generated, "
            f"TTFT <= {TARGETS.ttft_s * 1e3:.0f} ms, TPOT <= {TARGETS.tpot_s * 1e3:.0f} ms, "
            f"{CHIPS} x {BACKEND}, bf16 weights and KV cache, meta device. Every candidate "
            "pipeline (prefill on 1..8 chips; decode on 1..8 chips at the largest power-of-two "
            "batch that fits and meets TPOT; shared) is an exact plan of its phase; CP-SAT "
            "chooses the replicas of each. wall s: the whole serve, captures included (one "
            "prefill and one decode step per batch tried, ~5 s each on this machine).\n\n"
            + table(["model", "chips", "pools", "tokens/s", "requests/s", "TTFT ms", "TPOT ms",
                     "limited by", "pipelines considered", "choice", "wall s"], rows)
            + "\n\nTargets no pool meets (Mixtral-8x7B): the one-line error.\n\n"
            + table(["targets", "chips", "error"], refusals)
            + "\n\nTarget: a plan with pools, batch and tokens/s for Mixtral-8x7B on 8 chips: "
            + ("met" if rows and rows[0][2] else "not met")
            + "; infeasible targets refused in one line naming what binds: "
            + ("met" if all("\n" not in r[2] and "expected" not in r[2] for r in refusals)
               else "not met") + ".")
    write_section("serve", body)


if __name__ == "__main__":
    main()
