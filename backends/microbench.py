"""Calibration microbenchmarks: one representative kernel per op class plus the machine's rates.
Weights are read from DRAM, as in a model too large for the cache.

The class kernels and the memory rates are timed **in sequence**, one call of each kernel after
another, as a graph's nodes run: looped alone, a kernel finds its input and the memory it just
freed hot in cache, and a layer norm then runs 3x, a depthwise conv 1.7x faster than it does
between the other layers of a model. Each repeat is a block of such rounds; a kernel's time in a
block is its median call, and the fastest block is kept (a busy spell on a shared machine slows
one block), the spread being slowest / fastest block. The fixed per-op overhead and the
in-cache vector rate are machine figures, not layers: they are timed in a loop of their own.

Each benchmark records the work the accounting rules give its kernel (MACs, element ops; see
chipcut.passes.rules), so a fit against it predicts a model's nodes of the same class.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from chipcut.backends.blockbench import time_blocks
from chipcut.core.vocab import OpClass

REPEATS = 7  # timings per benchmark: the fastest is kept, slowest / fastest is its spread
TIMING_S = 2e-3  # each looped timing runs the kernel enough times to last at least this long
ROUNDS = 8  # calls of each in-sequence kernel per repeat; the repeat's time is their median


@dataclass(frozen=True)
class Measured:
    """One microbenchmark: its work and its fastest time per call (seconds).

    nbytes: the bytes it moves: a class kernel's activations (inputs and outputs), a machine
    rate's memory traffic;
    spread: slowest / fastest of the repeated timings (1.0 is perfectly steady);
    op_class: the class it fits ("" for the machine figures: overhead, vector, stream, copy).
    """

    name: str
    seconds: float
    macs: int = 0
    elem_ops: int = 0
    nbytes: int = 0
    spread: float = 1.0
    op_class: str = ""


def clock() -> Callable[[], float]:
    """The clock timings read: single-threaded, the thread's own CPU time, so that time the OS
    gives another process on a shared core is not counted; multi-threaded, wall time (the
    threads' CPU times would count their waiting)."""
    import torch

    return time.thread_time if torch.get_num_threads() == 1 else time.perf_counter


def _loop(fn: Callable[[], object], timing_s: float, now: Callable[[], float]) -> Callable[[], float]:
    """A timing of ``fn``: seconds per call over enough calls to last ``timing_s``, the count
    found by doubling it (which warms up allocations, kernel selection and caches)."""

    def run(inner: int) -> float:
        start = now()
        for _ in range(inner):
            fn()
        return now() - start

    fn()
    inner = 1
    while run(inner) < timing_s and inner < 2**14:
        inner *= 2
    return lambda: run(inner) / inner


@dataclass(frozen=True)
class Kernel:
    """A benchmark before it runs: a builder returning the call to time, and its work."""

    name: str
    op_class: str
    what: str  # the kernel and shape, for the spec's source line
    build: Callable[[], Callable[[], object]]
    macs: int = 0
    elem_ops: int = 0
    nbytes: int = 0
    looped: bool = False  # a machine figure timed in a loop of its own, not in sequence


# Builders: each makes its tensors (in the last-level cache unless said otherwise) and returns
# the call to time. torch is imported only when one runs.

def _max_pool() -> Callable[[], object]:
    import torch
    import torch.nn.functional as F

    x = torch.randn(1, 64, 112, 112)
    return lambda: F.max_pool2d(x, 3, 2, 1)


def _pad_add() -> Callable[[], object]:
    import torch
    import torch.nn.functional as F

    x, y = torch.randn(1, 144, 56, 56), torch.randn(1, 144, 58, 58)
    return lambda: F.pad(x, (1, 1, 1, 1)) + y


def _tiny_add() -> Callable[[], object]:
    import torch

    a, b = torch.ones(1), torch.ones(1)
    return lambda: a + b  # allocates its result, as a graph's ops do


def _add(n: int) -> Callable[[], Callable[[], object]]:
    def build() -> Callable[[], object]:
        import torch

        a, b, c = (torch.ones(n) for _ in range(3))  # a preallocated output: no page faults
        return lambda: torch.add(a, b, out=c)
    return build


def _copy() -> Callable[[], object]:
    import torch

    src, dst = torch.randn(_BIG), torch.empty(_BIG)
    return lambda: dst.copy_(src)


_BIG = 2**24  # floats: 64 MiB per tensor, out of any cache
# The benchmarks, in the order they run. Work is what the accounting rules count: a pool one
# element op per input element, a pad or an add one per output element. The op classes of
# layers inside models (dense, small-map, depthwise, attention, norms) are fitted on the layers
# of the calibration blocks (chipcut.backends.blockbench); these kernels add the machine rates,
# the stem pool and a pad.
KERNELS: tuple[Kernel, ...] = (
    Kernel("overhead", "", "add of 1-element tensors", _tiny_add, looped=True),
    Kernel("vector", "", "in-cache add of 2^16 floats", _add(2**16), 0, 2**16, 3 * 2**18,
           looped=True),
    Kernel("max-pool", OpClass.POOL, "max_pool2d 3x3/2 on 64x112x112", _max_pool,
           0, 64 * 112 * 112, 4 * 64 * (112 * 112 + 56 * 56)),
    Kernel("pad-add", OpClass.ELEMENTWISE, "pad 144x56x56 by 1, then add", _pad_add,
           0, 2 * 144 * 58 * 58, 4 * 144 * (56 * 56 + 2 * 58 * 58)),
    Kernel("stream", "", "out-of-cache add of 2^24 floats", _add(_BIG), 0, _BIG, 3 * _BIG * 4),
    Kernel("copy", "", "copy of 2^24 floats", _copy, 0, 0, 2 * _BIG * 4),
)


def measure(repeats: int = REPEATS) -> dict[str, Measured]:
    """Run every benchmark (about 10 s in all) with the threads torch uses now: ``repeats``
    blocks, each timing the looped kernels once and then calling the others in sequence
    ``ROUNDS`` times (see the module docstring)."""
    import torch

    now = clock()
    with torch.inference_mode():
        calls = [k.build() for k in KERNELS]
        loops = {i: _loop(calls[i], TIMING_S, now) for i, k in enumerate(KERNELS) if k.looped}
        in_sequence = [i for i, k in enumerate(KERNELS) if not k.looped]
        for i in in_sequence:  # warm up: allocations, kernel selection
            calls[i]()
        times: list[list[float]] = [[] for _ in KERNELS]
        for _ in range(repeats):
            for i, loop in loops.items():
                times[i].append(loop())
            calls_s: dict[int, list[float]] = {i: [] for i in in_sequence}
            for _ in range(ROUNDS):
                for i in in_sequence:
                    start = now()
                    calls[i]()
                    calls_s[i].append(now() - start)
            for i, column in calls_s.items():
                times[i].append(statistics.median(column))
        layers = time_blocks(now, repeats, ROUNDS)
    out = {}
    for k, column in zip(KERNELS, times, strict=True):
        out[k.name] = Measured(k.name, min(column), k.macs, k.elem_ops, k.nbytes,
                               max(column) / min(column), str(k.op_class))
    for t in layers:
        out[t.name] = Measured(t.name, t.seconds, t.macs, t.elem_ops, t.activation_bytes, t.spread,
                               str(t.op_class))
    return out
