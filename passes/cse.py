"""cse: merge nodes that run the same op on the same inputs (common subexpression elimination).

A graph can compute one thing several times: a NASNet cell's branches each apply ReLU to the
same cell input, so the captured graph holds one ReLU per branch, each a tensor of its own
that a cut between chips would send again. torch.fx's ``CSEPass`` keeps the first of each
set of nodes that share op, inputs and arguments and points the others' users at it; ops with
side effects or randomness are never merged. Opt-in (``--passes 'cse,fold-bn,quantize,fuse'``):
it rewrites the graph, so a model's plan and profile are of the merged graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch.fx
from torch.fx.passes.dialect.common.cse_pass import CSEPass

from chipcut.passes.fold_bn import drop_unused_attrs
from chipcut.passes.manager import register_pass


@register_pass("cse")
@dataclass(frozen=True)
class CommonSubexpressions:
    """Merge repeated computations of the same value.

    >>> gm = CommonSubexpressions()(gm)  # doctest: +SKIP
    """

    structural: ClassVar[bool] = True  # rewrites the graph (split redoes it on a fresh capture)

    def __call__(self, gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
        result = CSEPass()(gm)
        if not result.modified:
            return gm
        merged = result.graph_module
        drop_unused_attrs(merged)
        merged.recompile()
        return merged
