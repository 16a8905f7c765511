"""Local launch: one process per stage on this host, a free port, an overall time limit, and
every process ended before a failure is reported (one line naming the stage).

Processes start from a fork server that has imported torch once (spawn where there is none),
so each stage starts in a fraction of a second, never from a copy of a parent that has
already run torch's thread pools.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import multiprocessing
import os
import pickle
import signal
import socket
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from multiprocessing.connection import wait

import torch
import torch.fx
from torch.fx.graph_module import _copy_attr

from chipcut.compiler.runtime.worker import Job, RankRecords, run_rank
from chipcut.core.errors import ChipcutError

ADDR = "127.0.0.1"
BEAT_S = 0.2  # how often a stage process says it is alive
STALE_S = 2.0  # silent this long: the process is stopped or frozen
GRACE_S = 1.0  # after a first failure, how long to wait for the others to report theirs
# Words in errors that say a peer went away, not what went wrong first.
PEER_WORDS = ("connection", "closed", "reset by peer", "broken pipe", "timed out", "timeout",
              "gloo", "nccl", "socket")


def free_port() -> int:
    """A TCP port free on this host now (the OS picks it through a bound socket)."""
    with socket.socket() as s:
        s.bind((ADDR, 0))
        return s.getsockname()[1]


def check_port(port: int) -> None:
    """Refuse a port that is out of range or already in use on this host."""
    if not 0 < port < 65536:
        raise ChipcutError(f"--port {port}: give a TCP port from 1 to 65535, or leave --port out "
                           "to pick a free one")
    with socket.socket() as s:
        try:
            s.bind((ADDR, port))
        except OSError:
            raise ChipcutError(f"--port {port} is already in use on {ADDR}; give another port, or "
                               "leave --port out to pick a free one") from None


def local_cores() -> list[int]:
    """The CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def assign_cores(stages: int, threads: int, oversubscribe: bool) -> list[tuple[int, ...]]:
    """``threads`` cores per stage process, distinct unless ``oversubscribe``.

    >>> [len(cores) for cores in assign_cores(2, 1, oversubscribe=True)]
    [1, 1]
    """
    cores = local_cores()
    need = stages * threads
    if need > len(cores) and not oversubscribe:
        raise ChipcutError(f"{stages} stages x {threads} thread{'s' * (threads > 1)} need {need} "
                           f"cores, this machine gives {len(cores)}; use fewer --threads, a plan "
                           "with fewer chips, or --oversubscribe (stages then share cores and "
                           "the timings show it)")
    return [tuple(cores[(r * threads + t) % len(cores)] for t in range(threads))
            for r in range(stages)]


def _context() -> multiprocessing.context.BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["chipcut.compiler.runtime.worker"])
        return ctx
    return multiprocessing.get_context("spawn")


@contextlib.contextmanager
def _main_script_not_rerun():
    """Start processes without re-running the caller's script in them.

    A stage process unpickles only chipcut and torch objects, but spawn and forkserver run the
    script that ``__main__`` came from again in every new process, and a script that calls
    ``chipcut.run`` at top level (no ``if __name__ == "__main__"``) would then fail in each.
    multiprocessing finds that script by ``__main__.__file__``; it is hidden while the stage
    processes start. A main module with a ``__spec__`` (``python -m``) is imported, not run,
    and is left as it is."""
    main = sys.modules.get("__main__")
    path = None
    if main is not None and getattr(main, "__spec__", None) is None:
        path = main.__dict__.pop("__file__", None)
    try:
        yield
    finally:
        if path is not None:
            main.__file__ = path


def op_modules(module: torch.nn.Module) -> list[str]:
    """The Python modules that define the custom ops (``torch.library``) the graphs in
    ``module`` call, such as transformers' MoE ``grouped_mm_fallback``: a fresh process knows
    such an op only once its module is imported."""
    from torch._library.custom_ops import OPDEFS

    names = {OPDEFS[n.target.name()]._init_fn.__module__
             for gm in module.modules() if isinstance(gm, torch.fx.GraphModule)
             for n in gm.graph.nodes
             if isinstance(n.target, torch._ops.OpOverload) and n.target.name() in OPDEFS}
    return sorted(names)


