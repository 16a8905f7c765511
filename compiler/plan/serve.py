"""Serving plans of a causal LM: a prefill pool and a decode pool (or shared chips), their
pipelines, the decode batch, and the tokens/s they reach under TTFT and TPOT targets.

Conventions (one place, used by the choice, the report and ``show``):

- A prefill pipeline takes one prompt at a time per stage: TTFT is its latency (stages and
  links in sequence), and pipelined prompts leave it at its throughput (1 / bottleneck).
- A decode pipeline runs one batch of ``batch`` sequences per step: TPOT is the step's latency
  (the next token needs the previous one), and it emits ``batch / TPOT`` tokens/s.
- Disaggregated: prefill replicas hand each prompt's KV cache to a decode replica; the system
  serves min(prefill requests/s, decode tokens/s / output) requests/s, ``output`` tokens each.
- Shared: one pipeline holds the weights of both its prefill and its decode stages (each
  chip keeps the union of the parameters both cuts give it) and runs both: every step of the
  batch also gives ``batch / output`` of a prompt's prefill the whole pipeline (one prompt at
  a time, its latency). TPOT = decode step + batch / output x prefill latency; TTFT = prefill
  latency + one decode step (a new request waits for the running step).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace

from chipcut.compiler.plan.model import (
    SCHEMA_VERSION,
    Plan,
    _build,
    _plain,
    content_digest,
    read_json,
)
from chipcut.core.errors import ChipcutError
from chipcut.core.files import json_text

ROLES = ("prefill", "decode", "shared")


@dataclass(frozen=True)
class Targets:
    """What a user serves: prompts of ``prompt`` tokens, ``output`` tokens generated each, the
    first within ``ttft_s`` seconds and the others every ``tpot_s`` seconds at most."""

    ttft_s: float
    tpot_s: float
    prompt: int
    output: int

    @property
    def context(self) -> int:
        """Tokens a sequence's KV cache holds at its last step."""
        return self.prompt + self.output


@dataclass(frozen=True)
class Option:
    """One pipeline the choice may replicate: its role, chips, decode batch, figures per
    replica, and the plans it runs (indices into ``ServePlan.plans``; -1: none).

    requests_per_s: prompts/s a prefill replica takes (0 for decode); tokens_per_s: output
    tokens/s a decode or shared replica emits (0 for prefill); ttft_s / tpot_s: its own."""

    role: str
    chips: int
    batch: int
    ttft_s: float
    tpot_s: float
    requests_per_s: float
    tokens_per_s: float
    prefill_plan: int = -1
    decode_plan: int = -1
    meets: bool = True  # within both targets and the chips' memory
    why: str = ""  # when not: what misses, in words


@dataclass(frozen=True)
class Pool:
    """``replicas`` copies of option ``option``, on chips ``first_chip`` onward."""

    option: int
    replicas: int
    first_chip: int


