"""The text of a profile: where and how it was measured, the units' sum beside the whole graph,
and the slowest units."""

from __future__ import annotations

from chipcut.compiler.plan.profile import Profile
from chipcut.core.fmt import seconds

SHOWN = 8  # slowest units listed


def render(profile: Profile) -> str:
    """A few lines for ``chipcut profile``.

    >>> from chipcut.compiler.plan.profile import PROFILE_SCHEMA_VERSION, UnitTime
    >>> p = Profile(PROFILE_SCHEMA_VERSION, "mlp", "f", "default", "cpu", "cpu", "x86_64", 1, 2,
    ...             10, "thread_time", 3e-5, (UnitTime("linear+relu", "linear", 4096, 128,
    ...             1.2e-5, 1.1e-5, 1.5e-5), UnitTime("view", "view", 0, 0, 0.0, 0.0, 0.0)))
    >>> print(render(p), end="")
    mlp: 2 units (1 timed) on cpu (x86_64), median of 10 passes by thread_time
    units sum 12 us; the whole graph in one call 30 us (units / whole 0.40)
        12 us  linear+relu (linear)
    """
    timed = [u for u in profile.units if u.time_s > 0]
    total = sum(u.time_s for u in profile.units)
    ratio = f" (units / whole {total / profile.model_s:.2f})" if profile.model_s > 0 else ""
    lines = [f"{profile.model}: {len(profile.units)} units ({len(timed)} timed) on "
             f"{profile.device} ({profile.device_name}), median of {profile.repeats} passes by "
             f"{profile.clock}",
             f"units sum {seconds(total)}; the whole graph in one call "
             f"{seconds(profile.model_s)}{ratio}"]
    for u in sorted(timed, key=lambda u: -u.time_s)[:SHOWN]:
        lines.append(f"  {seconds(u.time_s):>7}  {_short(u.key)} ({u.op})")
    return "\n".join(lines) + "\n"


def _short(key: str, width: int = 60) -> str:
    return key if len(key) <= width else key[:width - 3] + "..."
