"""Capture of a deep LM by its repeated layer: export the step with two decoder layers, then
stamp the second layer's nodes once per further layer.

A decoder stack is one layer repeated, so torch.export of 80 layers does 40 times the work of
2 for the same graph. Here the model is exported with its layer list cut to two; the nodes of
layer 1 (its ``nn_module_stack``) are copied for layers 2..L-1, each copy reading its own
layer's parameters (the model's own tensors, by name) and a cache like layer 1's, and the
model's last layer output is rewired to the last copy. Used only for models on the meta device
(costed, never run) whose layers all have the same parameter names, shapes and dtypes, whose
config gives no per-layer kinds (``layer_types`` all equal) and whose layer 1 has one input
from layer 0 and one output; anything else is exported whole.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable

import torch
import torch.fx

from chipcut.compiler.capture import Captured, capture

MIN_LAYERS = 4  # below this, exporting the whole model costs no more than stamping it
META_ONLY = True  # stamp only models on the meta device: their graphs are costed, never run


def _decoder_list(model: torch.nn.Module, layers: int) -> tuple[str, torch.nn.ModuleList] | None:
    """(qualified name, list) of the model's decoder layers: the ModuleList of ``layers``."""
    found = [(name, m) for name, m in model.named_modules()
             if isinstance(m, torch.nn.ModuleList) and len(m) == layers]
    return found[0] if len(found) == 1 else None


def _signature(layer: torch.nn.Module) -> list[tuple]:
    return ([(n, tuple(p.shape), p.dtype) for n, p in layer.named_parameters()]
            + [(n, type(m).__name__) for n, m in layer.named_modules()])


def repeatable(model: torch.nn.Module, config: object) -> tuple[str, torch.nn.ModuleList] | None:
    """The decoder list when the layers are one layer repeated; None otherwise."""
    count = getattr(config, "num_hidden_layers", 0)
    if not isinstance(count, int) or (META_ONLY and any(not p.is_meta for p in model.parameters())):
        return None
    if count < MIN_LAYERS or len(set(getattr(config, "layer_types", None) or ["one"])) != 1:
        return None
    found = _decoder_list(model, count)
    if found is None:
        return None
    first = _signature(found[1][1])
    if any(_signature(layer) != first for layer in found[1][2:]):
        return None
    return found


@contextlib.contextmanager
def _cut_to_two(model: torch.nn.Module, config: object, qualified: str,
                layers: torch.nn.ModuleList):
    """The model with its first two layers only, for the duration (restored after)."""
    owner_name, _, attr = qualified.rpartition(".")
    owner = model.get_submodule(owner_name) if owner_name else model
    count, types = config.num_hidden_layers, getattr(config, "layer_types", None)
    setattr(owner, attr, torch.nn.ModuleList(list(layers)[:2]))
    config.num_hidden_layers = 2
    if types is not None:
        config.layer_types = types[:2]
    try:
        yield
    finally:
        setattr(owner, attr, layers)
        config.num_hidden_layers = count
        if types is not None:
            config.layer_types = types


def capture_repeated(model: torch.nn.Module, config: object, step: Callable[[], torch.nn.Module],
                     inputs: tuple, name: str, prefix: str = "model.") -> Captured:
    """Capture ``step()`` (a module wrapping ``model`` under ``prefix``) by its repeated layer
    when ``model``'s layers allow it, else whole."""
    found = repeatable(model, config)
    if found is None:
        return capture(step(), inputs, name=name)
    qualified, layers = found
    with _cut_to_two(model, config, qualified, layers):
        short = capture(step(), inputs, name=name)
    try:
        _stamp(short.graph_module, model, f"{prefix}{qualified}", prefix, len(layers))
    except ValueError:  # a layer with more than one way in or out: export it whole
        return capture(step(), inputs, name=name)
    return short


def _in_layer(node: torch.fx.Node, base: str, index: int) -> bool:
    mine = f"{base}.{index}"
    if node.op == "get_attr":
        return str(node.target).startswith(mine + ".")
    stack = node.meta.get("nn_module_stack") or {}
    return any(path == mine or path.startswith(mine + ".") for path, _ in stack.values())


def _stamp(gm: torch.fx.GraphModule, model: torch.nn.Module, base: str, prefix: str,
           count: int) -> None:
    """Copy layer 1's nodes for layers 2..count-1 in place (see the module docstring)."""
    graph = gm.graph
    one = [n for n in graph.nodes if _in_layer(n, base, 1)]
    inside = set(one)
    zero = {n for n in graph.nodes if _in_layer(n, base, 0)}
    feeds = {a for n in one for a in n.all_input_nodes if a not in inside and a in zero}
    leaves = [n for n in one if n.op != "get_attr" and any(u not in inside for u in n.users)]
    if len(feeds) != 1 or len(leaves) != 1:
        raise ValueError(f"layer 1 has {len(feeds)} inputs from layer 0 and {len(leaves)} "
                         "outputs; expected one of each")
    (feed,), (last,) = feeds, leaves
    consumers = [u for u in last.users if u not in inside]
    pattern = re.compile(re.escape(f"{base}.1") + r"(?=\.|$)")
    previous = last
    with graph.inserting_before(consumers[0]):
        for i in range(2, count):
            env: dict[torch.fx.Node, torch.fx.Node] = {feed: previous}
            for node in one:
                if node.op == "get_attr":
                    target = pattern.sub(f"{base}.{i}", str(node.target))
                    _assign(gm, target, _tensor_of(gm, model, str(node.target), target, prefix))
                    copy = graph.get_attr(target)
                    copy.meta = dict(node.meta)
                else:
                    copy = graph.node_copy(node, lambda a, env=env: env.get(a, a))
                    stack = node.meta.get("nn_module_stack")
                    if stack:
                        copy.meta["nn_module_stack"] = {
                            k: (pattern.sub(f"{base}.{i}", p), t) for k, (p, t) in stack.items()}
                env[node] = copy
            previous = env[last]
    for user in consumers:
        user.replace_input_with(last, previous)
    graph.lint()
    gm.recompile()


def _tensor_of(gm: torch.fx.GraphModule, model: torch.nn.Module, source: str, target: str,
               prefix: str) -> torch.Tensor:
    """Layer i's tensor: the model's own parameter or buffer by name; state the step made for
    layer 1 (a cache) as a fresh tensor like it."""
    name = target[len(prefix):] if target.startswith(prefix) else target
    with contextlib.suppress(AttributeError):
        return model.get_parameter(name)
    with contextlib.suppress(AttributeError):
        return model.get_buffer(name)
    like = _get(gm, source)
    return torch.zeros_like(like)


def _get(gm: torch.nn.Module, target: str) -> torch.Tensor:
    obj: object = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _assign(gm: torch.nn.Module, target: str, value: torch.Tensor) -> None:
    *path, leaf = target.split(".")
    owner: torch.nn.Module = gm
    for part in path:
        if not hasattr(owner, part):
            owner.add_module(part, torch.nn.Module())
        owner = getattr(owner, part)
    if isinstance(value, torch.nn.Parameter):
        owner.register_parameter(leaf, value)
    else:
        owner.register_buffer(leaf, value, persistent=False)

