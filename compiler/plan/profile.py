"""Profile: measured seconds of every partition unit of a lowered graph on one device.

A frozen, JSON-serializable value with its own ``schema_version``, written by ``chipcut
profile`` and read by ``chipcut compile --profile``. It records the lowered graph's
``fingerprint``, so it is only ever applied to the graph it was measured on, and each unit by
its stable key (``chipcut.compiler.lowering.costing.unit_key``). Times are seconds per call at
batch 1 (the example inputs' batch), the median over the repeats.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import MISSING, asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from chipcut.backends.protocol import Work
from chipcut.compiler.lowering.costing import is_free
from chipcut.core.errors import ChipcutError
from chipcut.core.files import json_text

PROFILE_SCHEMA_VERSION = 1
REMEDY = "profile this model again with chipcut profile --out"


@dataclass(frozen=True)
class UnitTime:
    """One unit: its key, anchor op and work, and the seconds of one call (0 when it does no
    work): ``time_s`` the median over the repeats, ``min_s`` and ``max_s`` their spread."""

    key: str
    op: str
    macs: int
    elem_ops: int
    time_s: float
    min_s: float
    max_s: float


@dataclass(frozen=True)
class Profile:
    """Measured unit times. ``Profile.from_json(p.to_json(path)) == p`` exactly.

    ``clock``: what timed the calls ("thread_time": CPU time of the one thread running them,
    blind to other processes' load; "perf_counter": wall time, for several threads;
    "cuda_events"); ``model_s``: the whole lowered graph in one call, timed the same way,
    beside which the units' sum is read.
    """

    schema_version: int
    model: str
    fingerprint: str  # the lowered graph's (chipcut.compiler.lowering.summary.fingerprint)
    passes: str  # the pipeline the graph was lowered with
    backend: str  # the backend the passes ran for (quantize and fuse depend on it)
    device: str  # "cpu" or "cuda"
    device_name: str  # the processor, thread count and torch version, in words
    threads: int  # torch threads the units ran with
    warmup: int  # untimed repeats before the timed ones
    repeats: int
    clock: str
    model_s: float
    units: tuple[UnitTime, ...]
    load: int = 0  # other processes running the graph while the units were timed
    refined: str = ""  # how measured runs rescaled the times ("" when they are as timed)
    link_scale: float = 1.0  # measured / predicted link time in the runs that refined it

    def times_s(self) -> dict[str, float]:
        """Seconds by unit key."""
        return {u.key: u.time_s for u in self.units}

    def ops(self) -> dict[str, int]:
        """MACs + element ops by unit key: what each measured time did."""
        return {u.key: u.macs + u.elem_ops for u in self.units}

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The profile as JSON text; with ``path``, also written atomically to that file."""
        return json_text(self.to_dict(), path)

    @classmethod
    def from_json(cls, source: str | os.PathLike) -> Profile:
        """Read a profile file (a path, or JSON text); a bad one is a one-line error."""
        text, where = str(source), "profile JSON"
        if not text.lstrip().startswith("{"):
            where = f"profile {source}"
            try:
                text = Path(source).read_text()
            except (OSError, UnicodeDecodeError) as e:
                reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
                raise ChipcutError(f"cannot read {where}: {reason}; give the file chipcut "
                                   "profile --out wrote") from None
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            raise ChipcutError(f"{where} is not valid JSON; {REMEDY}") from None
        version = data.get("schema_version") if isinstance(data, dict) else None
        if version != PROFILE_SCHEMA_VERSION:
            raise ChipcutError(f"{where} has schema_version {version!r}, this chipcut reads "
                               f"{PROFILE_SCHEMA_VERSION}; {REMEDY}")
        units = data.get("units")
        if not isinstance(units, list):
            raise ChipcutError(f"{where}: field units must be a list; {REMEDY}")
        top = _fields(cls, data, where, skip="units")
        for name, low, words in (("threads", 1, ">= 1"), ("repeats", 1, ">= 1"),
                                 ("link_scale", 1e-300, "> 0")):
            if name in top and top[name] < low:
                raise ChipcutError(f"{where}: field {name} = {top[name]!r} must be {words}; "
                                   f"{REMEDY}")
        return cls(**top, units=tuple(UnitTime(**_fields(UnitTime, u, f"{where}: units[{i}]"))
                                      for i, u in enumerate(units)))

    def check(self, fingerprint: str, works: list[Work], passes: str, threads: int,
              where: str = "the profile") -> None:
        """Refuse a profile of another graph, at another thread count, or lacking a unit of
        ``works`` that does work; each a one-line error that says what to run."""
        if self.fingerprint != fingerprint:
            raise ChipcutError(f"{where} was measured on another graph (fingerprint "
                               f"{self.fingerprint}, this model {fingerprint}): another model, "
                               "input shapes or dtypes; profile this model with the --input "
                               "it is compiled with")
        if self.threads != threads:
            raise ChipcutError(f"{where} was measured with {self.threads} thread(s), this "
                               f"compile asks for {threads}; give --threads {self.threads}, or "
                               f"profile again with --threads {threads}")
        times = self.times_s()
        missing = [w.key for w in works if not is_free(w) and w.key not in times]
        if missing:
            hint = (f" (it was lowered with passes {self.passes or 'none'!r}, this compile "
                    f"with {passes or 'none'!r})"
                    if self.passes != passes else "")
            raise ChipcutError(f"{where} has no time for unit {missing[0]!r} ({len(missing)} "
                               f"unit(s) missing){hint}; profile with the --passes and --backend "
                               "of this compile")


