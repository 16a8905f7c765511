"""Predicted against published LLM serving figures (``benchmarks/published_llm.py``): tokens/s
and TTFT of LLaMA-family models on h100-sxm and t4, each predicted by chipcut from the model's
config on the meta device. Writes the RESULTS.md section "llm-published".

How a row is predicted (S = the row's GPU count, B its batch, I / O its input / output lengths):

- A prefill plan (``llm_step(model, "prefill", b0, I)``) and a decode plan
  (``llm_step(model, "decode", B / S, I + O // 2)``: the mean KV context over the output) are
  compiled on S chips of the row's preset. S > 1 is a chipcut pipeline of S stages; the
  published systems used tensor parallelism (TP), which chipcut does not model. The pipeline
  runs S microbatches of B / S sequences interleaved, so the same B sequences are in flight as
  on the TP engine (and the KV cache per chip is the same).
- Prefill of B prompts goes through in chunks of b0 = min(B / S, ceil(2048 / I)) prompts (at
  least 2048 tokens a chunk: compute-bound, so chunking changes little; lowering a prefill of
  hundreds of prompts costs minutes, as the accounting evaluates the causal mask at full size): T_prefill = (B / b0) x period_p +
  (latency_p - period_p), with the plan's period (1 / throughput) and latency (TTFT of a chunk).
- A decode round advances every sequence by one token: T_round = max(S x period_d, latency_d).
- "throughput" / "offline": output tokens/s per GPU = B x O / (T_prefill + (O - 1) x T_round) / S
  (the first output token comes from the prefill). "decode": B / T_round. "ttft": latency_p of
  one prefill of the row's batch, on S chips.

Ratio = predicted speed / published speed (> 1: the preset is optimistic): tokens/s rows
predicted / published, ms rows published / predicted.

Captures are shared between rows (the same model, phase, batch and tokens); each capture is
lowered once and solved for each chip count it needs.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

import chipcut
from benchmarks.published_llm import MODELS, PUBLISHED_LLM, ModelConfig, PublishedLLM
from benchmarks.results import machine, table, write_section
from chipcut.compiler.llm.step import llm_step

PREFILL_TOKENS = 2048  # a prefill chunk holds at least this many prompt tokens (or all B / S)
TIME_LIMIT_S = 5.0
TORCH_DTYPES = {"fp8": torch.float16, "fp16": torch.float16, "bf16": torch.bfloat16}


def build(key: str, dtype: torch.dtype, positions: int) -> torch.nn.Module:
    """The model ``key`` of :data:`MODELS` on the meta device, at ``dtype``."""
    cfg: ModelConfig = MODELS[key]
    kwargs = dict(hidden_size=cfg.hidden, intermediate_size=cfg.intermediate,
                  num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads,
                  num_key_value_heads=cfg.kv_heads, vocab_size=cfg.vocab,
                  tie_word_embeddings=cfg.tie_embeddings, max_position_embeddings=positions,
                  use_cache=False, **cfg.extra)
    if cfg.arch == "llama":
        from transformers import LlamaConfig as Config
        from transformers import LlamaForCausalLM as Model
    else:
        from transformers import Qwen2Config as Config
        from transformers import Qwen2ForCausalLM as Model
    with torch.device("meta"):
        return Model(Config(**kwargs)).eval().to(dtype)


def passes(row: PublishedLLM) -> str:
    """fp8 rows: fp8 GEMMs (weights and activations); the first and last MAC layers stay at the
    model's fp16, as TensorRT-LLM's fp8 engines keep the LM head. Others: the default passes."""
    return "quantize{dtype=fp8},fuse" if row.precision == "fp8" else "default"


@dataclass(frozen=True)
class Step:
    phase: str
    batch: int
    tokens: int
    chips: int


@dataclass
class Figures:
    """One compiled step: the plan's latency (TTFT or TPOT) and period, seconds."""

    latency_s: float
    period_s: float
    bound_s: float  # decode: the memory-bandwidth bound of TPOT (0 for prefill)
    limit: str = "compute"  # what it spends beyond its reads: compute or per-kernel overhead


