"""fuse: fusion groups in ``chipcut.group``, each one unit for the partitioner and the cost model.

A group has one anchor: a MAC op (conv, linear, matmul, attention) with its
epilogue (bias, batch norm, activation, residual add, views), or a reduction
(LayerNorm, RMSNorm's mean, softmax, pooling) with the chain of element ops that
feeds it and the element ops that follow it. An element op right after a MAC op is
that op's epilogue first; the reduction takes the chains no MAC op claimed. Rules:

- never two anchors in one group (a MAC op or a reduction always starts its own);
- never across a precision change (the activation dtype in ``chipcut.precision`` must match
  the anchor's);
- never a group that would create a cycle between groups (checked on the graph with
  groups contracted, before every join).

Intermediates inside a group never touch DRAM and are never cut.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.fx

from chipcut.core.aliasing import base_of, viewed, written
from chipcut.core.ir import FusionGroup, clear_group, get_precision, is_compute, set_group
from chipcut.passes.accounting import is_mac_op, node_work, op_name
from chipcut.passes.manager import register_pass

# op name -> kind, for ops whose kind the accounting families do not say.
KIND_OVERRIDES = {
    "batch_norm": "epilogue", "native_batch_norm": "epilogue",
    "_native_batch_norm_legit_no_training": "epilogue", "BatchNorm1d": "epilogue",
    "BatchNorm2d": "epilogue", "BatchNorm3d": "epilogue",
}
# accounting family -> fusion kind
FAMILY_KIND = {"pointwise": "epilogue", "layout": "epilogue", "reduction": "reduction", "none": "other"}


def kind(node: torch.fx.Node) -> str:
    """'anchor', 'reduction', 'epilogue' (element op or view) or 'other' for a compute node.
    An in-place write is an epilogue only on a tensor an op made (``relu_``, ``+=``)."""
    if is_mac_op(node):
        return "anchor"
    target = written(node)
    if target is not None and (viewed(target) is not None or base_of(target).op != "call_function"):
        return "other"  # a write into a slice, an input or a buffer: never an epilogue
    name = op_name(node)
    if name in KIND_OVERRIDES:
        return KIND_OVERRIDES[name]
    return FAMILY_KIND.get(node_work(node)[2], "other")


class _Groups:
    """Group membership with contracted-graph reachability for the cycle check.

    ``lo[g]`` and ``hi[g]`` are the first and last graph positions of g's members. A walk
    up the inputs only moves to earlier positions, and only a group's other members
    take it later, up to that group's ``hi``; so from a node before ``_floor(g)`` no walk
    reaches g, and the cycle check never looks there (it stays local instead of walking
    the whole graph above every join).
    """

    def __init__(self) -> None:
        self.position: dict[torch.fx.Node, int] = {}
        self.of: dict[torch.fx.Node, int] = {}
        self.members: list[list[torch.fx.Node]] = []
        self.anchor: list[torch.fx.Node] = []
        self.kind: list[str] = []
        self.lo: list[int] = []
        self.hi: list[int] = []

    def new(self, anchor: torch.fx.Node, k: str) -> int:
        self.members.append([anchor])
        self.anchor.append(anchor)
        self.kind.append(k)
        self.lo.append(self.place(anchor))
        self.hi.append(self.place(anchor))
        self.of[anchor] = len(self.members) - 1
        return self.of[anchor]

    def add(self, node: torch.fx.Node, g: int) -> None:
        self.members[g].append(node)
        self.of[node] = g
        self.lo[g] = min(self.lo[g], self.place(node))
        self.hi[g] = max(self.hi[g], self.place(node))

    def place(self, node: torch.fx.Node) -> int:
        """The position of ``node`` in its graph's order (read from the graph once)."""
        if node not in self.position:
            self.position.update((n, i) for i, n in enumerate(node.graph.nodes))
        return self.position[node]

    def _floor(self, g: int) -> int:
        """The first graph position from which a walk up inputs and across groups can reach g:
        lower it to the start of any group that spans it until none does."""
        floor = self.lo[g]
        while True:
            lowest = min(lo for lo, hi in zip(self.lo, self.hi, strict=True) if hi >= floor)
            if lowest == floor:
                return floor
            floor = lowest

    def reaches(self, g: int, targets: list[torch.fx.Node]) -> bool:
        """Whether group g reaches any of ``targets`` in the graph with every group contracted."""
        floor = self._floor(g)
        stack = [t for t in targets if self.place(t) >= floor]
        seen = set(stack)
        while stack:
            x = stack.pop()
            if self.of.get(x) == g:
                return True
            nxt = list(x.all_input_nodes)
            if x in self.of:
                nxt += self.members[self.of[x]]
            for y in nxt:
                if y not in seen and is_compute(y) and self.place(y) >= floor:
                    seen.add(y)
                    stack.append(y)
        return False

    def can_join(self, node: torch.fx.Node, g: int) -> bool:
        """Joining keeps groups acyclic: no outside input of ``node`` is reachable from g."""
        if _activations(node) != _activations(self.anchor[g]):
            return False
        outside = [p for p in node.all_input_nodes if is_compute(p) and self.of.get(p) != g]
        return not outside or not self.reaches(g, outside)


