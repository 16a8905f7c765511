"""The closed vocabularies of a plan: topology, objective, what bounds a unit, solver status,
and the op classes a cost model rates separately.

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


class OpClass(StrEnum):
    """The kind of kernel a node's work runs as; a spec may give each its own compute efficiency
    (``[compute] efficiency``). Classified by ``chipcut.passes.op_classes``."""

    DENSE = "dense"  # convolution with groups = 1 on a large map; ops with MACs not named below
    GEMM = "gemm"  # linear, matmul, bmm, einsum, grouped (expert) GEMMs
    DEPTHWISE = "depthwise"  # depthwise and grouped convolution
    SMALL_MAP = "small-map"  # convolution with groups = 1 and few output positions
    NARROW = "narrow"  # convolution with groups = 1 and few input or output channels per position
    ATTENTION = "attention"  # scaled dot-product attention
    POOL = "pool"  # windowed max and average pooling (adaptive pooling is a reduction)
    ELEMENTWISE = "elementwise"  # pointwise, norms, softmax, reductions, pad, copies, the rest


# A class a spec does not rate runs at its parent's efficiency when the spec rates that one: a
# narrow conv or a GEMM is dense work, where nobody measured the difference (on one x86 thread,
# in a model's sequence of layers, BERT-base's GEMMs run ~10% below ResNet-50's 3x3 convs).
PARENT_CLASS: dict[OpClass, OpClass] = {OpClass.NARROW: OpClass.DENSE, OpClass.GEMM: OpClass.DENSE}


class Status(StrEnum):
    """A plan's solver status: proven optimal, feasible with a gap, edited by hand, or costed
    again by another chipcut version than the one that solved it (so no longer proven)."""

    OPTIMAL = "OPTIMAL"
    FEASIBLE = "FEASIBLE"
    EDITED = "EDITED"
    RECOSTED = "RECOSTED"


def parse(kind: type[StrEnum], value: object, field: str) -> StrEnum:
    """``value`` as a member of ``kind``, or a one-line error naming the field and the choices."""
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(m.value for m in kind)
        raise ChipcutError(f"{field} = {value!r}: use one of {choices}") from None
