"""Presets benchmark: every published row (benchmarks/published.py) that can be built, predicted
with its chip's preset on one chip, as predicted / published; and the fit that sets the
presets' efficiencies from the rows marked ``fit``.

Ratio convention: predicted speed over published speed, so > 1 is optimistic. Frames/s and
TOPS rows: predicted / published; ms rows (the time of one batch): published / predicted.

Roles: ``fit`` rows set a preset value (``FIT_PLAN``); ``held-out`` rows only check; ``context``
rows are not the quantity the model predicts (a PyTorch-eager figure, a multi-GPU cross-check
of a fit row, a response time under load) and stay out of the held-out statistics.

The fit: for each chip, each parameter in ``FIT_PLAN`` in turn is bisected (log scale, within
its physical range) until the geometric mean ratio of its fit rows is 1, the others held; three
rounds of this settle the interactions. A value the rows cannot move (the row is bound by
another term) is left as the preset has it.

    .venv/bin/python -m benchmarks.presets_bench                       # ratios, RESULTS.md
    .venv/bin/python -m benchmarks.presets_bench --before DIR          # also DIR/*.toml's ratios
    .venv/bin/python -m benchmarks.presets_bench --fit                 # print fitted values
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from benchmarks.published import PUBLISHED, Published
from benchmarks.published_models import FACTORIES, build
from benchmarks.results import machine, table, write_section
from chipcut.backends.loader import from_spec
from chipcut.backends.registry import get_backend
from chipcut.backends.schema import load_spec
from chipcut.backends.spec import ChipSpec
from chipcut.compiler.api import CompileOptions, Lowered, lower, schedule, solve
from chipcut.core.errors import DoesNotFit

BAND = (0.75, 1.33)


def key(row: Published) -> str:
    """A short id of a row: chip/model/precision/b<batch>/<input>/<unit>."""
    inp = row.input.replace("1x3x", "").replace(" ", "")
    return f"{row.chip}/{row.model}/{row.precision}/b{row.batch}/{inp}/{row.unit}"


# chip -> [(parameter, [fit row keys])]. A parameter is an op class (its [compute] efficiency),
# "op_overhead_s" or "memory_efficiency". The rows, per the benchmark data's notes: each fixes
# the term it is bound by.
FIT_PLAN: dict[str, list[tuple[str, list[str]]]] = {
    # Convolutions (ResNet-50) and GEMMs (BERT) each fix their own class; BERT's attention and
    # SSD-MobileNet's depthwise units are memory-bound in the model, so their class
    # efficiencies are not identifiable: SSD-MobileNet (64% of its time memory-bound) fixes
    # memory_efficiency.
    "t4": [("dense", ["t4/resnet50/int8/b256/224x224/frames/s"]),
           ("gemm", ["t4/bert-base/int8/b128/seq128/ms"]),
           ("memory_efficiency", ["t4/ssd-mobilenet/int8/b128/300x300/frames/s"]),
           ("op_overhead_s", ["t4/resnet50/int8/b1/224x224/ms", "t4/ssd-mobilenet/int8/b1/300x300/ms"])],
    # ResNet-50 at batch 2048 is memory-bound in the model (dense at 1.0 still leaves it short).
    "h100-sxm": [("memory_efficiency", ["h100-sxm/resnet50/int8/b2048/224x224/frames/s"])],
    "hailo-8": [("dense", ["hailo-8/resnet50/int8/b1/224x224/frames/s"]),
                ("depthwise", ["hailo-8/mobilenet_v2/int8/b1/224x224/frames/s"])],
    "coral-edge-tpu": [("dense", ["coral-edge-tpu/inception_v1/int8/b1/224x224/ms"]),
                       ("depthwise", ["coral-edge-tpu/mobilenet_v2/int8/b1/224x224/ms"]),
                       ("memory_efficiency", ["coral-edge-tpu/vgg16/int8/b1/224x224/ms"])],
    "tpu-v1": [("dense", ["tpu-v1/tpu-cnn0/int8/b8/CNN0:16layers,8Mweights/TOPS"]),
               ("memory_efficiency", ["tpu-v1/tpu-mlp0/int8/b200/MLP0:5layers,20Mweights/TOPS"])],
}
RANGES = {"op_overhead_s": (1e-7, 1e-3), "memory_efficiency": (0.05, 1.0)}  # else (0.01, 1.0)


def context_reason(row: Published) -> str | None:
    """Why a row is not compared with the cost model's prediction (None: it is)."""
    if "x8" in row.source and "divided by 8" in row.note:
        return "8-GPU cross-check of the 1-GPU row"
    if "PyTorch" in row.note and "not TensorRT" in row.note:
        return "PyTorch eager, not tuned kernels"
    if row.chip == "tpu-v1" and row.unit == "ms":
        return "99th-pct response time under load"
    return None


