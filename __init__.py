"""chipcut: cut one PyTorch model across several inference chips and plan the per-chip schedule.

The stages are public: ``lower`` (capture, passes, accounting) -> ``solve`` (the
pipeline cut) -> ``schedule`` (the Plan); ``compile`` runs all three. ``run`` executes a
plan as a real pipeline of processes and measures it beside the prediction; ``profile`` times
each partition unit on this machine, and ``compile(..., profile=...)`` costs units by those times;
``refine`` scales a profile's stages to what a run of a plan measured.
``llm_step`` captures a causal LM's prefill or decode step; ``serve`` plans the prefill and
decode pools that serve it under TTFT and TPOT targets.

>>> import torch, chipcut
>>> net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8))
>>> plan = chipcut.compile(net, (torch.randn(1, 64),), chips=2)
>>> len(plan.stages)
2
"""

from chipcut.compiler.api import (
    CompileOptions,
    Lowered,
    Solved,
    compile,
    lower,
    profile,
    refine,
    schedule,
    solve,
)
from chipcut.compiler.capture import Captured, capture
from chipcut.compiler.llm.step import llm_step
from chipcut.compiler.plan.measured import Measured
from chipcut.compiler.plan.model import Plan
from chipcut.compiler.plan.profile import Profile
from chipcut.compiler.plan.serve import ServePlan, Targets
from chipcut.compiler.runtime import RunOptions, run
from chipcut.compiler.serve import serve
from chipcut.compiler.views.report import render as report
from chipcut.core.errors import ChipcutError, ChipcutWarning, DoesNotFit

__all__ = ["compile", "lower", "solve", "schedule", "CompileOptions", "Lowered", "Solved",
           "capture", "Captured", "Plan", "report", "ChipcutError", "ChipcutWarning", "DoesNotFit", "run",
           "RunOptions", "Measured", "profile", "Profile", "refine", "llm_step",
           "serve", "ServePlan", "Targets"]
