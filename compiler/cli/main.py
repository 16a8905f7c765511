"""The ``chipcut`` command line: compile, show, run, profile, backends."""

from __future__ import annotations

import argparse
import sys
import tomllib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

from rich.console import Console

from chipcut.backends.schema import SpecWarning
from chipcut.compiler.cli import llm
from chipcut.compiler.cli.outputs import check_path, check_paths, write_all
from chipcut.compiler.cli.profile import add_parser as add_profile_parser
from chipcut.compiler.cli.profile import command as profile_command
from chipcut.compiler.cli.run import add_parser as add_run_parser
from chipcut.compiler.cli.run import command as run_command
from chipcut.compiler.cli.run import measured_text
from chipcut.compiler.views.report import render
from chipcut.core.dtypes import DType
from chipcut.core.errors import ChipcutError
from chipcut.core.vocab import Objective, Topology


def _chips(text: str) -> int | list[str]:
    if text.isdigit() or (text.startswith("-") and text[1:].isdigit()):
        return int(text)
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise ChipcutError(f"--chips {text!r}: give a count (4) or backend names (a,b,c)")
    return names


def _outputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trace", metavar="PATH", help="write a Chrome trace JSON (Perfetto) here")
    p.add_argument("--plot", metavar="PATH", help="write the cut picture and Gantt chart PNG here")


def _passes(p: argparse.ArgumentParser) -> None:
    from chipcut.passes.manager import DEFAULT_PIPELINE

    p.add_argument("--passes", default="default", metavar="PIPELINE",
                   help=f"pass pipeline, e.g. 'fold-bn,quantize{{dtype=int8}},fuse'; 'default' is "
                        f"{DEFAULT_PIPELINE!r}, 'none' runs no passes")


def _paths(args: argparse.Namespace) -> dict[str, Path]:
    """The output paths of a command, checked before any work."""
    return check_paths([("--out", getattr(args, "out", None)), ("--trace", getattr(args, "trace", None)),
                        ("--plot", getattr(args, "plot", None))])


def _write_outputs(plan: object, paths: dict[str, Path]) -> str:
    """Write the plan (or serve plan), trace and plot that were asked for: all of them, or none."""
    from chipcut.compiler.plan.serve import ServePlan
    from chipcut.compiler.views.plots import plot_plan
    from chipcut.compiler.views.serve import plot_serve, write_serve_trace
    from chipcut.compiler.views.trace import write_trace

    trace, picture = ((write_serve_trace, plot_serve) if isinstance(plan, ServePlan)
                      else (write_trace, plot_plan))
    writers = {"--out": plan.to_json, "--trace": lambda p: trace(plan, p),
               "--plot": lambda p: picture(plan, p)}
    what = {"--out": "plan", "--trace": "trace", "--plot": "plot"}
    write_all([(flag, path, writers[flag]) for flag, path in paths.items()])
    return "".join(f"{what[flag]} written to {path}\n" for flag, path in paths.items())


def _network(p: argparse.ArgumentParser) -> None:
    p.add_argument("--topology", default="chain", choices=[t.value for t in Topology],
                   help="how the chips are wired (default chain)")
    p.add_argument("--switch-bw", metavar="RATE",
                   help='shared switch bandwidth, e.g. "64 GB/s" (default: one chip link)')
    p.add_argument("--host-bw", metavar="RATE",
                   help='host link bandwidth, e.g. "16 GB/s" (default: the chips\' own link)')
    p.add_argument("--objective", default="throughput", choices=[o.value for o in Objective],
                   help="least bottleneck (default) or least batch-1 latency")
    p.add_argument("--replicate", action="store_true",
                   help="let a stage run on several identical chips taking alternate frames")


def _options(args: argparse.Namespace):
    """The CompileOptions of a compile or sweep command line."""
    from chipcut.backends import quantity as q
    from chipcut.compiler.api import CompileOptions
    from chipcut.compiler.cli.flags import positive

    def rate(flag: str, text: str | None) -> float | None:
        return None if text is None else positive(
            flag, text, q.BYTES_PER_S, 'must be a finite rate > 0 bytes/s, e.g. "32 GB/s"')
    batch = getattr(args, "batch", None)
    profile = getattr(args, "profile", None)
    if getattr(args, "refine", None):
        from chipcut.compiler.plan.loading import refine

        if profile is None:
            raise ChipcutError("--refine PLAN MEASURED rescales the unit times of a --profile; "
                               "give --profile profile.json too")
        profile = refine(profile, *args.refine)
    return CompileOptions(time_limit_s=args.time_limit, batch=8 if batch is None else batch,
                          passes=args.passes, topology=args.topology, objective=args.objective,
                          replicate=args.replicate,
                          switch_bytes_per_s=rate("--switch-bw", args.switch_bw),
                          host_bytes_per_s=rate("--host-bw", args.host_bw),
                          profile=profile, threads=getattr(args, "threads", 1))


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what is wrong, where to look) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"chipcut: error: {message}; see '{self.prog} --help'\n")


