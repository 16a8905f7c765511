"""Serving plans: the prefill and decode pipelines a causal LM could run on the chips, and the
pools (replicas of each) that serve the most tokens/s within TTFT and TPOT targets.

Every candidate pipeline is an exact plan of its own phase (the partitioner, capacity with the
KV cache included); the decode batch is searched over powers of two, up to ``max_batch``; the
pools are then chosen by an integer program over those candidates
(:func:`chipcut.compiler.solver.cpsat.choose_replicas`), proven optimal over them.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import replace

from chipcut.compiler.api import CompileOptions, Lowered, lower, resolve_chips, schedule, solve
from chipcut.compiler.llm.step import (
    causal_lm_config,
    check_tokens,
    decode_step,
    kv_cache_bytes,
    prefill_step,
)
from chipcut.compiler.plan.model import SCHEMA_VERSION, Plan
from chipcut.compiler.plan.serve import (
    Option,
    Pool,
    ServePlan,
    Targets,
    decode_option,
    prefill_option,
    served,
    shared_option,
)
from chipcut.compiler.plan.serving import read_s
from chipcut.compiler.solver.cpsat import choose_replicas
from chipcut.compiler.solver.fit import memory_of
from chipcut.core.errors import ChipcutError, DoesNotFit
from chipcut.core.fmt import nbytes as fmt_b
from chipcut.core.vocab import Objective

MEMORY = "memory: "  # how a reason that is the chips' memory begins
MAX_BATCH = 1024  # sequences per decode step the search tries at most
Progress = Callable[[str], None]


def check_targets(targets: Targets) -> None:
    """Targets a plan can meet: finite times > 0, whole token counts >= 1."""
    if not isinstance(targets, Targets):
        raise ChipcutError(f"targets {targets!r}: give a chipcut.Targets(ttft_s=..., tpot_s=..., "
                           "prompt=..., output=...)")
    for flag, value in (("--ttft", targets.ttft_s), ("--tpot", targets.tpot_s)):
        if not (isinstance(value, numbers.Real) and not isinstance(value, bool)
                and 0 < float(value) < math.inf):
            raise ChipcutError(f"{flag} {value!r} s: must be a finite time > 0, e.g. 500ms")
    for flag, value in (("--prompt", targets.prompt), ("--output", targets.output)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ChipcutError(f"{flag} {value!r}: must be a whole number >= 1 token")


class _Search:
    """The candidates of one serve: plans by (role, chips, batch), lowered once per batch."""

    def __init__(self, model: object, targets: Targets, backend: str, options: CompileOptions,
                 kv_dtype: str | None, say: Progress) -> None:
        self.model, self.targets, self.backend = model, targets, backend
        self.options, self.kv_dtype, self.say = options, kv_dtype, say
        self.plans: list[Plan] = []
        self.index: dict[tuple[str, int, int], int | str] = {}  # -> plan index, or why not
        self.lowered: dict[tuple[str, int], Lowered] = {}
        self.missed: list[Option] = []  # decode pipelines tried that miss TPOT

    def _lowered(self, role: str, batch: int) -> Lowered:
        key = (role, batch)
        if key not in self.lowered:
            t = self.targets
            if role == "prefill":
                self.say(f"capturing the prefill of {t.prompt} tokens")
                step = prefill_step(self.model, 1, t.prompt, self.options.name)
            else:
                self.say(f"capturing a decode step: batch {batch}, context {t.context}")
                step = decode_step(self.model, batch, t.context, self.kv_dtype, self.options.name)
            self.lowered[key] = lower(step, (), 1, self.backend, self.options)
        return self.lowered[key]

    def plan(self, role: str, chips: int, batch: int = 1,
             objective: Objective | None = None) -> int | str:
        """The plan's index in ``plans``, or why there is none (it does not fit)."""
        objective = objective or (Objective.THROUGHPUT if role == "prefill" else Objective.LATENCY)
        key = (f"{role}:{objective.value}", chips, batch)
        if key not in self.index:
            lowered = self._lowered(role, batch)
            options = replace(self.options, objective=objective)
            self.say(f"planning {role} on {chips} chip(s)" + (f", batch {batch}" if role ==
                                                             "decode" else ""))
            try:
                plan = schedule(lowered, solve(lowered, chips, self.backend, options), options)
            except DoesNotFit as e:
                self.index[key] = MEMORY + str(e)
            except ChipcutError as e:  # more chips than units: no such pipeline
                self.index[key] = str(e)
            else:
                self.plans.append(plan)
                self.index[key] = len(self.plans) - 1
        return self.index[key]


