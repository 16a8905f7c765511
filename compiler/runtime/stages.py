"""Pipeline stage modules: each split stage as a module from one flat tuple of tensors to the
next, carrying the values later stages need, and recording the time inside each forward.

torch's pipelining sends a stage's outputs to the next stage only. A value made by stage i and
read by stage j > i + 1 (a skip connection across a cut), or a model input read past the first
stage, or a model output made before the last stage, is therefore passed on by every stage in
between: each stage returns what it made plus what it was handed, as far as anything later
still reads it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.fx

from chipcut.compiler.plan.split import SplitModel
from chipcut.core.aliasing import base_of, written
from chipcut.core.errors import ChipcutError


@dataclass(frozen=True)
class Wiring:
    """The value names each stage receives (stage 0: the model inputs) and sends on (the last
    stage: the model outputs), in tuple order."""

    takes: tuple[tuple[str, ...], ...]
    gives: tuple[tuple[str, ...], ...]


def wiring(split: SplitModel) -> Wiring:
    """Which values cross each cut, pass-throughs included.

    >>> import torch, chipcut
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    >>> plan = chipcut.compile(net, (torch.randn(1, 4),), chips=1)
    >>> wiring(plan.split()).gives[-1] == tuple(plan.split().output_names)
    True
    """
    n = len(split.stages)
    later: list[set[str]] = [set() for _ in range(n)]  # read by a stage after k, or an output
    needed = set(split.output_names)
    for k in range(n - 1, -1, -1):
        later[k] = set(needed)
        needed |= set(split.stage_inputs[k])
    takes, gives = [], []
    available = list(split.input_names)
    for k in range(n):
        takes.append(tuple(available))
        made = available + [v for v in split.stage_outputs[k] if v not in available]
        if k == n - 1:
            sent = tuple(split.output_names)
        else:
            sent = tuple(v for v in made if v in later[k])
        gives.append(sent)
        available = list(sent)
    return Wiring(tuple(takes), tuple(gives))


class StageModule(torch.nn.Module):
    """One stage as torch's pipelining runs it: ``forward(*takes) -> gives`` (flat tuples).

    Each call appends ``(start_s, end_s)`` (``time.perf_counter``) to ``spans``; with
    ``keep_outputs`` set it also keeps a copy of what it returned, in ``outputs``.
    """

    def __init__(self, stage: torch.fx.GraphModule, needs: list[str], makes: list[str],
                 takes: tuple[str, ...], gives: tuple[str, ...], last: bool,
                 metas: tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]] | None = None
                 ) -> None:
        super().__init__()
        self.stage = stage
        self.needs, self.makes = list(needs), list(makes)
        self.takes, self.gives = tuple(takes), tuple(gives)
        self.last = last
        self.spans: list[tuple[float, float]] = []
        self.keep_outputs = False
        self.outputs: list[tuple[torch.Tensor, ...]] = []
        self.sync = False  # set on CUDA: the end time waits for the device
        self.out_bytes = 0  # bytes returned by the last call (what is sent on)
        self.metas = metas  # what one frame takes and gives, as meta tensors (stage_modules)
        bases = {base_of(n) for n in stage.graph.nodes if written(n) is not None}
        placeholders = [n for n in stage.graph.nodes if n.op == "placeholder"]
        # inputs the stage writes in place: copied first, as the schedule hands the same
        # buffers to every step
        self.written_inputs = {name for name, p in zip(self.needs, placeholders, strict=False)
                        if p in bases}

    def forward(self, *values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        start = time.perf_counter()
        env = dict(zip(self.takes, values, strict=True))
        for name in self.written_inputs:
            env[name] = env[name].clone()
        result = self.stage(*[env[n] for n in self.needs])
        env.update(zip(self.makes, result if isinstance(result, (tuple, list)) else (result,),
                       strict=True))
        # gloo and NCCL send contiguous buffers only
        out = tuple(env[n] if self.last else env[n].contiguous() for n in self.gives)
        if self.metas is not None and not self.last:
            self._check_shapes(out)
        if self.sync:
            torch.cuda.synchronize()
        self.spans.append((start, time.perf_counter()))
        self.out_bytes = sum(t.numel() * t.element_size() for t in out)
        if self.keep_outputs:
            self.outputs.append(tuple(t.detach().clone() for t in out))
        return out

    def _check_shapes(self, out: tuple[torch.Tensor, ...]) -> None:
        """What this stage sends has the shapes it was planned with (torch's stages receive
        into buffers of those shapes)."""
        for name, got, want in zip(self.gives, out, self.metas[1], strict=True):
            if got.shape != want.shape or got.dtype != want.dtype:
                raise ChipcutError(
                    f"value {name} is {tuple(got.shape)} {got.dtype} on this frame but was "
                    f"{tuple(want.shape)} {want.dtype} on the first: a value whose shape depends "
                    "on the data cannot cross a cut; keep its producer and readers on one chip")


def _metas(graph_module: torch.fx.GraphModule) -> Callable[[tuple[str, ...]], tuple[torch.Tensor, ...]]:
    """The values named, for one frame, as contiguous meta tensors, read from the captured
    graph's values (``meta['val']``, concrete after capture)."""
    vals = {n.name: n.meta.get("val") for n in graph_module.graph.nodes}

    def meta(names: tuple[str, ...]) -> tuple[torch.Tensor, ...]:
        out = []
        for name in names:
            val = vals.get(name)
            if not isinstance(val, torch.Tensor):
                raise ChipcutError(f"value {name} crosses a cut but is not a tensor ({val!r}); "
                                   "torch's pipeline stages pass tensors only: recompile so that "
                                   "it stays on one chip")
            out.append(torch.empty(tuple(int(d) for d in val.shape), dtype=val.dtype,
                                   device="meta"))
        return tuple(out)

    return meta


def stage_modules(split: SplitModel, graph_module: torch.fx.GraphModule | None = None
                  ) -> list[StageModule]:
    """Every stage of ``split`` as a :class:`StageModule`, in pipeline order; given the captured
    ``graph_module``, each with the shapes it takes and gives (``metas``).

    Given to torch's PipelineStage, those shapes spare it its own shape inference, which runs
    every later stage on uninitialized tensors: an integer index read from one (a MoE's token
    order) points anywhere.
    """
    wired = wiring(split)
    n = len(split.stages)
    meta = _metas(graph_module) if graph_module is not None else None
    return [StageModule(split.stages[k], split.stage_inputs[k], split.stage_outputs[k],
                        wired.takes[k], wired.gives[k], k == n - 1,
                        (meta(wired.takes[k]), meta(wired.gives[k])) if meta else None)
            for k in range(n)]


__all__ = ["Wiring", "wiring", "StageModule", "stage_modules"]