def _parser() -> argparse.ArgumentParser:
    p = _OneLineParser(prog="chipcut", description="Partition a PyTorch model across "
                                "inference chips and plan the per-chip schedule.")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compile", help="capture a model and cut it across chips")
    c.add_argument("model", help="package.module:factory, path/file.py:factory, or a .pt2 file")
    c.add_argument("--input", action="append", default=[], metavar="SHAPE",
                   help="example input shape, e.g. 1x3x224x224 or 1x128:int64 (one per input)")
    c.add_argument("--chips", default="4", help="chip count, or comma-separated backend names")
    c.add_argument("--backend", default="generic", help="backend name or spec .toml file")
    c.add_argument("--time-limit", type=float, default=10.0, metavar="S",
                   help="solver time limit in seconds (default 10)")
    c.add_argument("--out", help="write the plan JSON here")
    _passes(c)
    _network(c)
    _outputs(c)
    c.add_argument("--batch", type=int, help="batch for the batched throughput figure (default "
                   "8); with --phase, the sequences per step")
    llm.add_arguments(c)
    c.add_argument("--profile", metavar="PATH", help="cost units by the measured times of a "
                   "profile (chipcut profile --out) instead of the backend's model")
    c.add_argument("--refine", nargs=2, metavar=("PLAN", "MEASURED"),
                   help="with --profile: scale each stage's unit times to what a run of PLAN "
                        "(chipcut run --out MEASURED) measured, then cut")
    c.add_argument("--threads", type=int, default=1, metavar="T",
                   help="torch threads each stage runs with; a --profile must be measured at "
                        "this count (default 1)")
    w = sub.add_parser("sweep", help="compile for a range of chip counts: throughput, speedup, limit")
    w.add_argument("model", help="package.module:factory, path/file.py:factory, or a .pt2 file")
    w.add_argument("--input", action="append", default=[], metavar="SHAPE")
    w.add_argument("--chips", default="1..8", help="range or list of chip counts (default 1..8)")
    w.add_argument("--backend", default="generic", help="backend name or spec .toml file")
    w.add_argument("--time-limit", type=float, default=10.0, metavar="S", help="per solve")
    w.add_argument("--plot", metavar="PATH", help="write throughput/speedup/efficiency PNG here")
    w.add_argument("--phase", choices=["decode"], help="sweep a causal LM's decode step over "
                   "--batch x --context on one chip count: what fits, TPOT, tokens/s")
    w.add_argument("--batch", dest="batches", metavar="LIST", help="decode batches, e.g. 1,8,32,64 (--phase decode)")
    w.add_argument("--context", dest="contexts", metavar="LIST",
                   help="KV-cache contexts, e.g. 2048,4096,8192 (--phase decode)")
    w.add_argument("--kv-dtype", choices=[str(d) for d in DType], metavar="DTYPE",
                   help="the KV cache's stored dtype (--phase decode)")
    _passes(w)
    _network(w)
    s = sub.add_parser("show", help="print a saved plan")
    s.add_argument("plan", help="plan.json written by chipcut compile --out")
    s.add_argument("--measured", metavar="PATH",
                   help="measured.json written by chipcut run --out: measured beside predicted")
    _outputs(s)
    b = sub.add_parser("backends", help="list the registered backends, and spec files: the "
                       "ones named, and ./cpu-calibrated.toml when it exists")
    b.add_argument("specs", nargs="*", metavar="SPEC", help="spec files (.toml) to describe too")
    from chipcut.backends.calibrate import DEFAULT_FILE  # torch loads only when it measures

    cal = sub.add_parser("calibrate", help="measure this machine's CPU (about 15 s) and write "
                         "a spec file to pass as --backend")
    cal.add_argument("--out", default=DEFAULT_FILE,
                     help=f"where to write the fitted spec (default: ./{DEFAULT_FILE})")
    cal.add_argument("--threads", type=int, default=1, metavar="T",
                     help="torch threads to measure with: those each costed process runs with "
                          "(default 1: a pipeline stage runs single-threaded)")
    add_run_parser(sub)
    add_profile_parser(sub)
    return p