def role(row: Published) -> str:
    if context_reason(row):
        return "context"
    return "fit" if any(key(row) in rows for _, rows in FIT_PLAN.get(row.chip, [])) else "held-out"


def passes(precision: str, others: str = "") -> str:
    """The row's pipeline: every MAC layer at ``precision``; the other layers at ``others``
    when the source gives them a precision of their own."""
    rest = f",others={others}" if others else ""
    return f"fold-bn,quantize{{dtype={precision},first_last={precision},measure=false{rest}}},fuse"


@dataclass
class Case:
    """One buildable row and its lowering (for its chip's dtypes), reused across specs."""

    row: Published
    lowered: Lowered
    options: CompileOptions

    def predict(self, backend: object) -> float:
        """The row's figure as the backend predicts it, in the row's unit."""
        plan = schedule(self.lowered, solve(self.lowered, 1, backend, self.options), self.options)
        m = plan.metrics
        if self.row.unit == "frames/s":
            return self.row.batch / m.bottleneck_s
        if self.row.unit == "TOPS":
            return 2 * plan.model.macs / m.bottleneck_s / 1e12
        return m.latency_s * 1e3

    def ratio(self, backend: object) -> float:
        """Predicted speed / published speed (> 1: optimistic)."""
        got = self.predict(backend)
        return self.row.value / got if self.row.unit == "ms" else got / self.row.value


def make_case(row: Published) -> Case:
    """The row's model lowered for its chip at its precision."""
    options = CompileOptions(passes=passes(row.precision, row.others))
    model, inputs = build(row.model, row.batch, row.modeled or row.input)
    return Case(row, lower(model, inputs, 1, row.chip, options), options)


def cases(chips: set[str] | None = None) -> tuple[list[Case], list[tuple[Published, str]]]:
    """The rows that build (lowered once each) and the skipped ones with why."""
    built, skipped = [], []
    for row in PUBLISHED:
        if chips and row.chip not in chips:
            continue
        if row.model not in FACTORIES:
            skipped.append((row, "no model definition"))
            continue
        case = make_case(row)
        try:
            case.predict(get_backend(row.chip))
        except DoesNotFit:
            skipped.append((row, "does not fit one chip's memory"))
            continue
        built.append(case)
        print(f"built {key(row)}", flush=True)
    return built, skipped


# --- the fit ---------------------------------------------------------------------------------

def get_param(spec: ChipSpec, name: str) -> float:
    if name in ("op_overhead_s", "memory_efficiency"):
        return getattr(spec, name)
    return spec.efficiency(name)


def set_param(spec: ChipSpec, name: str, value: float) -> ChipSpec:
    if name in ("op_overhead_s", "memory_efficiency"):
        return replace(spec, **{name: value})
    return replace(spec, class_efficiency={**spec.class_efficiency, name: value})


def geomean_ratio(spec: ChipSpec, fit: list[Case]) -> float:
    backend = from_spec(spec)
    return math.exp(statistics.fmean(math.log(c.ratio(backend)) for c in fit))


def solve_param(spec: ChipSpec, name: str, fit: list[Case], steps: int = 24) -> ChipSpec:
    """``spec`` with ``name`` bisected so that the fit rows' geometric mean ratio is 1.

    Larger efficiencies and smaller overheads are faster: the ratio is monotone in the value.
    A value whose range cannot bring the ratio to 1 (the rows are bound by another term, or
    too slow even at the fastest value) is left unchanged."""
    lo, hi = RANGES.get(name, (0.01, 1.0))
    faster_up = name != "op_overhead_s"
    r_lo, r_hi = (geomean_ratio(set_param(spec, name, v), fit) for v in (lo, hi))
    if not min(r_lo, r_hi) <= 1 <= max(r_lo, r_hi):
        print(f"{spec.name}: {name} cannot bring the ratio to 1 within [{lo:g}, {hi:g}] "
              f"({r_lo:.3f} .. {r_hi:.3f}); left at {get_param(spec, name):.4g}", flush=True)
        return spec
    for _ in range(steps):
        mid = math.sqrt(lo * hi)
        r = geomean_ratio(set_param(spec, name, mid), fit)
        if (r > 1) == faster_up:
            hi = mid
        else:
            lo = mid
    return set_param(spec, name, math.sqrt(lo * hi))


def fit_chip(spec: ChipSpec, by_key: dict[str, Case], rounds: int = 3) -> ChipSpec:
    plan = FIT_PLAN[spec.name]
    for _ in range(rounds):
        for name, keys in plan:
            spec = solve_param(spec, name, [by_key[k] for k in keys])
    return spec


# --- report ----------------------------------------------------------------------------------