def _prefill(search: _Search, chips: int) -> Option | str:
    """The prefill pipeline on ``chips``: the most prompts/s within TTFT (the throughput plan,
    else the latency plan when only it meets TTFT)."""
    found = search.plan("prefill", chips)
    if isinstance(found, str):
        return found
    option = prefill_option(search.plans[found], found, search.targets)
    if not option.meets:
        fastest = search.plan("prefill", chips, objective=Objective.LATENCY)
        if isinstance(fastest, int):
            other = prefill_option(search.plans[fastest], fastest, search.targets)
            if other.meets or other.ttft_s < option.ttft_s:
                option = other
    return option


def _decode(search: _Search, chips: int, start: int, max_batch: int,
            fixed: bool = False) -> tuple[Option | None, str]:
    """The largest power-of-two batch whose decode step on ``chips`` fits and meets TPOT,
    searched from ``start``; (its option or None, why the next batch up does not)."""
    def meets(batch: int) -> tuple[Option | None, str]:
        found = search.plan("decode", chips, batch)
        if isinstance(found, str):
            return None, found
        option = decode_option(search.plans[found], found, search.targets)
        if not option.meets:
            search.missed.append(option)
        return (option, "") if option.meets else (None, option.why)

    batch = start
    best, why = meets(batch)
    if best is None and fixed:  # --batch: that batch or none
        return None, f"at batch {batch} on {chips} chip(s), {why}"
    if best is None and batch > 1:
        # bisect the powers of two below the start: batch 1 first, the cheapest refusal
        best, why = meets(1)
        if best is None:
            return None, f"at batch 1 on {chips} chip(s), {why}"
        lo, hi = 0, batch.bit_length() - 1  # 2**lo meets, 2**hi does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            found, _ = meets(1 << mid)
            if found is None:
                hi = mid
            else:
                lo, best = mid, found
        return best, ""
    if best is None:
        return None, f"at batch 1 on {chips} chip(s), {why}"
    while batch * 2 <= max_batch:
        up, why = meets(batch * 2)
        if up is None:
            break
        best, batch = up, batch * 2
    return best, why


def _union_fits(prefill: Plan, decode: Plan, backend: str) -> str:
    """Why a chip cannot hold the weights of both its stages and its KV cache ("" when all do)."""
    kind, capacity = memory_of(resolve_chips(1, backend)[0])
    for k, (p, d) in enumerate(zip(prefill.stages, decode.stages, strict=True)):
        weights = _stage_weights(prefill, p.nodes) | _stage_weights(decode, d.nodes)
        need = sum(weights.values()) + d.kv_bytes
        if need > capacity:
            return (f"chip {k} would hold {fmt_b(need)} (both cuts' weights and its KV cache) "
                    f"in {fmt_b(capacity)} of {kind}")
    return ""


def _stage_weights(plan: Plan, nodes: tuple[str, ...]) -> dict[str, int]:
    names = set(nodes)
    stored, caches = dict(plan.graph.weights), set(plan.graph.kv_cache)
    return {w: stored.get(w, 0) for r in plan.graph.nodes if r.name in names for w in r.weights
            if w not in caches}


def _start_batch(search: _Search, chips: int, max_batch: int) -> int:
    """A first guess of the largest batch: the chips' memory less the weights, over one
    sequence's cache (the search then doubles or halves from it)."""
    prefill = search.lowered[("prefill", 1)] if ("prefill", 1) in search.lowered else None
    config = causal_lm_config(search.model, "serve")
    per_sequence = kv_cache_bytes(config, 1, search.targets.context,
                                  search.kv_dtype or _dtype(search.model))
    weights = sum(b for _, b in prefill.summary.weights) if prefill else 0
    _, capacity = memory_of(resolve_chips(1, search.backend)[0])
    room = chips * capacity - weights
    guess = room // per_sequence if per_sequence > 0 else max_batch
    # TPOT is at least every chip reading its weights and cache once (resident state aside)
    probe = 10**9
    rate = probe / read_s(resolve_chips(1, search.backend)[0], probe)
    within = (search.targets.tpot_s * rate - weights) // per_sequence if per_sequence else guess
    guess = max(1, min(guess, within, max_batch))  # room < 0: the weights alone do not fit
    return 1 << (int(guess).bit_length() - 1)


def _dtype(model: object) -> str:
    from chipcut.core.dtypes import from_torch

    return str(from_torch(next(iter(model.parameters())).dtype, "the model's parameters"))


