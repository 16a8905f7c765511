"""Link micro-benchmark: what handing an activation to the next stage costs on this host.

``chipcut run`` passes activations between stage processes with torch.distributed (gloo);
two processes here send tensors of a few sizes back and forth, and an affine fit of the
one-way time (latency + bytes / bandwidth) is the link of a calibrated spec.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

SIZES = (4 * 2**10, 64 * 2**10, 2**20, 4 * 2**20)  # bytes per transfer
ROUNDS = 12  # round trips per size; the fastest is kept (a busy spell only slows some)
TIMEOUT_S = 120.0


@dataclass(frozen=True)
class LinkFit:
    """One-way transfer time = latency_s + bytes / bytes_per_s, fitted to ``points``
    ((bytes, seconds) pairs, the fastest one-way time of each size)."""

    bytes_per_s: float
    latency_s: float
    points: tuple[tuple[int, float], ...]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ping_pong(rank: int, port: int, results) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        times = {}
        for nbytes in SIZES:
            buf = torch.zeros(nbytes // 4)
            best = float("inf")
            for _ in range(ROUNDS):
                dist.barrier()
                start = time.perf_counter()
                if rank == 0:
                    dist.send(buf, 1)
                    dist.recv(buf, 1)
                else:
                    dist.recv(buf, 0)
                    dist.send(buf, 0)
                best = min(best, (time.perf_counter() - start) / 2)
            times[nbytes] = best
        if rank == 0:
            results.put(times)
    finally:
        dist.destroy_process_group()


def measure_link() -> LinkFit:
    """Fit the one-way gloo transfer time between two processes on this host (a few seconds)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_ping_pong, args=(rank, port, results), daemon=True)
             for rank in range(2)]
    for p in procs:
        p.start()
    try:
        times = results.get(timeout=TIMEOUT_S)
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
    return fit_link(sorted(times.items()))


def fit_link(points: list[tuple[int, float]]) -> LinkFit:
    """Least-squares line through (bytes, seconds); latency at least 0, bandwidth positive."""
    n = len(points)
    mean_b = sum(b for b, _ in points) / n
    mean_t = sum(t for _, t in points) / n
    var = sum((b - mean_b) ** 2 for b, _ in points)
    slope = sum((b - mean_b) * (t - mean_t) for b, t in points) / var if var else 0.0
    if slope <= 0:  # no measurable cost per byte: take the largest transfer's rate
        b, t = max(points)
        slope = t / b
    latency = max(mean_t - slope * mean_b, 0.0)
    return LinkFit(1 / slope, latency, tuple(points))