def _compile(args: argparse.Namespace, status: Callable[[str], None]) -> str:
    from chipcut.compiler.api import compile as compile_model
    from chipcut.compiler.cli.loading import load_model

    paths = _paths(args)
    chips = _chips(args.chips)
    options = llm.options(args, _options(args))
    llm.check(args)
    _check_before_capture(chips, args.backend, options)
    if args.phase == "serve":
        return _serve(args, options, paths, status)
    model, inputs, name = load_model(args.model, args.input, needs_inputs=args.phase is None)
    if args.phase is not None:
        status(f"capturing the {args.phase} step")
        model, inputs = llm.step(args, model, name), ()
    plan = compile_model(model, inputs, chips, args.backend, replace(options, name=name),
                         progress=status)
    return render(plan) + _write_outputs(plan, paths)


def _serve(args: argparse.Namespace, options, paths: dict[str, Path],
           status: Callable[[str], None]) -> str:
    """``--phase serve``: the pools, their pipelines and the decode batch."""
    from chipcut.compiler.cli.loading import load_model
    from chipcut.compiler.serve import serve
    from chipcut.compiler.views.serve import render_serve

    targets = llm.targets(args)
    if args.input:
        raise ChipcutError("--phase serve captures its own steps: drop --input")
    model, _, name = load_model(args.model, [], needs_inputs=False)
    plan = serve(model, targets, int(args.chips), args.backend, replace(options, name=name),
                 kv_dtype=args.kv_dtype, batch=args.batch, progress=status)
    return render_serve(plan) + _write_outputs(plan, paths)


def _check_before_capture(chips, backend: str, options) -> None:
    """What can be checked without the model: the chips, their backends and the passes."""
    from chipcut.compiler.api import resolve_chips
    from chipcut.compiler.plan.loading import load_profile
    from chipcut.passes.manager import as_pipeline

    resolve_chips(chips, backend)
    as_pipeline(options.passes)
    if options.profile is not None:
        load_profile(options.profile)  # a missing or unreadable profile fails before the capture