class Planner:
    """Captures, lowerings and plans, each made once and shared between rows."""

    def __init__(self) -> None:
        self.models: dict[tuple, torch.nn.Module] = {}
        self.lowered: dict[tuple, object] = {}
        self.plans: dict[tuple, Figures] = {}
        self.capture_s = 0.0
        self.compile_s = 0.0

    def model(self, row: PublishedLLM) -> torch.nn.Module:
        key = (row.model, row.precision)
        if key not in self.models:
            self.models[key] = build(row.model, TORCH_DTYPES[row.precision], 8192)
        return self.models[key]

    def figures(self, row: PublishedLLM, step: Step, max_chips: int) -> Figures:
        kv = row.kv_dtype if step.phase == "decode" else None
        lkey = (row.model, row.precision, row.chip, step.phase, step.batch, step.tokens, kv)
        pkey = lkey + (step.chips,)
        if pkey in self.plans:
            return self.plans[pkey]
        options = chipcut.CompileOptions(time_limit_s=TIME_LIMIT_S, batch=1, passes=passes(row))
        if lkey not in self.lowered:
            start = time.perf_counter()
            captured = llm_step(self.model(row), step.phase, step.batch, step.tokens,
                                kv_dtype=kv, name=row.model)
            self.capture_s += time.perf_counter() - start
            start = time.perf_counter()
            self.lowered[lkey] = chipcut.lower(captured, (), max_chips, row.chip, options)
            self.compile_s += time.perf_counter() - start
        start = time.perf_counter()
        lowered = self.lowered[lkey]
        plan = chipcut.schedule(lowered, chipcut.solve(lowered, step.chips, row.chip, options),
                                options)
        self.compile_s += time.perf_counter() - start
        figures = Figures(plan.serving.step_s, 1.0 / plan.metrics.throughput_per_s,
                          plan.serving.bound_s, _limit(plan))
        self.plans[pkey] = figures
        print(f"  {row.model} {step.phase} b{step.batch} t{step.tokens} x{step.chips} "
              f"{row.chip}: latency {figures.latency_s * 1e3:.2f} ms, period "
              f"{figures.period_s * 1e3:.2f} ms", flush=True)
        return figures


@dataclass
class Prediction:
    value: float  # in the row's unit
    detail: str  # the terms of the closed form, for the table
    prefill_share: float  # throughput rows: share of the time in prefill
    decode: Figures | None
    prefill: Figures | None


