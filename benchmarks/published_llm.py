"""Published LLM serving measurements (tokens/s, TTFT), for checking the chip presets' LLM figures.

Every row is a figure read from a public source named in its ``source`` field (an MLPerf
Inference result file, NVIDIA's TensorRT-LLM performance table, a bitsandbytes benchmark
README); nothing here is derived by chipcut and nothing is fetched at import time. The only
arithmetic applied to a published figure is dividing a multi-GPU system's tokens/s by its GPU
count, and the row says so in ``note``. ``benchmarks/llm_published_bench.py`` predicts each row.

Fields:

- ``chip``: the chipcut preset name (``backends/presets/<chip>.toml``).
- ``gpus``: how many of those chips the measurement ran on; ``parallelism`` how the source split
  the model over them ("TP2": tensor parallelism over 2 GPUs; "-" for one GPU).
- ``model``: a key of :data:`MODELS` (the transformers config chipcut builds on the meta device).
- ``precision``: the GEMM precision the source states ("fp8", "fp16", "bf16");
  ``kv_dtype``: the KV cache's dtype (the source's, or the note says it is assumed).
- ``scenario``:
  - "throughput": static batching, ``batch`` prompts of ``input_len`` tokens each generate
    ``output_len`` tokens; ``value`` is output tokens/s (per GPU when ``gpus`` > 1).
  - "offline": MLPerf Offline (in-flight batching of the whole dataset, up to ``batch``
    sequences in flight); ``input_len`` / ``output_len`` are the dataset's mean lengths where
    known (the note says which are not); ``value`` is tokens/s per GPU.
  - "ttft": time to first token (the prefill of one batch of ``batch`` prompts of ``input_len``
    tokens), ``unit`` "ms".
  - "decode": generation speed at ``batch`` sequences, ``value`` = batch / TPOT in tokens/s;
    ``input_len`` + ``output_len`` bound the KV context.
- ``value`` / ``unit``: the published figure: "tokens/s" (output tokens) or "ms".
- ``source``: where the figure is, quoted closely enough to find it again.
- ``note``: caveats: software stack, what the figure includes, division, assumptions.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelConfig:
    """A causal LM's shape, enough to build it with transformers on the meta device."""

    arch: str  # "llama" (LlamaForCausalLM) or "qwen2" (Qwen2ForCausalLM)
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    tie_embeddings: bool = False
    source: str = ""
    extra: dict = field(default_factory=dict)  # other config kwargs (rope, ...)


_TRT_BUILD = ("NVIDIA/TensorRT-LLM docs/source/performance.md @138f96d4, 'Benchmarking per Model', "
              "examples/llama/build.py flags ")
_CONFIGS_MD = ("config.json as copied in github.com/citsjtu2020/LLM-Prof sglang/Model_Config.md "
               "@8434c8d1, ")

MODELS: dict[str, ModelConfig] = {
    "llama-2-7b": ModelConfig(
        "llama", 4096, 11008, 32, 32, 32, 32000,
        source=_TRT_BUILD + "'--n_layer 32 --n_head 32 --n_embd 4096 --inter_size 11008 "
        "--vocab_size 32000'"),
    "llama-2-70b": ModelConfig(
        "llama", 8192, 28672, 80, 64, 8, 32000,
        source=_TRT_BUILD + "'--n_layer 80 --n_head 64 --n_kv_head 8 --n_embd 8192 "
        "--inter_size 28672 --vocab_size 32000'"),
    "llama-3.1-8b": ModelConfig(
        "llama", 4096, 14336, 32, 32, 8, 128256,
        source=_CONFIGS_MD + "'Llama-3.1-8B': hidden_size 4096, intermediate_size 14336, "
        "num_hidden_layers 32, num_attention_heads 32, num_key_value_heads 8, vocab_size 128256",
        extra={"rope_theta": 500000.0}),
    "qwen2.5-3b": ModelConfig(
        "qwen2", 2048, 11008, 36, 16, 2, 151936, tie_embeddings=True,
        source=_CONFIGS_MD + "'Qwen2.5-3B': hidden_size 2048, intermediate_size 11008, "
        "num_hidden_layers 36, num_attention_heads 16, num_key_value_heads 2, vocab_size "
        "151936, tie_word_embeddings true",
        extra={"rope_theta": 1000000.0}),
}


