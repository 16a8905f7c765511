"""Measured quantization error: run the graph with fake quantization and report SQNR in dB.

Fake quantization keeps tensors in fp32 but rounds them as the target dtype
would: int8 / int4 symmetric (weights per output channel, activations per
tensor with the scale calibrated on the reference run), fp8 e4m3 scaled to its
range, fp16 / bf16 by a round trip through the dtype. SQNR = 10 log10(signal
power / error power) against the unquantized run on the same inputs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.fx

from chipcut.core.aliasing import written
from chipcut.core.ir import DTYPE_ORDER, Precision

INT_LEVELS = {"int8": 127, "int4": 7}
FP8_MAX = 448.0  # float8 e4m3fn
FP16_MAX = 65504.0


def fake_quant(x: torch.Tensor, dtype: str, amax: torch.Tensor | float | None = None,
               axis: int | None = None) -> torch.Tensor:
    """``x`` rounded as ``dtype`` would store it, returned in x's dtype.

    ``amax`` fixes the range (calibrated activations); else it is measured, per
    ``axis`` slice when given (per output channel for weights).

    >>> [round(v, 6) for v in fake_quant(torch.tensor([0.1, -1.0]), "int8").tolist()]
    [0.102362, -1.0]
    """
    if not x.is_floating_point() or dtype == "fp64":
        return x
    if dtype == "fp32":
        return x.to(torch.float32).to(x.dtype)  # exact on fp32 tensors, rounds fp64 ones
    if dtype == "fp16":
        return x.clamp(-FP16_MAX, FP16_MAX).to(torch.float16).to(x.dtype)
    if dtype == "bf16":
        return x.to(torch.bfloat16).to(x.dtype)
    if amax is None:
        if axis is None or x.dim() == 0:
            amax = x.detach().abs().max()
        else:
            dims = [d for d in range(x.dim()) if d != axis]
            amax = x.detach().abs().amax(dim=dims, keepdim=True)
    amax = torch.as_tensor(amax, dtype=torch.float32, device=x.device).clamp_min(1e-12)
    xf = x.float()
    if dtype == "fp8":
        scale = amax / FP8_MAX
        q = (xf / scale).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn).float() * scale
    else:
        levels = INT_LEVELS[dtype]
        scale = amax / levels
        q = torch.clamp(torch.round(xf / scale), -levels - 1, levels) * scale
    return q.to(x.dtype)


def sqnr_db(reference: torch.Tensor, approx: torch.Tensor) -> float:
    """10 log10(sum ref^2 / sum (ref - approx)^2); inf when they are equal."""
    ref = reference.detach().double()
    noise = float(((ref - approx.detach().double()) ** 2).sum())
    signal = float((ref**2).sum())
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def combine_db(values: Iterable[float]) -> float:
    """SQNR of several tensors together, from each one's signal and noise (equal weights)."""
    vals = [v for v in values if v != math.inf]
    if not vals:
        return math.inf
    return -10.0 * math.log10(sum(10 ** (-v / 10) for v in vals) / len(vals))


def narrower(a: str, b: str) -> bool:
    return DTYPE_ORDER.index(a) < DTYPE_ORDER.index(b)


class FakeQuantRunner(torch.fx.Interpreter):
    """Runs a graph, fake-quantizing weights and outputs of nodes by their Precision.

    ``precisions`` maps node name -> Precision; ``amax`` maps node name -> calibrated
    output range; ``record`` names the nodes whose outputs are kept; with ``observe``
    the largest magnitude of every float output is kept (for calibration).
    """

    def __init__(self, gm: torch.fx.GraphModule, precisions: dict[str, Precision],
                 amax: dict[str, float], record: set[str], observe: bool = False,
                 keep_all: bool = False) -> None:
        super().__init__(gm, garbage_collect_values=not keep_all)
        self.precisions, self.amax, self.record, self.observe = precisions, amax, record, observe
        self.recorded: dict[str, torch.Tensor] = {}
        self.observed: dict[str, float] = {}
        self._weights: dict[tuple[str, str], torch.Tensor] = {}

    def run_node(self, n: torch.fx.Node):  # noqa: ANN201 - torch's signature
        precision = self.precisions.get(n.name)
        if precision is not None and n.op == "call_function" and precision.weights != "fp32":
            args, kwargs = self.fetch_args_kwargs_from_env(n)
            args = tuple(self._weight(a, arg, precision.weights) for a, arg in zip(n.args, args, strict=False))
            out = n.target(*args, **kwargs)
        else:
            out = super().run_node(n)
        if isinstance(out, torch.Tensor) and out.is_floating_point():
            if self.observe:
                self.observed[n.name] = float(out.detach().abs().max()) if out.numel() else 0.0
            if precision is not None:
                out = fake_quant(out, precision.activations, self.amax.get(n.name))
            if n.name in self.record:  # a copy: a later in-place op may write into ``out``
                self.recorded[n.name] = out.detach().clone()
        return out

    def _weight(self, node_arg: object, value: object, dtype: str) -> object:
        if not (isinstance(node_arg, torch.fx.Node) and node_arg.op == "get_attr"
                and isinstance(value, torch.Tensor) and value.is_floating_point()):
            return value
        if value.dim() < 2 and dtype in INT_LEVELS:
            return value  # biases and norm scales stay wide on integer datapaths
        key = (str(node_arg.target), dtype)
        if key not in self._weights:
            self._weights[key] = fake_quant(value, dtype, axis=0 if value.dim() >= 2 else None)
        return self._weights[key]


