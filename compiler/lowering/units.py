"""Partition units: compute nodes grouped so the solver never cuts where no cut makes sense.

A fusion group (``chipcut.group``) is one unit; a node that does no work
(view, reshape, getitem) joins its producer's unit when all its inputs come
from that one unit, which cannot create a cycle; a work-free node with no
inputs (arange, a constant) joins its only consumer; the update of a KV cache
joins the attention that reads the cache, so the cache and its reader share a chip; a tensor
written in place and read other than through the write's result shares a unit with its
writes and readers (:mod:`chipcut.compiler.lowering.aliases`).
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import torch.fx

from chipcut.compiler.lowering.aliases import alias_groups
from chipcut.core.aliasing import base_of, written
from chipcut.core.ir import get_cost, get_group, is_compute, state_written


@dataclass(frozen=True)
class UnitGraph:
    """units[u]: node names in graph order; tensors: (producer unit, consumer units, bytes, node)."""

    units: tuple[tuple[str, ...], ...]
    tensors: tuple[tuple[int, tuple[int, ...], int, str], ...]
    unit_of: dict[str, int]


def _free(node: torch.fx.Node) -> bool:
    cost = get_cost(node)
    return cost.macs == 0 and cost.elem_ops == 0


def build_units(gm: torch.fx.GraphModule) -> UnitGraph:
    """Group the compute nodes of ``gm`` into units, in a topological order of units."""
    compute = [n for n in gm.graph.nodes if is_compute(n)]
    # Only which names share a set matters, never which one is its root: units are numbered
    # and listed by their members' graph order below.
    sets = nx.utils.UnionFind(n.name for n in compute)
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
        producers = {sets[p.name] for p in node.all_input_nodes if is_compute(p)}
        if len(producers) == 1:
            sets.union(producers.pop(), node.name)
    for node in reversed(compute):
        producers = [p for p in node.all_input_nodes if is_compute(p)]
        users = {sets[u.name] for u in node.users if is_compute(u)}
        if _free(node) and not producers and len(users) == 1 and get_group(node) is None:
            sets.union(users.pop(), node.name)
    _join_constants(compute, sets)
    for node in compute:  # a cache lives where it is read: never cut between update and read
        if state_written(node) is not None:
            for user in node.users:
                if is_compute(user):
                    sets.union(sets[node.name], sets[user.name])
    for group in alias_groups(compute):  # a tensor written in place and read past the write
        sets.union(*group)
    roots: dict[str, int] = {}
    members: list[list[str]] = []
    unit_of: dict[str, int] = {}
    for node in compute:
        root = sets[node.name]
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


def _join_constants(compute: list[torch.fx.Node], sets: nx.utils.UnionFind) -> None:
    """A unit that reads no model input (position ids, masks and biases computed from
    constants) joins its consumer when it has only one: it is work the consumer's chip does
    for itself, never worth a cut (moving it earlier only adds a transfer). Left separate,
    each such branch multiplies the pipelines to search (an encoder-decoder's position
    buckets, a constant copied per layer)."""
    constant = _constants(compute)
    changed = True
    while changed:
        changed = False
        by_set: dict[str, list[torch.fx.Node]] = {}
        for node in compute:
            by_set.setdefault(sets[node.name], []).append(node)
        for root, nodes in by_set.items():
            if not all(n.name in constant for n in nodes):
                continue
            consumers = {sets[u.name] for n in nodes for u in n.users if is_compute(u)} - {root}
            if len(consumers) == 1:
                sets.union(consumers.pop(), root)
                changed = True
                break


def _constants(compute: list[torch.fx.Node]) -> set[str]:
    """Names of the nodes computed from weights and constants alone. A tensor that an in-place
    write fills from the model's inputs (``y = zeros(); y[:, 1:] = x``) is not constant, nor
    is anything reading it."""
    fed: set[str] = set()  # bases written from non-constant values
    while True:
        constant: set[str] = set()
        for node in compute:  # graph order: inputs first
            inputs = node.all_input_nodes
            if node.name not in fed and all(p.op == "get_attr" or p.name in constant
                                            for p in inputs):
                constant.add(node.name)
        now = {base_of(n).name for n in compute if written(n) is not None
               and any(p.op != "get_attr" and p.name not in constant for p in n.all_input_nodes)}
        if now <= fed:
            return constant
        fed |= now


def _topological(members: list[list[str]], compute: list[torch.fx.Node],
                 unit_of: dict[str, int]) -> list[int]:
    """Units in a topological order, ties broken by first appearance (smallest unit index first)."""
    dag = nx.DiGraph()
    dag.add_nodes_from(range(len(members)))
    dag.add_edges_from((unit_of[node.name], unit_of[user.name]) for node in compute
                       for user in node.users
                       if is_compute(user) and unit_of[node.name] != unit_of[user.name])
    try:
        return list(nx.lexicographical_topological_sort(dag))
    except nx.NetworkXUnfeasible:
        cycle = " -> ".join(f"unit of {members[a][0]}" for a, _ in nx.find_cycle(dag))
        raise AssertionError(f"unit graph has a cycle ({cycle}): a fusion group or an in-place "
                             "write's unit spans a path through another unit") from None