@dataclass(frozen=True)
class PublishedLLM:
    """One published LLM serving measurement."""

    chip: str
    gpus: int
    parallelism: str
    model: str
    precision: str
    kv_dtype: str
    scenario: str
    batch: int
    input_len: int
    output_len: int
    value: float
    unit: str
    source: str
    note: str


SCENARIOS = ("throughput", "offline", "ttft", "decode")
UNITS = {"throughput": "tokens/s", "offline": "tokens/s", "decode": "tokens/s", "ttft": "ms"}

# fmt: off
# --- source prefixes -------------------------------------------------------------------------
_TRT = (
    "github.com/NVIDIA/TensorRT-LLM docs/source/performance.md @138f96d4 ('This data has been "
    "updated for v0.6.1, unless specified'), "
)
_TRT_TPUT = _TRT + "'Peak Throughput' / 'H100 GPUs (FP8)', columns Batch Size | TP | Input Length "\
    "| Output Length | Throughput (out tok/s/GPU): "
_TRT_LAT = _TRT + "'Low Latency' / 'H100 GPUs (FP8)' ('The following data is from TensorRT-LLM "\
    "v0.5'), columns Batch Size | TP | Input Length | 1st Token Latency (ms): "
_TRT_NOTE = (
    "TensorRT-LLM gptSessionBenchmark (static batching: the whole batch is prefilled, then "
    "decoded together); engines built --enable_fp8 --fp8_kv_cache (fp8 GEMMs, fp8 KV cache) with "
    "--use_gpt_attention_plugin float16 --enable_context_fmha; H100 (the page's methodology names "
    "an H100-HBM3-80GB system, i.e. SXM); "
)
_MLPERF = (
    "MLPerf Inference v4.0 closed, NVIDIA DGX-H100 (2x H100-SXM-80GB, TensorRT-LLM); "
    "github.com/mlcommons/inference_results_v4.0 @3c4a1cf1 "
    "closed/NVIDIA/results/DGX-H100_H100-SXM-80GBx2_TRT/llama2-70b-99.9/"
)
_MLPERF_NOTE = (
    "config closed/NVIDIA/configs/llama2-70b/Offline/__init__.py class H100_SXM_80GB_TP2x1: "
    "gpu_batch_size=896, use_fp8=True, tensor_parallelism=2 (the 99.9 class inherits it); "
    "in-flight batching, max_input_len 1024 (code/llama2-70b/tensorrt/builder.py); OpenOrca, "
    "24576 samples; "
)
_BNB = (
    "github.com/bitsandbytes-foundation/bitsandbytes benchmarking/README.md @1b7b9bb4, "
    "'Results (as of v0.45.0)', "
)
_BNB_NOTE = (
    "Hugging Face transformers generate() in eager PyTorch 2.5.1 via optimum-benchmark (no "
    "CUDA graphs, no fused kernels): 'Mean Latency (s)' is the mean per-token decode latency and "
    "Throughput = batch / latency; the input/output lengths are not stated in the README, those "
    "given are benchmarking/inference_benchmark.py's defaults (--input-length 64, "
    "--output-length 64); "
)

