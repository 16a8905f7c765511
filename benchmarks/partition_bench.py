"""Partitioner benchmark: chipcut beside the baselines other tools use, and the scale targets.

Part 1 cuts six models for 2, 4 and 8 `generic` chips. chipcut and every baseline
(``benchmarks.baselines``) cut the same costed unit graph (default passes; unit times
under the residency of an even weight split), so the bottlenecks compare like for like.
Part 2 times whole compiles at scale beside torch.export of the same model, and the
peak memory of a LLaMA-70B compile from the command line.

    python -m benchmarks.partition_bench
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import chipcut
from benchmarks.baselines import all_baselines
from benchmarks.results import machine, table, write_section
from chipcut.backends.registry import get_backend
from chipcut.compiler.lowering.costing import chip_state
from chipcut.compiler.solver.build import make_problem
from chipcut.compiler.solver.engine import solve
from chipcut.compiler.solver.evaluate import evaluate, lower_bound_s
from chipcut.examples import models

MODELS = {
    "ResNet-50": models.resnet50,
    "MobileNetV2": models.mobilenet_v2,
    "YOLOv3 (1920x1088)": models.yolov3,
    "BERT-base (seq 128)": models.bert_base,
    "ViT-B/16": models.vit_b16,
    "LLaMA-7B (meta, seq 128)": models.llama_7b,
}
CHIPS = (2, 4, 8)
BASELINES = ("uniform layers", "parameters", "MAC quantiles", "chain DP")


def costed(lowered: chipcut.Lowered, chips: int):
    """(problem, works) for ``chips`` generic chips, as the solver's first round sees them."""
    backends = [get_backend("generic")] * chips
    works = list(lowered.works)
    even = sum(w.weight_bytes for w in works) // chips
    states = [chip_state(b, even) for b in backends]
    return make_problem(lowered.units, works, backends, states), works


def quality(time_limit_s: float) -> tuple[list[list[object]], list[str]]:
    rows, worse = [], []
    for label, factory in MODELS.items():
        model, inputs = factory()
        lowered = chipcut.lower(model, inputs, options=chipcut.CompileOptions(name=label))
        for n in CHIPS:
            problem, works = costed(lowered, n)
            bound = lower_bound_s(problem)
            start = time.perf_counter()
            ours = solve(problem, time_limit_s=time_limit_s)
            solve_s = time.perf_counter() - start
            theirs = {name: evaluate(problem, a) for name, a in all_baselines(problem, works).items()}
            for name, (value, _) in theirs.items():
                if ours.bottleneck_s > value * (1 + 1e-9):
                    worse.append(f"{label} x{n}: worse than {name}")
            row = [label, n, len(works), f"{bound * 1e3:.4g}", f"{ours.bottleneck_s / bound:.4f}"]
            row += [f"{theirs[b][0] / bound:.4f}" for b in BASELINES]
            row += [f"{ours.bytes_moved / 1e6:.2f}"] + [f"{theirs[b][1] / 1e6:.2f}" for b in BASELINES]
            row += [ours.status, f"{solve_s:.2f}"]
            rows.append(row)
            print(" | ".join(map(str, row)), flush=True)
    return rows, worse


TARGETS = (
    ("ResNet-50", models.resnet50, 4, "default", "proven optimal < 1 s"),
    ("LLaMA-7B (meta, seq 128)", models.llama_7b, 8, "default", "proven optimal < 3 s"),
    ("LLaMA-70B (meta, seq 128)", models.llama_70b, 16, "quantize{dtype=bf16},fuse",
     "gap <= 1% within 10 s"),
)


def scale(time_limit_s: float) -> list[list[object]]:
    rows = []
    for label, factory, n, passes, target in TARGETS:
        model, inputs = factory()
        start = time.perf_counter()
        captured = chipcut.capture(model, inputs, name=label)
        export_s = time.perf_counter() - start
        start = time.perf_counter()
        plan = chipcut.compile(captured, chips=n, time_limit_s=time_limit_s, passes=passes)
        compile_s = time.perf_counter() - start
        sv = plan.solver
        row = [label, n, passes, plan.model.units, target, sv.status, f"{100 * sv.gap:.2f}%",
               sv.method, f"{sv.wall_s:.2f}", f"{compile_s:.2f}", f"{export_s:.2f}",
               f"{compile_s / export_s:.2f}"]
        rows.append(row)
        print(" | ".join(map(str, row)), flush=True)
    return rows


def peak_memory_mb() -> tuple[float, float]:
    """(peak resident MB, seconds) of ``chipcut compile`` on LLaMA-70B x16 in a fresh process."""
    exe = Path(sys.executable).with_name("chipcut")
    start = time.perf_counter()
    subprocess.run([str(exe), "compile", "chipcut.examples.models:llama_70b", "--chips", "16",
                    "--passes", "quantize{dtype=bf16},fuse"], check=True, capture_output=True)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, time.perf_counter() - start


def main(time_limit_s: float = 10.0) -> None:
    rows, worse = quality(time_limit_s)
    targets = scale(time_limit_s)
    rss_mb, cli_s = peak_memory_mb()
    print(f"LLaMA-70B x16 CLI: peak {rss_mb:.0f} MB, {cli_s:.1f} s", flush=True)
    headers = (["model", "chips", "units", "bound ms"]
               + [f"{name} / bound" for name in ("chipcut", *BASELINES)]
               + [f"{name} MB" for name in ("chipcut", *BASELINES)] + ["status", "solve s"])
    verdict = ("chipcut's bottleneck is no worse than every baseline on every row." if not worse
               else "chipcut is worse than a baseline on: " + "; ".join(worse))
    body = (
        "## Partitioner: chipcut beside the baselines (`benchmarks/partition_bench.py`)\n\n"
        f"`generic` chips in a chain, time limit {time_limit_s:g} s; {machine()}. Bound = "
        "max(total / N, heaviest indivisible unit), each column the bottleneck over that bound "
        "(1.0000 is perfect balance), then MB moved between chips per inference. Baselines: "
        "uniform layer count (Megatron), parameter-balanced (DeepSpeed `parameters`, Coral "
        "`--num_segments`), cumulative-MAC quantile cuts, and the exact DP on one topological "
        "order. All cut the same costed unit graph. " + verdict + "\n\n"
        + table(headers, rows)
        + "\n\n### Scale: whole compile beside torch.export of the same model\n\n"
        "`compile s` is `chipcut.compile` on the captured model (passes, accounting, the "
        "residency rounds and the solve); `ratio` is compile s / export s.\n\n"
        + table(["model", "chips", "passes", "units", "target", "status", "gap", "method",
                 "solve s", "compile s", "export s", "ratio"], targets)
        + f"\n\nPeak memory of `chipcut compile chipcut.examples.models:llama_70b --chips 16 --passes "
        f"'quantize{{dtype=bf16}},fuse'` (build on meta, export, passes, solve, report), one "
        f"process: **{rss_mb:.0f} MB**, {cli_s:.1f} s wall.\n")
    write_section("partition", body)


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 10.0)
