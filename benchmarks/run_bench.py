"""Runtime benchmark: plans run as real pipelines, each costing beside what it predicted.

Each model is compiled for 1 and 2 chips three ways and every plan is run with
``chipcut.run`` (one process per stage, 1 thread each, gloo), in ``--repeats`` runs. A run
calibrates the CPU, profiles the model, compiles the eight plans and executes them, one after
another, so that each ratio compares a prediction with a measurement taken minutes apart on
this shared machine (whose speed drifts by 10-20% over a longer span); the table gives the
median over the runs of each ratio.

- ``roofline``: the shipped ``cpu`` spec (nominal figures, not measured);
- ``calibrated``: the spec ``chipcut calibrate --threads 1`` fits on this machine;
- ``profile``: ``chipcut profile`` unit times (1 thread) on the calibrated spec's bytes and links;
- ``refined``: that profile scaled per stage to the profile plan's measured run of the same
  chip count in the same run (``chipcut.refine``, ``compile --refine``), compiled again.

Reported per plan (medians over the runs): predicted / measured time per stage, the
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
COSTINGS = ("roofline", "calibrated", "profile", "refined")


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def measure_plan(m: chipcut.Measured) -> dict:
    """One run of a plan: per-stage measured seconds, throughput, bottleneck time."""
    return {"busy_s": {s.chip: s.busy_s for s in m.stages}, "throughput": m.throughput_per_s,
            "predicted_throughput": m.predicted_throughput_per_s,
            "bottleneck_s": 1 / m.throughput_per_s, "max_abs_diff": m.max_abs_diff}


def plan_for(costing: str, captured: chipcut.Captured, chips: int, spec: str,
             profile: chipcut.Profile | None, time_limit_s: float) -> chipcut.Plan:
    backend = "cpu" if costing == "roofline" else spec
    options = chipcut.CompileOptions(time_limit_s=time_limit_s,
                                     profile=profile if costing in ("profile", "refined") else None)
    return chipcut.compile(captured, chips=chips, backend=backend, options=options)


def one_run(plan: chipcut.Plan, got: dict) -> dict:
    """What one run of a plan says: each stage's predicted / measured time, the throughput
    ratio, which stage was predicted and measured slowest."""
    stages = [s for s in plan.stages if s.nodes]
    times = sorted((s.time_s for s in stages), reverse=True)
    return {"ratios": {s.chip: s.time_s / got["busy_s"][s.chip] for s in stages
                       if s.chip in got["busy_s"]},
            "distinct": len(times) < 2 or times[0] > 1.1 * times[1],
            "pred_slowest": max(stages, key=lambda s: s.time_s).chip,
            "meas_slowest": max(got["busy_s"], key=got["busy_s"].get),
            "through": got["predicted_throughput"] / got["throughput"],
            "predicted_throughput": got["predicted_throughput"],
            "throughput": got["throughput"], "bottleneck_s": got["bottleneck_s"],
            "max_abs_diff": got["max_abs_diff"]}


def row(label: str, costing: str, chips: int, runs: list[dict]) -> tuple[list, dict]:
    """The table row and the target check of one plan over its runs (medians)."""
    stage_chips = list(runs[0]["ratios"])
    ratios = {c: _median([r["ratios"][c] for r in runs if c in r["ratios"]]) for c in stage_chips}
    distinct = [r for r in runs if r["distinct"]]
    same = sum(r["pred_slowest"] == r["meas_slowest"] for r in distinct)
    through = _median([r["through"] for r in runs])
    check = {"ratios": list(ratios.values()), "throughput": through,
             "slowest_same": same, "distinct": len(distinct),
             "bottleneck_s": _median([r["bottleneck_s"] for r in runs])}
    slowest = (f"{same} of {len(distinct)} runs" if distinct else "(within 10%)")
    cells = [label, costing, chips, ", ".join(f"{c}: {r:.2f}" for c, r in ratios.items()),
             f"{_median([r['predicted_throughput'] for r in runs]):.4g}",
             f"{_median([r['throughput'] for r in runs]):.4g}", f"{through:.2f}", slowest,
             f"{max(r['max_abs_diff'] for r in runs):.2g}"]
    return cells, check


def verdicts(checks: dict) -> list[str]:
    """The issue's targets against what was measured."""
    def within(costing: str, lo: float, hi: float, chips: tuple[int, ...]) -> str:
        ratios = [r for (_, c, n), ch in checks.items() if c == costing and n in chips
                  for r in ch["ratios"]]
        inside = sum(lo <= r <= hi for r in ratios)
        return f"{inside} of {len(ratios)} stages in [{lo:.2f}, {hi:.2f}]"
    lines = [f"- calibrated analytic, 1 and 2 stages: {within('calibrated', 0.90, 1.10, (1, 2))}"]
    for costing, label in (("profile", "profile-guided"), ("refined", "profile-guided, refined")):
        lines.append(f"- {label}, 2 stages: {within(costing, 0.95, 1.05, (2,))}")
        two = {k: ch for k, ch in checks.items() if k[1] == costing and k[2] == 2}
        ok = sum(abs(ch["throughput"] - 1) <= 0.15 for ch in two.values())
        lines.append(f"- {label}, 2 stages: executed throughput within 15% of predicted in "
                     f"{ok} of {len(two)} models")
    judged = [ch for k, ch in checks.items() if k[2] == 2]
    lines.append(f"- predicted slowest stage is the measured slowest (where predictions differ by "
                 f"> 10%): {sum(ch['slowest_same'] for ch in judged)} of "
                 f"{sum(ch['distinct'] for ch in judged)} runs")
    roof = checks.get(("MobileNetV2", "roofline", 2))
    for costing, label in (("profile", "profile-guided"), ("refined", "refined profile-guided")):
        prof = checks.get(("MobileNetV2", costing, 2))
        if not (roof and prof):
            continue
        pairs = prof["pairs"]
        wins = sum(p < r for p, r in pairs)
        better = _median([p / r for p, r in pairs]) < 1
        lines.append(f"- MobileNetV2, 2 stages: measured bottleneck {prof['bottleneck_s'] * 1e3:.2f} ms "
                     f"({label} plan) vs {roof['bottleneck_s'] * 1e3:.2f} ms (roofline plan), "
                     f"medians; the {label} plan's was lower in {wins} of {len(pairs)} runs "
                     f"(each pair measured in the same run), median ratio "
                     f"{_median([p / r for p, r in pairs]):.3f}: "
                     + ("better" if better else "NOT better"))
    return lines