def refine(profile: Profile, plan: Any, measured: Any) -> Profile:
    """``profile`` with each stage's unit times scaled to what ``measured`` (a run of ``plan``,
    a plan of the same graph) found that stage took: the times' sum over a stage's units
    becomes the stage's measured busy time, their proportions stay.

    A unit timed in the whole graph's sequence runs in a stage beside fewer others, with
    other data in cache; the run says by how much, per stage, and a plan compiled from the
    refined profile balances what the stages take when they run. Units of stages the run did
    not measure keep their times."""
    measured.check_plan(plan, "the measured run")
    if (measured.threads, measured.device) != (profile.threads, profile.device):
        raise ChipcutError(f"the measured run used {measured.threads} thread(s) per stage on "
                           f"{measured.device}, the profile {profile.threads} on {profile.device}; "
                           f"run the plan with --threads {profile.threads} on {profile.device}, or "
                           "profile again as the run ran")
    staged = {s.chip for s in plan.stages if s.nodes}
    ran = [m.chip for m in measured.stages]
    if sorted(ran) != sorted(staged):
        raise ChipcutError(f"the measured run has stages on chips {ran}, the plan on "
                           f"{sorted(staged)}; give the measured file chipcut run --out wrote "
                           "for this plan")
    slow = [m for m in measured.stages if not m.busy_s > 0]
    if slow:
        raise ChipcutError(f"the measured run gives chip {slow[0].chip} a busy time of "
                           f"{slow[0].busy_s!r} s; a stage that ran takes > 0 s: measure again")
    if plan.fingerprint != profile.fingerprint:
        raise ChipcutError(f"the plan was compiled from another graph (fingerprint "
                           f"{plan.fingerprint}) than the profile (fingerprint "
                           f"{profile.fingerprint}); refine a profile with a run of a plan of "
                           "the same model, --input and --passes")
    stage_of = {name: s.chip for s in plan.stages for name in s.nodes}
    busy = {m.chip: m.busy_s for m in measured.stages}
    chips = [next((stage_of[n] for n in u.key.split("+") if n in stage_of), None)
             for u in profile.units]
    timed: dict[int, float] = {}
    for u, chip in zip(profile.units, chips, strict=True):
        if chip in busy:
            timed[chip] = timed.get(chip, 0.0) + u.time_s
    factor = {c: busy[c] / t for c, t in timed.items() if t > 0}
    units = tuple(UnitTime(u.key, u.op, u.macs, u.elem_ops, u.time_s * factor.get(c, 1.0),
                           u.min_s * factor.get(c, 1.0), u.max_s * factor.get(c, 1.0))
                  for u, c in zip(profile.units, chips, strict=True))
    scaled = ", ".join(f"chip {c} x{f:.3f}" for c, f in sorted(factor.items()))
    # Links: the median of measured / predicted over the links the run timed (the plan's link
    # model already carries any earlier scale, so the new one multiplies it).
    links = sorted(x.time_s / x.predicted_s for x in measured.links
                   if x.predicted_s > 0 and x.time_s > 0)
    link = links[len(links) // 2] if links else 1.0
    note = (f"scaled to a measured run of plan {measured.plan_hash} ({scaled}"
            + (f"; links x{link:.3f}" if links else "") + ")")
    return replace(profile, units=units, link_scale=profile.link_scale * link,
                   refined="; ".join(filter(None, (profile.refined, note))))


def _fields(cls: type, data: Any, where: str, skip: str = "") -> dict:
    """The scalar fields of ``cls`` from ``data``, each checked against its type."""
    if not isinstance(data, dict):
        raise ChipcutError(f"{where} must be an object; {REMEDY}")
    out = {}
    for f in fields(cls):
        if f.name == skip:
            continue
        if f.name not in data and f.default is not MISSING:  # written before the field was
            continue
        if f.name not in data:
            raise ChipcutError(f"{where}: field {f.name} is missing; {REMEDY}")
        value, kind = data[f.name], {"str": str, "int": int, "float": float}[f.type]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ChipcutError(f"{where}: field {f.name} = {value!r} must be {f.type}; {REMEDY}")
        if kind is not str and not (math.isfinite(value) and value >= 0):
            raise ChipcutError(f"{where}: field {f.name} = {value!r} must be a finite number "
                               f">= 0; {REMEDY}")
        out[f.name] = value
    return out


__all__ = ["Profile", "UnitTime", "PROFILE_SCHEMA_VERSION"]
