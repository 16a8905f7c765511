"""Backend registry: names from the ``chipcut.backends`` entry-point group, loaded lazily.

Every backend, built-in or third-party, registers the same way: an entry point
whose object is a Backend or a zero-argument callable returning one. Listing
names imports nothing; a backend is imported and validated against the
Protocol when first asked for. A name ending in ``.toml`` (or an existing file)
is loaded as a spec file instead.
"""

from __future__ import annotations

import inspect
import warnings
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from chipcut.backends.loader import from_toml
from chipcut.backends.protocol import ALL_DRAM, Backend, Memory, Work
from chipcut.backends.schema import SpecWarning
from chipcut.backends.spec import LinkSpec
from chipcut.core.errors import ChipcutError

GROUP = "chipcut.backends"
METHODS = ("cost", "link", "link_time_s", "memory", "weights_resident", "dtypes", "peak_macs_per_s",
           "supports_dtype", "supports_op", "static_power_w", "describe", "to_dict")


def _source(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{ep.value} (from {dist.name if dist else 'unknown distribution'})"


@cache
def _entry_points() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=GROUP):
        # The same distribution seen twice (e.g. an editable install and a stale copy)
        # registers the same object: not a conflict.
        if ep.name in found and found[ep.name].value != ep.value:
            raise ChipcutError(
                f"backend name {ep.name!r} is registered twice: {_source(found[ep.name])} and "
                f"{_source(ep)}; uninstall one or rename its entry point")
        found[ep.name] = ep
    return found


def available() -> list[str]:
    """Registered backend names, sorted (nothing is imported)."""
    return sorted(_entry_points())


def clear_cache() -> None:
    """Forget loaded backends and re-read entry points (after installing a plug-in or calibrating)."""
    _entry_points.cache_clear()
    get_backend.cache_clear()


def _validate(obj: object, name: str | None, origin: str) -> Backend:
    """``obj`` if it implements chipcut.backends.protocol.Backend under ``name``; else a one-line error."""
    missing = [m for m in METHODS if not callable(getattr(obj, m, None))]
    if missing:
        raise ChipcutError(f"backend {origin} does not implement chipcut.backends.protocol.Backend: it lacks "
                           f"methods {', '.join(missing)}; see chipcut/backends/protocol.py")
    if not isinstance(getattr(obj, "name", None), str):
        raise ChipcutError(f"backend {origin} does not implement chipcut.backends.protocol.Backend: "
                           "it needs a str 'name'; see chipcut/backends/protocol.py")
    try:
        inspect.signature(obj.cost).bind(Work(0, 0, 0, 0, 0), ALL_DRAM)
    except TypeError:
        raise ChipcutError(f"backend {origin}: cost{inspect.signature(obj.cost)} must accept "
                           "(work: Work, placement: Placement = Placement()); see "
                           "backends/protocol.py") from None
    if name is not None and obj.name != name:
        raise ChipcutError(f"backend {origin} is registered as {name!r} but calls itself "
                           f"{obj.name!r}; make its spec name (or entry-point name) {name!r}")
    answers = ((obj.memory(), Memory, "memory()", "a protocol.Memory"),
               (obj.link(), LinkSpec, "link()", "a spec.LinkSpec"),
               (obj.dtypes(), tuple, "dtypes()", "a tuple of dtype names"))
    for value, kind, method, want in answers:
        if not isinstance(value, kind):
            raise ChipcutError(f"backend {origin}: {method} returned {type(value).__name__}; it must "
                               f"return {want}; see chipcut/backends/protocol.py")
    if not obj.dtypes():
        raise ChipcutError(f"backend {origin}: dtypes() is empty; list the dtypes the chip computes")
    return obj  # type: ignore[return-value]


def validate(obj: object, origin: str = "") -> Backend:
    """``obj`` checked against the Backend Protocol (for backends built in Python and passed
    directly); a one-line error naming what is missing."""
    return _validate(obj, None, origin or repr(getattr(obj, "name", obj)))


@cache
def get_backend(name: str) -> Backend:
    """A backend by registered name or by path to a spec TOML file.

    >>> get_backend("generic").spec.sram_bytes
    33554432
    """
    if name.endswith(".toml") or Path(name).is_file():
        backend = from_toml(name)
        if backend.name in _entry_points() and _installed_differs(backend):
            warnings.warn(SpecWarning(
                f"{name}: its chip is named {backend.name!r}, as an installed backend with other "
                f"figures; plans will name it so: give it a name of its own (name = "
                f"\"{backend.name}-custom\")"), stacklevel=2)
        return backend
    eps = _entry_points()
    if name not in eps:
        known = ", ".join(available()) or "none (is chipcut installed? pip install -e .)"
        raise ChipcutError(f"unknown backend {name!r}; known backends: {known}; or pass a spec .toml file")
    ep = eps[name]
    try:
        factory = ep.load()
        backend = factory() if callable(factory) and not hasattr(factory, "cost") else factory
    except ChipcutError:
        raise
    except Exception as e:  # noqa: BLE001 - a broken plug-in is the user's to fix
        raise ChipcutError(f"backend {name!r} ({_source(ep)}) failed to load: {type(e).__name__}: {e}") from None
    return _validate(backend, name, f"{name!r} ({_source(ep)})")


def _installed_differs(backend: Backend) -> bool:
    try:
        return get_backend(backend.name) != backend
    except ChipcutError:
        return True


def describe(name: str) -> str:
    """One line for ``chipcut backends``: the backend's own description of itself.

    >>> describe("tpu-v1")
    'tpu-v1: int8 45.88 TMAC/s; SRAM 28 MiB (activations only); DRAM 34 GB/s (8 GiB); link PCIe Gen3 x16 15.75 GB/s + 2 us; array 256x256 weight-stationary @ 700 MHz; fitted to Jouppi et al. ISCA 2017 Table 3 (MLP0 TOPS)'
    """
    return get_backend(name).describe()
