"""Serving figures of an LLM step plan: TTFT or TPOT, tokens/s, and the decode bandwidth bound.

Conventions (one place, used by the plan and the report):

- A step is one pass of the batch through every stage in order: the next token of a
  sequence needs the previous one, so TTFT (prefill) and TPOT (decode) are the plan's
  latency: stage times plus link times in sequence, for the whole batch at once.
- tokens/s = batch / TPOT for decode, batch x prompt tokens / TTFT for prefill: one batch in
  flight. With as many batches as stages interleaved, a pipeline reaches batch /
  bottleneck tokens/s (``interleaved_tokens_per_s``); each sequence's TPOT stays the same.
- The memory-bandwidth bound of a decode step: every chip reads its weights (of a table that
  its nodes only look up, such as an embedding on another chip than the output head it is
  tied to, the rows they gather) and KV cache once, at the rate its backend costs that read (DRAM, or SRAM where they stay resident);
  the chips run one after another, so the bound of TPOT is the sum over the stages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from chipcut.backends.protocol import Backend, Placement, Work
from chipcut.core.ir import Phase

if TYPE_CHECKING:  # the plan holds a Serving: model imports this module
    from chipcut.compiler.plan.model import Metrics, Stage


@dataclass(frozen=True)
class Serving:
    """One LLM phase of a plan. Seconds and bytes per step of the whole batch.

    phase: "prefill" or "decode"; batch: sequences; tokens: prompt length (prefill) or cache
    context (decode); kv_dtype: the cache's stored dtype; step_s: TTFT (prefill) or TPOT
    (decode); kv_bytes: the KV caches of all chips; bound_s: the decode memory-bandwidth
    bound (0 for prefill), bound_chip: the chip whose read takes longest, bound_chip_s its time.
    """

    phase: str
    batch: int
    tokens: int
    kv_dtype: str
    step_s: float
    tokens_per_s: float
    interleaved_tokens_per_s: float
    kv_bytes: int
    bound_s: float = 0.0
    bound_chip: int = -1
    bound_chip_s: float = 0.0

    @property
    def bound_ratio(self) -> float:
        """TPOT over its memory-bandwidth bound (>= 1; 0 when there is no bound)."""
        return self.step_s / self.bound_s if self.bound_s > 0 else 0.0


def read_s(backend: Backend, nbytes: int, resident: bool = False) -> float:
    """Seconds ``backend`` takes to read ``nbytes`` of resident state once, from DRAM (or from
    SRAM when ``resident``), at the rate its own cost model reads them."""
    if nbytes <= 0:
        return 0.0
    work = Work(macs=0, elem_ops=0, weight_bytes=nbytes, in_bytes=0, out_bytes=0)
    return backend.cost(work, Placement(weights_in_sram=resident)).memory_s


def serving_of(phase: Phase | None, stages: tuple[Stage, ...], metrics: Metrics,
               backends: list[Backend]) -> Serving | None:
    """The serving figures of a plan of an LLM step graph; None for any other graph."""
    if phase is None:
        return None
    tokens_per_step = phase.batch * (phase.tokens if phase.phase == "prefill" else 1)
    step_s = metrics.latency_s
    reads = [read_s(backends[s.chip], s.weight_traffic_bytes + s.kv_bytes, s.weights_resident)
             if s.replica_of < 0 else 0.0 for s in stages]
    decode = phase.phase == "decode"
    chip = max(range(len(reads)), key=reads.__getitem__) if decode and reads else -1
    return Serving(
        phase=phase.phase, batch=phase.batch, tokens=phase.tokens, kv_dtype=phase.kv_dtype,
        step_s=step_s, tokens_per_s=tokens_per_step / step_s if step_s > 0 else 0.0,
        interleaved_tokens_per_s=tokens_per_step * metrics.throughput_per_s,
        kv_bytes=sum(s.kv_bytes for s in stages if s.replica_of < 0),
        bound_s=sum(reads) if decode else 0.0, bound_chip=chip,
        bound_chip_s=reads[chip] if chip >= 0 else 0.0)


def recosted(serving: Serving | None, stages: tuple[Stage, ...], metrics: Metrics,
             backends: list[Backend]) -> Serving | None:
    """``serving`` again for a re-costed plan (an edited one): the same phase, new figures."""
    if serving is None:
        return None
    phase = Phase(serving.phase, serving.batch, serving.tokens, serving.kv_dtype)
    return serving_of(phase, stages, metrics, backends)
