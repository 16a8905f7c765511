"""Spine benchmark: capture and cut ResNet-50, BERT-base and LLaMA-7B (meta) for 2, 4, 8 chips."""

from __future__ import annotations

import sys
import time

import chipcut
from benchmarks.results import machine, table, write_section
from chipcut.compiler.views.report import balance
from chipcut.examples.models import bert_base, llama_7b, resnet50

MODELS = {"ResNet-50 (224)": resnet50, "BERT-base (seq 128)": bert_base, "LLaMA-7B (meta, seq 128)": llama_7b}
CHIPS = (2, 4, 8)


def main(time_limit_s: float = 10.0) -> None:
    rows = []
    for label, factory in MODELS.items():
        model, inputs = factory()
        start = time.perf_counter()
        captured = chipcut.capture(model, inputs, name=label)
        capture_s = time.perf_counter() - start
        for n in CHIPS:
            start = time.perf_counter()
            plan = chipcut.compile(captured, chips=n, time_limit_s=time_limit_s)
            compile_s = time.perf_counter() - start
            m, sv = plan.metrics, plan.solver
            row = [label, n, f"{plan.model.macs / 1e9:.2f} G", plan.model.nodes, plan.model.units,
                   f"{capture_s:.2f}", f"{sv.wall_s:.2f}", f"{compile_s:.2f}", sv.status,
                   f"{100 * sv.gap:.2f}%", f"{balance(plan):.4f}",
                   f"{m.bytes_moved / 1e6:.2f}"]
            rows.append(row)
            print(" | ".join(str(c) for c in row), flush=True)
    headers = ["model", "chips", "MACs", "nodes", "units", "capture s", "solve s", "compile s",
               "status", "gap", "bottleneck / (total/N)", "MB moved"]
    body = (f"## Spine: capture and cut (`benchmarks/spine.py`)\n\n"
            f"Backend `generic`, chain of links, time limit {time_limit_s:g} s per solve; {machine()}. "
            "`compile s` includes accounting, costing and the solve (not capture).\n\n"
            + table(headers, rows))
    write_section("spine", body)


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 10.0)
