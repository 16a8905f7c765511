"""Baseline partitioners that existing tools use, on the same costed unit graph as chipcut.

Each cuts the unit order (a topological order) into N contiguous stages:

- ``uniform layers`` (Megatron): the same number of MAC layers per stage;
- ``parameters`` (DeepSpeed ``partition_method="parameters"``, Coral ``--num_segments``):
  a cut where cumulative parameter bytes reach 1/N, 2/N, ...;
- ``MAC quantiles``: a cut where cumulative MACs reach 1/N, 2/N, ...;
- ``chain DP``: the exact program over that one order (``compiler.solver.lattice.chain_dp``).
"""

from __future__ import annotations

from bisect import bisect_left
from itertools import accumulate

from chipcut.backends.protocol import Work
from chipcut.compiler.solver.lattice import chain_dp
from chipcut.compiler.solver.problem import PartitionProblem


def assignment_from_cuts(cuts: list[int], n: int) -> tuple[int, ...]:
    """Chip per unit for cut positions c_1 <= ... <= c_{N-1} (stage k takes [c_k, c_{k+1}))."""
    bounds = [0, *cuts, n]
    return tuple(k for k in range(len(bounds) - 1) for _ in range(bounds[k + 1] - bounds[k]))


def quantile_cuts(weights: list[float], chips: int) -> list[int]:
    """Cut before the unit where the running total first reaches k/N of the whole."""
    running = list(accumulate(weights))
    total = running[-1] if running else 0.0
    if total <= 0:
        return uniform_cuts(len(weights), chips)
    return [min(bisect_left(running, total * k / chips) + 1, len(weights)) for k in range(1, chips)]


def uniform_cuts(n: int, chips: int) -> list[int]:
    return [round(n * k / chips) for k in range(1, chips)]


def uniform_layers(works: list[Work], chips: int) -> tuple[int, ...]:
    """The same number of MAC layers per stage; free and element units follow their layer."""
    layers = [u for u, w in enumerate(works) if w.macs > 0]
    per = uniform_cuts(len(layers), chips)
    cuts = [layers[i] if i < len(layers) else len(works) for i in per]
    return assignment_from_cuts(cuts, len(works))


def parameters(works: list[Work], chips: int) -> tuple[int, ...]:
    return assignment_from_cuts(quantile_cuts([w.weight_bytes for w in works], chips), len(works))


def mac_quantiles(works: list[Work], chips: int) -> tuple[int, ...]:
    return assignment_from_cuts(quantile_cuts([w.macs for w in works], chips), len(works))


def exact_chain(problem: PartitionProblem) -> tuple[int, ...]:
    found = chain_dp(problem, replicate=False)
    return found.chip_of_unit


def all_baselines(problem: PartitionProblem, works: list[Work]) -> dict[str, tuple[int, ...]]:
    chips = problem.n_chips
    return {
        "uniform layers": uniform_layers(works, chips),
        "parameters": parameters(works, chips),
        "MAC quantiles": mac_quantiles(works, chips),
        "chain DP": exact_chain(problem),
    }
