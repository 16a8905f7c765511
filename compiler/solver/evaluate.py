"""The cost semantics: what an assignment of units to chips costs, in one place.

Routing turns the tensors that cross stages into bytes per directed link; each link's
time is its own link function (the backend's ``link_time_s``), the shared switch's or a
host link's; a stage is busy for its units' times (plus its transfers when they do not
overlap compute). The solver's objective, the plan's metrics and ``chipcut show`` all
come from :func:`measure`.

Topologies:

- ``chain``: stage s sends to stage s + 1; a tensor used k stages later crosses k links
  and loads each of them.
- ``ring``: a chain whose last chip links back to the first, links full duplex; a tensor
  takes the shorter way round (backwards over the wrap link when that is fewer hops).
- ``switch``: every transfer is one hop through a switch whose uplink bandwidth is
  shared: the switch carries each tensor once per stage that reads it.

A stage replicated on r identical chips takes alternate frames: it sustains r times its
throughput; a frame still takes its full time (latency). Its last chip sends its outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

from chipcut.compiler.solver.problem import PartitionProblem
from chipcut.core.vocab import Objective, Topology

SWITCH = (-1, -1)  # the route key of the shared switch


@dataclass(frozen=True)
class LinkLoad:
    """One directed link between stages (``SWITCH`` for the switch): its bytes, seconds, and
    the indices of the problem's tensors on it."""

    src: int
    dst: int
    bytes: int
    seconds: float
    tensors: tuple[int, ...]


@dataclass(frozen=True)
class Breakdown:
    """Everything an assignment costs. Stages are listed by their first chip (``leads``).

    compute_s: one frame's unit time per stage; busy_s: plus its transfers when the chip
    does not overlap them; links: per directed link between stages (chain, ring) or per
    (sender, reader) pair through the switch; bottleneck: "chip k", "link a->b" (chips),
    "switch", "host in" or "host out".
    """

    leads: tuple[int, ...]
    replicas: tuple[int, ...]
    compute_s: tuple[float, ...]
    busy_s: tuple[float, ...]
    links: tuple[LinkLoad, ...]
    switch_s: float
    host_in_s: float
    host_out_s: float
    bottleneck_s: float
    bottleneck: str
    bottleneck_chip: int  # -1 when not a chip
    latency_s: float
    bytes_moved: int

    def value(self, objective: str) -> float:
        return self.latency_s if objective == Objective.LATENCY else self.bottleneck_s


def hops(topology: str, n_stages: int, src: int, readers: list[int]) -> list[tuple[int, int]]:
    """Directed links (from stage, to stage) a tensor of stage ``src`` crosses to reach the
    stages ``readers`` (sorted, src excluded); on a switch, one (src, reader) hop per reader."""
    if not readers:
        return []
    if topology == Topology.SWITCH:
        return [(src, r) for r in readers]
    if topology != Topology.RING or n_stages <= 2:
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


def route(problem: PartitionProblem, stage_of_unit: list[int], n_stages: int) -> dict[tuple[int, int], list[int]]:
    """The tensors (indices into ``problem.tensors``) on each directed link between stages."""
    out: dict[tuple[int, int], list[int]] = {}
    for t, (producer, consumers, _) in enumerate(problem.tensors):
        a = stage_of_unit[producer]
        readers = sorted({stage_of_unit[c] for c in consumers} - {a})
        for key in hops(problem.topology, n_stages, a, readers):
            out.setdefault(key, []).append(t)
    return out


def measure(problem: PartitionProblem, chip_of_unit, replicas=None) -> Breakdown:
    """Stage and link times, the bottleneck, batch-1 latency and bytes moved of an assignment."""
    chips = problem.n_chips
    replicas = tuple(replicas) if replicas else (1,) * chips
    leads = tuple(k for k in range(chips) if replicas[k] > 0)
    stage_of = {k: s for s, k in enumerate(leads)}
    members: list[list[int]] = [[] for _ in leads]
    for u, k in enumerate(chip_of_unit):
        members[stage_of[k]].append(u)
    compute = [problem.stage_s(k, units) for k, units in zip(leads, members, strict=True)]
    routes = route(problem, [stage_of[k] for k in chip_of_unit], len(leads))
    switched = problem.topology == Topology.SWITCH
    loads, switch_bytes = [], 0
    for (a, b), tensors in sorted(routes.items()):
        nbytes = sum(problem.tensors[t][2] for t in tensors)
        if switched:
            switch_bytes += nbytes
            seconds = 0.0  # filled below: each pair's share of the switch time
        else:
            sender = leads[a] + replicas[leads[a]] - 1
            seconds = problem.link(sender)(nbytes)
        loads.append(LinkLoad(a, b, nbytes, seconds, tuple(tensors)))
    switch_s = problem.switch(switch_bytes) if switched and switch_bytes else 0.0
    if switched:
        loads = [LinkLoad(x.src, x.dst, x.bytes,
                          switch_s * x.bytes / switch_bytes if switch_bytes else 0.0, x.tensors)
                 for x in loads]
    busy = list(compute)
    for x in loads if not switched else ():
        for s in {x.src, x.dst}:
            if not problem.overlaps(leads[s]):
                busy[s] += x.seconds
    s_max = max(range(len(leads)), key=lambda s: busy[s] / replicas[leads[s]])
    bottleneck_s = busy[s_max] / replicas[leads[s_max]]
    label, chip = f"chip {leads[s_max]}", leads[s_max]
    resources = [] if switched else [(f"link {leads[x.src]}->{leads[x.dst]}", x.seconds) for x in loads]
    resources += [("switch", switch_s), ("host in", problem.host_in_s), ("host out", problem.host_out_s)]
    for name, seconds in resources:
        if seconds > bottleneck_s:
            bottleneck_s, label, chip = seconds, name, -1
    links_s = switch_s if switched else sum(x.seconds for x in loads)
    latency = sum(compute) + links_s + problem.host_in_s + problem.host_out_s
    return Breakdown(leads, tuple(replicas[k] for k in leads), tuple(compute), tuple(busy),
                     tuple(loads), switch_s, problem.host_in_s, problem.host_out_s, bottleneck_s,
                     label, chip, latency, sum(x.bytes for x in loads))


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
    if problem.objective == Objective.LATENCY:
        return sum(fastest) + problem.host_in_s + problem.host_out_s
    rmax = problem.most_replicas
    return max(sum(fastest) / problem.n_chips, max(fastest, default=0.0) / rmax, host)
