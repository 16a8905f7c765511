"""Background load while profiling: other processes running the same graph in a loop.

A pipeline of S stages on one host runs S processes at once, and they share the memory
bandwidth and the caches: a unit timed alone runs faster than it will in the pipeline
(measured here: MobileNetV2's memory-heavy first stage 35% slower beside a second stage).
Profiling with ``load = S - 1`` copies of the graph running beside the timed one measures
the units as the pipeline will run them.
"""

from __future__ import annotations

import contextlib
import os
import pickle

import torch
import torch.fx

from chipcut.compiler.runtime.launch import _context, _main_script_not_rerun
from chipcut.core.errors import ChipcutError

READY_TIMEOUT_S = 120.0


@contextlib.contextmanager
def background_load(gm: torch.fx.GraphModule, inputs: tuple, copies: int, threads: int):
    """Run ``copies`` processes, each calling ``gm`` on ``inputs`` in a loop with ``threads``
    torch threads (pinned to a core other than this process's where there are enough), for
    the duration of the ``with`` block."""
    if copies <= 0:
        yield
        return
    ctx = _context()
    stop, ready = ctx.Event(), ctx.Queue()
    # A plain GraphModule over the same graph: export's tracer class does not unpickle.
    plain = torch.fx.GraphModule(gm, gm.graph)
    plain._tracer_cls = None
    payload = pickle.dumps((plain, inputs))
    procs = []
    try:
        with _main_script_not_rerun():
            for k in range(copies):
                proc = ctx.Process(target=_spin, args=(payload, stop, ready, threads, k + 1),
                                   name=f"chipcut profile load {k + 1}", daemon=True)
                proc.start()
                procs.append(proc)
        for _ in procs:
            try:
                ready.get(timeout=READY_TIMEOUT_S)
            except Exception:  # noqa: BLE001 - queue.Empty, or a process that died
                raise ChipcutError(f"a background load process did not start within "
                                   f"{READY_TIMEOUT_S:.0f} s; profile with --load 0") from None
        yield
    finally:
        stop.set()
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join(5)


def _spin(payload: bytes, stop, ready, threads: int, core: int) -> None:
    torch.set_num_threads(threads)
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cores) > core:
        os.sched_setaffinity(0, {cores[core]})
    gm, inputs = pickle.loads(payload)
    with torch.no_grad():
        gm.forward(*inputs)
        ready.put(core)
        while not stop.is_set():
            gm.forward(*inputs)
