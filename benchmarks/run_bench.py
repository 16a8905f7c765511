"""Runtime benchmark: plans run as real pipelines, each costing beside what it predicted.

Each model is compiled for 1 and 2 chips three ways and every plan is run with
``chipcut.run`` (one process per stage, 1 thread each, gloo), ``--repeats`` times:

- ``roofline``: the shipped ``cpu`` spec (nominal figures, not measured);
- ``calibrated``: the spec ``chipcut calibrate --threads 1`` fits on this machine;
- ``profile``: ``chipcut profile`` unit times (1 thread) on the calibrated spec's bytes and links.

Reported per plan (medians over the repeats): predicted / measured time per stage, the
throughput predicted and measured, whether the stage predicted slowest is the one measured
slowest (when their predicted times differ by more than 10%), and for MobileNetV2 whether the
profile-guided plan's measured bottleneck beats the roofline plan's.

    python -m benchmarks.run_bench                       # ResNet-50, BERT-base, MobileNetV2
    python -m benchmarks.run_bench MobileNetV2 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import chipcut
from benchmarks.results import machine, table, write_section
from chipcut.backends.calibrate import calibrate
from chipcut.examples.models import bert_base, mobilenet_v2, resnet50

MODELS = {"ResNet-50": resnet50, "BERT-base": bert_base, "MobileNetV2": mobilenet_v2}
CHIPS = (1, 2)
COSTINGS = ("roofline", "calibrated", "profile")


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def measure_plan(plan: chipcut.Plan, captured: chipcut.Captured, frames: int, microbatches: int,
                 repeats: int) -> dict:
    """Medians over ``repeats`` runs: per-stage measured seconds, throughput, bottleneck time."""
    runs = [chipcut.run(plan, captured, frames=frames, microbatches=microbatches, threads=1)
            for _ in range(repeats)]
    chips = [s.chip for s in runs[0].stages]
    busy = {c: _median([next(s.busy_s for s in m.stages if s.chip == c) for m in runs])
            for c in chips}
    return {"busy_s": busy, "throughput": _median([m.throughput_per_s for m in runs]),
            "predicted_throughput": runs[0].predicted_throughput_per_s,
            "bottleneck_s": _median([1 / m.throughput_per_s for m in runs]),
            "max_abs_diff": max(m.max_abs_diff for m in runs)}


def plan_for(costing: str, captured: chipcut.Captured, chips: int, spec: str,
             profile: chipcut.Profile | None, time_limit_s: float) -> chipcut.Plan:
    backend = "cpu" if costing == "roofline" else spec
    options = chipcut.CompileOptions(time_limit_s=time_limit_s,
                                     profile=profile if costing == "profile" else None)
    return chipcut.compile(captured, chips=chips, backend=backend, options=options)


def row(label: str, costing: str, chips: int, plan: chipcut.Plan, got: dict) -> tuple[list, dict]:
    stages = [s for s in plan.stages if s.nodes]
    ratios = {s.chip: s.time_s / got["busy_s"][s.chip] for s in stages if s.chip in got["busy_s"]}
    times = sorted((s.time_s for s in stages), reverse=True)
    distinct = len(times) < 2 or times[0] > 1.1 * times[1]
    pred_slowest = max(stages, key=lambda s: s.time_s).chip
    meas_slowest = max(got["busy_s"], key=got["busy_s"].get)
    through = got["predicted_throughput"] / got["throughput"]
    check = {"ratios": list(ratios.values()), "throughput": through,
             "slowest_same": pred_slowest == meas_slowest, "distinct": distinct,
             "bottleneck_s": got["bottleneck_s"]}
    cells = [label, costing, chips, ", ".join(f"{c}: {r:.2f}" for c, r in ratios.items()),
             f"{got['predicted_throughput']:.4g}", f"{got['throughput']:.4g}", f"{through:.2f}",
             f"chip {pred_slowest}", f"chip {meas_slowest}",
             ("yes" if check["slowest_same"] else "no") if distinct else "(within 10%)",
             f"{got['max_abs_diff']:.2g}"]
    return cells, check


def verdicts(checks: dict) -> list[str]:
    """The issue's targets against what was measured."""
    def within(costing: str, lo: float, hi: float, chips: tuple[int, ...]) -> str:
        ratios = [r for (_, c, n), ch in checks.items() if c == costing and n in chips
                  for r in ch["ratios"]]
        inside = sum(lo <= r <= hi for r in ratios)
        return f"{inside} of {len(ratios)} stages in [{lo:.2f}, {hi:.2f}]"
    lines = [f"- calibrated analytic, 1 and 2 stages: {within('calibrated', 0.90, 1.10, (1, 2))}",
             f"- profile-guided, 2 stages: {within('profile', 0.95, 1.05, (2,))}"]
    two = {k: ch for k, ch in checks.items() if k[1] == "profile" and k[2] == 2}
    ok = sum(abs(ch["throughput"] - 1) <= 0.15 for ch in two.values())
    lines.append(f"- profile-guided, 2 stages: executed throughput within 15% of predicted in "
                 f"{ok} of {len(two)} models")
    judged = [ch for k, ch in checks.items() if k[2] == 2 and ch["distinct"]]
    lines.append(f"- predicted slowest stage is the measured slowest (where predictions differ by "
                 f"> 10%): {sum(ch['slowest_same'] for ch in judged)} of {len(judged)} plans")
    roof, prof = checks.get(("MobileNetV2", "roofline", 2)), checks.get(("MobileNetV2", "profile", 2))
    if roof and prof:
        better = prof["bottleneck_s"] < roof["bottleneck_s"]
        lines.append(f"- MobileNetV2, 2 stages: measured bottleneck {prof['bottleneck_s'] * 1e3:.2f} ms "
                     f"(profile-guided plan) vs {roof['bottleneck_s'] * 1e3:.2f} ms (roofline plan): "
                     + ("better" if better else "NOT better"))
    return lines


