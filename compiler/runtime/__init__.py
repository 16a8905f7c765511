"""The runtime: a plan executed as a real multi-process pipeline (torch.distributed.pipelining)
and measured beside its prediction (``chipcut.run``, ``chipcut run``)."""

from chipcut.compiler.runtime.options import RunOptions
from chipcut.compiler.runtime.run import run

__all__ = ["run", "RunOptions"]
