"""Runtime benchmark: plans for the `cpu` backend run as real pipelines, predicted beside measured.

Each model is compiled for 1 and 2 chips with ``--backend cpu`` and run with ``chipcut.run``
(one process per stage, 1 thread each, gloo): per stage the measured / predicted time, the
throughput and one-frame latency predicted and measured, and whether the stage the plan
predicts slowest is the one measured slowest.

    python -m benchmarks.run_bench                    # ResNet-50, BERT-base, MobileNetV2
    python -m benchmarks.run_bench MobileNetV2 --frames 8
"""

from __future__ import annotations

import argparse

import chipcut
from benchmarks.results import machine, table, write_section
from chipcut.compiler.views.measured import ratio
from chipcut.core.fmt import seconds
from chipcut.examples.models import bert_base, mobilenet_v2, resnet50

MODELS = {"ResNet-50": resnet50, "BERT-base": bert_base, "MobileNetV2": mobilenet_v2}
CHIPS = (1, 2)


def slowest_predicted(plan: chipcut.Plan) -> int:
    return max((s for s in plan.stages if s.nodes), key=lambda s: s.time_s).chip


def slowest_measured(m: chipcut.Measured) -> int:
    return max(m.stages, key=lambda s: s.busy_s).chip


def row(label: str, chips: int, plan: chipcut.Plan, m: chipcut.Measured) -> list[object]:
    predicted, measured = slowest_predicted(plan), slowest_measured(m)
    return [label, chips, len(m.stages),
            ", ".join(f"{s.chip}: {ratio(s.busy_s, s.predicted_s)}" for s in m.stages),
            f"{m.predicted_throughput_per_s:.4g}", f"{m.throughput_per_s:.4g}",
            ratio(m.throughput_per_s, m.predicted_throughput_per_s),
            seconds(m.predicted_latency_s), seconds(m.latency_s),
            f"chip {predicted}", f"chip {measured}", "yes" if predicted == measured else "no",
            m.predicted_bottleneck, m.bottleneck, f"{m.max_abs_diff:.2g}"]


def main(names: list[str], frames: int, microbatches: int, time_limit_s: float,
         oversubscribe: bool) -> None:
    rows = []
    for label in names:
        model, inputs = MODELS[label]()
        captured = chipcut.capture(model, inputs, name=label)
        for chips in CHIPS:
            plan = chipcut.compile(captured, chips=chips, backend="cpu", time_limit_s=time_limit_s)
            m = chipcut.run(plan, captured, frames=frames, microbatches=microbatches, threads=1,
                            oversubscribe=oversubscribe)
            rows.append(row(label, chips, plan, m))
            print(" | ".join(str(c) for c in rows[-1]), flush=True)
    headers = ["model", "chips", "stages", "measured / predicted per chip", "pred. frames/s",
               "meas. frames/s", "meas. / pred.", "pred. latency", "meas. latency",
               "pred. slowest", "meas. slowest", "same", "pred. bottleneck", "meas. bottleneck",
               "max abs diff"]
    body = ("## Runtime: plans run as real pipelines (`benchmarks/run_bench.py`)\n\n"
            f"Backend `cpu` (the shipped default spec, not calibrated), one process per stage with "
            f"1 thread, gloo, `gpipe`, {frames} frames in steps of {microbatches} after one warmup "
            f"step; {machine()}. A stage's measured time is the median time inside its forward "
            "per frame; a ratio above 1 means the plan was optimistic. `same`: the stage the "
            "plan predicts slowest is the one measured slowest. Bottlenecks include links; "
            "the measured link time is the receiver's wait.\n\n" + table(headers, rows))
    write_section("run", body)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", metavar="MODEL",
                        help=f"any of {', '.join(MODELS)} (default: all)")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--microbatches", type=int, default=4)
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--oversubscribe", action="store_true")
    args = parser.parse_args()
    unknown = [name for name in args.models if name not in MODELS]
    if unknown:
        parser.error(f"unknown model {unknown[0]!r}; known: {', '.join(MODELS)}")
    main(args.models or list(MODELS), args.frames, args.microbatches, args.time_limit,
         args.oversubscribe)
