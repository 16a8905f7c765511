"""``run``: execute a plan as a real pipeline, one process per stage, and measure it.

Each stage is the plan's split stage wrapped in torch's ``PipelineStage`` and driven by a
``torch.distributed.pipelining`` schedule (GPipe or 1F1B, forward only): gloo on CPU, NCCL
with one GPU per stage on CUDA. One microbatch is one frame: the model's example inputs at
the shape it was captured with. After one warmup step, ``frames / microbatches`` steps are
timed, then single frames for the latency.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import fields, replace

import torch

from chipcut.compiler.capture import Captured, as_inputs, capture
from chipcut.compiler.plan.measured import Measured
from chipcut.compiler.runtime.measure import RunInfo, assemble
from chipcut.compiler.runtime.options import RunOptions
from chipcut.compiler.runtime.stages import stage_modules
from chipcut.core.errors import ChipcutError, ChipcutWarning


def under_torchrun() -> bool:
    """True in a process torchrun started (it sets the rank, world size and rendezvous)."""
    return "TORCHELASTIC_RUN_ID" in os.environ or all(
        k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def stage_chips(plan) -> list[int]:
    """The plan's chips that run a stage, in pipeline order; a replicated plan is refused."""
    replicated = [s.chip for s in plan.stages if s.replicas > 1]
    if replicated:
        raise ChipcutError(f"chip {replicated[0]} of the plan is replicated; chipcut run runs one "
                           "process per stage: recompile without --replicate")
    return [s.chip for s in plan.stages if s.nodes]


def _check(plan, options: RunOptions, stages: int) -> None:
    if options.schedule == "1f1b" and options.microbatches < stages:
        raise ChipcutError(f"schedule 1f1b needs at least as many microbatches as stages ({stages}), "
                           f"got {options.microbatches}; give microbatches >= {stages} or use gpipe")
    if options.device == "cuda" and torch.cuda.device_count() < stages:
        raise ChipcutError(f"the plan has {stages} stages but {torch.cuda.device_count()} CUDA "
                           "devices are visible; one device per stage: use device cpu or a plan "
                           "with fewer chips")


def make_frames(example: tuple, count: int) -> list[tuple[torch.Tensor, ...]]:
    """``count`` frames shaped like ``example``: the example first, then seeded random floats
    (integer and boolean inputs, such as token ids, repeat the example)."""
    frames = []
    for f in range(count):
        gen = torch.Generator().manual_seed(f)
        frames.append(tuple(t.clone() if f == 0 or not t.is_floating_point()
                            else torch.randn(t.shape, generator=gen).to(t.dtype) for t in example))
    return frames