def _counts(flag: str, text: str | None, example: str) -> list[int]:
    """A comma-separated list of whole numbers >= 1 (a --batch or --context list)."""
    try:
        values = [int(t) for t in (text or "").split(",") if t.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise ChipcutError(f"{flag} {text!r}: give whole numbers >= 1 separated by commas, "
                           f"e.g. {flag} {example}")
    return values


def _decode_sweep(args: argparse.Namespace, status: Callable[[str], None]) -> str:
    """``sweep --phase decode``: the batch x context grid on one chip count."""
    from chipcut.compiler.cli.loading import load_model
    from chipcut.compiler.llm.step import causal_lm_config, check_tokens
    from chipcut.compiler.sweep import decode_grid, render_grid

    if args.plot:
        raise ChipcutError("--plot draws the chip-count sweep; drop it with --phase decode")
    for flag, value, example in (("--batch", args.batches, "1,8,32"),
                                 ("--context", args.contexts, "2048,4096")):
        if value is None:
            raise ChipcutError(f"sweep --phase decode needs {flag}, e.g. {flag} {example}")
    if args.input:
        raise ChipcutError("sweep --phase decode captures its own steps: drop --input")
    batches = _counts("--batch", args.batches, "1,8,32")
    contexts = _counts("--context", args.contexts, "2048,4096")
    if not args.chips.isdigit():
        raise ChipcutError(f"--chips {args.chips!r}: --phase decode sweeps one chip count; give "
                           "one, e.g. --chips 8")
    chips = int(args.chips)
    options = replace(_options(args), batch=1)
    _check_before_capture(chips, args.backend, options)
    model, _, name = load_model(args.model, args.input, needs_inputs=False)
    config = causal_lm_config(model, "decode")
    for context in contexts:
        check_tokens(config, context, "--context")
    points = decode_grid(model, batches, contexts, chips, args.backend,
                         replace(options, name=name), args.kv_dtype, progress=status)
    return render_grid(points, chips, args.backend)


def _sweep(args: argparse.Namespace, status: Callable[[str], None]) -> str:
    from chipcut.compiler.api import lower
    from chipcut.compiler.cli.loading import load_model
    from chipcut.compiler.sweep import parse_counts, plot, render, sweep

    if args.phase == "decode":
        return _decode_sweep(args, status)
    for flag, name in (("batches", "--batch"), ("contexts", "--context"), ("kv_dtype", "--kv-dtype")):
        if getattr(args, flag) is not None:
            raise ChipcutError(f"{name} applies to sweep --phase decode; add it, or drop {name}")
    paths = _paths(args)
    counts = parse_counts(args.chips)
    options = _options(args)
    _check_before_capture(max(counts), args.backend, options)
    model, inputs, name = load_model(args.model, args.input)
    lowered = lower(model, inputs, max(counts), args.backend, replace(options, name=name),
                    progress=status)
    points = sweep(lowered, counts, args.backend, options, progress=status)
    if paths:
        write_all([("--plot", paths["--plot"], lambda p: plot(points, p))])
    return render(points) + (f"plot written to {paths['--plot']}\n" if paths else "")


def _show(args: argparse.Namespace) -> str:
    from chipcut.compiler.plan.revalidate import revalidate
    from chipcut.compiler.plan.serve import ServePlan, load_any

    paths = _paths(args)
    loaded = load_any(args.plan)
    if isinstance(loaded, ServePlan):
        return _show_serve(args, loaded, paths)
    measured = measured_text(args.measured, loaded)  # measured on this plan as saved
    plan, edited = revalidate(loaded)
    note = _changed("plan", loaded.intact, "re-costed with this one's cost model (solver status "
                    "RECOSTED)", "re-validated and re-costed (solver status EDITED)") if edited else ""
    return note + render(plan) + measured + _write_outputs(plan, paths)


def _changed(what: str, intact: bool | None, recosted: str, edited: str) -> str:
    """The line ``show`` puts first when a loaded plan differs from what this chipcut computes
    for it: by its digest, edited by hand, costed by another version, or either."""
    if intact:
        return f"{what} was costed by another version of chipcut: {recosted}\n"
    if intact is False:
        return f"{what} was edited by hand: {edited}\n"
    return (f"{what} differs from what this chipcut computes for it (edited by hand, or costed "
            f"by another version): {edited}\n")


def _show_serve(args: argparse.Namespace, loaded, paths: dict[str, Path]) -> str:
    """A serve plan: each pipeline re-validated (re-costed if edited), then the pools."""
    from chipcut.compiler.plan.revalidate import revalidate
    from chipcut.compiler.plan.serve import checked_serve
    from chipcut.compiler.views.serve import render_serve

    if args.measured:
        raise ChipcutError("--measured compares a run of one pipeline plan: show a plan from "
                           "chipcut compile --out, not a serve plan")
    plan, edited = checked_serve(loaded, tuple(revalidate(p)[0] for p in loaded.plans))
    again = "its figures computed again"
    note = _changed("serve plan", loaded.intact, f"{again} by this one",
                    f"{again} from its pipelines") if edited else ""
    return note + render_serve(plan) + _write_outputs(plan, paths)


def _backends(args: argparse.Namespace) -> str:
    from chipcut.backends.calibrate import DEFAULT_FILE
    from chipcut.backends.registry import available, describe, get_backend

    lines = [describe(name) for name in available()]
    files = list(args.specs) + ([DEFAULT_FILE] if Path(DEFAULT_FILE).is_file() else [])
    for path in dict.fromkeys(files):
        backend = get_backend(path)  # validates the file: a bad one is one line
        with open(path, "rb") as f:  # the file's own words: what, where and when it was measured
            table = tomllib.load(f)
        said = "; ".join(str(table[k]) for k in ("description", "source") if table.get(k))
        lines.append(f"{backend.describe()} [file {path}]" + (f"\n  {said}" if said else ""))
    return "".join(line + "\n" for line in lines)


def _calibrate(args: argparse.Namespace, status: Callable[[str], None]) -> str:
    from chipcut.backends.calibrate import calibrate, summary

    path = check_path("--out", args.out)
    status(f"measuring each op class and the memory rates with {args.threads} thread(s)")
    return summary(args.out, calibrate(path, threads=args.threads))


def _warn(caught: list[warnings.WarningMessage]) -> None:
    for w in caught:
        if w.category.__module__.split(".")[0] == "chipcut":
            sys.stderr.write(f"chipcut: warning: {w.message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    err = Console(stderr=True, highlight=False)
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if args.command == "compile":
                with err.status("compiling", spinner="dots") as spinner:
                    out = _compile(args, lambda msg: spinner.update(msg))
            elif args.command == "show":
                out = _show(args)
            elif args.command == "run":
                with err.status("running", spinner="dots") as spinner:
                    out = run_command(args, lambda msg: spinner.update(msg))
            elif args.command == "profile":
                with err.status("profiling", spinner="dots") as spinner:
                    out = profile_command(args, lambda msg: spinner.update(msg))
            elif args.command == "sweep":
                with err.status("sweeping", spinner="dots") as spinner:
                    out = _sweep(args, lambda msg: spinner.update(msg))
            elif args.command == "calibrate":
                with err.status("calibrating", spinner="dots") as spinner:
                    out = _calibrate(args, lambda msg: spinner.update(msg))
            else:
                out = _backends(args)
        _warn(caught)
    except ChipcutError as e:
        _warn([w for w in caught if issubclass(w.category, SpecWarning)])  # what may explain it
        sys.stderr.write(f"chipcut: error: {e}\n")
        return 2
    sys.stdout.write(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
