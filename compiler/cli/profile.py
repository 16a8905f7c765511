"""``chipcut profile``: time every partition unit of a model on this machine and write the
profile that ``chipcut compile --profile`` costs units with."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from chipcut.compiler.cli.outputs import check_paths, write_all


def add_parser(sub: argparse._SubParsersAction) -> None:
    from chipcut.passes.manager import DEFAULT_PIPELINE

    p = sub.add_parser("profile", help="time each partition unit on this machine's CPU (or "
                       "GPU) and write a profile for chipcut compile --profile")
    p.add_argument("model", help="package.module:factory, path/file.py:factory, or a .pt2 file")
    p.add_argument("--input", action="append", default=[], metavar="SHAPE",
                   help="example input shape, as given to chipcut compile (one per input)")
    p.add_argument("--backend", default="generic",
                   help="backend the passes run for, as given to chipcut compile (default generic)")
    p.add_argument("--passes", default="default", metavar="PIPELINE",
                   help=f"pass pipeline, as given to chipcut compile ('default' is "
                        f"{DEFAULT_PIPELINE!r})")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="where to time the units (default cpu)")
    p.add_argument("--threads", type=int, default=1, metavar="T",
                   help="torch CPU threads, those each pipeline stage runs with (default 1)")
    p.add_argument("--warmup", type=int, default=2, metavar="N",
                   help="untimed passes over the units first (default 2)")
    p.add_argument("--repeats", type=int, default=10, metavar="N",
                   help="timed passes; each unit's time is their median (default 10)")
    p.add_argument("--load", type=int, default=0, metavar="N",
                   help="other processes running the graph while timing, as the other stages "
                        "of a pipeline on this host do: stages - 1 (default 0)")
    p.add_argument("--out", metavar="PATH", help="write the profile JSON here")


def command(args: argparse.Namespace, status: Callable[[str], None]) -> str:
    from chipcut.compiler.api import CompileOptions, profile, resolve_chips
    from chipcut.compiler.cli.loading import load_model
    from chipcut.compiler.runtime.profile import ProfileOptions
    from chipcut.compiler.views.profile import render
    from chipcut.passes.manager import as_pipeline

    paths = check_paths([("--out", args.out)])
    options = CompileOptions(passes=args.passes, threads=args.threads)
    ProfileOptions(args.device, args.threads, args.warmup, args.repeats, args.load)  # checked early
    resolve_chips(1, args.backend)
    as_pipeline(options.passes)
    model, inputs, name = load_model(args.model, args.input)
    options = CompileOptions.of(options, name=name)
    measured = profile(model, inputs, args.backend, options, device=args.device,
                       warmup=args.warmup, repeats=args.repeats, load=args.load, progress=status)
    if paths:
        write_all([("--out", paths["--out"], measured.to_json)])
    return render(measured) + (f"profile written to {args.out}\n" if paths else "")


__all__ = ["add_parser", "command"]
