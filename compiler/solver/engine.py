"""The solver's driver: one ``solve`` over the exact lattice program, and where the lattice is
too large the cut bound, balanced orders and CP-SAT (chipcut.compiler.solver.cpsat).

``solve`` first runs the exact program over the prefixes of the unit order (the classic
chain DP: a plan and an upper bound). When the unit graph has at most ``MAX_IDEALS``
ideals, the program over all of them is exact for every pipeline on a chain (and a switch
at the throughput objective) (``chipcut.compiler.solver.lattice``): status OPTIMAL, no
search; on a ring, or a switch at the latency objective, its link-free optimum is a bound
and CP-SAT searches on from its plan where a gap is left. Otherwise
(``chipcut.compiler.solver.wide``) a bound that sees the links and plans cut along orders
that fill each stage come first, and CP-SAT searches from the best plan. The time limit
is one budget for all of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from chipcut.compiler.solver import cpsat, lattice, wide
from chipcut.compiler.solver.evaluate import evaluate, lower_bound_s
from chipcut.compiler.solver.packing import overfull_chip, packed_split, valid_start
from chipcut.compiler.solver.problem import AffineLink, NoFit, NotFound, PartitionProblem, Solution
from chipcut.core.vocab import Objective, Status, Topology

MAX_IDEALS = 20_000
FALLBACK = "time limit: packed split"


def _packed_upper(problem: PartitionProblem) -> tuple[tuple[int, ...] | None, float]:
    """The packed split and its value where that bounds the chain DP's stages (the
    throughput objective: a plan's every stage takes at most its bottleneck, on any
    topology), else inf: the DP then holds only pairs within it."""
    packed = packed_split(problem)
    if packed is None or problem.objective != Objective.THROUGHPUT:
        return packed, np.inf
    return packed, evaluate(problem, packed)[0] * (1 + 1e-9)


def solve(problem: PartitionProblem, time_limit_s: float = 10.0,
          progress: Callable[[str], None] | None = None, max_ideals: int = MAX_IDEALS,
          hint: tuple[int, ...] | None = None) -> Solution:
    """Best pipeline assignment found within ``time_limit_s`` (never longer), with its bound and gap;
    never worse than ``hint`` (a known assignment, e.g. a plan for fewer chips) when it is valid.

    Same problem, same answer: the programs are exact and CP-SAT runs with fixed seed
    and deterministic parallelism. Raises NoFit when no pipeline fits in memory, and NotFound
    when none that fits was found in time (none proven absent).
    """
    start = time.perf_counter()
    deadline = start + time_limit_s
    say = progress or (lambda _msg: None)
    chips = problem.n_chips
    method, stopped = "chain DP", ""  # stopped: why the search ended early, when it did
    packed, upper = _packed_upper(problem)
    try:
        base = lattice.chain_dp(problem, deadline, replicate=False, upper_s=upper)
    except lattice.OutOfTime:
        base, method = None, FALLBACK
        say("chain DP: out of time, falling back to the packed split of the unit order")
    best = (base.chip_of_unit, base.replicas) if base else None
    timed_out = base is None and time.perf_counter() > deadline
    if timed_out:
        if packed is None and not valid_start(problem, hint):
            raise NoFit if _one_order(problem) else NotFound  # along the unit order
        best = (packed, None) if packed is not None else None
    if valid_start(problem, hint) and (best is None or evaluate(problem, hint)[0] <
                                  evaluate(problem, *best)[0] * (1 - 1e-12)):
        best = (tuple(hint), None)
        method = "time limit: the given start" if timed_out else "chain DP, bettered by the given start"
    bound = lower_bound_s(problem)
    exact = False
    ideals = None if timed_out else lattice.enumerate_ideals(lattice.predecessors(problem),
                                                              max_ideals, deadline)
    counted_late = ideals is None and not timed_out and time.perf_counter() >= deadline
    wide_why = "out of time counting the ideals" if counted_late else f"more than {max_ideals} ideals"
    bytes_proven = False  # the bytes moved at the plan's value are proven the fewest
    if ideals is not None:
        say(f"lattice: {len(ideals)} ideals of {len(problem.unit_time_s)} units")
        try:
            # At the throughput objective a plan's value bounds every stage of a better plan,
            # on any topology (the program drops stages slower than it).
            throughput = problem.objective == Objective.THROUGHPUT
            upper = evaluate(problem, *best)[0] if best and throughput else np.inf
            # When the ideals are the prefixes (the unit graph is a chain), the chain DP already
            # ran over every pipeline; only replication is left to try.
            prefixes = len(ideals) == len(problem.unit_time_s) + 1
            found = _lattice_best(problem, ideals, upper, deadline, prefixes,
                                  base if prefixes else None)
            exact = _lattice_exact(problem)
            plan = (found.chip_of_unit, found.replicas)
            # Costed along the chain, the program's plan is only a candidate elsewhere: the
            # chain DP's plan or the given start may be better there.
            if exact or best is None or _better(problem, plan, best):
                best = plan
            bytes_proven = exact
            method = f"lattice DP ({len(ideals)} ideals)"
            if not exact:
                best, bound = _linkless(problem, ideals, best, bound, deadline, prefixes)
                if _worth_proving(problem, best, bound, deadline):
                    best, bound, bytes_proven = _prove(problem, best, bound, deadline, progress)
                    method += ", CP-SAT"
        except lattice.OutOfTime:
            say("lattice: out of time or too many pairs, keeping the chain DP plan")
            if _cp_sat_applies(problem, deadline):
                best, bound, method, bytes_proven = _wide(
                    problem, best, bound, deadline, progress,
                    f"lattice of {len(ideals)} ideals too large")
            elif best is None:
                raise NotFound from None
            else:
                stopped = "; the time limit left no time to search past the unit order"
    elif _cp_sat_applies(problem, deadline):
        best, bound, method, bytes_proven = _wide(problem, best, bound, deadline, progress,
                                                  wide_why)
    elif best is None:  # only the unit order was tried
        if chips == 1 or _one_order(problem):
            raise NoFit
        raise NotFound
    elif chips > 1:
        stopped = "; the time limit left no time to search past the unit order"
    if overfull_chip(problem, best[0]) is not None:  # no engine returns one; never let it out
        raise NoFit
    value, moved = evaluate(problem, *best)
    if exact or chips == 1:  # one chip: one pipeline
        bound = value
    bound = min(bound, value)
    gap = (value - bound) / value if value > 0 else 0.0
    status = Status.OPTIMAL if gap <= 1e-6 else Status.FEASIBLE
    if status != Status.OPTIMAL:
        method += stopped
    if not bytes_proven and chips > 1:
        # On a ring (or a switch at the latency objective) the programs count bytes along the
        # chain, and CP-SAT routes a ring's tensors as it likes: only a proof there counts.
        method += "; fewest bytes not proven" + ("" if _lattice_exact(problem)
                                                 else f" on a {problem.topology}")
    say(f"{method}: {status}, objective {value * 1e3:.4g} ms, bound {bound * 1e3:.4g} ms, "
        f"gap {100 * gap:.2f}%")
    replicas = tuple(best[1]) if best[1] else (1,) * chips
    return Solution(tuple(best[0]), status, value, bound, gap, moved, time.perf_counter() - start,
                    replicas, method)


def _lattice_exact(problem: PartitionProblem) -> bool:
    """Whether the lattice program's optimum is the problem's: on a chain, and on a switch
    for throughput (the switch's bytes per stage are additive); a ring routes otherwise."""
    return problem.topology == Topology.CHAIN or (problem.topology == Topology.SWITCH and
                                                  problem.objective == Objective.THROUGHPUT)


def _linkless(problem: PartitionProblem, ideals: list[int], best: tuple, bound: float,
              deadline: float, prefixes: bool) -> tuple[tuple, float]:
    """On a topology the lattice program does not route exactly (a ring; a switch for
    latency): the same program with every link free, whose optimum bounds every pipeline's
    value from below (links only add resources and time), and whose plan is a candidate.

    (the better of ``best`` and that plan, the larger of ``bound`` and that optimum). When
    the best plan's value meets the bound it is proven optimal, which it is whenever links
    do not decide the optimum."""
    free = AffineLink(np.inf, 0.0)
    relaxed = replace(problem, topology=Topology.CHAIN, links=(free,) * problem.n_chips,
                      switch=None)
    # At the throughput objective the link-free optimum is no worse than the best plan: its
    # stages are no slower than that plan's value, which prunes the program.
    upper = evaluate(problem, *best)[0] if problem.objective == Objective.THROUGHPUT else np.inf
    try:
        found = _lattice_best(relaxed, ideals, upper, deadline, prefixes)
    except (lattice.OutOfTime, NoFit):
        return best, bound
    plan = (found.chip_of_unit, found.replicas)
    if _better(problem, plan, best):
        best = plan
    bound = max(bound, evaluate(relaxed, *plan)[0])
    if problem.topology == Topology.SWITCH:
        # A candidate that sees the switch: each stage's inbound bytes at the switch's rate,
        # as a chain link would carry them (the program holds a switch free at latency).
        through = replace(problem, topology=Topology.CHAIN, switch=None,
                          links=(problem.switch,) * problem.n_chips)
        try:
            found = _lattice_best(through, ideals, np.inf, deadline, prefixes)
        except (lattice.OutOfTime, NoFit):
            return best, bound
        if _better(problem, (found.chip_of_unit, found.replicas), best):
            best = (found.chip_of_unit, found.replicas)
    return best, bound


def _better(problem: PartitionProblem, plan: tuple, than: tuple) -> bool:
    """Whether ``plan`` beats ``than``: a lower value, or as low and fewer bytes moved."""
    value, moved = evaluate(problem, *plan)
    other, other_moved = evaluate(problem, *than)
    return value < other * (1 - 1e-12) or (value <= other * (1 + 1e-12) and moved < other_moved)


def _one_order(problem: PartitionProblem) -> bool:
    """Whether the unit order is the graph's only topological order (each unit feeds the next),
    so that searching along it searches every pipeline."""
    feeds = {(p, c) for p, consumers, _ in problem.tensors for c in consumers}
    return all((u - 1, u) in feeds for u in range(1, len(problem.unit_time_s)))


def _cp_sat_applies(problem: PartitionProblem, deadline: float) -> bool:
    """Whether there is a cut to search for and time to search for it."""
    return problem.n_chips > 1 and deadline - time.perf_counter() > 0.1


def _worth_proving(problem: PartitionProblem, best: tuple, bound: float, deadline: float) -> bool:
    """Whether CP-SAT may close the gap the lattice program's relaxation leaves: a plain plan
    (the model has no replicas) above the bound, and time."""
    return (_cp_sat_applies(problem, deadline) and not (best[1] and max(best[1]) > 1)
            and evaluate(problem, *best)[0] > bound * (1 + 1e-6))


def _prove(problem: PartitionProblem, best: tuple, bound: float, deadline: float,
           progress: Callable[[str], None] | None) -> tuple[tuple, float, bool]:
    """CP-SAT from ``best``: (a plan no worse, the larger bound, whether its bytes are proven
    the fewest)."""
    found, bound, bytes_proven = cpsat.search(problem, list(best[0]), bound, deadline, progress)
    return (tuple(found), None), bound, bytes_proven


def _lattice_best(problem: PartitionProblem, ideals: list[int], upper: float, deadline: float,
                  prefixes: bool = False, plain_found: lattice.Chain | None = None) -> lattice.Chain:
    """The exact plan without replication (``plain_found`` when already known), or with it
    when that is strictly better."""
    plain = lattice.stage_model(problem, replicate=False)
    model = lattice.stage_model(problem)
    replicable = problem.objective == Objective.THROUGHPUT and model.max_replicas.max(initial=1) > 1
    if plain_found is not None and not replicable:
        return plain_found
    ideal_sets = lattice.Lattice(lattice.prefix_ideals(len(problem.unit_time_s)) if prefixes
                                 else ideals, plain, prefix=prefixes)
    floor = max(problem.host_in_s, problem.host_out_s)
    found = plain_found or lattice.solve_chain(ideal_sets, plain, problem.objective, upper,
                                               deadline, floor)
    if found is None:
        raise NoFit
    if replicable:
        replicated = lattice.solve_chain(ideal_sets, model, problem.objective, found.value, deadline,
                                         floor)
        if replicated is not None and max(replicated.value, floor) < max(found.value, floor) * (1 - 1e-9):
            return replicated
    return found


def _cut_bound(problem: PartitionProblem, bound: float, deadline: float) -> float:
    """The larger of ``bound`` and the cut bound (chipcut.compiler.solver.wide), which gets a
    quarter of the time left."""
    share = time.perf_counter() + (deadline - time.perf_counter()) / 4
    return max(bound, wide.cut_bound(problem, cpsat.min_cut, share))


def _wide(problem: PartitionProblem, best: tuple | None, bound: float, deadline: float,
          progress: Callable[[str], None] | None, why: str) -> tuple[tuple, float, str, bool]:
    """A graph too wide for the lattice program: the cut bound, plans along balanced orders
    (throughput; with replicas where stages may have them), then CP-SAT from the best plain
    one; (the best plan, its proven bound, the method, whether its bytes are proven the
    fewest). ``best``: the chain DP plan, None when no cut of the unit order fits memory.
    Raises NoFit when CP-SAT proves no pipeline fits, and NotFound when none that fits
    turned up in time."""
    say = progress or (lambda _msg: None)
    bound = _cut_bound(problem, bound, deadline)
    throughput = problem.objective == Objective.THROUGHPUT
    replicable = throughput and problem.most_replicas > 1
    scored: list[tuple[float, int, tuple]] = []  # (value, bytes, plan) of every plan found

    def add(plan: tuple) -> None:
        scored.append((*evaluate(problem, *plan), plan))
    if best:
        add(best)
    if replicable:
        try:
            along = lattice.chain_dp(problem, deadline, replicate=True)
        except lattice.OutOfTime:
            along = None
        if along is not None:
            add((along.chip_of_unit, along.replicas))
    value = min((v for v, _, _ in scored), default=np.inf)
    say(f"cut bound {bound * 1e3:.4g} ms; along the unit order {value * 1e3:.4g} ms")
    method = f"CP-SAT ({why})"
    for found in wide.balanced_plans(problem, bound, value, deadline, replicable) if throughput else ():
        add(found)
        method = f"balanced orders, CP-SAT ({why})"
    start = min((c for c in scored if not c[2][1] or max(c[2][1]) <= 1), key=lambda c: c[0],
                default=None)
    value = min((v for v, _, _ in scored), default=np.inf)
    if start is not None:
        say(f"best so far {value * 1e3:.4g} ms")
    # Building the model takes time of its own (~6 us per unit-or-reader and chip): without
    # that much left, a plan in hand is kept rather than the limit overrun.
    build_s = 6e-6 * problem.n_chips * (len(problem.unit_time_s)
                                        + 2 * sum(len(c) for _, c, _ in problem.tensors))
    searched_bytes = None  # the bytes CP-SAT proved the fewest at its bottleneck
    if start is None or deadline - time.perf_counter() > 2 * build_s:
        assignment, bound, bytes_proven = cpsat.search(
            problem, list(start[2][0]) if start else None, bound, deadline, progress,
            bottleneck_proven=value <= bound * (1 + 1e-9))
        add((tuple(assignment), None))
        searched_bytes = scored[-1][1] if bytes_proven else None
    else:
        method = method.replace("CP-SAT (", "no time left for CP-SAT (")
    # The fastest, then the fewest bytes among those as fast (to rounding).
    fastest = min(v for v, _, _ in scored)
    moved, _, chosen = min((b, i, plan) for i, (v, b, plan) in enumerate(scored)
                           if v <= fastest * (1 + 1e-9))
    bytes_proven = searched_bytes is not None and moved <= searched_bytes
    return (tuple(chosen[0]), chosen[1]), bound, method, bytes_proven
