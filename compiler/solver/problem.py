"""The partitioning problem, a solution, and how an assignment is costed on an interconnect.

Topologies (``PartitionProblem.topology``):

- ``chain``: stage s sends to stage s + 1; a tensor used k stages later crosses k links
  and loads each of them.
- ``ring``: a chain whose last chip links back to the first, links full duplex; a tensor
  takes the shorter way round (backwards over the wrap link when that is fewer hops).
- ``switch``: every transfer is one hop through a switch whose uplink bandwidth is
  shared: the switch carries each tensor once per stage that reads it.

Host links carry the model's inputs in and its outputs out. A stage replicated on r
identical chips takes alternate frames: it sustains r times its throughput; a frame
still takes its full time (latency).
"""

from __future__ import annotations

from dataclasses import dataclass

TOPOLOGIES = ("chain", "ring", "switch")
OBJECTIVES = ("throughput", "latency")


@dataclass(frozen=True)
class PartitionProblem:
    """Pure solver input. Units are in a topological order.

    unit_time_s[u][k]: seconds of unit u on chip k; tensors: (producer, consumers, bytes)
    between units; link_bytes_per_s[k], link_latency_s[k]: the link out of chip k (per
    direction; N - 1 entries are enough for a chain). weight_bytes[u] and live_bytes[u]
    (activations live while u runs) are checked against memory_bytes[k] (0: unchecked).
    overlap[k]: chip k's transfers overlap its compute. max_replicas[k]: how many identical
    chips from k on may share one stage.
    """

    unit_time_s: tuple[tuple[float, ...], ...]
    tensors: tuple[tuple[int, tuple[int, ...], int], ...]
    n_chips: int
    link_bytes_per_s: tuple[float, ...]
    link_latency_s: tuple[float, ...]
    weight_bytes: tuple[int, ...] = ()
    live_bytes: tuple[int, ...] = ()
    memory_bytes: tuple[int, ...] = ()
    overlap: tuple[bool, ...] = ()
    max_replicas: tuple[int, ...] = ()
    topology: str = "chain"
    switch_bytes_per_s: float = 0.0
    switch_latency_s: float = 0.0
    host_in_s: float = 0.0
    host_out_s: float = 0.0
    objective: str = "throughput"

    def link(self, k: int) -> tuple[float, float]:
        """(bytes/s, latency s) of the link out of chip k."""
        k = min(k, len(self.link_bytes_per_s) - 1)
        return self.link_bytes_per_s[k], self.link_latency_s[k]

    def overlaps(self, k: int) -> bool:
        return self.overlap[k] if self.overlap else True


@dataclass(frozen=True)
class Solution:
    chip_of_unit: tuple[int, ...]
    status: str  # OPTIMAL, FEASIBLE (time limit hit with a plan)
    bottleneck_s: float  # the objective's value: bottleneck, or batch-1 latency
    bound_s: float
    gap: float
    bytes_moved: int
    wall_s: float
    replicas: tuple[int, ...] = ()  # per chip: r on a stage's first chip, 0 on its replicas
    method: str = ""


@dataclass(frozen=True)
class Measure:
    bottleneck_s: float
    latency_s: float
    bytes_moved: int

    def value(self, objective: str) -> float:
        return self.latency_s if objective == "latency" else self.bottleneck_s


def measure(problem: PartitionProblem, chip_of_unit, replicas=None) -> Measure:
    """Bottleneck, batch-1 latency and bytes moved of an assignment on the problem's topology."""
    chips = problem.n_chips
    replicas = tuple(replicas) if replicas else (1,) * chips
    leads = [k for k in range(chips) if replicas[k] > 0]
    stage_of = {k: s for s, k in enumerate(leads)}
    loads = [0.0] * chips
    for u, k in enumerate(chip_of_unit):
        loads[k] += problem.unit_time_s[u][k]
    link_bytes = route(problem, [stage_of[k] for k in chip_of_unit], leads)
    sender = [k + replicas[k] - 1 for k in leads]
    link_s = {key: _time(problem, key[0], b, sender) for key, b in link_bytes.items() if b}
    stage_s = []
    for s, k in enumerate(leads):
        busy = loads[k]
        if not problem.overlaps(k):
            busy += sum(t for (src, dst), t in link_s.items() if s in (src, dst))
        stage_s.append(busy / replicas[k])
    host = [problem.host_in_s, problem.host_out_s]
    bottleneck = max(stage_s + list(link_s.values()) + host)
    latency = sum(loads[k] for k in leads) + sum(link_s.values()) + sum(host)
    return Measure(bottleneck, latency, sum(link_bytes.values()))


