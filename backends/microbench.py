"""Calibration microbenchmarks: one representative kernel per op class plus the machine's rates,
each timed several times (fastest kept, spread reported). Weights are read from DRAM, as in a
model too large for the cache; activations stay in the cache.

Each benchmark records the work the accounting rules give its kernel (MACs, element ops; see
chipcut.passes.rules), so a fit against it predicts a model's nodes of the same class.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from chipcut.core.vocab import OpClass

REPEATS = 7  # timings per benchmark: the fastest is kept, slowest / fastest is its spread
TIMING_S = 2e-3  # each timing runs the kernel enough times to last at least this long


@dataclass(frozen=True)
class Measured:
    """One microbenchmark: its work and its fastest time per call (seconds).

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


def timed(fn: Callable[[], object], repeats: int = REPEATS, timing_s: float = TIMING_S) -> tuple[float, float]:
    """(fastest seconds per call, slowest / fastest) over ``repeats`` timings of ``fn``.

    Each timing loops ``fn`` for at least ``timing_s`` so that the clock's resolution and one
    interruption weigh little; on a shared machine the fastest timing is the least disturbed.
    """
    loop = _loop(fn, timing_s, clock())
    times = [loop() for _ in range(repeats)]
    return min(times), max(times) / min(times)


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


# Builders: each makes its tensors (in the last-level cache unless said otherwise) and returns
# the call to time. torch is imported only when one runs.

def _cold(make: Callable[[], object], nbytes: int) -> Callable[[], object]:
    """Copies of a weight, enough to overflow any last-level cache, handed out in turn: a model
    too large for the cache reads each layer's weights from DRAM, and so does the benchmark."""
    pool = [make() for _ in range(max(1, math.ceil(_COLD_BYTES / nbytes)))]
    turn = itertools.cycle(pool)
    return lambda: next(turn)


def _conv(c_in: int, c_out: int, size: int, groups: int = 1,
          stride: int = 1) -> Callable[[], Callable[[], object]]:
    def build() -> Callable[[], object]:
        import torch
        import torch.nn.functional as F

        x, b = torch.randn(1, c_in, size, size), torch.randn(c_out)
        weight = _cold(lambda: torch.randn(c_out, c_in // groups, 3, 3), c_out * c_in // groups * 36)
        return lambda: F.conv2d(x, weight(), b, stride=stride, padding=1, groups=groups)
    return build


def _linear() -> Callable[[], object]:
    import torch
    import torch.nn.functional as F

    x, b = torch.randn(128, 768), torch.randn(3072)
    weight = _cold(lambda: torch.randn(3072, 768), 3072 * 768 * 4)
    return lambda: F.linear(x, weight(), b)


def _sdpa() -> Callable[[], object]:
    import torch
    import torch.nn.functional as F

    q, k, v = (torch.randn(1, 12, 128, 64) for _ in range(3))
    return lambda: F.scaled_dot_product_attention(q, k, v)


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


def _layer_norm() -> Callable[[], object]:
    import torch
    import torch.nn.functional as F

    x, w, b = torch.randn(128, 768), torch.randn(768), torch.randn(768)
    return lambda: F.layer_norm(x, (768,), w, b)


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
_COLD_BYTES = 2**26  # 64 MiB of copies of a weight
# The benchmarks, in the order they run. A class with several takes their geometric mean.
# Shapes are those of the layers each class stands for: BERT-base's FFN GEMM, attention and
# layer norm; ResNet-50's 56x56 and 7x7 convs and stem pool; MobileNetV2's depthwise convs
# (stride 1 and 2, early and late) and pads. Work is what the accounting rules count: a conv or
# linear adds one element op per output (its bias), attention four per score, a pool or a norm
# one per input element, a pad or an add one per output element.
KERNELS: tuple[Kernel, ...] = (
    Kernel("overhead", "", "add of 1-element tensors", _tiny_add),
    Kernel("vector", "", "in-cache add of 2^16 floats", _add(2**16), 0, 2**16, 3 * 2**18),
    Kernel("max-pool", OpClass.POOL, "max_pool2d 3x3/2 on 64x112x112", _max_pool,
           0, 64 * 112 * 112),
    Kernel("pad-add", OpClass.ELEMENTWISE, "pad 144x56x56 by 1, then add", _pad_add,
           0, 2 * 144 * 58 * 58),
    Kernel("layer-norm", OpClass.ELEMENTWISE, "layer_norm 128x768", _layer_norm, 0, 128 * 768),
    Kernel("dw-56", OpClass.DEPTHWISE, "depthwise 3x3 conv, 144 ch at 56x56",
           _conv(144, 144, 56, 144), 144 * 56 * 56 * 9, 144 * 56 * 56),
    Kernel("dw-56-s2", OpClass.DEPTHWISE, "depthwise 3x3/2 conv, 144 ch 56x56 to 28x28",
           _conv(144, 144, 56, 144, 2), 144 * 28 * 28 * 9, 144 * 28 * 28),
    Kernel("dw-14", OpClass.DEPTHWISE, "depthwise 3x3 conv, 576 ch at 14x14",
           _conv(576, 576, 14, 576), 576 * 14 * 14 * 9, 576 * 14 * 14),
    Kernel("sdpa", OpClass.ATTENTION, "SDPA, 12 heads x 128 x 64", _sdpa,
           12 * 128 * 128 * 128, 4 * 12 * 128 * 128),
    Kernel("conv-56", OpClass.DENSE, "3x3 conv 64->64 ch at 56x56", _conv(64, 64, 56),
           64 * 56 * 56 * 64 * 9, 64 * 56 * 56),
    Kernel("conv-7", OpClass.SMALL_MAP, "3x3 conv 512->512 ch at 7x7", _conv(512, 512, 7),
           512 * 49 * 512 * 9, 512 * 49),
    Kernel("gemm", OpClass.DENSE, "linear 128x768 -> 3072", _linear, 128 * 768 * 3072,
           128 * 3072),
    Kernel("stream", "", "out-of-cache add of 2^24 floats", _add(_BIG), 0, _BIG, 3 * _BIG * 4),
    Kernel("copy", "", "copy of 2^24 floats", _copy, 0, 0, 2 * _BIG * 4),
)


def measure(repeats: int = REPEATS) -> dict[str, Measured]:
    """Run every benchmark (a few seconds in all) with the threads torch uses now: ``repeats``
    rounds, each timing every benchmark once, so a busy spell on a shared machine slows one
    round of all of them rather than every timing of one."""
    import torch

    now = clock()
    with torch.inference_mode():
        loops = [_loop(k.build(), TIMING_S, now) for k in KERNELS]
        times = [[loop() for loop in loops] for _ in range(repeats)]
    out = {}
    for i, k in enumerate(KERNELS):
        column = [round_[i] for round_ in times]
        out[k.name] = Measured(k.name, min(column), k.macs, k.elem_ops, k.nbytes,
                               max(column) / min(column), str(k.op_class))
    return out
