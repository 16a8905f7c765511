"""``chipcut compile --phase prefill|decode``: plan one serving phase of a causal LM."""

from __future__ import annotations

import argparse
from dataclasses import replace

from chipcut.compiler.llm.step import PHASES, llm_step
from chipcut.core.dtypes import DType
from chipcut.core.errors import ChipcutError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--phase", choices=PHASES, help="plan one serving phase of a causal LM: its "
                   "prefill (--prompt) or one decode step (--context); --batch is then the "
                   "sequences per step (default 1)")
    p.add_argument("--prompt", type=int, metavar="TOKENS", help="prompt length (--phase prefill)")
    p.add_argument("--context", type=int, metavar="TOKENS",
                   help="KV-cache context length (--phase decode)")
    p.add_argument("--kv-dtype", choices=[str(d) for d in DType], metavar="DTYPE",
                   help="the KV cache's stored dtype (--phase decode; default the model's dtype): "
                        + ", ".join(DType))


def check(args: argparse.Namespace) -> None:
    """The phase flags agree with each other (before the model loads)."""
    phase = args.phase
    if args.prompt is not None and phase != "prefill":
        raise ChipcutError("--prompt applies to --phase prefill; add it, or drop --prompt")
    if (args.context is not None or args.kv_dtype) and phase != "decode":
        flag = "--context" if args.context is not None else "--kv-dtype"
        raise ChipcutError(f"{flag} applies to --phase decode; add it, or drop {flag}")
    if phase == "prefill" and args.prompt is None:
        raise ChipcutError("--phase prefill needs --prompt TOKENS, e.g. --prompt 2048")
    if phase == "decode" and args.context is None:
        raise ChipcutError("--phase decode needs --context TOKENS, e.g. --context 8192")


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
