"""The links of the CP-SAT model (chipcut.compiler.solver.cpsat), one builder per topology:
which tensors cross which link, as Booleans over the model's chip variables, and each link's
time in ticks. Each builder works on the model it is given (OR-Tools is imported by cpsat
alone) and says, per variable, its value under a given assignment (the start's hint).

- chain: link k (chip k - 1 to k) carries a tensor when a consumer is on chip k or later and
  the producer before k.
- switch: one shared resource; it carries a tensor once per chip that holds a consumer but
  not the producer.
- ring (3 chips or more): the chips of a tensor's readers (all after its producer) are
  reached forwards, or backwards over the wrap link (the producer's chip down to chip 0,
  then chip N - 1 down to the reader). Here the model may pick any such routing; the plan's
  cost routes each tensor the way with the fewest hops, one of them, so the model is a
  relaxation and its bound a bound, but not exact.

A link CP-SAT cannot encode exactly (not affine in bytes) is left out: the model is then a
relaxation as well; plans are costed exactly after.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from chipcut.compiler.solver.evaluate import hops
from chipcut.compiler.solver.problem import LinkTime, PartitionProblem, as_affine
from chipcut.core.vocab import Topology

Hint = tuple[object, Callable[[Sequence[int]], int]]  # a variable, its value under an assignment


class OutOfTime(Exception):
    """The model was not built by the deadline."""


def on_time(deadline: float) -> None:
    if time.perf_counter() > deadline:
        raise OutOfTime


@dataclass(frozen=True)
class Link:
    expr: object  # ticks, linear in the model's Booleans
    top: int  # its largest value
    ends: tuple[int, int] | None  # (sender, receiver) chips; None: the switch


@dataclass
class Links:
    links: list[Link] = field(default_factory=list)
    bytes_expr: object = 0  # bytes moved over every link
    exact: bool = True  # the links' times are the plan's (affine links, the plan's routing)
    hints: list[Hint] = field(default_factory=list)
    _value_of: dict[int, Callable[[Sequence[int]], int]] = field(default_factory=dict)

    def hint(self, var, value: Callable[[Sequence[int]], int]) -> None:
        self.hints.append((var, value))
        self._value_of[id(var)] = value

    def value_of(self, var) -> Callable[[Sequence[int]], int]:
        return self._value_of[id(var)]


def build_links(m, problem: PartitionProblem, y, tick_s: float, deadline: float) -> Links:
    """The links of ``problem``'s topology on model ``m`` whose chip variables are ``y``
    (y[u][k] = [chip(u) >= k], k = 1..N-1). Raises OutOfTime past ``deadline``."""
    chips = problem.n_chips
    if problem.topology == Topology.SWITCH:
        return _switch(m, problem, y, tick_s, deadline)
    if problem.topology == Topology.RING and chips > 2:
        return _ring(m, problem, y, tick_s, deadline)
    return _chain(m, problem, y, tick_s, deadline)


def _chain(m, problem: PartitionProblem, y, tick_s: float, deadline: float) -> Links:
    out = Links()
    for k in range(1, problem.n_chips):
        crossing = {}
        on_time(deadline)
        for t, (p, consumers, _) in enumerate(problem.tensors):
            z = m.new_bool_var(f"z{t}_{k}")
            for c in consumers:
                m.add(z >= y[c][k] - y[p][k])
            crossing[t] = z
            out.hint(z, _crosses(p, consumers, k))
        _add(m, problem, out, list(crossing.items()), problem.link(k - 1), tick_s, (k - 1, k))
    return out


def _crosses(p: int, consumers: tuple[int, ...], k: int) -> Callable[[Sequence[int]], int]:
    return lambda chip: int(chip[p] < k <= max(chip[c] for c in consumers))


def _switch(m, problem: PartitionProblem, y, tick_s: float, deadline: float) -> Links:
    chips = problem.n_chips

    def on(u: int, k: int):
        return (1 if k == 0 else y[u][k]) - (y[u][k + 1] if k + 1 < chips else 0)
    out, sent = Links(), {}
    for t, (p, consumers, _) in enumerate(problem.tensors):
        on_time(deadline)
        for k in range(1, chips):  # nothing reaches chip 0 but from chip 0
            s = m.new_bool_var(f"s{t}_{k}")
            for c in consumers:
                m.add(s >= on(c, k) - on(p, k))
            sent[t, k] = s
            out.hint(s, _reaches(p, consumers, k))
    _add(m, problem, out, [(t, var) for (t, _), var in sent.items()], problem.switch, tick_s,
         None)
    return out


def _reaches(p: int, consumers: tuple[int, ...], k: int) -> Callable[[Sequence[int]], int]:
    return lambda chip: int(chip[p] != k and any(chip[c] == k for c in consumers))


def _ring(m, problem: PartitionProblem, y, tick_s: float, deadline: float) -> Links:
    chips = problem.n_chips
    out = Links(exact=False)
    forward = {j: {} for j in range(1, chips)}  # into chip j from j - 1
    backward = {i: {} for i in range(chips)}  # into chip i from (i + 1) mod N
    for t, (p, consumers, _) in enumerate(problem.tensors):
        on_time(deadline)
        fwd = {j: m.new_bool_var(f"f{t}_{j}") for j in range(1, chips)}
        back = {j: m.new_bool_var(f"r{t}_{j}") for j in range(1, chips)}  # chip j reached backwards
        past = {j: m.new_bool_var(f"w{t}_{j}") for j in range(1, chips)}  # some chip <= j is
        bwd = {i: m.new_bool_var(f"b{t}_{i}") for i in range(chips)}
        for j in range(1, chips):
            m.add_implication(fwd[j], ~y[p][j])  # forwards only past the producer
            if j > 1:  # ... one hop after another
                m.add_bool_or([~fwd[j], fwd[j - 1], y[p][j - 1]])
                m.add_implication(past[j - 1], past[j])
            m.add_implication(back[j], past[j])
            for c in consumers:  # a reader on chip j is reached one way or the other
                on_j = [~y[c][j]] + ([y[c][j + 1]] if j + 1 < chips else [])
                m.add_bool_or(on_j + [y[p][j], fwd[j], back[j]])
            # Backwards past the wrap: into chip j when a reader at or below j is reached so.
            m.add_bool_or([~past[j], y[p][j], bwd[j]])
        for i in range(chips - 1):  # ... and from the producer down to chip 0 first
            m.add_bool_or([~past[chips - 1], ~y[p][i + 1], bwd[i]])
        for j in range(1, chips):
            forward[j][t] = fwd[j]
        for i in range(chips):
            backward[i][t] = bwd[i]
        for var, value in _ring_hints(p, consumers, chips, fwd, back, past, bwd):
            out.hint(var, value)
    for j in range(1, chips):
        _add(m, problem, out, list(forward[j].items()), problem.link(j - 1), tick_s, (j - 1, j))
    for i in range(chips):
        sender = (i + 1) % chips
        _add(m, problem, out, list(backward[i].items()), problem.link(sender), tick_s,
             (sender, i))
    return out


def _ring_hints(p: int, consumers: tuple[int, ...], chips: int, fwd, back, past, bwd) -> list[Hint]:
    """The ring variables of one tensor under an assignment, routed as the plan's cost routes
    it (chipcut.compiler.solver.evaluate.hops)."""
    last: list = [None, None]  # the assignment last routed (kept, so compared by identity), its route

    def used(chip: Sequence[int]) -> set[tuple[int, int]]:
        if last[0] is not chip:  # routed once per assignment, not once per variable
            readers = sorted({chip[c] for c in consumers} - {chip[p]})
            last[:] = [chip, set(hops(Topology.RING, chips, chip[p], readers))]
        return last[1]

    def backwards(chip: Sequence[int]) -> set[int]:
        links = used(chip)
        return {chip[c] for c in consumers if chip[c] != chip[p] and (chip[c] - 1, chip[c]) not in links}
    out: list[Hint] = []
    for j in range(1, chips):
        out.append((fwd[j], lambda chip, j=j: int((j - 1, j) in used(chip))))
        out.append((back[j], lambda chip, j=j: int(j in backwards(chip))))
        out.append((past[j], lambda chip, j=j: int(any(r <= j for r in backwards(chip)))))
    for i in range(chips):
        out.append((bwd[i], lambda chip, i=i: int(((i + 1) % chips, i) in used(chip))))
    return out


def _add(m, problem: PartitionProblem, out: Links, carried: list[tuple[int, object]],
         link: LinkTime | None, tick_s: float, ends: tuple[int, int] | None) -> None:
    """One link that carries tensor t wherever (t, var) is in ``carried`` and var holds: its
    time in ticks and its bytes."""
    out.bytes_expr += sum(problem.tensors[t][2] * var for t, var in carried)
    affine = as_affine(link) if link is not None else None
    if affine is None:
        out.exact = False
        return
    coef = [math.floor(problem.tensors[t][2] / affine.bytes_per_s / tick_s) for t, _ in carried]
    terms = [c * var for c, (_, var) in zip(coef, carried, strict=True) if c]
    top = sum(coef)
    latency = math.floor(affine.latency_s / tick_s)
    sending = [var for t, var in carried if problem.tensors[t][2] > 0]
    if latency and sending:  # paid only when a byte is sent (nothing costs nothing)
        sent = m.new_bool_var("sent")
        for var in sending:
            m.add_implication(var, sent)
        terms.append(latency * sent)
        out.hint(sent, _any_of([out.value_of(var) for var in sending]))
    if carried:
        out.links.append(Link(sum(terms), latency + top, ends))


def _any_of(values: list[Callable[[Sequence[int]], int]]) -> Callable[[Sequence[int]], int]:
    return lambda chip: int(any(v(chip) for v in values))
