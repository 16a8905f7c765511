"""The report says what a plan does not show at a glance: chips it leaves without work."""

from __future__ import annotations

import torch

import chipcut


def _host_bound_plan() -> chipcut.Plan:
    """Three chips for a small MLP whose input link bounds it: two chips stay empty."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4096),
                                torch.nn.Linear(4096, 8))
    return chipcut.compile(model, (torch.randn(1, 64),), chips=3,
                           options=chipcut.CompileOptions(passes="none"))


def test_a_plan_that_leaves_chips_empty_says_so_and_why() -> None:
    plan = _host_bound_plan()
    empty = [s.chip for s in plan.stages if not s.nodes]
    assert plan.metrics.bottleneck == "host in" and len(empty) == 2
    lines = [line for line in chipcut.report(plan).splitlines() if "hold no work" in line]
    assert lines == [f"note: chips {empty[0]}, {empty[1]} hold no work: the plan uses 1 of 3 chips, "
                     "since spreading further does not make it faster (the link from the host bounds it)"]


def test_a_plan_using_every_chip_has_no_such_note() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Linear(256, 256) for _ in range(6)])
    plan = chipcut.compile(model, (torch.randn(64, 256),), chips=2,
                           options=chipcut.CompileOptions(passes="none"))
    assert all(s.nodes for s in plan.stages)
    assert "hold no work" not in chipcut.report(plan)


def test_an_unproven_plan_does_not_say_spreading_would_not_help() -> None:
    import dataclasses

    plan = _host_bound_plan()
    unproven = dataclasses.replace(plan, solver=dataclasses.replace(plan.solver, status="FEASIBLE"))
    line = next(x for x in chipcut.report(unproven).splitlines() if "hold no work" in x)
    assert line.endswith("the plan uses 1 of 3 chips, the best found; it is not proven optimal, "
                         "so a plan over more chips may be faster")