def _target(target: object) -> object:
    if isinstance(target, torch._ops.OpOverload):  # not picklable itself: by its name
        return _OpName(target.namespace, target._opname, target._overloadname)
    if isinstance(target, torch._ops.HigherOrderOperator):  # cond, map, while_loop
        return _OpName("higher_order", target.name(), "")
    return target


@dataclass(frozen=True)
class _OpName:
    namespace: str
    name: str
    overload: str

    def resolve(self) -> object:
        packet = getattr(getattr(torch.ops, self.namespace), self.name)
        return getattr(packet, self.overload) if self.overload else packet


@dataclass(frozen=True)
class _Ref:
    """A node in a pickled graph's arguments, by name."""

    name: str


def _graph_state(gm: torch.fx.GraphModule) -> tuple[torch.nn.Module, list[tuple]]:
    """A GraphModule as (a module holding what its graph reads, its nodes): torch's own pickling
    traces the generated code again on load, which runs ops on constants right then (a
    ``zeros`` written in place would be baked into the module, once)."""
    root = torch.nn.Module()
    for node in gm.graph.nodes:
        if node.op in ("get_attr", "call_module"):
            _copy_attr(gm, root, str(node.target))  # as GraphModule itself copies them
    nodes = [(n.op, n.name, _target(n.target),
              torch.fx.node.map_arg(n.args, lambda a: _Ref(a.name)),
              torch.fx.node.map_arg(n.kwargs, lambda a: _Ref(a.name)))
             for n in gm.graph.nodes]
    return root, nodes


def _graph_module(root: torch.nn.Module, nodes: list[tuple]) -> torch.fx.GraphModule:
    graph, env = torch.fx.Graph(), {}

    def back(a: object) -> object:
        return torch.fx.node.map_aggregate(a, lambda v: env[v.name] if isinstance(v, _Ref) else v)

    for op, name, target, args, kwargs in nodes:
        target = target.resolve() if isinstance(target, _OpName) else target
        env[name] = graph.create_node(op, target, back(args), back(kwargs), name=name)
    return torch.fx.GraphModule(root, graph)


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: object) -> object:
        if isinstance(obj, torch.fx.GraphModule):
            return _graph_module, _graph_state(obj)
        return NotImplemented


def dumps(payload: object, module: torch.nn.Module) -> bytes:
    """``payload`` pickled for another process, after the modules defining the custom ops
    ``module``'s graphs call (:func:`loads` imports them first). GraphModules travel as their
    nodes, rebuilt node for node (not traced again)."""
    stream = io.BytesIO()
    pickle.dump(op_modules(module), stream)
    _Pickler(stream).dump(payload)
    return stream.getvalue()


def loads(data: bytes) -> object:
    """What :func:`dumps` pickled, its custom ops' modules imported before it is unpickled."""
    stream = io.BytesIO(data)
    for name in pickle.load(stream):
        importlib.import_module(name)
    return pickle.load(stream)


def launch(jobs: list[Job], timeout_s: float, port: int | None = None) -> list[RankRecords]:
    """Run every job in its own process; rank 0's gathered records, in rank order."""
    port = port if port is not None else free_port()
    ctx = _context()
    beats = ctx.Array("d", len(jobs), lock=False)
    procs, conns = [], []
    try:
        with _main_script_not_rerun():
            for job in jobs:
                recv, send = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_child, args=(dumps(job, job.module), send, beats, port),
                                   name=f"chipcut stage {job.rank}", daemon=True)
                proc.start()
                send.close()
                procs.append(proc)
                conns.append(recv)
        return _collect(procs, conns, beats, time.monotonic() + timeout_s, timeout_s, port)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
        for proc in procs:
            proc.join(5)


