"""Published single-chip inference measurements, for fitting and checking the chip presets.

Every row is a figure read from a public source named in its ``source`` field (an MLPerf
Inference result file, a vendor README or benchmark table, or a paper table); nothing here
is derived by chipcut, and nothing is fetched at import time. The only arithmetic applied
is dividing a multi-accelerator MLPerf system figure by its accelerator count, and the row
says so in ``note``.

Fields:

- ``chip``: the chipcut preset name (``backends/presets/<chip>.toml``).
- ``model``: a short model id. MLPerf "bert-99"/"bert-99.9" run BERT-Large (SQuAD v1.1),
  so they are ``bert-large``; ``tpu-mlp0`` and friends are Google's production models from
  the TPU v1 paper (their shapes, as published, are in ``input``/``note``).
- ``precision``: "int8", "fp16", "bf16" or "fp8" (the precision the source states).
- ``batch``: the batch the figure was taken at (the harness's GPU batch for MLPerf Offline).
- ``input``: one sample's shape, e.g. "1x3x224x224", or "seq 384".
- ``scenario``: "offline" (throughput over many samples) or "latency" (time per query).
- ``value`` / ``unit``: the published figure. "frames/s" is samples (images, sequences,
  inferences) per second. "ms" is the time for ONE batch of ``batch`` samples (for
  batch 1 that is the per-sample latency). "TOPS" (TPU v1 rows only) is the paper's
  achieved tera-operations per second, two operations per MAC, as in its Table 3.
- ``source``: where the figure is, quoted closely enough to find it again.
- ``note``: caveats: software stack, power mode, what the timing includes, division.
- ``modeled``: the one-sample shape chipcut builds to predict the row, when it differs from
  ``input``: NVIDIA's MLPerf BERT kernels skip padding (closed/NVIDIA code/bert/tensorrt/
  README.md, "Variable Sequence Lengths": padded parts truncated and the sequences
  concatenated into a batch), and SQuAD v1.1 at max length 384 is 54% padding (the abstract
  at openreview.net/forum?id=3nzKUh9a4M: "For SQuAD-v1.1, padding accounts for 54% of the
  total input tokens when the max sequence length is 384"), so an Offline (throughput) row is
  modeled at the mean 0.46 x 384 = 177 tokens.
  Latency rows (a 90th percentile over samples of varying length) keep ``input``.
- ``others``: the precision of the layers other than matrix products (layer norms,
  activations, residual adds), when the source gives them one of their own: MLPerf's BERT-99.9 on H100 runs
  "matmul and linear layers in FP8" and the rest in fp16.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Published:
    """One published measurement of one model on one chip."""

    chip: str
    model: str
    precision: str
    batch: int
    input: str
    scenario: str
    value: float
    unit: str
    source: str
    note: str
    modeled: str = ""
    others: str = ""


# fmt: off
# --- source prefixes -------------------------------------------------------------------------

_V11 = (
    "MLPerf Inference v1.1 closed, Lenovo ThinkSystem SE350 (1x NVIDIA T4), system T4x1_TRT; "
    "github.com/mlcommons/inference_results_v1.1 @7fc43356 "
    "closed/Lenovo/results/T4x1_TRT/"
)
_V11_NOTE = (
    "1 T4 (edge system, MaxP), TensorRT 8.0.2, CUDA 11.3, driver 470.57; MLPerf preprocessed "
    "tensors (image decode/resize not timed); "
)
_V30 = (
    "MLPerf Inference v3.0 closed, NVIDIA DGX H100 (1x H100-SXM-80GB, TensorRT); "
    "github.com/mlcommons/inference_results_v3.0 @1948f9b5 "
    "closed/NVIDIA/results/DGX-H100_H100-SXM-80GBx1_TRT/"
)
_V30X8 = (
    "MLPerf Inference v3.0 closed, NVIDIA DGX H100 (8x H100-SXM-80GB, TensorRT); "
    "github.com/mlcommons/inference_results_v3.0 @1948f9b5 "
    "closed/NVIDIA/results/DGX-H100_H100-SXM-80GBx8_TRT/"
)
_V30_NOTE = (
    "H100 SXM 80GB (700 W, MaxP), TensorRT 8.6.0, CUDA 12.0, driver 525.67; "
    "preprocessed tensors; "
)
_TRT_BERT = (
    "NVIDIA/TensorRT demo/BERT/README.md @7d2a70a1 (2022-10-05, 'Update demoBERT benchmark "
    "data for TensorRT 8.4.3'), 'Inference performance: NVIDIA T4 (16GB)', "
)
_TRT_BERT_NOTE = (
    "TensorRT 8.4.3, CUDA 11.6, scripts/inference_benchmark.sh --gpu Turing; README: 'time "
    "measurements do not include the time required to copy inputs to the device and copy "
    "outputs to the host'; fixed (padded) sequence length; INT8 engines built "
    "--int8 --fp16 --strict (fp16 where int8 is not used); "
)
_HAILO = (
    "hailo-ai/hailo_model_zoo @c83fc030 (file commit 516c1c3c, 2026-01-13) "
    "docs/public_models/HAILO8/"
)
_HAILO_NOTE = (
    "Hailo-8 M.2; compiled with Hailo Dataflow Compiler v3.33.0 (HEF v2.17.0); 'Benchmark "
    "and TAPPAS networks run in performance mode'; FPS is streaming (pipelined) throughput "
    "over PCIe, host pre/post-processing not included; "
)
_HAILO_LAT = (
    "hailo-ai/hailo_model_zoo @f86ec7df (2024-01-01) "
    "docs/PUBLIC_MODELS_HAILO8.rst, "
)
_HAILO_LAT_NOTE = (
    "Hailo-8, Dataflow Compiler v3.26.0 (HEF v2.10.0); the 'Latency' column has no unit in "
    "the header, read as ms; latency >> 1/FPS because the chip pipelines frames through "
    "layers mapped side by side; "
)
_CORAL = (
    "coral.ai/docs/edgetpu/benchmarks "
    "'Table 1. Time per inference, in milliseconds (ms)', "
)
_CORAL_NOTE = (
    "Edge TPU, TFLite int8 (uint8) model, C++ benchmark; page: 'These figures measure the "
    "time required to execute the model only. It does not include the time to process input "
    "data'; "
)
_USB = "column 'Desktop CPU + USB Accelerator (USB 3.0) with Edge TPU'"
_DEV = "column 'Dev Board with Edge TPU'"
_CORAL_MODELS = "coral.ai/models/image-classification (and coral.ai/models/all), column 'Latency' "
_TPU = (
    "N. P. Jouppi et al., 'In-Datacenter Performance Analysis of a Tensor Processing Unit', "
    "ISCA 2017 (arXiv:1704.04760), "
)
_TPU_NOTE = (
    "Google production model, TensorFlow, int8 on one TPU v1 die; values read from a "
    "transcription of the paper's tables (stored public file 'TPU Paper Data - extracted "
    "from Tables 1-6'), not from the PDF itself; "
)

PUBLISHED: tuple[Published, ...] = (
    # ---------------------------------------------------------------- NVIDIA T4: MLPerf v1.1
    Published(
        "t4", "resnet50", "int8", 256, "1x3x224x224", "offline", 5808.47, "frames/s",
        _V11 + "resnet50/Offline/performance/run_1/mlperf_log_summary.txt "
        "'Samples per second: 5808.47'",
        _V11_NOTE + "ResNet-50 v1.5; gpu_batch_size=256, gpu_copy_streams=4 (closed/Lenovo/"
        "configs/resnet50/Offline/__init__.py class T4x1).",
    ),
    Published(
        "t4", "resnet50", "int8", 1, "1x3x224x224", "latency", 0.819062, "ms",
        _V11 + "resnet50/SingleStream/performance/run_1/mlperf_log_summary.txt "
        "'90th percentile latency (ns) : 819062'",
        _V11_NOTE + "90th percentile of LoadGen query latency; mean 816569 ns.",
    ),
    Published(
        "t4", "bert-large", "int8", 128, "seq 384", "offline", 375.886, "frames/s",
        _V11 + "bert-99/Offline/performance/run_1/mlperf_log_summary.txt "
        "'Samples per second: 375.886'",
        _V11_NOTE + "MLPerf bert-99 = BERT-Large SQuAD v1.1, max seq 384; NVIDIA's variable-"
        "length kernels skip padding, so mean tokens/sample < 384; gpu_batch_size=128, "
        "precision int8 (configs/bert).", "seq 177",
    ),
    Published(
        "t4", "bert-large", "int8", 1, "seq 384", "latency", 6.014681, "ms",
        _V11 + "bert-99/SingleStream/performance/run_1/mlperf_log_summary.txt "
        "'90th percentile latency (ns) : 6014681'",
        _V11_NOTE + "90th percentile over SQuAD samples of varying length (mean 4798528 ns).",
    ),
    Published(
        "t4", "ssd-resnet34", "int8", 12, "1x3x1200x1200", "offline", 134.506, "frames/s",
        _V11 + "ssd-resnet34/Offline/performance/run_1/mlperf_log_summary.txt "
        "'Samples per second: 134.506'",
        _V11_NOTE + "SSD with ResNet-34 backbone, COCO 1200x1200; gpu_batch_size=12.",
    ),
    Published(
        "t4", "ssd-resnet34", "int8", 1, "1x3x1200x1200", "latency", 8.297954, "ms",
        _V11 + "ssd-resnet34/SingleStream/performance/run_1/mlperf_log_summary.txt "
        "'90th percentile latency (ns) : 8297954'",
        _V11_NOTE + "90th percentile; mean 8190630 ns.",
    ),
    Published(
        "t4", "ssd-mobilenet", "int8", 128, "1x3x300x300", "offline", 7399.41, "frames/s",
        _V11 + "ssd-mobilenet/Offline/performance/run_1/mlperf_log_summary.txt "
        "'Samples per second: 7399.41'",
        _V11_NOTE + "SSD-MobileNet-v1 (depthwise backbone), COCO 300x300; gpu_batch_size=128.",
    ),
    Published(
        "t4", "ssd-mobilenet", "int8", 1, "1x3x300x300", "latency", 0.468044, "ms",
        _V11 + "ssd-mobilenet/SingleStream/performance/run_1/mlperf_log_summary.txt "
        "'90th percentile latency (ns) : 468044'",
        _V11_NOTE + "90th percentile; mean 464962 ns; per-kernel overhead dominates here.",
    ),
    Published(
        "t4", "3d-unet", "int8", 2, "1x4x224x224x160", "offline", 7.18324, "frames/s",
        _V11 + "3d-unet-99/Offline/performance/run_1/mlperf_log_summary.txt "
        "'Samples per second: 7.18324'",
        _V11_NOTE + "v1.1 3D-UNet = BraTS 2019 (model file 224_224_160_dyanmic_bs.onnx); "
        "gpu_batch_size=2.",
    ),
    Published(
        "t4", "3d-unet", "int8", 1, "1x4x224x224x160", "latency", 158.332005, "ms",
        _V11 + "3d-unet-99/SingleStream/performance/run_1/mlperf_log_summary.txt "
        "'90th percentile latency (ns) : 158332005'",
        _V11_NOTE + "90th percentile; mean 157118855 ns.",
    ),
    # ------------------------------------------------- NVIDIA T4: TensorRT demoBERT README
    Published(
        "t4", "bert-base", "int8", 1, "seq 128", "latency", 1.69, "ms",
        _TRT_BERT + "BERT Base, seq 128, batch 1, INT8 Average latency 1.69 ms",
        _TRT_BERT_NOTE + "95th pct 1.74, 99th pct 1.87 ms.",
    ),
    Published(
        "t4", "bert-base", "fp16", 1, "seq 128", "latency", 1.95, "ms",
        _TRT_BERT + "BERT Base, seq 128, batch 1, FP16 Average latency 1.95 ms",
        _TRT_BERT_NOTE + "95th pct 1.97, 99th pct 2.00 ms.",
    ),
    Published(
        "t4", "bert-base", "int8", 128, "seq 128", "latency", 73.15, "ms",
        _TRT_BERT + "BERT Base, seq 128, batch 128, INT8 Average latency 73.15 ms",
        _TRT_BERT_NOTE + "time for the whole batch of 128 (= 1750 sequences/s).",
    ),
    Published(
        "t4", "bert-base", "fp16", 128, "seq 128", "latency", 144.20, "ms",
        _TRT_BERT + "BERT Base, seq 128, batch 128, FP16 Average latency 144.20 ms",
        _TRT_BERT_NOTE + "time for the whole batch of 128 (= 888 sequences/s).",
    ),
    Published(
        "t4", "bert-base", "int8", 8, "seq 384", "latency", 14.56, "ms",
        _TRT_BERT + "BERT Base, seq 384, batch 8, INT8 Average latency 14.56 ms",
        _TRT_BERT_NOTE + "time for the whole batch of 8; attention share larger at seq 384.",
    ),
    Published(
        "t4", "bert-large", "int8", 1, "seq 384", "latency", 7.29, "ms",
        _TRT_BERT + "BERT Large, seq 384, batch 1, INT8 Average latency 7.29 ms",
        _TRT_BERT_NOTE + "padded seq 384 (compare the MLPerf SingleStream row, variable length).",
    ),
    Published(
        "t4", "bert-large", "int8", 128, "seq 384", "latency", 755.50, "ms",
        _TRT_BERT + "BERT Large, seq 384, batch 128, INT8 Average latency 755.50 ms",
        _TRT_BERT_NOTE + "time for the whole batch of 128 (= 169 sequences/s, all padded to "
        "384; the MLPerf Offline row skips padding).",
    ),
    Published(
        "t4", "bert-large", "fp16", 128, "seq 384", "latency", 1518.35, "ms",
        _TRT_BERT + "BERT Large, seq 384, batch 128, FP16 Average latency 1518.35 ms",
        _TRT_BERT_NOTE + "time for the whole batch of 128.",
    ),
    # ------------------------------------------- NVIDIA T4: framework (PyTorch eager) figure
    Published(
        "t4", "resnet50", "fp16", 256, "1x3x224x224", "offline", 1198.0, "frames/s",
        "NVIDIA/DeepLearningExamples PyTorch/Classification/ConvNets/resnet50v1.5/README.md "
        "@291f0d02, 'Inference performance: NVIDIA T4', 'Mixed Precision Inference Latency', "
        "batch 256: Throughput Avg 1198 img/s",
        "PyTorch (pytorch-21.03 NGC container) with AMP, not TensorRT: a framework-overhead "
        "data point, ~4.8x below the TensorRT int8 MLPerf row; do not fit tuned-kernel "
        "efficiencies to it. Batch 1 in the same table: 12.96 ms (eager dispatch bound).",
    ),
    # -------------------------------------------------------- NVIDIA H100 SXM: MLPerf v3.0
    Published(
        "h100-sxm", "resnet50", "int8", 2048, "1x3x224x224", "offline", 91825.7, "frames/s",
        _V30 + "resnet50/Offline/performance/run_1/mlperf_log_summary.txt "
        "'Samples per second: 91825.7'",
        _V30_NOTE + "ResNet-50 v1.5; gpu_batch_size=2048, start_from_device=True (inputs "
        "already in HBM, no H2D) per closed/NVIDIA/configs/resnet50/Offline/__init__.py.",
    ),
    Published(
        "h100-sxm", "resnet50", "int8", 2048, "1x3x224x224", "offline", 90929.625, "frames/s",
        _V30X8 + "resnet50/Offline/performance/run_1/mlperf_log_summary.txt "
        "'Samples per second: 727437'",
        _V30_NOTE + "system figure 727437 divided by 8 GPUs (by us); a cross-check of the 1-GPU "
        "row, not an independent chip.",
    ),
    Published(
        "h100-sxm", "bert-large", "int8", 1280, "seq 384", "offline", 9369.12, "frames/s",
        _V30 + "bert-99/Offline/performance/run_1/mlperf_log_summary.txt "
        "'Samples per second: 9369.12'",
        _V30_NOTE + "bert-99 = BERT-Large SQuAD v1.1, max seq 384, variable-length kernels "
        "(no padding); precision int8, gpu_batch_size=1280 (configs/bert/Offline).", "seq 177",
    ),
    Published(
        "h100-sxm", "bert-large", "int8", 1280, "seq 384", "offline", 9138.45, "frames/s",
        _V30X8 + "bert-99/Offline/performance/run_1/mlperf_log_summary.txt "
        "'Samples per second: 73107.6'",
        _V30_NOTE + "system figure 73107.6 divided by 8 GPUs (by us); cross-check only.", "seq 177",
    ),
    Published(
        "h100-sxm", "bert-large", "fp8", 1024, "seq 384", "offline", 8006.64, "frames/s",
        _V30 + "bert-99.9/Offline/performance/run_1/mlperf_log_summary.txt "
        "'Samples per second: 8006.64'",
        _V30_NOTE + "bert-99.9 config: precision='fp16', use_fp8=True, gpu_batch_size=1024; "
        "code/bert/tensorrt/README.md: matmul and linear layers in FP8 for the higher "
        "accuracy target (rest fp16); variable-length kernels.", "seq 177", others="fp16",
    ),
    Published(
        "h100-sxm", "retinanet", "int8", 16, "1x3x800x800", "offline", 1478.64, "frames/s",
        _V30 + "retinanet/Offline/performance/run_1/mlperf_log_summary.txt "
        "'Samples per second: 1478.64'",
        _V30_NOTE + "RetinaNet ResNeXt50-FPN, OpenImages MLPerf subset, 800x800; "
        "gpu_batch_size=16, gpu_inference_streams=2.",
    ),
    Published(
        "h100-sxm", "3d-unet", "int8", 8, "KiTS19 volume", "offline", 6.86989, "frames/s",
        _V30 + "3d-unet-99/Offline/performance/run_1/mlperf_log_summary.txt "
        "'Samples per second: 6.86989'",
        _V30_NOTE + "v3.0 3D-UNet = KiTS 2019, whole CT volumes of varying size, so one "
        "'sample' is not a fixed shape; gpu_batch_size=8."
        " Not comparable with the T4 v1.1 BraTS row.",
    ),
    # ----------------------------------------------------------- Hailo-8: model zoo (2026)
    Published(
        "hailo-8", "resnet50", "int8", 1, "1x3x224x224", "offline", 1372.0, "frames/s",
        _HAILO + "HAILO8_classification.rst, resnet_v1_50: FPS (Batch Size=1) 1372, "
        "FPS (Batch Size=8) 1372",
        _HAILO_NOTE + "ResNet-50 v1 (6.98 GOPS, 25.53 M params); batch 8 gives the same FPS, "
        "i.e. the model runs as one on-chip context.",
    ),
    Published(
        "hailo-8", "mobilenet_v2", "int8", 1, "1x3x224x224", "offline", 2597.0, "frames/s",
        _HAILO + "HAILO8_classification.rst, mobilenet_v2_1.0: FPS (Batch Size=1) 2597",
        _HAILO_NOTE + "0.62 GOPS, 3.49 M params; depthwise-heavy.",
    ),
    Published(
        "hailo-8", "mobilenet_v1", "int8", 1, "1x3x224x224", "offline", 3305.0, "frames/s",
        _HAILO + "HAILO8_classification.rst, mobilenet_v1: FPS (Batch Size=1) 3305",
        _HAILO_NOTE + "1.14 GOPS, 4.22 M params; depthwise-heavy.",
    ),
    Published(
        "hailo-8", "inception_v1", "int8", 1, "1x3x224x224", "offline", 2454.0, "frames/s",
        _HAILO + "HAILO8_classification.rst, inception_v1: FPS (Batch Size=1) 2454",
        _HAILO_NOTE + "3 GOPS, 6.62 M params; was 928 FPS with DFC v3.30 (model zoo v2.14): "
        "compiler version matters by up to 2.6x.",
    ),
    Published(
        "hailo-8", "efficientnet_l", "int8", 1, "1x3x300x300", "offline", 221.0, "frames/s",
        _HAILO + "HAILO8_classification.rst, efficientnet_l: FPS (Batch Size=1) 221",
        _HAILO_NOTE + "EfficientNet-EdgeTPU-L style (19.4 GOPS, 10.55 M params), 300x300.",
    ),
    Published(
        "hailo-8", "efficientnet_m", "int8", 1, "1x3x240x240", "offline", 984.0, "frames/s",
        _HAILO + "HAILO8_classification.rst, efficientnet_m: FPS (Batch Size=1) 984",
        _HAILO_NOTE + "EfficientNet-EdgeTPU-M style (7.32 GOPS, 6.87 M params), 240x240.",
    ),
    Published(
        "hailo-8", "yolov5s", "int8", 1, "1x3x640x640", "offline", 543.0, "frames/s",
        _HAILO + "HAILO8_object_detection.rst, yolov5s: FPS (Batch Size=1) 543",
        _HAILO_NOTE + "17.44 GOPS, 7.46 M params, COCO 640x640.",
    ),
    Published(
        "hailo-8", "ssd-mobilenet", "int8", 1, "1x3x300x300", "offline", 1015.0, "frames/s",
        _HAILO + "HAILO8_object_detection.rst, ssd_mobilenet_v1: FPS (Batch Size=1) 1015",
        _HAILO_NOTE + "2.5 GOPS, 6.79 M params, 300x300.",
    ),
    Published(
        "hailo-8", "vit_base", "int8", 1, "1x3x224x224", "offline", 29.0, "frames/s",
        _HAILO + "HAILO8_classification.rst, vit_base: FPS (Batch Size=1) 29",
        _HAILO_NOTE + "ViT-B/16 (35.188 GOPS, 86.5 M params); batch 8 is 3.7x "
        "faster: our reading (not stated) is a multi-context model whose weights do not fit.",
    ),
    Published(
        "hailo-8", "vit_base", "int8", 8, "1x3x224x224", "offline", 108.0, "frames/s",
        _HAILO + "HAILO8_classification.rst, vit_base: FPS (Batch Size=8) 108",
        _HAILO_NOTE + "same model as the batch-1 row; batching amortizes whatever "
        "per-batch reload cost the multi-context split adds (our reading).",
    ),
    Published(
        "hailo-8", "yolov8m", "int8", 8, "1x3x640x640", "offline", 141.0, "frames/s",
        _HAILO + "HAILO8_object_detection.rst, yolov8m: FPS (Batch Size=1) 67, "
        "FPS (Batch Size=8) 141",
        _HAILO_NOTE + "78.93 GOPS, 25.9 M params; multi-context (batch 1: 67 FPS).",
    ),
    Published(
        "hailo-8", "resnet50", "int8", 1, "1x3x224x224", "latency", 2.85651, "ms",
        _HAILO_LAT + "resnet_v1_50: FPS (Batch Size=1) 1331.76, Latency 2.85651",
        _HAILO_LAT_NOTE + "older compiler than the 1372 FPS row.",
    ),
    Published(
        "hailo-8", "mobilenet_v2", "int8", 1, "1x3x224x224", "latency", 1.89682, "ms",
        _HAILO_LAT + "mobilenet_v2_1.0: FPS (Batch Size=1) 2443.67, Latency 1.89682",
        _HAILO_LAT_NOTE + "",
    ),
    Published(
        "hailo-8", "yolov5s", "int8", 1, "1x3x640x640", "latency", 6.422, "ms",
        _HAILO_LAT + "yolov5s: FPS (Batch Size=1) 379.521, Latency 6.422",
        _HAILO_LAT_NOTE + "",
    ),
    Published(
        "hailo-8", "efficientnet_l", "int8", 1, "1x3x300x300", "latency", 22.6418, "ms",
        _HAILO_LAT + "efficientnet_l: FPS (Batch Size=1) 155.208, Latency 22.6418",
        _HAILO_LAT_NOTE + "",
    ),
    # ------------------------------------------------------- Google Coral Edge TPU (coral.ai)
    Published(
        "coral-edge-tpu", "mobilenet_v1", "int8", 1, "1x3x224x224", "latency", 2.4, "ms",
        _CORAL + "MobileNet v1 (224x224), " + _USB + ": 2.4",
        _CORAL_NOTE + "weights fit in the ~8 MB SRAM; Dev Board: 2.4 ms.",
    ),
    Published(
        "coral-edge-tpu", "mobilenet_v2", "int8", 1, "1x3x224x224", "latency", 2.6, "ms",
        _CORAL + "MobileNet v2 (224x224), " + _USB + ": 2.6",
        _CORAL_NOTE + "depthwise-heavy; Dev Board: 2.6 ms.",
    ),
    Published(
        "coral-edge-tpu", "inception_v1", "int8", 1, "1x3x224x224", "latency", 3.4, "ms",
        _CORAL + "Inception v1 (224x224), " + _USB + ": 3.4",
        _CORAL_NOTE + "Dev Board: 4.1 ms.",
    ),
    Published(
        "coral-edge-tpu", "inception_v4", "int8", 1, "1x3x299x299", "latency", 85.0, "ms",
        _CORAL + "Inception v4 (299x299), " + _USB + ": 85",
        _CORAL_NOTE + "model ~42.9 MB (coral.ai/models) >> 8 MB SRAM: most weights stream "
        "from the host every inference; Dev Board: 102 ms.",
    ),
    Published(
        "coral-edge-tpu", "resnet50", "int8", 1, "1x3x299x299", "latency", 49.0, "ms",
        _CORAL + "ResNet-50 V1 (299x299), " + _USB + ": 49",
        _CORAL_NOTE + "NOTE 299x299, not 224; ~25 MB of int8 weights > 8 MB SRAM, so "
        "host-link bound; Dev Board: 56 ms.",
    ),
    Published(
        "coral-edge-tpu", "resnet50", "int8", 1, "1x3x299x299", "latency", 56.0, "ms",
        _CORAL + "ResNet-50 V1 (299x299), " + _DEV + ": 56",
        _CORAL_NOTE + "Dev Board (embedded host) instead of USB; 299x299 input.",
    ),
    Published(
        "coral-edge-tpu", "efficientnet_s", "int8", 1, "1x3x224x224", "latency", 5.1, "ms",
        _CORAL + "EfficientNet-EdgeTpu-S, " + _USB + ": 5.1",
        _CORAL_NOTE + "224x224 (coral.ai/models); Dev Board: 5.5 ms.",
    ),
    Published(
        "coral-edge-tpu", "efficientnet_m", "int8", 1, "1x3x240x240", "latency", 8.7, "ms",
        _CORAL + "EfficientNet-EdgeTpu-M, " + _USB + ": 8.7",
        _CORAL_NOTE + "240x240 (coral.ai/models); Dev Board: 10.6 ms.",
    ),
    Published(
        "coral-edge-tpu", "vgg16", "int8", 1, "1x3x224x224", "latency", 296.0, "ms",
        _CORAL + "VGG16 (224x224), " + _USB + ": 296",
        _CORAL_NOTE + "~138 M int8 weights, almost all streamed over USB 3.0 each inference: "
        "a direct check of the host-link bandwidth term; Dev Board: 343 ms.",
    ),
    Published(
        "coral-edge-tpu", "squeezenet", "int8", 1, "1x3x224x224", "latency", 2.1, "ms",
        _CORAL + "SqueezeNet (224x224), " + _USB + ": 2.1",
        _CORAL_NOTE + "small model, fixed per-inference overhead visible; Dev Board: 2 ms.",
    ),
    Published(
        "coral-edge-tpu", "inception_v3", "int8", 1, "1x3x299x299", "latency", 42.8, "ms",
        _CORAL_MODELS + "Inception V3, 299x299x3: 42.8 ms (model size 23.9 MB)",
        "Edge TPU; the page's latency footnote (which host/link) was not in the text read; "
        "same page: Inception V3 224x224 13.4 ms (12.0 MB), EfficientNet-EdgeTpu (L) "
        "300x300 21.3 ms. Prefer the Table 1 rows for fitting.",
    ),
    # ------------------------------------------------------------- Google TPU v1 (ISCA 2017)
    Published(
        "tpu-v1", "tpu-mlp0", "int8", 200, "MLP0: 5 layers, 20M weights", "latency", 7.0,
        "ms",
        _TPU + "Table 4 (99th% response time and per-die IPS for MLP0 vs batch): TPU batch 200, "
        "7.0 ms",
        _TPU_NOTE + "99th-percentile response time; 7 ms was the app's limit; "
        "Table 1: TPU ops/weight byte 200 (= batch).",
    ),
    Published(
        "tpu-v1", "tpu-mlp0", "int8", 200, "MLP0: 5 layers, 20M weights", "offline",
        225000.0, "frames/s",
        _TPU + "Table 4: TPU batch 200, 225,000 IPS (80% of max)",
        _TPU_NOTE + "inferences/s per die at the 7 ms limit.",
    ),
    Published(
        "tpu-v1", "tpu-mlp0", "int8", 250, "MLP0: 5 layers, 20M weights", "latency", 10.0,
        "ms",
        _TPU + "Table 4: TPU batch 250, 10.0 ms",
        _TPU_NOTE + "99th-percentile response time.",
    ),
    Published(
        "tpu-v1", "tpu-mlp0", "int8", 250, "MLP0: 5 layers, 20M weights", "offline",
        280000.0, "frames/s",
        _TPU + "Table 4: TPU batch 250, 280,000 IPS (100% of max)",
        _TPU_NOTE + "inferences/s per die.",
    ),
    Published(
        "tpu-v1", "tpu-mlp0", "int8", 200, "MLP0: 5 layers, 20M weights", "offline", 12.3,
        "TOPS",
        _TPU + "Table 3 (factors limiting TPU performance, from performance counters), "
        "TeraOps/sec row: MLP0 12.3",
        _TPU_NOTE + "batch = Table 1 TPU batch size; counters: weight-stall 53.9%, useful "
        "MACs 12.5% -> bound by streaming weights from the 34 GB/s DDR3.",
    ),
    Published(
        "tpu-v1", "tpu-mlp1", "int8", 168, "MLP1: 4 layers, 5M weights", "offline", 9.7,
        "TOPS",
        _TPU + "Table 3 TeraOps/sec row: MLP1 9.7",
        _TPU_NOTE + "batch = Table 1 TPU batch size 168 (ops/weight byte 168); weight-stall "
        "44.2%.",
    ),
    Published(
        "tpu-v1", "tpu-lstm0", "int8", 64, "LSTM0: 58 layers, 52M weights",
        "offline", 3.7, "TOPS",
        _TPU + "Table 3 TeraOps/sec row: LSTM0 3.7",
        _TPU_NOTE + "batch = Table 1 TPU batch size 64; weight-stall 58.1%.",
    ),
    Published(
        "tpu-v1", "tpu-lstm1", "int8", 96, "LSTM1: 56 layers, 34M weights",
        "offline", 2.8, "TOPS",
        _TPU + "Table 3 TeraOps/sec row: LSTM1 2.8",
        _TPU_NOTE + "batch = Table 1 TPU batch size 96; weight-stall 62.1%.",
    ),
    Published(
        "tpu-v1", "tpu-cnn0", "int8", 8, "CNN0: 16 layers, 8M weights", "offline", 86.0,
        "TOPS",
        _TPU + "Table 3 TeraOps/sec row: CNN0 86.0",
        _TPU_NOTE + "batch = Table 1 TPU batch size 8 (ops/weight byte 2888); 78.2% useful "
        "MACs, no weight stalls: compute bound, 93% of the 92 TOPS peak.",
    ),
    Published(
        "tpu-v1", "tpu-cnn1", "int8", 32, "CNN1: 89 layers, 100M weights", "offline", 14.1, "TOPS",
        _TPU + "Table 3 TeraOps/sec row: CNN1 14.1",
        _TPU_NOTE + "batch = Table 1 TPU batch size 32; useful MACs 22.5% vs unused MACs 23.7% "
        "of array cycles, weight-stall 28.1%.",
    ),
)
# fmt: on