def _activations(node: torch.fx.Node) -> str | None:
    """The dtype a node's output is stored in, where quantize chose one: a group never changes
    it inside (the weights of its anchor may be narrower, as int4 ones are)."""
    precision = get_precision(node)
    return precision.activations if precision is not None else None


def _grow_forward(gm: torch.fx.GraphModule, groups: _Groups, kinds: dict, allowed: set[str]) -> None:
    """Element ops join the group of an input, the latest-computed one first (a residual add
    joins the branch that finishes last and reads the skip connection)."""
    for node in gm.graph.nodes:
        if node in groups.of or kinds.get(node) != "epilogue":
            continue
        for p in sorted(node.all_input_nodes, key=groups.place, reverse=True):
            g = groups.of.get(p)
            if g is not None and groups.kind[g] in allowed and groups.can_join(node, g):
                groups.add(node, g)
                break


def _absorb_backward(groups: _Groups, g: int, kinds: dict) -> None:
    """Pull in the chain of element ops feeding a reduction (those used only inside the group)."""
    changed = True
    while changed:
        changed = False
        for member in list(groups.members[g]):
            for p in member.all_input_nodes:
                if (p in groups.of or kinds.get(p) != "epilogue"
                        or any(groups.of.get(u) != g for u in p.users)
                        or not p.all_input_nodes):
                    continue
                if groups.can_join(p, g):
                    groups.add(p, g)
                    changed = True


def fusion_groups(gm: torch.fx.GraphModule) -> list[list[torch.fx.Node]]:
    """The groups of ``gm`` as node lists in graph order, anchors first."""
    kinds = {n: kind(n) for n in gm.graph.nodes if is_compute(n)}
    groups = _Groups()
    for node in gm.graph.nodes:
        if kinds.get(node) == "anchor":
            groups.new(node, "anchor")
    _grow_forward(gm, groups, kinds, {"anchor"})
    for node in gm.graph.nodes:
        if kinds.get(node) == "reduction" and node not in groups.of:
            _absorb_backward(groups, groups.new(node, "reduction"), kinds)
    _grow_forward(gm, groups, kinds, {"reduction"})
    return [[m[0]] + sorted(m[1:], key=groups.place) for m in groups.members]


@register_pass("fuse")
@dataclass(frozen=True)
class Fuse:
    """Annotate every compute node that belongs to a fusion group with ``chipcut.group``.

    >>> gm = Fuse()(gm)  # doctest: +SKIP
    """

    def __call__(self, gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
        for node in gm.graph.nodes:
            clear_group(node)  # a graph fused before is fused afresh
        for members in fusion_groups(gm):
            anchor = members[0]
            for node in members:
                set_group(node, FusionGroup(anchor.name, anchor.name))
        return gm
