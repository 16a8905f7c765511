"""The files a compile reads beside the model: a profile, and for ``--refine`` a plan and a
measured run of it; each loaded by its own kind's reader, after a file of another kind given
in its place is named as what it is."""

from __future__ import annotations

import json
import os

from chipcut.compiler.plan.measured import Measured
from chipcut.compiler.plan.model import Plan
from chipcut.compiler.plan.profile import Profile
from chipcut.compiler.plan.profile import refine as refine_profile
from chipcut.core.errors import ChipcutError


def load_profile(profile: str | os.PathLike | Profile) -> tuple[Profile, str]:
    """(the profile, the name its backend takes: the file's name, or the profiled model's)."""
    if isinstance(profile, Profile):
        return profile, profile.model
    _check_kind(profile, "profile", "chipcut profile --out")
    return Profile.from_json(os.fspath(profile)), os.path.basename(os.fspath(profile))


def refine(profile: str | os.PathLike | Profile, plan: str | os.PathLike | Plan,
           measured: str | os.PathLike | Measured) -> Profile:
    """``profile`` (a Profile or its file) with each stage's unit times scaled to what the
    ``measured`` run (``chipcut.run``, or ``chipcut run --out``) of ``plan`` found that stage
    took (see :func:`chipcut.compiler.plan.profile.refine`): compile with it to balance the
    stages as they run.

    >>> refined = chipcut.refine(prof, plan, chipcut.run(plan, model, inputs))  # doctest: +SKIP
    >>> plan = chipcut.compile(model, inputs, chips=2, backend="cpu", profile=refined)  # doctest: +SKIP
    """
    for given, role, want in ((profile, "profile", "chipcut profile --out"),
                              (plan, "plan", "chipcut compile --out"),
                              (measured, "measured run", "chipcut run --out")):
        _check_kind(given, role, want)
    prof, _ = load_profile(profile)
    plan = plan if isinstance(plan, Plan) else Plan.from_json(os.fspath(plan))
    measured = (measured if isinstance(measured, Measured)
                else Measured.from_json(os.fspath(measured), plan))
    return refine_profile(prof, plan, measured)


def _check_kind(given: object, role: str, want: str) -> None:
    """Refuse a chipcut file of another kind given as ``role`` (e.g. a measured file where the
    plan goes), naming both, by the fields only each kind has; anything unreadable is left
    to that kind's own loader."""
    if not isinstance(given, (str, os.PathLike)):
        return
    try:
        with open(given) as f:
            data = json.loads(f.read())
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return
    if not isinstance(data, dict):
        return
    found = ("measured run" if "plan_hash" in data else
             "profile" if "units" in data and "fingerprint" in data and "stages" not in data else
             "plan" if "stages" in data and "solver" in data else None)
    if found is not None and found != role:
        raise ChipcutError(f"{os.fspath(given)} is a {found} file, given as the {role}; give "
                           f"the file {want} wrote there")


__all__ = ["load_profile", "refine"]