def main(names: list[str], frames: int, microbatches: int, repeats: int,
         time_limit_s: float) -> None:
    rows, checks = [], {}
    with tempfile.TemporaryDirectory() as folder:
        spec = str(Path(folder) / "cpu-calibrated.toml")
        for label in names:
            model, inputs = MODELS[label]()
            captured = chipcut.capture(model, inputs, name=label)
            runs: dict[tuple[str, int], list[dict]] = {}
            for k in range(repeats):
                fitted = calibrate(spec, threads=1)
                profile = chipcut.profile(captured, backend=spec, repeats=10)
                ran: dict[int, tuple[chipcut.Plan, chipcut.Measured]] = {}
                for costing in COSTINGS:
                    for chips in CHIPS:
                        guide = (chipcut.refine(profile, *ran[chips]) if costing == "refined"
                                 else profile)
                        plan = plan_for(costing, captured, chips, spec, guide, time_limit_s)
                        m = chipcut.run(plan, captured, frames=frames, microbatches=microbatches,
                                        threads=1)
                        if costing == "profile":
                            ran[chips] = (plan, m)
                        got = one_run(plan, measure_plan(m))
                        runs.setdefault((costing, chips), []).append(got)
                        print(f"{label} run {k + 1}: {costing} x{chips}: stage ratios "
                              + ", ".join(f"{r:.2f}" for r in got["ratios"].values()), flush=True)
            for (costing, chips), got in runs.items():
                cells, checks[label, costing, chips] = row(label, costing, chips, got)
                rows.append(cells)
            for costing in ("profile", "refined"):
                if (costing, 2) in runs and ("roofline", 2) in runs:
                    checks[label, costing, 2]["pairs"] = [
                        (p["bottleneck_s"], r["bottleneck_s"])
                        for p, r in zip(runs[costing, 2], runs["roofline", 2], strict=True)]
    headers = ["model", "costing", "chips", "predicted / measured per stage", "pred. frames/s",
               "meas. frames/s", "pred. / meas.", "pred. slowest measured slowest",
               "max abs diff"]
    body = "\n".join([
        "## Runtime: plans run as real pipelines (`benchmarks/run_bench.py`)", "",
        f"{machine()}. One process per stage with 1 thread, gloo, `gpipe`, {frames} frames in "
        f"steps of {microbatches} after one warmup step. {repeats} runs per model, each "
        "calibrating the CPU, profiling the model, compiling and executing the eight plans one "
        "after another (ratios within one run); medians over the runs shown. A stage's measured "
        "time is the median time inside its forward per frame; a stage "
        "ratio (predicted / measured time) above 1 means the plan predicted the stage slower "
        "than it ran, a frames/s ratio above 1 that it promised more than was measured. "
        "Costings: `roofline` (the shipped `cpu` "
        f"spec), `calibrated` (fitted afresh in each run; the last: {fitted.description}), "
        "`profile` (unit times from `chipcut "
        "profile` at 1 thread on the calibrated spec), `refined` (that profile scaled per stage "
        "to the measured run of the profile plan of the same chip count in the same run, "
        "`chipcut.refine` / `compile --refine`, and compiled again).", "",
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