PUBLISHED_LLM: tuple[PublishedLLM, ...] = (
    # ------------------------------------------ H100 SXM: TensorRT-LLM v0.6.1 peak throughput
    PublishedLLM(
        "h100-sxm", 1, "-", "llama-2-7b", "fp8", "fp8", "throughput", 768, 128, 128,
        19694.0, "tokens/s",
        _TRT_TPUT + "'LLaMA 7B | 768 | 1 | 128 | 128 | 19,694'",
        _TRT_NOTE + "LLaMA 7B = Llama2-7b per the page's build section.",
    ),
    PublishedLLM(
        "h100-sxm", 1, "-", "llama-2-7b", "fp8", "fp8", "throughput", 80, 2048, 128,
        2244.0, "tokens/s",
        _TRT_TPUT + "'LLaMA 7B | 80 | 1 | 2048 | 128 | 2,244'",
        _TRT_NOTE + "prefill-heavy: 16x more prompt than output tokens.",
    ),
    PublishedLLM(
        "h100-sxm", 2, "TP2", "llama-2-70b", "fp8", "fp8", "throughput", 1024, 128, 128,
        2657.0, "tokens/s",
        _TRT_TPUT + "'LLaMA 70B | 1024 | 2 | 128 | 128 | 2,657'",
        _TRT_NOTE + "already per GPU in the source (out tok/s/GPU) on a TP2 engine.",
    ),
    PublishedLLM(
        "h100-sxm", 2, "TP2", "llama-2-70b", "fp8", "fp8", "throughput", 64, 2048, 2048,
        547.0, "tokens/s",
        _TRT_TPUT + "'LLaMA 70B | 64 | 2 | 2048 | 2048 | 547'",
        _TRT_NOTE + "per GPU in the source; long contexts (KV read up to 4096 tokens a step).",
    ),
    # ------------------------------------------------ H100 SXM: TensorRT-LLM v0.5 first token
    PublishedLLM(
        "h100-sxm", 1, "-", "llama-2-7b", "fp8", "fp8", "ttft", 1, 128, 1, 7.0, "ms",
        _TRT_LAT + "'LLaMA 7B | 1 | 1 | 128 | 7'",
        _TRT_NOTE + "measured with output length 1 (the page's 'First Token Latency Benchmark'); "
        "integer ms in the source. The page's example command lines for that benchmark pass "
        "--batch_size 64 (32 for 2048 tokens); the table says Batch Size 1, which we take.",
    ),
    PublishedLLM(
        "h100-sxm", 1, "-", "llama-2-7b", "fp8", "fp8", "ttft", 1, 2048, 1, 36.0, "ms",
        _TRT_LAT + "'LLaMA 7B | 1 | 1 | 2048 | 36'",
        _TRT_NOTE + "output length 1.",
    ),
    PublishedLLM(
        "h100-sxm", 4, "TP4", "llama-2-70b", "fp8", "fp8", "ttft", 1, 2048, 1, 109.0, "ms",
        _TRT_LAT + "'LLaMA 70B | 1 | 4 | 2048 | 109'",
        _TRT_NOTE + "4 GPUs in tensor parallelism share every layer of the one prompt.",
    ),
    # ------------------------------------------------------- H100 SXM: MLPerf Inference v4.0
    PublishedLLM(
        "h100-sxm", 2, "TP2", "llama-2-70b", "fp8", "fp8", "offline", 896, 292, 292,
        2769.735, "tokens/s",
        _MLPERF + "Offline/performance/run_1/mlperf_log_summary.txt 'Tokens per second: "
        "5539.47' ('Samples per second: 18.9752')",
        _MLPERF_NOTE + "system figure 5539.47 divided by 2 GPUs (by us). Output length 292 = "
        "5539.47 / 18.9752 tokens per sample (the reference README: 'Tokens per sample: "
        "294.45'); the mean INPUT length is not in the files read: 292 is our ASSUMPTION; the "
        "KV dtype (fp8) is assumed too.",
    ),
    # ---------------------------------- NVIDIA T4 / H100: bitsandbytes README (eager PyTorch)
    PublishedLLM(
        "t4", 1, "-", "qwen2.5-3b", "fp16", "fp16", "decode", 1, 64, 64, 25.66, "tokens/s",
        _BNB + "'NVIDIA T4 16GB' / 'Qwen 2.5 3B Instruct': 'FP16 | 1 | 0.0390 | 25.66'",
        _BNB_NOTE + "Qwen2.5-3B is a LLaMA-style decoder (GQA, SwiGLU, RMSNorm) with "
        "q/k/v biases; the only LLaMA-family T4 figure found with its source and settings.",
    ),
    PublishedLLM(
        "t4", 1, "-", "qwen2.5-3b", "fp16", "fp16", "decode", 32, 64, 64, 532.30, "tokens/s",
        _BNB + "'NVIDIA T4 16GB' / 'Qwen 2.5 3B Instruct': 'FP16 | 32 | 0.0601 | 532.30'",
        _BNB_NOTE + "batch 32: 60.1 ms per step.",
    ),
    PublishedLLM(
        "h100-sxm", 1, "-", "llama-3.1-8b", "bf16", "bf16", "decode", 1, 64, 64, 40.99,
        "tokens/s",
        _BNB + "'NVIDIA H100 80GB SXM' / 'Llama 3.1 8B': 'BF16 | 1 | 0.0244 | 40.99'",
        _BNB_NOTE + "24.4 ms per token.",
    ),
    PublishedLLM(
        "h100-sxm", 1, "-", "llama-3.1-8b", "bf16", "bf16", "decode", 32, 64, 64, 1227.96,
        "tokens/s",
        _BNB + "'NVIDIA H100 80GB SXM' / 'Llama 3.1 8B': 'BF16 | 32 | 0.0261 | 1227.96'",
        _BNB_NOTE + "batch 32: 26.1 ms per step, barely more than batch 1 (overhead-bound).",
    ),
)
# fmt: on
