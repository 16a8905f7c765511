"""quantize: per-node weight and activation precision in ``chipcut.precision``, measured by SQNR.

Policy, most specific first: an override by module path (``modules=head:fp32;encoder.layer.0*:bf16``),
an override by module class (``types=LayerNorm:fp32``), the first and last MAC layers
(``first_last``, by default the widest dtype the chips compute), then the global ``dtype``.
MAC layers (conv, linear, matmul, attention) take the policy dtype; other float nodes take
``others`` when it is set (TensorRT's "FP8 matmuls, the rest fp16"), else the precision of the
value they consume, so element ops follow their producer; float nodes
that only compute integers (T5's position buckets) are not quantized. ``int4``
means int4 weights with int8 activations. ``native`` is the model's own dtype when every
chip computes it, else the widest dtype they all compute; ``auto`` picks per MAC layer the
narrowest dtype that keeps the output SQNR above ``threshold_db`` (measured, not assumed).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
import torch.fx

from chipcut.core.dtypes import ORDER, DType, from_torch
from chipcut.core.ir import (
    LayerQuant,
    Precision,
    QuantReport,
    attr_value,
    clear_precision,
    is_compute,
    iter_tensors,
    module_path,
    node_value,
    set_precision,
    set_quant_report,
)
from chipcut.passes import sqnr
from chipcut.passes.accounting import is_mac_op
from chipcut.passes.manager import PassError, Target, format_pass, register_pass

DTYPES = ORDER
POLICIES = ("native", "auto") + DTYPES


def _parse_map(text: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in filter(None, (t.strip() for t in text.split(";"))):
        key, sep, dtype = item.rpartition(":")
        if not sep or not key or dtype not in DTYPES:
            raise ValueError(f"write NAME:DTYPE pairs joined by ';', DTYPE one of {', '.join(DTYPES)}")
        pairs.append((key, dtype))
    return tuple(pairs)


def _format_map(pairs: tuple[tuple[str, str], ...]) -> str:
    return ";".join(f"{k}:{v}" for k, v in pairs)


MAP = {"parse": _parse_map, "format": _format_map}


@register_pass("quantize")
@dataclass(frozen=True)
class Quantize:
    """Annotate weight and activation precision per node; measure SQNR on calibration inputs.

    >>> from chipcut.passes.manager import Pipeline
    >>> str(Pipeline.parse("quantize{dtype=int8,types=LayerNorm:fp32}"))
    'quantize{dtype=int8,types=LayerNorm:fp32}'
    """

    dtype: str = "native"
    weights: str = ""  # weight dtype of MAC layers at the global dtype, when it differs
    first_last: str = "native"
    modules: tuple[tuple[str, str], ...] = field(default=(), metadata=MAP)
    types: tuple[tuple[str, str], ...] = field(default=(), metadata=MAP)
    others: str = ""  # dtype of every float node that is not a MAC layer ("": follow its input)
    threshold_db: float = 30.0
    measure: bool = True
    target: Target = field(default=Target(), metadata={"target": True}, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name, value, allowed in (("dtype", self.dtype, POLICIES), ("first_last", self.first_last,
                                     ("native",) + DTYPES), ("weights", self.weights, ("",) + DTYPES),
                                    ("others", self.others, ("",) + DTYPES)):
            if value not in allowed:
                raise PassError(None, f"{name}={value!r} is not one of {', '.join(a for a in allowed if a)}")

    def bind(self, target: Target) -> Quantize:
        return replace(self, target=target)

    def __call__(self, gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
        for node in gm.graph.nodes:
            clear_precision(node)  # a graph quantized before is annotated afresh
        model_dtype = _model_dtype(gm)
        common = self._native(model_dtype)
        index_only = _index_only(gm)
        anchors = [n for n in gm.graph.nodes if is_mac_op(n) and _is_float(n) and n not in index_only]
        edge = _first_and_last(gm, set(anchors))
        first_last = common if self.first_last == "native" else self.first_last
        if self.dtype == "auto":
            choice = self._auto(gm, anchors, model_dtype, common)
        else:
            glob = common if self.dtype == "native" else self.dtype
            choice = {a.name: self._policy(a, first_last if a in edge else glob) for a in anchors}
        precisions = _propagate(gm, choice, self._override_others, self.weights,
                                self.dtype if self.dtype in DTYPES else None, index_only)
        if self.dtype == "native" and not self.weights and sqnr.narrower(model_dtype, common):
            # computed wider, every weight (tables and norm scales too) stored as the model's
            precisions = {k: replace(p, weights=model_dtype) if p.weights == common else p
                          for k, p in precisions.items()}
        unchanged = all(p.weights == p.activations == model_dtype for p in precisions.values())
        if unchanged and self.dtype != "auto":
            set_quant_report(gm, None)
            return gm  # nothing narrower than the model: no annotation, nothing to measure
        self._check(gm, anchors, precisions)
        for node in gm.graph.nodes:
            if node.name in precisions:
                set_precision(node, precisions[node.name])
        set_quant_report(gm, self._report(gm, anchors, precisions))
        return gm

    # -- policy -------------------------------------------------------------------------------
    def _override(self, node: torch.fx.Node) -> str | None:
        stack = module_path(node)
        for path, _kind in reversed(stack):
            for pattern, dtype in self.modules:
                if path == pattern or path.startswith(pattern + ".") or fnmatch.fnmatchcase(path, pattern):
                    return dtype
        for _path, kind in reversed(stack):
            for pattern, dtype in self.types:
                if fnmatch.fnmatchcase(kind, pattern):
                    return dtype
        return None

    def _override_others(self, node: torch.fx.Node) -> str | None:
        """A node that is not a MAC layer: its override, else ``others`` when set."""
        return self._override(node) or self.others or None

    def _policy(self, node: torch.fx.Node, default: str) -> str:
        return self._override(node) or default

    def _native(self, model_dtype: str) -> str:
        backends = self.target.backends
        if not backends or all(b.supports_dtype(model_dtype) for b in backends):
            return model_dtype
        order = [d for d in reversed(ORDER) if not sqnr.narrower(model_dtype, d)]
        common = [d for d in order if all(b.supports_dtype(d) for b in backends)]
        if common:
            return common[0]
        wider = [d for d in ORDER if sqnr.narrower(model_dtype, d)
                 and all(b.supports_dtype(d) for b in backends)]
        if wider:  # e.g. a bf16 model on a CPU that computes fp32 only
            return wider[0]
        return next((d for d in order if backends[0].supports_dtype(d)), model_dtype)

    def _check(self, gm: torch.fx.GraphModule, anchors: list[torch.fx.Node],
               precisions: dict[str, Precision]) -> None:
        backends = self.target.backends
        if not backends:
            return
        for node in anchors:
            compute = precisions[node.name].compute
            if not any(b.supports_dtype(compute) for b in backends):
                named = {b.name: b for b in backends}
                chips = "; ".join(f"{b.name} computes {', '.join(b.dtypes())}"
                                  for b in named.values())
                where = module_path(node)[-1][0] if module_path(node) else node.name
                raise PassError(node, f"{node.name} ({where}) would compute in {compute}, which no "
                                f"target chip supports ({chips}); choose a dtype the chip computes")

    # -- measurement --------------------------------------------------------------------------
    def _calibration(self, gm: torch.fx.GraphModule) -> list[tuple[torch.Tensor, ...]] | None:
        if not self.measure or _on_meta(gm):
            return None
        batches = list(self.target.calibration_inputs) or (
            [self.target.example_inputs] if self.target.example_inputs else [])
        batches = [b for b in batches if b]
        return batches or None

    def _report(self, gm: torch.fx.GraphModule, anchors: list[torch.fx.Node],
                precisions: dict[str, Precision]) -> QuantReport:
        batches = self._calibration(gm)
        layer_db: dict[str, float] = {}
        out_db: float | None = None
        if batches:
            names = {a.name for a in anchors}
            ref = sqnr.reference(gm, batches, names)
            approx, app_out = sqnr.run(gm, batches, precisions, ref, names)
            layer_db = {a.name: sqnr.node_sqnr_db(ref.recorded, approx, a.name) for a in anchors}
            out_db = _finite(sqnr.output_sqnr_db(ref.outputs, app_out))
        layers = tuple(
            LayerQuant(a.name, module_path(a)[-1][0] if module_path(a) else "",
                       precisions[a.name].weights, precisions[a.name].activations,
                       _finite(layer_db[a.name]) if a.name in layer_db else None)
            for a in anchors)
        return QuantReport(format_pass(self), self.threshold_db, out_db, layers)

    def _auto(self, gm: torch.fx.GraphModule, anchors: list[torch.fx.Node], model_dtype: str,
              common: str) -> dict[str, str]:
        """Per MAC layer, the narrowest dtype keeping the measured output SQNR >= threshold."""
        batches = self._calibration(gm)
        if batches is None:
            raise PassError(None, "dtype=auto measures SQNR by running the model, but its weights are "
                            "on the meta device (or measure=false); give a fixed dtype such as "
                            "quantize{dtype=int8}")
        backends = self.target.backends
        cands = [d for d in ("int8", "fp8", "fp16", "bf16", common) if not sqnr.narrower(common, d)
                 and (not backends or all(b.supports_dtype(d) for b in backends))]
        cands = list(dict.fromkeys(sorted(cands, key=ORDER.index)))
        fixed = {a.name: self._override(a) for a in anchors}
        ref = sqnr.reference(gm, batches, set(), keep_values=True)
        say = self.target.progress or (lambda _m: None)
        free = [a for a in anchors if fixed[a.name] is None]
        level = {a.name: 0 for a in free}
        noise: dict[tuple[str, int], float] = {}

        def layer_noise(a: torch.fx.Node) -> float:
            """Output noise power (relative) with only ``a`` at its current level; measured once."""
            key = (a.name, level[a.name])
            if key not in noise:
                if level[a.name] == len(cands) - 1:
                    noise[key] = 0.0
                else:
                    say(f"quantize auto: {a.name} at {cands[key[1]]} ({len(noise) + 1} runs)")
                    precision = {a.name: _precision(cands[key[1]], "")}
                    _, out = sqnr.run(gm, batches, precision, ref, changed={a})
                    noise[key] = 10 ** (-sqnr.output_sqnr_db(ref.outputs, out) / 10)
            return noise[key]

        def current() -> dict[str, str]:
            return {a.name: fixed[a.name] or cands[level[a.name]] for a in anchors}

        def raise_worst() -> bool:
            movable = [a for a in free if level[a.name] < len(cands) - 1]
            if not movable:
                return False
            worst = max(movable, key=lambda a: (layer_noise(a), a.name))
            level[worst.name] += 1
            return True

        budget = 10 ** (-self.threshold_db / 10)
        # The output noise of several quantized layers is close to the sum of each one's.
        while sum(layer_noise(a) for a in free) > budget and raise_worst():
            pass
        while True:  # check the estimate with one full run; widen further while it falls short
            precisions = _propagate(gm, current(), self._override, self.weights, None,
                                    _index_only(gm))
            _, out = sqnr.run(gm, batches, precisions, ref)
            if sqnr.output_sqnr_db(ref.outputs, out) >= self.threshold_db or not raise_worst():
                break
        return current()


def _precision(dtype: str, weights: str) -> Precision:
    if dtype == "int4":
        return Precision("int4", "int8")
    return Precision(weights or dtype, dtype)


def _propagate(gm: torch.fx.GraphModule, choice: dict[str, str],
               override: Callable[[torch.fx.Node], str | None], weights: str,
               glob: str | None, index_only: set[torch.fx.Node]) -> dict[str, Precision]:
    """Precision of every float compute node: MAC layers from ``choice``; others follow their input.

    Nodes in ``index_only`` get none: they keep the model's dtype and are never rounded.
    """
    out: dict[str, Precision] = {}
    for node in gm.graph.nodes:
        if not is_compute(node) or not _is_float(node) or node in index_only:
            continue
        if node.name in choice:
            d = choice[node.name]
            out[node.name] = _precision(d, weights if d == glob else "")
            continue
        d = override(node)
        if d is None:
            inherited = [out[p.name] for p in node.all_input_nodes if p.name in out]
            if inherited:
                out[node.name] = Precision(inherited[0].activations, inherited[0].activations)
                continue
            d = glob or _first_choice(choice) or _node_dtype(node)
        out[node.name] = _precision(d, "") if d != "int4" else Precision("int4", "int8")
    return out


def _index_only(gm: torch.fx.GraphModule) -> set[torch.fx.Node]:
    """Float nodes used only to compute integers: every use is an integer or boolean result.

    T5's relative-position bias takes the log of a distance in float and casts it to an
    embedding index. Rounding such a value moves the index (out of the table, even), it
    does not add noise to an activation, so these nodes are not quantized.
    """
    out: set[torch.fx.Node] = set()
    for node in reversed(gm.graph.nodes):  # users before the nodes they use
        if node.users and _is_float(node) and all(
                u in out or (u.op != "output" and not _is_float(u)) for u in node.users):
            out.add(node)
    return out


def _first_choice(choice: dict[str, str]) -> str | None:
    return next(iter(choice.values()), None)


def _first_and_last(gm: torch.fx.GraphModule, anchors: set[torch.fx.Node]) -> set[torch.fx.Node]:
    """MAC layers with no MAC layer before them, and those with none after them."""
    before: dict[torch.fx.Node, bool] = {}
    for node in gm.graph.nodes:
        before[node] = any(before[p] or p in anchors for p in node.all_input_nodes)
    after: dict[torch.fx.Node, bool] = {}
    for node in reversed(gm.graph.nodes):
        after[node] = any(after[u] or u in anchors for u in node.users)
    return {a for a in anchors if not before[a] or not after[a]}


def _is_float(node: torch.fx.Node) -> bool:
    return any(t.is_floating_point() for t in iter_tensors(node_value(node)))


def _node_dtype(node: torch.fx.Node) -> str:
    t = next((t for t in iter_tensors(node_value(node)) if t.is_floating_point()), None)
    return from_torch(t.dtype, f"node {node.name}") if t is not None else DType.FP32


def _model_dtype(gm: torch.fx.GraphModule) -> str:
    """The dtype of the model's float weights (else of its float inputs)."""
    for node in gm.graph.nodes:
        if node.op == "get_attr":
            value = attr_value(node)
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                return from_torch(value.dtype, f"weight {node.target}")
    for node in gm.graph.nodes:
        if node.op == "placeholder" and _is_float(node):
            return _node_dtype(node)
    return "fp32"


def _on_meta(gm: torch.fx.GraphModule) -> bool:
    return any(t.is_meta for t in list(gm.parameters()) + list(gm.buffers()))


def _finite(value: float) -> float | None:
    return None if math.isinf(value) or math.isnan(value) else round(value, 3)
