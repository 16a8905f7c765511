"""Partition units: compute nodes grouped so the solver never cuts where no cut makes sense.

A fusion group (``chipcut.group``) is one unit; a node that does no work
(view, reshape, getitem) joins its producer's unit when all its inputs come
from that one unit, which cannot create a cycle; a work-free node with no
inputs (arange, a constant) joins its only consumer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.fx
from chipcut.core.ir import get_cost, get_group, is_compute


@dataclass(frozen=True)
class UnitGraph:
    """units[u]: node names in graph order; tensors: (producer unit, consumer units, bytes, node)."""

    units: tuple[tuple[str, ...], ...]
    tensors: tuple[tuple[int, tuple[int, ...], int, str], ...]
    unit_of: dict[str, int]


def _free(node: torch.fx.Node) -> bool:
    cost = get_cost(node)
    return cost.macs == 0 and cost.elem_ops == 0


class _Sets:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, keep: str, other: str) -> None:
        self.parent[self.find(other)] = self.find(keep)


def build_units(gm: torch.fx.GraphModule) -> UnitGraph:
    """Group the compute nodes of ``gm`` into units, in a topological order of units."""
    compute = [n for n in gm.graph.nodes if is_compute(n)]
    sets = _Sets()
    for node in compute:
        sets.parent[node.name] = node.name
    group_root: dict[str, str] = {}
    for node in compute:
        group = get_group(node)
        if group is not None:
            if group.name in group_root:
                sets.union(group_root[group.name], node.name)
            else:
                group_root[group.name] = node.name
        if not _free(node) or group is not None:
            continue
        producers = {sets.find(p.name) for p in node.all_input_nodes if is_compute(p)}
        if len(producers) == 1:
            sets.union(producers.pop(), node.name)
    for node in reversed(compute):
        producers = [p for p in node.all_input_nodes if is_compute(p)]
        users = {sets.find(u.name) for u in node.users if is_compute(u)}
        if _free(node) and not producers and len(users) == 1 and get_group(node) is None:
            sets.union(users.pop(), node.name)
    roots: dict[str, int] = {}
    members: list[list[str]] = []
    unit_of: dict[str, int] = {}
    for node in compute:
        root = sets.find(node.name)
        if root not in roots:
            roots[root] = len(members)
            members.append([])
        members[roots[root]].append(node.name)
        unit_of[node.name] = roots[root]
    order = _topological(members, compute, unit_of)
    remap = {old: new for new, old in enumerate(order)}
    units = tuple(tuple(members[old]) for old in order)
    unit_of = {name: remap[u] for name, u in unit_of.items()}
    tensors = []
    for node in compute:
        consumers = sorted({unit_of[u.name] for u in node.users if is_compute(u)} - {unit_of[node.name]})
        if consumers:
            tensors.append((unit_of[node.name], tuple(consumers), get_cost(node).out_bytes, node.name))
    return UnitGraph(units, tuple(tensors), unit_of)


def _topological(members: list[list[str]], compute: list[torch.fx.Node],
                 unit_of: dict[str, int]) -> list[int]:
    """Units in a topological order, ties broken by first appearance (stable, deterministic)."""
    import heapq

    succ: list[set[int]] = [set() for _ in members]
    indeg = [0] * len(members)
    for node in compute:
        for user in node.users:
            if is_compute(user):
                a, b = unit_of[node.name], unit_of[user.name]
                if a != b and b not in succ[a]:
                    succ[a].add(b)
                    indeg[b] += 1
    ready = [u for u in range(len(members)) if indeg[u] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        u = heapq.heappop(ready)
        order.append(u)
        for v in succ[u]:
            indeg[v] -= 1
            if indeg[v] == 0:
                heapq.heappush(ready, v)
    if len(order) != len(members):
        raise AssertionError("unit graph has a cycle: a fusion group spans a path through another unit")
    return order
