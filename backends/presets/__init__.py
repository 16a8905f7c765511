"""Built-in chip presets: one TOML data file per chip here, each a zero-argument backend factory.

The ``chipcut.backends`` entry points name factories in this module, e.g.
``"tpu-v1" = "chipcut.backends.presets:tpu_v1"``: attribute ``tpu_v1`` loads ``tpu-v1.toml``.
``cpu`` is always the shipped ``cpu.toml``; a spec fitted by ``chipcut calibrate`` is a file of its
own, used only where it is passed (``--backend cpu-calibrated.toml``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from chipcut.backends.loader import from_toml
from chipcut.backends.roofline import RooflineBackend

PRESETS_DIR = Path(__file__).parent


def preset_names() -> list[str]:
    """Names of the shipped preset files, e.g. ["coral-edge-tpu", "cpu", ...]."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.toml"))


def load(name: str) -> RooflineBackend:
    """The backend of preset ``name`` ("tpu-v1"), validated."""
    return from_toml(PRESETS_DIR / f"{name}.toml")


def __getattr__(attr: str) -> Callable[[], RooflineBackend]:
    name = attr.replace("_", "-")
    if not (PRESETS_DIR / f"{name}.toml").is_file():
        raise AttributeError(f"module {__name__!r} has no preset {attr!r}; presets: "
                             f"{', '.join(preset_names())}")

    def factory() -> RooflineBackend:
        return load(name)

    factory.__name__ = factory.__qualname__ = attr
    factory.__doc__ = f"The {name} preset (backends/presets/{name}.toml)."
    return factory
