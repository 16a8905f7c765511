"""``chipcut compile --phase prefill|decode|serve``: plan a serving phase of a causal LM, or the
pools that serve it under TTFT and TPOT targets."""

from __future__ import annotations

import argparse
from dataclasses import replace

from chipcut.compiler.llm.step import PHASES, llm_step
from chipcut.core.dtypes import DType
from chipcut.core.errors import ChipcutError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--phase", choices=PHASES + ("serve",), help="plan one serving phase of a "
                   "causal LM: its prefill (--prompt) or one decode step (--context), --batch "
                   "then being the sequences per step (default 1); or serve: prefill and decode "
                   "pools for the most tokens/s within --ttft and --tpot (--prompt, --output; "
                   "--batch fixes the decode batch)")
    p.add_argument("--prompt", type=int, metavar="TOKENS",
                   help="prompt length (--phase prefill, serve)")
    p.add_argument("--context", type=int, metavar="TOKENS",
                   help="KV-cache context length (--phase decode)")
    p.add_argument("--output", type=int, metavar="TOKENS",
                   help="tokens generated per request (--phase serve)")
    p.add_argument("--ttft", metavar="TIME", help='time-to-first-token target, e.g. "500ms" '
                   "(--phase serve)")
    p.add_argument("--tpot", metavar="TIME", help='time-per-output-token target, e.g. "50ms" '
                   "(--phase serve)")
    p.add_argument("--kv-dtype", choices=[str(d) for d in DType], metavar="DTYPE",
                   help="the KV cache's stored dtype (--phase decode, serve; default the model's "
                        "dtype): " + ", ".join(DType))


def _seconds(flag: str, text: str) -> float:
    from chipcut.backends import quantity as q
    from chipcut.compiler.cli.flags import positive

    return positive(flag, text, q.SECONDS, "must be a finite time > 0, e.g. 500ms",
                    unit_required=True)


def check(args: argparse.Namespace) -> None:
    """The phase flags agree with each other (before the model loads)."""
    phase = args.phase
    uses = {"--prompt": ("prefill", "serve"), "--context": ("decode",),
            "--kv-dtype": ("decode", "serve"), "--output": ("serve",), "--ttft": ("serve",),
            "--tpot": ("serve",)}
    for flag, phases in uses.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None and phase not in phases:
            raise ChipcutError(f"{flag} applies to --phase {' or '.join(phases)}; add it, or "
                               f"drop {flag}")
    needs = {"prefill": ("--prompt",), "decode": ("--context",),
             "serve": ("--prompt", "--output", "--ttft", "--tpot")}
    example = {"--prompt": "2048", "--context": "8192", "--output": "256", "--ttft": "500ms",
               "--tpot": "50ms"}
    for flag in needs.get(phase, ()):
        if getattr(args, flag[2:]) is None:
            raise ChipcutError(f"--phase {phase} needs {flag}, e.g. {flag} {example[flag]}")
    if phase == "serve" and not args.chips.isdigit():
        raise ChipcutError(f"--chips {args.chips!r}: --phase serve plans pools of identical "
                           "chips; give a count, e.g. --chips 8 --backend h100-sxm")


def targets(args: argparse.Namespace) -> object:
    """The serve targets of the command line."""
    from chipcut.compiler.plan.serve import Targets
    from chipcut.compiler.serve import check_targets

    t = Targets(_seconds("--ttft", args.ttft), _seconds("--tpot", args.tpot), args.prompt,
                args.output)
    check_targets(t)
    return t


def step(args: argparse.Namespace, model: object, name: str) -> object:
    """The captured step of ``--phase`` (the model as it is without one)."""
    if args.phase is None:
        return model
    tokens = args.prompt if args.phase == "prefill" else args.context
    batch = 1 if args.batch is None else args.batch
    return llm_step(model, args.phase, batch, tokens, args.kv_dtype, name)


def options(args: argparse.Namespace, opts: object) -> object:
    """A phase's batch is in its graph: the batched-throughput figure is then of 1 step."""
    return replace(opts, batch=1) if args.phase is not None else opts