def main(names: list[str], frames: int, microbatches: int, repeats: int,
         time_limit_s: float) -> None:
    rows, checks = [], {}
    with tempfile.TemporaryDirectory() as folder:
        spec = str(Path(folder) / "cpu-calibrated.toml")
        fitted = calibrate(spec, threads=1)
        for label in names:
            model, inputs = MODELS[label]()
            captured = chipcut.capture(model, inputs, name=label)
            profile = chipcut.profile(captured, backend=spec, repeats=10)
            for costing in COSTINGS:
                for chips in CHIPS:
                    plan = plan_for(costing, captured, chips, spec, profile, time_limit_s)
                    got = measure_plan(plan, captured, frames, microbatches, repeats)
                    cells, checks[label, costing, chips] = row(label, costing, chips, plan, got)
                    rows.append(cells)
                    print(" | ".join(str(c) for c in cells), flush=True)
    headers = ["model", "costing", "chips", "predicted / measured per stage", "pred. frames/s",
               "meas. frames/s", "pred. / meas.", "pred. slowest", "meas. slowest", "same",
               "max abs diff"]
    body = "\n".join([
        "## Runtime: plans run as real pipelines (`benchmarks/run_bench.py`)", "",
        f"{machine()}. One process per stage with 1 thread, gloo, `gpipe`, {frames} frames in "
        f"steps of {microbatches} after one warmup step; every plan run {repeats} times, medians "
        "shown. A stage's measured time is the median time inside its forward per frame; a stage "
        "ratio (predicted / measured time) above 1 means the plan predicted the stage slower "
        "than it ran, a frames/s ratio above 1 that it promised more than was measured. "
        "Costings: `roofline` (the shipped `cpu` "
        f"spec), `calibrated` ({fitted.description}), `profile` (unit times from `chipcut "
        "profile` at 1 thread on the calibrated spec).", "",
        table(headers, rows), "", "Against the targets:", "", *verdicts(checks)])
    write_section("run", body)
    print(body)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", metavar="MODEL",
                        help=f"any of {', '.join(MODELS)} (default: all)")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--microbatches", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--time-limit", type=float, default=10.0)
    args = parser.parse_args()
    unknown = [name for name in args.models if name not in MODELS]
    if unknown:
        parser.error(f"unknown model {unknown[0]!r}; known: {', '.join(MODELS)}")
    main(args.models or list(MODELS), args.frames, args.microbatches, args.repeats,
         args.time_limit)