def _options(search: _Search, total: int, max_batch: int, fixed_batch: int | None,
             ) -> tuple[list[Option], dict[str, str]]:
    """Every pipeline considered, and why each role has none that meets (by role)."""
    found: list[Option] = []
    why: dict[str, str] = {}
    prefills: dict[int, Option] = {}
    for chips in range(1, total + 1):
        option = _prefill(search, chips)
        if isinstance(option, str):
            why["prefill"] = option
            continue
        prefills[chips] = option
        found.append(option)
    if not any(o.meets for o in found):  # shared TTFT is a prefill and more: nothing can meet
        _check_feasible(found, why, total, search.targets)
    for chips in range(1, total + 1):
        start = fixed_batch or _start_batch(search, chips, max_batch)
        top = fixed_batch or max_batch
        decode, miss = _decode(search, chips, start, top, fixed_batch is not None)
        if decode is None:
            why["decode"] = miss  # the most chips' reason: the last one left
            if search.missed:  # the fastest step tried says more than the last
                fastest = min(search.missed, key=lambda o: o.tpot_s)
                why["decode"] = (f"the fastest decode step tried (batch {fastest.batch} on "
                                 f"{fastest.chips} chip(s)) takes {fastest.tpot_s * 1e3:.4g} ms")
            here = [o for o in search.missed if o.chips == chips]
            if here:  # listed with why it misses
                found.append(min(here, key=lambda o: o.tpot_s))
            continue
        found.append(decode)
        if chips in prefills:
            shared = _shared(search, prefills[chips], decode, chips, fixed_batch is not None)
            if shared is not None:
                found.append(shared)
    return found, why


def _shared(search: _Search, prefill: Option, decode: Option, chips: int,
            fixed: bool) -> Option | None:
    """Both phases on one pipeline of ``chips``: the largest batch (from the decode pool's
    down, halving) at which the shared figures meet both targets; else the last one tried
    (which misses), or None when none could be planned."""
    pre = search.plans[prefill.prefill_plan]
    if pre.metrics.latency_s >= search.targets.ttft_s:
        return None  # TTFT = prefill + a decode step: missed at any batch
    # batch / output prefills per step cost at least batch / output x the prefill's latency
    room = search.targets.tpot_s * search.targets.output / max(pre.metrics.latency_s, 1e-300)
    batch = decode.batch if fixed else max(1, min(decode.batch, 1 << max(0, int(room).bit_length() - 1)))
    missed = None  # the last shared pipeline tried, listed with why it misses
    while True:
        index = search.plan("decode", chips, batch)
        if isinstance(index, int):
            dec = search.plans[index]
            option = shared_option(pre, dec, (prefill.prefill_plan, index), search.targets,
                                   _union_fits(pre, dec, search.backend))
            if option.meets:
                return option
            missed = option
        if fixed or batch == 1:
            return missed
        batch //= 2


def serve(model: object, targets: Targets, chips: int, backend: str = "generic",
          options: CompileOptions | None = None, *, kv_dtype: str | None = None,
          batch: int | None = None, max_batch: int = MAX_BATCH,
          progress: Progress | None = None) -> ServePlan:
    """Plan serving ``model`` (a transformers causal LM) on ``chips`` identical ``backend``
    chips: prefill and decode pools (or shared chips), each pool's pipeline cuts, and the
    decode batch (``batch`` fixes it), for the most output tokens/s within ``targets``.

    >>> plan = serve(llama, Targets(0.5, 0.05, prompt=2048, output=256), 8,
    ...              "h100-sxm")                                    # doctest: +SKIP
    >>> plan.tokens_per_s, [(o.role, o.chips, o.batch) for o in plan.options]  # doctest: +SKIP
    """
    options = CompileOptions.of(options)
    check_targets(targets)
    if isinstance(chips, bool) or not isinstance(chips, int) or chips < 1:
        raise ChipcutError(f"--chips {chips!r}: serving plans pools of identical chips; give a "
                           "count, e.g. --chips 8 --backend h100-sxm")
    resolve_chips(chips, backend)
    config = causal_lm_config(model, "serve")
    check_tokens(config, targets.context, "--prompt + --output")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ChipcutError(f"--batch {batch!r}: must be a whole number >= 1 sequence")
    search = _Search(model, targets, backend, options, kv_dtype, progress or (lambda _m: None))
    search._lowered("prefill", 1)
    found, why = _options(search, chips, max(max_batch, batch or 1), batch)
    meeting = [o for o in found if o.meets]
    _check_feasible(found, why, chips, targets)
    search.say("choosing the pools")
    counts, status = choose_replicas([o.chips for o in meeting], [o.role for o in meeting],
                                     [_value(o, targets) for o in meeting], chips,
                                     options.time_limit_s)
    return _serve_plan(search, found, meeting, counts, status, chips, targets)


