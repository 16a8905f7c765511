"""In-place writes the data edges do not order: which nodes must share a partition unit.

A captured graph keeps in-place ops (``copy_``, ``fill_``, ``masked_fill_``, ``index_put_``,
``relu_``, ``add.out``). Across a cut each stage holds its own copy of a tensor, so a write
on one stage is seen only by what reads that copy: the write's own result, or the written
tensor passed on from that stage. Most writes are safe to cut around (``x = conv(x).relu_()``,
``x += layer(x)``: every later read goes through a data edge from the write). Three patterns
are not, and each joins the nodes named into one unit, with every node on a path between
them (a unit must stay convex):

- a read after a write, through an alias the write did not make (``y[:, 1:] = x`` and then
  a read of ``y``): the reader, that alias, the write and the tensor's base;
- two writes to one tensor that no data edge orders (``y[:, :2] = 0`` then ``y.relu_()``):
  both writes and the base;
- a read before a write that does not lead to the write (``a = y * 5`` then
  ``torch.add(x, 1, out=y)``): the reader and the write.

Which node writes or views which is :mod:`chipcut.core.aliasing`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.fx

from chipcut.core.aliasing import base_of, viewed, written
from chipcut.core.ir import get_kv


@dataclass
class _Tensor:
    """One written tensor: its base, its alias nodes (views and writes) and its writes."""

    base: torch.fx.Node
    aliases: list[torch.fx.Node] = field(default_factory=list)
    writes: list[torch.fx.Node] = field(default_factory=list)


def _source(node: torch.fx.Node) -> torch.fx.Node | None:
    return written(node) or viewed(node)


def _made_by(node: torch.fx.Node, write: torch.fx.Node) -> bool:
    """``node`` is ``write``'s result or a view taken of it (through views only)."""
    while node is not write:
        node = viewed(node)
        if node is None:
            return False
    return True


class _Paths:
    """Whether one compute node leads to another, within the nodes between them."""

    def __init__(self, position: dict[torch.fx.Node, int]) -> None:
        self.position = position

    def leads(self, a: torch.fx.Node, b: torch.fx.Node) -> bool:
        if a not in self.position or b not in self.position:
            return False
        end, seen, frontier = self.position[b], {a}, [a]
        while frontier:
            for user in frontier.pop().users:
                if user is b:
                    return True
                if user in self.position and self.position[user] < end and user not in seen:
                    seen.add(user)
                    frontier.append(user)
        return False

    def hull(self, members: set[torch.fx.Node]) -> set[torch.fx.Node]:
        """``members`` and every compute node on a path between two of them."""
        low = min(self.position[m] for m in members)
        high = max(self.position[m] for m in members)
        below, frontier = set(members), list(members)
        while frontier:
            for user in frontier.pop().users:
                if user in self.position and self.position[user] <= high and user not in below:
                    below.add(user)
                    frontier.append(user)
        above, frontier = set(members), list(members)
        while frontier:
            for p in frontier.pop().all_input_nodes:
                if p in self.position and self.position[p] >= low and p not in above:
                    above.add(p)
                    frontier.append(p)
        return members | (below & above)


def _tensors(compute: list[torch.fx.Node]) -> list[_Tensor]:
    by_base: dict[torch.fx.Node, _Tensor] = {}
    for node in compute:
        if _source(node) is not None:
            t = by_base.setdefault(base_of(node), _Tensor(base_of(node)))
            t.aliases.append(node)
            if written(node) is not None:
                t.writes.append(node)
    return [t for t in by_base.values() if t.writes and get_kv(t.base) is None]


def _hazards(t: _Tensor, position: dict[torch.fx.Node, int], paths: _Paths
             ) -> list[set[torch.fx.Node]]:
    base = {t.base} if t.base in position else set()
    out = [base | {a, b} for a, b in zip(t.writes, t.writes[1:], strict=False)
           if not paths.leads(a, b)]
    alias_set = set(t.aliases) | {t.base}
    for via in sorted(alias_set, key=lambda n: position.get(n, -1)):
        for reader in via.users:
            if reader not in position or reader in alias_set:
                continue
            at = position[reader]
            before = [w for w in t.writes if position[w] < at]
            after = [w for w in t.writes if position[w] > at]
            if before and not _made_by(via, before[-1]):
                out.append(base | {before[-1], reader} | ({via} if via in position else set()))
            if after and not paths.leads(reader, after[0]):
                out.append({reader, after[0]})
    return out


def alias_groups(compute: list[torch.fx.Node]) -> list[set[str]]:
    """Names of nodes that must share a unit (see the module docstring), one set per hazard.
    Caches updated in place (``chipcut.kv``) are left to the caller."""
    position = {n: i for i, n in enumerate(compute)}
    paths = _Paths(position)
    groups = [g for t in _tensors(compute) for g in _hazards(t, position, paths)]
    while True:  # groups that share a node are one unit: its hull must be convex too
        merged: list[set[torch.fx.Node]] = []
        for group in groups:
            group = set(group)
            for other in [m for m in merged if m & group]:
                merged.remove(other)
                group |= other
            merged.append(group)
        hulls = [paths.hull(g) for g in merged]
        if hulls == merged:
            return [{n.name for n in g} for g in sorted(merged, key=lambda g: min(
                position[n] for n in g))]
        groups = hulls


__all__ = ["alias_groups"]
