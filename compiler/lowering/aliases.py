"""In-place writes the data edges do not order: which nodes must share a partition unit.

A captured graph keeps in-place ops (``copy_``, ``fill_``, ``masked_fill_``, ``index_put_``,
``relu_``). Most are harmless to cut around: every later reader reads the op's own result, a
data edge, so a cut after it sends the written tensor. Some are not: ``y[:, 1:] = x`` (a
``copy_`` into a view of ``y``, with no users) followed by a read of ``y`` itself. Nothing
orders that read after the write, and across a cut each stage holds its own copy of ``y``;
cut there, the read sees the tensor unwritten. So the written tensor, its views, the writes
and every reader that reaches it other than through the last write's result (a "hidden"
reader) go in one unit, with whatever lies on a path between them (a unit must stay convex).

Aliasing is read from the ops' schemas: an op writes its first argument when the schema marks
it ``(a!)``; a view returns an alias of its first argument (``Tensor(a)``).
"""

from __future__ import annotations

import operator

import torch
import torch.fx

from chipcut.core.ir import get_kv, is_compute


def _schema(node: torch.fx.Node) -> torch.FunctionSchema | None:
    target = node.target
    return target._schema if isinstance(target, torch._ops.OpOverload) else None


def writes_first(node: torch.fx.Node) -> bool:
    """The node writes its first argument in place (``relu_``, ``copy_``, ``index_put_``)."""
    schema = _schema(node)
    if schema is None or not schema.arguments or not node.args:
        return False
    alias = schema.arguments[0].alias_info
    return alias is not None and alias.is_write and isinstance(node.args[0], torch.fx.Node)


def _views_first(node: torch.fx.Node) -> bool:
    """The node's value aliases its first argument (a view, or an element of a view list)."""
    if not node.args or not isinstance(node.args[0], torch.fx.Node):
        return False
    if node.target is operator.getitem:
        return _views_first(node.args[0])
    schema = _schema(node)
    return (schema is not None and bool(schema.returns) and not writes_first(node)
            and schema.returns[0].alias_info is not None)


def _base(node: torch.fx.Node) -> torch.fx.Node:
    while _views_first(node) or writes_first(node):
        node = node.args[0]
    return node


def _hull(members: set[torch.fx.Node], position: dict[torch.fx.Node, int]) -> set[torch.fx.Node]:
    """``members`` and every compute node on a path between two of them."""
    low, high = min(position[m] for m in members), max(position[m] for m in members)
    below, frontier = set(members), list(members)
    while frontier:
        for user in frontier.pop().users:
            if user in position and position[user] <= high and user not in below:
                below.add(user)
                frontier.append(user)
    above, frontier = set(members), list(members)
    while frontier:
        for p in frontier.pop().all_input_nodes:
            if p in position and position[p] >= low and p not in above:
                above.add(p)
                frontier.append(p)
    return members | (below & above)


def alias_groups(compute: list[torch.fx.Node]) -> list[set[str]]:
    """Names of nodes that must share a unit, one set per tensor written in place with a
    hidden reader. Caches updated in place (``chipcut.kv``) are left to the caller."""
    position = {n: i for i, n in enumerate(compute)}
    aliases: dict[torch.fx.Node, list[torch.fx.Node]] = {}  # base -> alias nodes, graph order
    written: set[torch.fx.Node] = set()
    for node in compute:
        if _views_first(node) or writes_first(node):
            base = _base(node)
            aliases.setdefault(base, [base] if base in position else []).append(node)
            if writes_first(node):
                written.add(base)
    groups = []
    for base in sorted(written, key=lambda b: position.get(b, -1)):
        if get_kv(base) is not None:
            continue
        alias_nodes = aliases[base]
        members = set(alias_nodes) | {base}
        last = max((n for n in alias_nodes if writes_first(n)), key=position.__getitem__)
        fresh = {last}
        for n in alias_nodes:  # views of the last write's result, taken after it
            if position[n] > position[last] and n.args[0] in fresh:
                fresh.add(n)
        hidden = {u for n in members - fresh for u in n.users
                  if is_compute(u) and u not in members}
        if hidden:
            group = {n for n in members | hidden if n in position}
            groups.append({n.name for n in _hull(group, position)})
    return groups


__all__ = ["alias_groups", "writes_first"]