def _collect(procs, conns, beats, deadline: float, timeout_s: float,
             port: int) -> list[RankRecords]:
    pending = set(range(len(procs)))
    result, failures, first_failure = None, {}, None
    while pending:
        now = time.monotonic()
        if first_failure is not None and now > first_failure + GRACE_S:
            break
        if now > deadline:
            raise ChipcutError(_hang(pending, beats, timeout_s))
        wait([conns[r] for r in pending] + [procs[r].sentinel for r in pending], timeout=0.2)
        for r in sorted(pending):
            alive = procs[r].is_alive()  # read first: a process sends, then exits
            message = _receive(conns[r])
            if message is None and alive:
                continue
            pending.discard(r)
            if message is None:
                failures[r] = (0, _death(procs[r]))
            elif message[0] == "ok":
                result = message[1] if r == 0 else result
            else:
                failures[r] = (2 if _is_peer_error(message[1]) else 1, message[1])
            if r in failures and first_failure is None:
                first_failure = time.monotonic()
    if failures:
        rank = min(failures, key=lambda r: (failures[r][0], r))
        text = failures[rank][1]
        if "address already in use" in text.lower():
            raise ChipcutError(f"port {port} on {ADDR} was taken before the stages could use it; "
                               "run again, or give a free --port")
        raise ChipcutError(f"stage {rank} (rank {rank}) {text}; every stage process was stopped")
    return result


def _receive(conn) -> tuple | None:
    try:
        return pickle.loads(conn.recv_bytes()) if conn.poll() else None
    except (EOFError, OSError, pickle.UnpicklingError):
        return None


def _death(proc) -> str:
    proc.join(1)
    code = proc.exitcode
    if code is not None and code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code} without reporting"


def _is_peer_error(text: str) -> bool:
    return any(word in text.lower() for word in PEER_WORDS)


def _hang(pending: set[int], beats, timeout_s: float) -> str:
    now = time.monotonic()
    stale = [r for r in sorted(pending) if now - beats[r] > STALE_S]
    if stale:
        return (f"stage {stale[0]} (rank {stale[0]}) stopped responding (no sign of life for "
                f"{now - beats[stale[0]]:.0f} s) and the run passed --timeout {timeout_s:g} s; "
                "every stage process was stopped")
    names = ", ".join(str(r) for r in sorted(pending))
    return (f"stages {names} did not finish within --timeout {timeout_s:g} s; every stage process "
            "was stopped; give a longer --timeout or fewer --frames")


def _child(payload: bytes, conn, beats, port: int) -> None:
    """A stage process: run the job, send ("ok", records) or ("error", one line), exit."""
    warnings.simplefilter("ignore")  # torch's deprecation notes, once per process, say nothing here
    job = loads(payload)
    beats[job.rank] = time.monotonic()

    def beat() -> None:
        while True:
            beats[job.rank] = time.monotonic()
            time.sleep(BEAT_S)

    threading.Thread(target=beat, daemon=True).start()
    os.environ.update(MASTER_ADDR=ADDR, MASTER_PORT=str(port), RANK=str(job.rank),
                      WORLD_SIZE=str(job.world), LOCAL_RANK=str(job.rank))
    # Plain pickle, by value: torch's shared-memory pickling would need this process alive after
    # it exits.
    code = 0
    try:
        conn.send_bytes(pickle.dumps(("ok", run_rank(job))))
    except BaseException as e:  # noqa: BLE001 - every failure goes back to the launcher as a line
        conn.send_bytes(pickle.dumps(("error", f"failed: {one_line(e)}")))
        code = 1
    conn.close()
    os._exit(code)  # skip interpreter teardown: a broken process group can hang in it


def one_line(error: BaseException) -> str:
    """The innermost cause of an error, as ``Type: first line``."""
    while error.__cause__ is not None:
        error = error.__cause__
    text = " ".join(str(error).strip().splitlines()[:1]) or "no message"
    return f"{type(error).__name__}: {text[:200]}"


__all__ = ["launch", "free_port", "check_port", "assign_cores", "local_cores", "one_line"]