@dataclass
class Reference:
    """The unquantized run on each calibration batch: outputs, recorded nodes, ranges, values."""

    outputs: list[tuple]
    recorded: list[dict[str, torch.Tensor]]
    amax: dict[str, float]
    envs: list[dict[torch.fx.Node, object]]


def _outputs(out: object) -> tuple:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def reference(gm: torch.fx.GraphModule, inputs: list[tuple[torch.Tensor, ...]], record: set[str],
              keep_values: bool = False) -> Reference:
    """Run unquantized; with ``keep_values`` keep every node's value for partial re-runs."""
    ref = Reference([], [], {}, [])
    keep_values = keep_values and not writes_in_place(gm)  # such a graph always runs whole
    with torch.no_grad():
        for batch in inputs:
            runner = FakeQuantRunner(gm, {}, {}, record, observe=True, keep_all=keep_values)
            ref.outputs.append(_outputs(runner.run(*batch)))
            ref.recorded.append(runner.recorded)
            ref.envs.append(dict(runner.env) if keep_values else {})
            for k, v in runner.observed.items():
                ref.amax[k] = max(ref.amax.get(k, 0.0), v)
    return ref


def run(gm: torch.fx.GraphModule, inputs: list[tuple[torch.Tensor, ...]],
        precisions: dict[str, Precision], ref: Reference, record: set[str] = frozenset(),
        changed: set[torch.fx.Node] | None = None) -> tuple[list[dict[str, torch.Tensor]], list[tuple]]:
    """Per calibration batch: the recorded node outputs and the graph outputs under ``precisions``.

    With ``changed`` (nodes whose precision differs from the reference run, needs
    ``reference(..., keep_values=True)``) only those nodes and what depends on them run again;
    in a graph that writes a tensor in place the whole graph runs again, since the kept values
    are the tensors as the last write left them, not as the nodes made them.
    """
    recorded, outputs = [], []
    keep = None
    if changed is not None and not writes_in_place(gm):
        affected = _descendants(changed)
        keep = [{n: v for n, v in env.items() if n not in affected and n.op != "output"}
                for env in ref.envs]
    with torch.no_grad():
        for i, batch in enumerate(inputs):
            runner = FakeQuantRunner(gm, precisions, ref.amax, record)
            out = runner.run(*batch, initial_env=dict(keep[i]) if keep is not None else None)
            outputs.append(_outputs(out))
            recorded.append(runner.recorded)
    return recorded, outputs


def writes_in_place(gm: torch.fx.GraphModule) -> bool:
    """Whether any node of ``gm`` writes a tensor in place (``relu_``, ``copy_``, ``out=``)."""
    return any(written(n) is not None for n in gm.graph.nodes)


def _descendants(nodes: set[torch.fx.Node]) -> set[torch.fx.Node]:
    out, stack = set(nodes), list(nodes)
    while stack:
        for user in stack.pop().users:
            if user not in out:
                out.add(user)
                stack.append(user)
    return out


def output_sqnr_db(reference: list[tuple], approx: list[tuple]) -> float:
    """SQNR over every floating-point model output and calibration input."""
    values = [sqnr_db(r, a) for ref, app in zip(reference, approx, strict=True)
              for r, a in zip(ref, app, strict=True)
              if isinstance(r, torch.Tensor) and r.is_floating_point()]
    return combine_db(values)


def node_sqnr_db(reference: list[dict[str, torch.Tensor]], approx: list[dict[str, torch.Tensor]],
                 name: str) -> float:
    return combine_db(sqnr_db(r[name], a[name]) for r, a in zip(reference, approx, strict=True)
                      if name in r and name in a)