def _batched(frames: list[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
    for j, t in enumerate(frames[0]):
        if t.dim() == 0:
            raise ChipcutError(f"model input {j} is a 0-d tensor; chipcut run stacks frames along "
                               "dim 0: give inputs with a batch dimension")
    return tuple(torch.cat([f[j] for f in frames]) for j in range(len(frames[0])))


def _captured(model: object, example_inputs: tuple) -> Captured:
    captured = model if isinstance(model, Captured) else capture(model, as_inputs(example_inputs))
    gm = captured.graph_module
    tensors = list(gm.parameters()) + list(gm.buffers()) + list(captured.example_inputs)
    if any(isinstance(t, torch.Tensor) and t.is_meta for t in tensors):
        raise ChipcutError("the model or its inputs are on the meta device (no weights); build it "
                           "with real weights to run it")
    return captured


def _prepare(plan, model: object, example_inputs: tuple, options: RunOptions):
    chips = stage_chips(plan)
    captured = _captured(model, example_inputs)
    modules = stage_modules(plan.split(captured.graph_module), captured.graph_module)
    frames = make_frames(captured.example_inputs, options.microbatches)
    return chips, captured, modules, frames


def _reference(captured: Captured, frames: list[tuple]) -> list[tuple[torch.Tensor, ...]]:
    with torch.no_grad():  # on copies: the graph may write its inputs in place
        outs = [captured.graph_module(*[t.clone() for t in f]) for f in frames]
    return [tuple(o) if isinstance(o, (tuple, list)) else (o,) for o in outs]


def run(plan, model: object, example_inputs: tuple = (), options: RunOptions | None = None,
        **overrides: object) -> Measured | None:
    """Run ``plan`` on ``model`` as a pipeline of processes and measure it.

    Settings are :class:`RunOptions` fields, as ``options`` or keywords (``frames=16,
    microbatches=4, schedule="gpipe", threads=1``). Under torchrun each rank calls ``run``
    and builds its own stage; rank 0 returns the Measured, the others None.

    >>> m = chipcut.run(plan, model, inputs, frames=8, microbatches=4)  # doctest: +SKIP
    >>> m.throughput_per_s, m.stages[0].busy_s                          # doctest: +SKIP
    """
    known = {f.name for f in fields(RunOptions)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ChipcutError(f"unknown run option {unknown[0]!r}; options are: {', '.join(sorted(known))}")
    options = replace(options or RunOptions(), **overrides)
    # torch.distributed.pipelining takes about a second to import: only when a plan runs.
    from chipcut.compiler.runtime.launch import assign_cores, check_port, launch

    started = time.perf_counter()
    if under_torchrun():
        return _run_torchrun(plan, model, example_inputs, options, started)
    chips = stage_chips(plan)
    _check(plan, options, len(chips))
    cores = assign_cores(len(chips), options.threads, options.oversubscribe) \
        if options.device == "cpu" else [()] * len(chips)
    if options.port is not None:
        check_port(options.port)
    chips, captured, modules, frames = _prepare(plan, model, example_inputs, options)
    jobs = [_job(k, len(chips), modules[k], options, cores[k], frames) for k in range(len(chips))]
    records = launch(jobs, options.timeout_s, options.port)
    return _checked(assemble(plan, records, chips, _info(captured, options, started, cores),
                             _reference(captured, frames)))


def _job(rank: int, world: int, module, options: RunOptions, cores: tuple[int, ...],
         frames: list[tuple]):
    from chipcut.compiler.runtime.worker import Job

    return Job(rank, world, module, options.schedule, options.microbatches, options.steps,
               options.latency_frames, options.threads, cores, options.device, options.timeout_s,
               _batched(frames) if rank == 0 else ())


def _info(captured: Captured, options: RunOptions, started: float, cores: list) -> RunInfo:
    used = [c for group in cores for c in group]
    return RunInfo(captured.name, options.schedule, options.frames, options.microbatches,
                   options.threads, options.device, len(used) > len(set(used)),
                   time.perf_counter() - started)


def _run_torchrun(plan, model: object, example_inputs: tuple, options: RunOptions,
                  started: float) -> Measured | None:
    from chipcut.compiler.runtime.launch import assign_cores
    from chipcut.compiler.runtime.worker import run_rank

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    stages = len(stage_chips(plan))
    if world != stages:
        raise ChipcutError(f"torchrun started {world} processes but the plan has {stages} "
                           f"stages; give --nproc-per-node {stages}")
    _check(plan, options, stages)
    chips, captured, modules, frames = _prepare(plan, model, example_inputs, options)
    local = int(os.environ.get("LOCAL_RANK", rank))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    cores = assign_cores(local_world, options.threads, options.oversubscribe) \
        if options.device == "cpu" else [()] * local_world
    records = run_rank(_job(rank, world, modules[rank], options, cores[local], frames))
    if records is None:
        return None
    return _checked(assemble(plan, records, chips, _info(captured, options, started, cores),
                             _reference(captured, frames)))


def _checked(measured: Measured) -> Measured:
    if not measured.outputs_agree:
        warnings.warn(f"the pipeline's outputs differ from the unsplit model's by up to "
                      f"{measured.max_abs_diff:.3g} (output scale {measured.output_scale:.3g}): "
                      "the split does not compute this model; please report it with the model "
                      "and plan", ChipcutWarning, stacklevel=3)
    return measured


__all__ = ["run", "make_frames", "stage_chips", "under_torchrun"]
