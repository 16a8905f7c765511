"""Backend registry: names from the ``chipcut.backends`` entry-point group, loaded lazily.

Every backend, built-in or third-party, registers the same way: an entry point
whose object is a zero-argument callable returning a Backend. A name ending in
``.toml`` (or an existing file) is loaded as a roofline spec instead.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from backends.protocol import Backend
from backends.roofline import from_toml
from backends.spec import ChipSpec
from compiler.errors import ChipcutError

GROUP = "chipcut.backends"


def _source(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{ep.value} (from {dist.name if dist else 'unknown distribution'})"


@cache
def _entry_points() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=GROUP):
        if ep.name in found and found[ep.name].value != ep.value:
            raise ChipcutError(
                f"backend name {ep.name!r} is registered twice: {_source(found[ep.name])} and "
                f"{_source(ep)}; uninstall one or rename its entry point")
        found[ep.name] = ep
    return found


def available() -> list[str]:
    """Registered backend names, sorted (nothing is imported)."""
    return sorted(_entry_points())


def _validate(obj: object, origin: str) -> Backend:
    missing = [m for m in ("cost", "link_time_s", "supports_dtype") if not callable(getattr(obj, m, None))]
    spec = getattr(obj, "spec", None)
    if missing or not isinstance(spec, ChipSpec) or not isinstance(getattr(obj, "name", None), str):
        what = f"methods {', '.join(missing)}" if missing else "a ChipSpec 'spec' and a str 'name'"
        raise ChipcutError(f"backend {origin} does not implement backends.protocol.Backend: it lacks "
                           f"{what}; see backends/protocol.py")
    return obj  # type: ignore[return-value]


@cache
def get_backend(name: str) -> Backend:
    """A backend by registered name or by path to a spec TOML file.

    >>> get_backend("generic").spec.sram_bytes
    33554432
    """
    if name.endswith(".toml") or Path(name).is_file():
        return from_toml(name)
    eps = _entry_points()
    if name not in eps:
        known = ", ".join(available()) or "none (is chipcut installed? pip install -e .)"
        raise ChipcutError(f"unknown backend {name!r}; known backends: {known}; or pass a spec .toml file")
    ep = eps[name]
    try:
        factory = ep.load()
    except Exception as e:  # noqa: BLE001 - a broken plug-in is the user's to fix
        raise ChipcutError(f"backend {name!r} ({_source(ep)}) failed to load: {type(e).__name__}: {e}") from None
    backend = factory() if callable(factory) and not hasattr(factory, "cost") else factory
    return _validate(backend, f"{name!r} ({_source(ep)})")
