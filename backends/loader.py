"""Spec to backend: build the cost model a spec calls for (systolic when it has an [array],
profiled when its dict carries measured unit times)."""

from __future__ import annotations

from pathlib import Path

from chipcut.backends.profiled import PROFILE_TABLE, from_table
from chipcut.backends.protocol import Backend
from chipcut.backends.roofline import RooflineBackend
from chipcut.backends.schema import load_spec, spec_from_dict
from chipcut.backends.spec import ChipSpec
from chipcut.backends.systolic import SystolicBackend


def from_spec(spec: ChipSpec) -> RooflineBackend:
    """A SystolicBackend for specs with an array, else the generic RooflineBackend."""
    return SystolicBackend(spec) if spec.array is not None else RooflineBackend(spec)


def from_toml(path: str | Path) -> RooflineBackend:
    """Load, validate and build the backend described by a spec TOML file."""
    return from_spec(load_spec(path))


def from_dict(data: dict, origin: str) -> RooflineBackend:
    """Validate and build the backend of a spec given as a dict (as ``to_dict`` writes it)."""
    return from_spec(spec_from_dict(data, origin))


def rebuild(data: dict, origin: str) -> Backend:
    """The backend a ``to_dict`` result describes: a spec, or a spec with a ``profile`` table of
    measured unit times (a ProfiledBackend over that spec)."""
    if isinstance(data, dict) and PROFILE_TABLE in data:
        spec = {k: v for k, v in data.items() if k != PROFILE_TABLE}
        return from_table(from_dict(spec, origin), data[PROFILE_TABLE], origin)
    return from_dict(data, origin)