@dataclass(frozen=True)
class ServePlan:
    """The chosen pools and what the system serves: requests/s, output tokens/s, and the worst
    TTFT and TPOT over the pools used. ``options`` are every pipeline considered; ``chosen``
    says how the choice was proven (status over the options)."""

    schema_version: int
    kind: str  # "serve"
    model: str
    backend: str
    chips: int
    targets: Targets
    kv_dtype: str
    options: tuple[Option, ...]
    pools: tuple[Pool, ...]
    requests_per_s: float
    tokens_per_s: float
    ttft_s: float
    tpot_s: float
    limit: str  # what bounds tokens/s: "prefill pool", "decode pool", "shared pool"
    chosen: str
    handoff_bytes: int  # one prompt's KV cache, prefill pool -> decode pool (0 when shared)
    plans: tuple[Plan, ...]
    digest: str = field(default="", compare=False)  # as Plan.digest, over the pipelines too
    intact: bool | None = field(default=None, init=False, compare=False, repr=False)  # as Plan's

    @property
    def chips_used(self) -> int:
        return sum(p.replicas * self.options[p.option].chips for p in self.pools)

    def to_dict(self) -> dict:
        out = {f.name: _plain(getattr(self, f.name)) for f in fields(self)
               if f.name not in ("plans", "intact")}
        out["plans"] = [p.to_dict() for p in self.plans]
        return out

    def sealed(self) -> ServePlan:
        """This serve plan with the digest of its content (see Plan.sealed)."""
        return replace(self, digest=content_digest(self.to_dict()))

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The serve plan as JSON text; with ``path``, also written atomically to that file."""
        return json_text(self.to_dict(), path)

    @classmethod
    def from_dict(cls, data: dict) -> ServePlan:
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ChipcutError(f"serve plan schema_version is {data.get('schema_version')!r}, "
                               f"this chipcut reads {SCHEMA_VERSION}; plan it again")
        plans = data.get("plans")
        if not isinstance(plans, list) or not plans:
            raise ChipcutError("serve plan field plans must be a non-empty list of plans")
        built = _build(cls, {**data, "plans": []}, "serve")
        loaded = tuple(Plan.from_dict(p) for p in plans)
        for k, o in enumerate(built.options):
            for name, i in (("prefill_plan", o.prefill_plan), ("decode_plan", o.decode_plan)):
                if not -1 <= i < len(loaded):
                    raise ChipcutError(f"serve plan field options[{k}].{name} = {i}: must be "
                                       f"-1 or a plan index 0..{len(loaded) - 1}")
        for k, p in enumerate(built.pools):
            if not 0 <= p.option < len(built.options) or p.replicas < 1:
                raise ChipcutError(f"serve plan field pools[{k}]: option {p.option} and "
                                   f"replicas {p.replicas} must name an option and be >= 1")
        first = 0
        for k, p in enumerate(built.pools):
            if p.first_chip != first:
                raise ChipcutError(f"serve plan field pools[{k}].first_chip = {p.first_chip}: "
                                   f"the pools sit one after another; this one starts at {first}")
            first += p.replicas * built.options[p.option].chips
        if first > built.chips:
            raise ChipcutError(f"serve plan pools use {first} chips but chips = {built.chips}; "
                               "give fewer replicas or more chips")
        plan = cls(**{**{f.name: getattr(built, f.name) for f in fields(cls) if f.init},
                      "plans": loaded})
        object.__setattr__(plan, "intact", content_digest(data) == plan.digest if plan.digest
                           else None)  # frozen; set once, as loaded
        return plan

    @classmethod
    def from_json(cls, source: str | os.PathLike) -> ServePlan:
        return cls.from_dict(read_json(source, "serve plan"))


def is_serve(data: object) -> bool:
    return isinstance(data, dict) and data.get("kind") == "serve"


def load_any(source: str | os.PathLike) -> Plan | ServePlan:
    """A plan or a serve plan, whichever the file holds."""
    data = read_json(source, "plan")
    return ServePlan.from_dict(data) if is_serve(data) else Plan.from_dict(data)


def prefill_option(plan: Plan, index: int, targets: Targets) -> Option:
    """A prefill pipeline: TTFT its latency, prompts/s its pipelined throughput."""
    ttft = plan.metrics.latency_s
    meets = ttft <= targets.ttft_s
    return Option("prefill", len(plan.stages), 1, ttft, 0.0, plan.metrics.throughput_per_s, 0.0,
                  prefill_plan=index, meets=meets,
                  why="" if meets else f"TTFT {ttft * 1e3:.4g} ms > {targets.ttft_s * 1e3:.4g} ms")


def decode_option(plan: Plan, index: int, targets: Targets) -> Option:
    """A decode pipeline: TPOT its step's latency, batch / TPOT tokens/s."""
    tpot = plan.metrics.latency_s
    batch = plan.serving.batch
    meets = tpot <= targets.tpot_s
    return Option("decode", len(plan.stages), batch, 0.0, tpot, 0.0,
                  batch / tpot if tpot > 0 else 0.0, decode_plan=index, meets=meets,
                  why="" if meets else f"TPOT {tpot * 1e3:.4g} ms > {targets.tpot_s * 1e3:.4g} ms")


def shared_option(prefill: Plan, decode: Plan, indices: tuple[int, int], targets: Targets,
                  fits: str = "") -> Option:
    """Both phases on one pipeline (the module's conventions); ``fits``: why the union of the
    two cuts' weights does not fit, or "" when it does."""
    step, pre = decode.metrics.latency_s, prefill.metrics.latency_s
    batch = decode.serving.batch
    tpot = step + batch / targets.output * pre
    ttft = pre + step
    misses = [fits] if fits else []
    if ttft > targets.ttft_s:
        misses.append(f"TTFT {ttft * 1e3:.4g} ms > {targets.ttft_s * 1e3:.4g} ms")
    if tpot > targets.tpot_s:
        misses.append(f"TPOT {tpot * 1e3:.4g} ms > {targets.tpot_s * 1e3:.4g} ms")
    return Option("shared", len(decode.stages), batch, ttft, tpot, 0.0,
                  batch / tpot if tpot > 0 else 0.0, prefill_plan=indices[0],
                  decode_plan=indices[1], meets=not misses, why="; ".join(misses))


@dataclass(frozen=True)
class Served:
    requests_per_s: float
    tokens_per_s: float
    ttft_s: float
    tpot_s: float
    limit: str


