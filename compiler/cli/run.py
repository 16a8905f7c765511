"""``chipcut run``: a saved plan executed on its model as a pipeline of processes, measured beside
its prediction; and ``chipcut show --measured``."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from chipcut.compiler.cli.outputs import check_paths, write_all
from chipcut.compiler.runtime.options import DEVICES, SCHEDULE_NAMES, RunOptions


def add_parser(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("run", help="run a plan as a real pipeline, one process per stage, and "
                       "measure it beside the prediction")
    r.add_argument("model", help="package.module:factory, path/file.py:factory, or a .pt2 file")
    r.add_argument("plan", help="plan.json written by chipcut compile --out for this model")
    r.add_argument("--input", action="append", default=[], metavar="SHAPE",
                   help="example input shape, as given to chipcut compile (one per input)")
    r.add_argument("--frames", type=int, default=16, metavar="F",
                   help="frames timed after one warmup step; a multiple of --microbatches "
                        "(default 16)")
    r.add_argument("--microbatches", type=int, default=4, metavar="M",
                   help="frames per schedule step (default 4)")
    r.add_argument("--schedule", default="gpipe", choices=SCHEDULE_NAMES,
                   help="torch.distributed.pipelining schedule, forward only (default gpipe)")
    r.add_argument("--threads", type=int, default=1, metavar="T",
                   help="torch threads per stage process (default 1)")
    r.add_argument("--device", default="cpu", choices=DEVICES,
                   help="cpu (gloo) or cuda (NCCL, one GPU per stage)")
    r.add_argument("--timeout", type=float, default=300.0, metavar="S",
                   help="stop every stage process after S seconds (default 300)")
    r.add_argument("--port", type=int, help="rendezvous port on 127.0.0.1 (default: a free one)")
    r.add_argument("--oversubscribe", action="store_true",
                   help="allow more stage threads than this machine has cores")
    r.add_argument("--out", metavar="PATH", help="write the measurement JSON here")
    r.add_argument("--trace", metavar="PATH",
                   help="write the measured timeline as a Chrome trace JSON (Perfetto) here")


def command(args: argparse.Namespace, status: Callable[[str], None]) -> str:
    from chipcut.compiler.capture import capture
    from chipcut.compiler.cli.loading import load_model
    from chipcut.compiler.plan.model import Plan
    from chipcut.compiler.runtime import run
    from chipcut.compiler.views.measured import render
    from chipcut.compiler.views.trace import write_measured_trace

    paths = check_paths([("--out", args.out), ("--trace", args.trace)])
    options = RunOptions(frames=args.frames, microbatches=args.microbatches,
                         schedule=args.schedule, threads=args.threads, device=args.device,
                         timeout_s=args.timeout, oversubscribe=args.oversubscribe, port=args.port)
    plan = Plan.from_json(args.plan)
    model, inputs, name = load_model(args.model, args.input)
    status("capturing model")
    captured = capture(model, inputs, name=name)
    status(f"running {sum(1 for s in plan.stages if s.nodes)} stage processes")
    measured = run(plan, captured, options=options)
    if measured is None:  # a torchrun rank other than 0: rank 0 reports
        return ""
    writers = {"--out": measured.to_json, "--trace": lambda p: write_measured_trace(measured, p)}
    write_all([(flag, path, writers[flag]) for flag, path in paths.items()])
    what = {"--out": "measurement", "--trace": "measured trace"}
    return render(measured) + "".join(f"{what[flag]} written to {path}\n"
                                      for flag, path in paths.items())


def measured_text(path: str | None, plan: object) -> str:
    """``chipcut show --measured``: the measurement beside the plan it was taken on, or ""."""
    if not path:
        return ""
    from chipcut.compiler.plan.measured import Measured
    from chipcut.compiler.views.measured import render

    return render(Measured.from_json(path, plan))


__all__ = ["add_parser", "command", "measured_text"]