def hops(topology: str, n_stages: int, src: int, readers: list[int]) -> list[tuple[int, int]]:
    """Directed links (from stage, to stage) a tensor of stage ``src`` crosses to reach the
    stages ``readers`` (sorted, src excluded); (-1, -1) is the switch, once per reader."""
    if not readers:
        return []
    if topology == "switch":
        return [(-1, -1)] * len(readers)
    if topology != "ring" or n_stages <= 2:
        return [(s, s + 1) for s in range(src, readers[-1])]
    # On a ring the readers ahead are reached forwards, the rest backwards over the wrap
    # link: the split with the fewest hops.
    def cost(i: int) -> int:
        ahead = readers[i - 1] - src if i else 0
        behind = n_stages - (readers[i] - src) if i < len(readers) else 0
        return ahead + behind
    split = min(range(len(readers), -1, -1), key=cost)
    out = [(s, s + 1) for s in range(src, readers[split - 1])] if split else []
    if split < len(readers):
        back = n_stages - (readers[split] - src)
        out += [((src - i) % n_stages, (src - i - 1) % n_stages) for i in range(back)]
    return out


def route(problem: PartitionProblem, stage_of_unit: list[int], leads: list[int]) -> dict[tuple[int, int], int]:
    """Bytes on each directed link (from stage, to stage); (-1, -1) keys the switch."""
    out: dict[tuple[int, int], int] = {}
    for producer, consumers, nbytes in problem.tensors:
        a = stage_of_unit[producer]
        readers = sorted({stage_of_unit[c] for c in consumers} - {a})
        for key in hops(problem.topology, len(leads), a, readers):
            out[key] = out.get(key, 0) + nbytes
    return out


def _time(problem: PartitionProblem, src: int, nbytes: int, sender: list[int]) -> float:
    """Seconds on a link out of stage ``src`` (its last chip's link), or on the switch."""
    if src < 0:
        return problem.switch_latency_s + nbytes / problem.switch_bytes_per_s
    bw, lat = problem.link(sender[src])
    return lat + nbytes / bw


def evaluate(problem: PartitionProblem, chip_of_unit, replicas=None) -> tuple[float, int]:
    """(the objective's value, bytes moved) of an assignment."""
    m = measure(problem, chip_of_unit, replicas)
    return m.value(problem.objective), m.bytes_moved


def lower_bound_s(problem: PartitionProblem) -> float:
    """Throughput: max(total work / N, heaviest indivisible unit, host links), each unit at its
    fastest chip (the heaviest unit divided by the most replicas a stage may have).
    Latency: the whole model on its fastest chips, plus the host links."""
    fastest = [min(t) for t in problem.unit_time_s]
    host = max(problem.host_in_s, problem.host_out_s)
    if problem.objective == "latency":
        return sum(fastest) + problem.host_in_s + problem.host_out_s
    rmax = max(problem.max_replicas, default=1)
    return max(sum(fastest) / problem.n_chips, max(fastest, default=0.0) / rmax, host)


@dataclass(frozen=True)
class Interconnect:
    """How the chips are wired, and what the solver optimizes.

    Bandwidths in bytes/s (per direction), latencies in seconds; None takes the chips' own
    link (the switch: one chip link's bandwidth, shared; the host: chip 0's link in, the
    last chip's link out). ``replicate``: a stage may run on several identical chips
    (each holding the stage's weights) when that is strictly faster than cutting finer.
    """

    topology: str = "chain"
    switch_bytes_per_s: float | None = None
    switch_latency_s: float | None = None
    host_bytes_per_s: float | None = None
    host_latency_s: float | None = None
    objective: str = "throughput"
    replicate: bool = False

    def switch(self, chip_link) -> tuple[float, float]:
        """(bytes/s, latency s) of the shared switch, given the chips' link spec."""
        lat = chip_link.latency_s if self.switch_latency_s is None else self.switch_latency_s
        return self.switch_bytes_per_s or chip_link.bytes_per_s, lat


CHAIN = Interconnect()  # the default: a chain, throughput, no replication


def host_link_s(nbytes: int, net: Interconnect, bytes_per_s: float, latency_s: float) -> float:
    """Seconds to move ``nbytes`` over a host link (the chip's own link unless ``net`` sets one)."""
    if not nbytes:
        return 0.0
    lat = latency_s if net.host_latency_s is None else net.host_latency_s
    return lat + nbytes / (net.host_bytes_per_s or bytes_per_s)