def served(options: tuple[Option, ...], counts: dict[int, int], output: int) -> Served:
    """What ``counts`` replicas of each option serve, by the module's conventions."""
    used = [(options[i], r) for i, r in counts.items() if r > 0]
    prefill = sum(r * o.requests_per_s for o, r in used if o.role == "prefill")
    decode = sum(r * o.tokens_per_s for o, r in used if o.role == "decode") / output
    shared = sum(r * o.tokens_per_s for o, r in used if o.role == "shared") / output
    disaggregated = min(prefill, decode)
    requests = disaggregated + shared
    if shared and not disaggregated:
        limit = "shared pool"
    else:
        limit = "prefill pool" if prefill < decode else "decode pool"
    return Served(requests, requests * output, max((o.ttft_s for o, _ in used), default=0.0),
                  max((o.tpot_s for o, _ in used), default=0.0), limit)



def _bad(field: str, value: object, why: str) -> ChipcutError:
    return ChipcutError(f"serve plan field {field} = {value!r}: {why}")


def _check_targets(t: Targets) -> None:
    for name, value in (("ttft_s", t.ttft_s), ("tpot_s", t.tpot_s)):
        if not value > 0:
            raise _bad(f"targets.{name}", value, "must be a time > 0 seconds")
    for name, value in (("prompt", t.prompt), ("output", t.output)):
        if value < 1:
            raise _bad(f"targets.{name}", value, "must be >= 1 token")


def _plan_of(plans: tuple[Plan, ...], k: int, o: Option, phase: str, targets: Targets) -> Plan:
    """The plan option ``k`` runs for ``phase``, checked to be of that phase and length."""
    field = f"options[{k}].{phase}_plan"
    index = o.prefill_plan if phase == "prefill" else o.decode_plan
    if not 0 <= index < len(plans) or plans[index].serving is None \
            or plans[index].serving.phase != phase:
        raise _bad(field, index, f"a {o.role} option runs a {phase} plan; restore the index "
                   "compile wrote")
    tokens = targets.prompt if phase == "prefill" else targets.context
    got = plans[index].serving.tokens
    if got != tokens:
        raise _bad(field, index, f"that plan is for {got} tokens, the targets need {tokens}; "
                   "plan again with chipcut compile --phase serve")
    return plans[index]


def checked_serve(plan: ServePlan, plans: tuple[Plan, ...]) -> tuple[ServePlan, bool]:
    """``plan`` with every option and system figure computed again from its pipelines
    (``plans``, re-validated) and targets, by this module's conventions; (it, whether any figure
    changed). Options that do not match their plans, and pools that run an option missing the
    targets or a prefill pool without a decode pool, are one-line errors."""
    t = plan.targets
    _check_targets(t)
    options = []
    for k, o in enumerate(plan.options):
        if o.role not in ROLES:
            raise _bad(f"options[{k}].role", o.role, f"must be one of {', '.join(ROLES)}")
        if o.role == "prefill":
            options.append(prefill_option(_plan_of(plans, k, o, "prefill", t), o.prefill_plan, t))
        elif o.role == "decode":
            options.append(decode_option(_plan_of(plans, k, o, "decode", t), o.decode_plan, t))
        else:
            fits = o.why if "would hold" in o.why else ""
            options.append(shared_option(_plan_of(plans, k, o, "prefill", t),
                                         _plan_of(plans, k, o, "decode", t),
                                         (o.prefill_plan, o.decode_plan), t,
                                         fits.split("; ")[0] if fits else ""))
        kv = plans[o.decode_plan].serving.kv_dtype if o.role != "prefill" else plan.kv_dtype
        if kv != plan.kv_dtype:
            raise _bad("kv_dtype", plan.kv_dtype, f"option {k}'s decode plan holds its cache "
                       f"at {kv}; restore {kv!r}")
    options = tuple(options)
    for k, p in enumerate(plan.pools):
        if not options[p.option].meets:
            raise _bad(f"pools[{k}].option", p.option, f"that option misses the targets "
                       f"({options[p.option].why}); pick one that meets them")
    roles = {options[p.option].role for p in plan.pools}
    if not plan.pools or ("prefill" in roles) != ("decode" in roles):
        raise _bad("pools", [options[p.option].role for p in plan.pools], "a prefill pool "
                   "needs a decode pool and the other way round (or a shared pool); restore "
                   "the pools compile wrote")
    figures = served(options, {p.option: p.replicas for p in plan.pools}, t.output)
    again = replace(plan, options=options, plans=plans, requests_per_s=figures.requests_per_s,
                    tokens_per_s=figures.tokens_per_s, ttft_s=figures.ttft_s,
                    tpot_s=figures.tpot_s, limit=figures.limit)
    if again == plan:
        return plan, False
    chosen = ("RECOSTED: figures computed again by this version of chipcut" if plan.intact else
              "EDITED: figures computed again from the pipelines and pools as saved")
    return replace(again, chosen=chosen).sealed(), True