def _value(option: Option, targets: Targets) -> float:
    """Requests/s one replica serves toward the total (prefill, decode or both)."""
    if option.role == "prefill":
        return option.requests_per_s
    return option.tokens_per_s / targets.output


def _check_feasible(found: list[Option], why: dict[str, str], chips: int,
                    targets: Targets) -> None:
    """One line naming the binding resource when no pools meet the targets on ``chips``."""
    meeting = [o for o in found if o.meets]
    roles = {o.role for o in meeting}
    if "shared" in roles or {"prefill", "decode"} <= roles and _pair_fits(meeting, chips):
        return
    tried = [o for o in found if o.role == "prefill"]
    if not tried:
        raise ChipcutError(f"{why['prefill']}; the prefill of a {targets.prompt}-token prompt "
                           f"fits on none of 1..{chips} chips")
    if "prefill" not in roles:
        fastest = min(tried, key=lambda o: o.ttft_s)
        raise ChipcutError(f"--ttft {targets.ttft_s * 1e3:.4g} ms cannot be met for a "
                           f"{targets.prompt}-token prompt on up to {chips} chips: the fastest "
                           f"prefill takes {fastest.ttft_s * 1e3:.4g} ms (on {fastest.chips} "
                           "chip(s)); raise --ttft, shorten --prompt, or use faster chips")
    if "decode" not in roles and why.get("decode", "").split(", ", 1)[-1].startswith(MEMORY):
        raise ChipcutError(f"{MEMORY}the decode step (context {targets.context}) does not fit on "
                           f"up to {chips} chips {why['decode'].replace(MEMORY, '')}; use "
                           "--kv-dtype fp8, shorten --prompt/--output, or add chips")
    if "decode" not in roles:
        raise ChipcutError(f"--tpot {targets.tpot_s * 1e3:.4g} ms cannot be met at context "
                           f"{targets.context} on up to {chips} chips: "
                           f"{why.get('decode', 'no decode pipeline meets it')}; raise --tpot, "
                           "use --kv-dtype fp8, shorten --prompt/--output, or add chips")
    least = {r: min(o.chips for o in meeting if o.role == r) for r in ("prefill", "decode")}
    raise ChipcutError(f"chips: a prefill pool needs {least['prefill']} and a decode pool "
                       f"{least['decode']} chip(s) to meet the targets, {chips} given, and no "
                       f"shared pipeline meets them; give --chips "
                       f"{least['prefill'] + least['decode']} or relax --ttft/--tpot")


def _pair_fits(meeting: list[Option], chips: int) -> bool:
    least = {r: min((o.chips for o in meeting if o.role == r), default=chips + 1)
             for r in ("prefill", "decode")}
    return least["prefill"] + least["decode"] <= chips


def _serve_plan(search: _Search, found: list[Option], meeting: list[Option], counts: list[int],
                status: str, chips: int, targets: Targets) -> ServePlan:
    """The plan of the chosen counts: only the plans the options use, re-indexed."""
    keep = sorted({i for o in found for i in (o.prefill_plan, o.decode_plan) if i >= 0})
    renumber = {old: new for new, old in enumerate(keep)} | {-1: -1}
    options = tuple(replace(o, prefill_plan=renumber[o.prefill_plan],
                            decode_plan=renumber[o.decode_plan]) for o in found)
    position = {id(o): k for k, o in enumerate(found)}
    pools, first = [], 0
    for role in ("prefill", "decode", "shared"):
        for o, r in zip(meeting, counts, strict=True):
            if r > 0 and o.role == role:
                pools.append(Pool(position[id(o)], r, first))
                first += r * o.chips
    figures = served(options, {p.option: p.replicas for p in pools}, targets.output)
    disaggregated = any(options[p.option].role != "shared" for p in pools)
    config = causal_lm_config(search.model, "serve")
    handoff = kv_cache_bytes(config, 1, targets.prompt, search.kv_dtype or _dtype(search.model))
    prefill = search.lowered[("prefill", 1)]
    return ServePlan(
        schema_version=SCHEMA_VERSION, kind="serve", model=prefill.name,
        backend=search.plans[keep[0]].backend, chips=chips, targets=targets,
        kv_dtype=search.kv_dtype or _dtype(search.model), options=options, pools=tuple(pools),
        requests_per_s=figures.requests_per_s, tokens_per_s=figures.tokens_per_s,
        ttft_s=figures.ttft_s, tpot_s=figures.tpot_s, limit=figures.limit,
        chosen=f"{status} over {len(meeting)} pipelines that meet the targets (CP-SAT)",
        handoff_bytes=handoff if disaggregated else 0,
        plans=tuple(search.plans[i] for i in keep)).sealed()
