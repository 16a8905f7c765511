"""Passes benchmark: ResNet-50 and BERT-base on 4 chips at fp32, bf16, int8 and auto.

For each: fused groups and partition units, bytes moved between chips, weight bytes per
chip, bottleneck time, energy per inference, and the measured output SQNR.
"""

from __future__ import annotations

import copy
import sys
import time

import chipcut
from benchmarks.results import machine, table, write_section
from chipcut.compiler.views.report import fmt_j, fmt_s
from chipcut.examples.models import bert_base, resnet50

MODELS = {"ResNet-50 (224)": resnet50, "BERT-base (seq 128)": bert_base}
PIPELINES = {
    "fp32 (no passes)": "none",
    "fp32": "fold-bn,fuse",
    "bf16": "fold-bn,quantize{dtype=bf16,first_last=bf16},fuse",
    "int8": "fold-bn,quantize{dtype=int8},fuse",
    "auto (30 dB)": "fold-bn,quantize{dtype=auto},fuse",
}


def main(chips: int = 4, time_limit_s: float = 10.0) -> None:
    rows = []
    for label, factory in MODELS.items():
        model, inputs = factory()
        captured = chipcut.capture(model, inputs, name=label)
        for precision, passes in PIPELINES.items():
            fresh = copy.deepcopy(captured)
            start = time.perf_counter()
            plan = chipcut.compile(fresh, chips=chips, passes=passes, time_limit_s=time_limit_s)
            wall = time.perf_counter() - start
            m, q = plan.metrics, plan.quantization
            chosen = "" if q is None else ", ".join(sorted({la.activations for la in q.layers}))
            sqnr = "-" if q is None or q.output_sqnr_db is None else f"{q.output_sqnr_db:.1f}"
            row = [label, precision, chosen or "fp32", plan.fused_groups, plan.model.units,
                   f"{m.bytes_moved / 1e6:.2f}",
                   " / ".join(f"{s.weight_bytes / 1e6:.1f}" for s in plan.stages),
                   fmt_s(m.bottleneck_s), fmt_j(m.energy_per_inference_j), sqnr, f"{wall:.1f}"]
            rows.append(row)
            print(" | ".join(str(c) for c in row), flush=True)
    headers = ["model", "pipeline", "MAC dtypes", "fused groups", "units", "MB moved",
               "weight MB per chip", "bottleneck", "energy/inference", "output SQNR dB",
               "compile s"]
    body = (f"## Passes: fusion and precision (`benchmarks/passes_bench.py`)\n\n"
            f"Backend `generic`, {chips} chips, time limit {time_limit_s:g} s; {machine()}. "
            "Pipelines: " + "; ".join(f"{k}: `{v}`" for k, v in PIPELINES.items()) + ". "
            "int8 keeps the first and last MAC layers at fp32; auto picks per layer the "
            "narrowest dtype whose output SQNR stays >= 30 dB, measured with fake quantization "
            "on the example input. `compile s` includes the SQNR measurement.\n\n"
            + table(headers, rows))
    write_section("passes", body)


if __name__ == "__main__":
    main(*(float(a) if i else int(a) for i, a in enumerate(sys.argv[1:])))
