"""The closed vocabularies of a plan: topology, objective, what bounds a unit, solver status.

Each is a ``str`` enum, so a plan's JSON holds the plain words and a member compares equal to
its word (``Topology.RING == "ring"``).
"""

from __future__ import annotations

from enum import StrEnum

from chipcut.core.errors import ChipcutError


class Topology(StrEnum):
    """How the chips are wired (see chipcut.compiler.solver.evaluate for the routing)."""

    CHAIN = "chain"
    RING = "ring"
    SWITCH = "switch"


class Objective(StrEnum):
    """What the solver minimizes first: the pipeline's bottleneck, or batch-1 latency."""

    THROUGHPUT = "throughput"
    LATENCY = "latency"


class Bound(StrEnum):
    """What limits a unit's time on a chip."""

    COMPUTE = "compute"
    MEMORY = "memory"
    OVERHEAD = "overhead"


class Status(StrEnum):
    """A plan's solver status: proven optimal, feasible with a gap, or edited by hand."""

    OPTIMAL = "OPTIMAL"
    FEASIBLE = "FEASIBLE"
    EDITED = "EDITED"


def parse(kind: type[StrEnum], value: object, field: str) -> StrEnum:
    """``value`` as a member of ``kind``, or a one-line error naming the field and the choices."""
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(m.value for m in kind)
        raise ChipcutError(f"{field} = {value!r}: use one of {choices}") from None