def short_source(row: Published) -> str:
    """The source's short name: MLPerf round, vendor page or paper."""
    for needle, short in (("MLPerf Inference v1.1", "MLPerf v1.1"), ("MLPerf Inference v3.0", "MLPerf v3.0"),
                          ("TensorRT demo/BERT", "TensorRT demoBERT"), ("DeepLearningExamples", "NVIDIA DLE"),
                          ("hailo_model_zoo", "Hailo model zoo"), ("coral.ai/docs", "coral.ai benchmarks"),
                          ("coral.ai/models", "coral.ai models"), ("Jouppi", "Jouppi ISCA 2017")):
        if needle in row.source:
            return short
    return row.source[:30]


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def summary(built: list[Case], ratios: dict[str, float]) -> list[list[object]]:
    rows = []
    for chip in sorted({c.row.chip for c in built}):
        held = [ratios[key(c.row)] for c in built if c.row.chip == chip and role(c.row) == "held-out"]
        inside = sum(BAND[0] <= r <= BAND[1] for r in held)
        rows.append([chip, len(held), fmt(statistics.median(held)) if held else "-",
                     f"{inside}/{len(held)}"])
    return rows


def report(built: list[Case], skipped: list[tuple[Published, str]], after: dict[str, float],
           before: dict[str, float]) -> str:
    headers = ["chip", "model", "prec", "batch", "input", "published", "role", "before", "after",
               "source"]
    rows = []
    for c in built:
        r = c.row
        k = key(r)
        note = f" ({context_reason(r)})" if role(r) == "context" else ""
        shape = r.input + (f" (modeled {r.modeled.removeprefix('seq ')})" if r.modeled else "")
        prec = r.precision + (f" (rest {r.others})" if r.others else "")
        rows.append([r.chip, r.model, prec, r.batch, shape, f"{r.value:g} {r.unit}",
                     role(r) + note, fmt(before.get(k)), fmt(after[k]), short_source(r)])
    skip = "; ".join(f"{key(r)} ({why})" for r, why in skipped)
    return ("## Presets against published figures (`benchmarks/presets_bench.py`)\n\n"
            "Ratio = predicted speed / published speed (> 1: the preset is optimistic): "
            "frames/s and TOPS rows predicted / published, ms rows published / predicted. "
            "One chip, `fold-bn,quantize{dtype=<row's precision>,first_last=<same>},fuse`, "
            "with the layers other than MAC layers at their own precision where the source "
            "gives one (`others=fp16` for a row marked `rest fp16`), "
            "models built from configs on the meta device (uint8 image inputs); an MLPerf BERT "
            "Offline row is modeled at the mean unpadded length of SQuAD v1.1, 177 of 384 "
            "tokens, as NVIDIA's variable-length kernels run it (see `benchmarks/published.py`). "
            "`before`: the presets as they were before the fit (`--before DIR`); `after`: as "
            f"shipped. Fit rows set the values named in the preset files; {machine()}.\n\n"
            + table(headers, rows) + "\n\nHeld-out rows per preset (after):\n\n"
            + table(["chip", "held-out rows", "median ratio", f"in [{BAND[0]}, {BAND[1]}]"],
                    summary(built, after))
            + f"\n\nSkipped: {skip}\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, help="a folder of preset files to compare with")
    parser.add_argument("--fit", action="store_true", help="run the fit and print its values")
    parser.add_argument("--chips", nargs="*", help="only these presets")
    args = parser.parse_args(argv)
    built, skipped = cases(set(args.chips) if args.chips else None)
    if args.fit:
        by_key = {key(c.row): c for c in built if role(c.row) == "fit"}
        for chip in sorted({c.row.chip for c in built} & set(FIT_PLAN)):
            spec = fit_chip(get_backend(chip).spec, by_key)
            fitted = {name: get_param(spec, name) for name, _ in FIT_PLAN[chip]}
            backend = from_spec(spec)
            print(chip, {n: f"{v:.4g}" for n, v in fitted.items()},
                  {k: f"{by_key[k].ratio(backend):.3f}" for _, ks in FIT_PLAN[chip] for k in ks},
                  flush=True)
        return
    after = {key(c.row): c.ratio(get_backend(c.row.chip)) for c in built}
    before: dict[str, float] = {}
    if args.before:
        old: dict[str, Callable] = {}
        for c in built:
            if c.row.chip not in old:
                old[c.row.chip] = from_spec(load_spec(args.before / f"{c.row.chip}.toml"))
            before[key(c.row)] = c.ratio(old[c.row.chip])
    for c in built:
        k = key(c.row)
        print(f"{k:60s} {role(c.row):9s} before {fmt(before.get(k))} after {fmt(after[k])}")
    body = report(built, skipped, after, before)
    print(table(["chip", "held-out rows", "median ratio", "in band"], summary(built, after)))
    if not args.chips:
        write_section("presets", body)


if __name__ == "__main__":
    main()
