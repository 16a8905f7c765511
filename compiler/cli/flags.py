"""Command-line quantities: a flag's text with its unit, parsed to a finite value > 0."""

from __future__ import annotations

from chipcut.backends import quantity as q
from chipcut.core.errors import ChipcutError


def positive(flag: str, text: str, kind: q.Kind, must: str, unit_required: bool = False) -> float:
    """``text`` of ``flag`` in ``kind``'s units, finite and > 0; else one line ending in ``must``
    (what it must be, with an example). ``unit_required``: a bare number is refused too."""
    if unit_required and not any(c.isalpha() for c in text):
        raise ChipcutError(f"{flag} {text!r}: give a unit, e.g. {flag} {text.strip()}ms or "
                           f"{flag} {text.strip()}s")
    try:
        value = q.parse(text, kind)
    except ValueError as e:
        raise ChipcutError(f"{flag} {text!r}: {e}") from None
    if not 0 < value < float("inf"):
        raise ChipcutError(f"{flag} {text!r}: {must}")
    return value