def chunk(row: PublishedLLM) -> int:
    per = max(1, row.batch // row.gpus)
    return min(per, math.ceil(PREFILL_TOKENS / row.input_len))


def predict(planner: Planner, row: PublishedLLM) -> Prediction:
    s = row.gpus
    if row.scenario == "ttft":
        p = planner.figures(row, Step("prefill", row.batch, row.input_len, s), s)
        return Prediction(p.latency_s * 1e3, f"TTFT {p.latency_s * 1e3:.1f} ms on {s} chip(s)",
                          1.0, None, p)
    context = row.input_len + row.output_len // 2
    d = planner.figures(row, Step("decode", row.batch // s, context, s), s)
    round_s = max(s * d.period_s, d.latency_s)
    if row.scenario == "decode":
        return Prediction(row.batch / round_s, f"TPOT {round_s * 1e3:.2f} ms", 0.0, d, None)
    b0 = chunk(row)
    p = planner.figures(row, Step("prefill", b0, row.input_len, s), s)
    prefill_s = row.batch / b0 * p.period_s + (p.latency_s - p.period_s)
    decode_s = (row.output_len - 1) * round_s
    per_gpu = row.batch * row.output_len / (prefill_s + decode_s) / s
    detail = (f"prefill {prefill_s:.2f} s ({row.batch // b0} x {b0} prompts) + "
              f"{row.output_len - 1} x {round_s * 1e3:.2f} ms")
    return Prediction(per_gpu, detail, prefill_s / (prefill_s + decode_s), d, p)


def ratio(row: PublishedLLM, pred: Prediction) -> float:
    return row.value / pred.value if row.unit == "ms" else pred.value / row.value


def kind(row: PublishedLLM) -> str:
    """Which source a row comes from: "mlperf", "trtllm" or "bnb" (MLPerf quotes mention
    TensorRT-LLM too, so MLPerf is tested first)."""
    if row.source.startswith("MLPerf"):
        return "mlperf"
    return "trtllm" if "TensorRT-LLM" in row.source else "bnb"


SHORT = {"mlperf": "MLPerf v4.0", "trtllm": "TensorRT-LLM perf table",
         "bnb": "bitsandbytes README"}


def fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


# The preset values the explanations name (backends/presets/<chip>.toml).
PRESET = {
    "h100-sxm": {
        "memory": "memory_efficiency 0.97 x 3.35 TB/s (fitted to MLPerf ResNet-50 Offline, not "
                  "to LLM decode)",
        "compute": "compute_efficiency 0.7 of the dense peak (989 TFLOPS bf16/fp16, 1979 fp8; an "
                   "assumption, never fitted)",
        "overhead": "op_overhead_s 5 us per kernel",
    },
    "t4": {
        "memory": "memory_efficiency 0.50 x 320 GB/s (fitted to MLPerf SSD-MobileNet Offline)",
        "compute": "dense efficiency 0.48 of 65 TFLOPS fp16 (fitted to ResNet-50 and BERT)",
        "overhead": "op_overhead_s 9.5 us per kernel",
    },
}


def _limit(plan: chipcut.Plan) -> str:
    """What a step spends beyond reading its weights and KV: compute where some of its units
    are compute-bound, at least as long as those bound by the per-kernel overhead; otherwise
    the overhead (which every unit adds, the memory-bound ones too)."""
    spent = {"compute": 0.0, "overhead": 0.0}
    for timeline in plan.timeline:
        for op in timeline.ops:
            if op.bound in spent:
                spent[op.bound] += op.end_s - op.start_s
    return "compute" if spent["compute"] > 0 and spent["compute"] >= spent["overhead"] else "overhead"


def _decode_regime(row: PublishedLLM, d: Figures, round_s: float) -> str:
    """The decode step against its bandwidth bound, and the preset value that sets it."""
    preset = PRESET[row.chip]
    ratio_b = round_s / d.bound_s if d.bound_s else float("nan")
    regime = (f"near its bandwidth bound, so set by {preset['memory']}" if ratio_b < 1.3 else
              f"{ratio_b:.1f}x its bandwidth bound ({d.limit}-bound in the model), so set by "
              f"{preset[d.limit]}")
    return (f"a decode round takes {round_s * 1e3:.1f} ms against a weights + KV read bound of "
            f"{d.bound_s * 1e3:.1f} ms, {regime}")


@dataclass
class Context:
    """Other rows' results an explanation compares with."""

    ttft_ratio: dict[tuple[str, int], float]  # (chip, input_len) -> one-GPU TTFT ratio
    step_b1: dict[tuple[str, str], tuple[float, float]]  # (chip, model) -> batch-1 decode step
    # (published, predicted), seconds


def explain(row: PublishedLLM, pred: Prediction, ctx: Context) -> str:
    """Which preset assumption, or what chipcut does not model, explains the gap: generated from
    the prediction's own terms, so it stays true when the presets change."""
    r = ratio(row, pred)
    side = "optimistic" if r > 1 else "pessimistic"
    preset = PRESET[row.chip]
    if row.scenario == "ttft" and row.gpus > 1:
        text = (f"ratio {r:.2f} ({side}). {row.parallelism} splits every layer of the one prompt "
                f"over {row.gpus} GPUs; chipcut's {row.gpus}-stage pipeline runs the stages one "
                f"after another, so its TTFT is the whole prefill at one GPU's rate: the missing "
                f"tensor parallelism, not a preset value, explains the gap.")
        one = ctx.ttft_ratio.get((row.chip, row.input_len))
        if one:
            text += (f" Taking the one-GPU TTFT ratio at the same prompt length ({one:.2f}) as "
                     f"the preset's own error, the published TP{row.gpus} prefill is "
                     f"{one / r:.1f}x faster than one GPU (ideal {row.gpus}x; the rest is "
                     f"all-reduce and smaller per-GPU GEMMs, neither modelled).")
        return text
    if row.scenario == "ttft":
        short = (" At 128 tokens, per-step costs outside the GEMMs (launches, norms, sampling of "
                 "the first token) weigh more, and the source's whole-ms rounding is +-7%."
                 if row.input_len <= 256 else "")
        return (f"ratio {r:.2f} ({side}). The prefill of {row.input_len} tokens is compute-bound "
                f"in the model, at {preset['compute']} plus {preset['overhead']}: the measured "
                f"TensorRT-LLM v0.5 engine sustains {1 / r:.0%} of that rate, so the assumed 0.7 "
                f"is too high for this engine's fp8 prefill.{short}")
    d = pred.decode
    round_s = row.batch / pred.value if row.scenario == "decode" else max(
        row.gpus * d.period_s, d.latency_s)
    parts = [f"ratio {r:.2f} ({side})", _decode_regime(row, d, round_s)]
    if row.scenario in ("throughput", "offline"):
        parts.append(f"prefill (compute-bound, {preset['compute'].split(' (')[0]}) is "
                     f"{pred.prefill_share:.0%} of the predicted time")
    text = "; ".join(parts) + "."
    if kind(row) == "bnb":
        published_s = row.batch / row.value
        b1 = ctx.step_b1.get((row.chip, row.model))
        if row.batch == 1 and r > 1:
            text += (f" The published step is {(published_s - round_s) * 1e3:.1f} ms longer than "
                     f"chipcut's: eager PyTorch generate() launches hundreds of "
                     f"small kernels per step from Python, a fixed cost far above "
                     f"{preset['overhead']} (a tuned-runtime value); the gap measures the "
                     f"framework more than the chip.")
        elif row.batch == 1:
            text += (f" The eager run ({published_s * 1e3:.1f} ms) is within "
                     f"{(published_s / d.bound_s - 1):.0%} of the bound at the preset's memory "
                     f"efficiency, so that fitted value holds for streaming fp16 weights; chipcut "
                     f"adds {preset['overhead']} serially on top, where the GPU presumably "
                     f"overlaps launches with the long memory-bound kernels.")
        elif b1:
            grow_pub, grow_pred = published_s - b1[0], round_s - b1[1]
            if grow_pub < 0.25 * (published_s - round_s):
                text += (f" From batch 1 to {row.batch} the published step grows only "
                         f"{grow_pub * 1e3:.1f} ms (chipcut's {grow_pred * 1e3:.1f} ms): the gap "
                         f"is the same fixed per-step framework cost as at batch 1 (eager "
                         f"PyTorch, no CUDA graphs).")
            else:
                text += (f" From batch 1 to {row.batch} the published step grows "
                         f"{grow_pub * 1e3:.1f} ms, chipcut's {grow_pred * 1e3:.1f} ms: in the "
                         f"model the step stays bound by the weight read, while the eager run "
                         f"pays per-sequence work (generate()'s sampling and cache handling, "
                         f"GEMMs at M={row.batch} below the preset's fitted efficiency); the "
                         f"published figure does not separate them.")
    if row.gpus > 1:
        text += (f" {row.parallelism} is modelled as a {row.gpus}-stage pipeline with {row.gpus} "
                 f"interleaved microbatches of {row.batch // row.gpus} (the same sequences in "
                 f"flight); all-reduce traffic and TP's smaller per-GPU GEMMs are not modelled.")
    if kind(row) == "trtllm":
        text += (f" Static batching (gptSessionBenchmark) as in the closed form, fp8 GEMMs and fp8 "
                 f"KV as in the source: the engine sustains {1 / r:.0%} of the preset's assumed "
                 f"rates overall; which kernels fall short is not visible from the published "
                 f"figure.")
    if row.scenario == "offline":
        text += (" MLPerf's in-flight batching mixes prefill chunks into decode steps, which the "
                 "closed form sums instead; the mean input length (292) is assumed, and a longer "
                 "prompt lowers the prediction.")
    return text


def main() -> None:
    start = time.perf_counter()
    planner = Planner()
    rows, printed = [], []
    for row in PUBLISHED_LLM:
        pred = predict(planner, row)
        r = ratio(row, pred)
        unit = "ms" if row.unit == "ms" else "tok/s/GPU" if row.gpus > 1 else "tok/s"
        chips = f"{row.gpus}x {row.chip}" + (f" ({row.parallelism})" if row.gpus > 1 else "")
        lengths = f"{row.input_len}/{row.output_len}"
        cells = [row.model, chips, f"{row.precision} (KV {row.kv_dtype})", row.scenario,
                 row.batch, lengths, f"{row.value:,.6g} {unit}", f"{fmt(pred.value)} {unit}",
                 f"{r:.2f}", pred.detail, SHORT[kind(row)]]
        rows.append(cells)
        printed.append((row, pred, r))
        print(" | ".join(map(str, cells)), flush=True)
    wall = time.perf_counter() - start
    ctx = Context(
        ttft_ratio={(row.chip, row.input_len): r for row, _, r in printed
                    if row.scenario == "ttft" and row.gpus == 1},
        step_b1={(row.chip, row.model): (1 / row.value, 1 / pred.value) for row, pred, _ in printed
                 if row.scenario == "decode" and row.batch == 1})
    notes = "\n".join(f"{i}. {row.model} on {row.gpus}x {row.chip}, {row.scenario} (batch "
                      f"{row.batch}, {row.input_len}/{row.output_len}): {explain(row, pred, ctx)}"
                      for i, (row, pred, _) in enumerate(printed, 1))
    sources = "\n".join(f"{i}. {row.source}. Note: {row.note}"
                        for i, (row, _, _) in enumerate(printed, 1))
    ratios = [r for _, _, r in printed]
    geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    body = (
        "## LLM presets against published figures (`benchmarks/llm_published_bench.py`)\n\n"
        "Published LLaMA-family serving figures (`benchmarks/published_llm.py`) against chipcut's "
        "prediction from the same model config on the meta device (fp8 rows: "
        "`quantize{dtype=fp8},fuse`, first and last MAC layers at fp16; others the default passes). "
        "Ratio = predicted speed / published speed (> 1: the preset is optimistic): tokens/s "
        "predicted / published, ms published / predicted. Closed form (S GPUs, batch B, input I, "
        "output O): prefill of B prompts in chunks of b0 = min(B/S, ceil(2048/I)) prompts, "
        "T_prefill = (B/b0) x period + (TTFT_chunk - period); one decode round of all B sequences "
        "at the mean context I + O/2, T_round = max(S x period, TPOT) of the decode plan at "
        "microbatch B/S on S chips; throughput = B x O / (T_prefill + (O-1) x T_round) / S per GPU; "
        "decode rows B / T_round. S > 1 is a chipcut pipeline with S interleaved microbatches in "
        "place of the source's tensor parallelism (which chipcut does not model). "
        f"{len(rows)} rows; geometric mean ratio {geo:.2f}; captures {planner.capture_s:.0f} s, "
        f"lower + solve + schedule {planner.compile_s:.0f} s, all {wall:.0f} s; {machine()}.\n\n"
        + table(["model", "chips", "precision", "scenario", "batch", "in/out", "published",
                 "predicted", "ratio", "predicted from", "source"], rows)
        + "\n\nWhat explains each gap (preset assumptions, or what chipcut does not model):\n\n"
        + notes
        + "\n\nSources (quoted closely enough to find them again):\n\n" + sources + "\n")
    print(body)
    write_section("llm-published", body)


if __name__ == "__main__":
    main()
