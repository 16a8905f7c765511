"""The Plan: a frozen, JSON-serializable value describing where every node runs and what it costs."""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass, replace
from enum import Enum
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

from chipcut.compiler.lowering.summary import GraphSummary, NodeRecord  # noqa: F401 - field types
from chipcut.compiler.plan.serving import Serving  # noqa: F401 - field type
from chipcut.compiler.plan.split import split_plan
from chipcut.compiler.solver.problem import CHAIN, Interconnect
from chipcut.core.errors import ChipcutError
from chipcut.core.files import json_text
from chipcut.core.ir import LayerQuant, QuantReport  # noqa: F401 - field types
from chipcut.core.vocab import parse

SCHEMA_VERSION = 2


@dataclass(frozen=True)
class ModelInfo:
    name: str
    macs: int
    nodes: int  # compute nodes in the captured graph
    units: int  # partition units after grouping
    # (op name, node count) of the ops no accounting rule covers: counted with 0 MACs
    unaccounted: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class Stage:
    """One chip's share. Bytes are per inference; time_s is the predicted busy time per inference.

    dram_bytes counts off-chip traffic with backend-aware multi-layer fusion (intermediates
    that fit stay in SRAM); dram_bytes_unfused the same stage with every unit boundary
    going through DRAM. energy_j is dynamic energy per inference (MACs and memory).
    """

    chip: int
    backend: str
    nodes: tuple[str, ...]
    macs: int
    weight_bytes: int
    in_bytes: int
    out_bytes: int
    time_s: float
    compute_s: float
    memory_s: float
    bound: str
    utilization: float = 0.0
    weights_resident: bool = False
    sram_bytes: int = 0
    dram_bytes: int = 0
    dram_bytes_unfused: int = 0
    energy_j: float = 0.0
    replicas: int = 1  # identical chips taking alternate frames (0 on the other chips of the stage)
    replica_of: int = -1  # on a stage's other chips: the chip that lists its nodes
    kv_bytes: int = 0  # KV caches the chip holds (LLM decode), beside weight_bytes: both resident
    # Parameters read per inference where fewer than weight_bytes (lookups read their rows
    # only: an untied embedding table); None: all of weight_bytes.
    weight_read_bytes: int | None = None

    @property
    def weight_traffic_bytes(self) -> int:
        """Parameter bytes the chip reads per inference (see weight_read_bytes)."""
        return self.weight_bytes if self.weight_read_bytes is None else self.weight_read_bytes


@dataclass(frozen=True)
class OpTiming:
    """One unit (a fused group, or a node with its views) in a chip's period: times in seconds."""

    name: str
    op: str
    start_s: float
    end_s: float
    bound: str
    utilization: float
    sram_bytes: int
    dram_bytes: int
    energy_j: float
    macs: int = 0
    out_bytes: int = 0


@dataclass(frozen=True)
class ChipTimeline:
    chip: int
    ops: tuple[OpTiming, ...]


@dataclass(frozen=True)
class Transfer:
    """Bytes sent over the link from chip ``src`` to chip ``dst`` per inference."""

    src: int
    dst: int
    bytes: int
    tensors: tuple[str, ...]
    time_s: float


@dataclass(frozen=True)
class Metrics:
    throughput_per_s: float  # pipelined, batch 1, transfers overlapped with compute
    latency_s: float  # batch 1: stages plus links in sequence
    bottleneck_chip: int  # -1 when a link is the bottleneck
    bottleneck: str  # "chip 2" or "link 1->2"
    bottleneck_s: float
    lower_bound_s: float  # max(total / N, heaviest unit)
    bytes_moved: int
    batch: int = 1  # the batch of throughput_at_batch_per_s
    throughput_at_batch_per_s: float = 0.0  # frames/s when each chip runs ``batch`` frames at once
    dynamic_energy_j: float = 0.0  # per inference: MACs + memory traffic, all chips
    static_power_w: float = 0.0  # all chips, always on
    energy_per_inference_j: float = 0.0  # dynamic + static over one pipelined period
    host_in_s: float = 0.0  # the model's inputs over the host link into the first chip
    host_out_s: float = 0.0  # its outputs over the last chip's link out to the host

    def power_w(self, inferences_per_s: float) -> float:
        """Average power at an input rate (inferences/s): dynamic energy x rate + static power."""
        return self.dynamic_energy_j * inferences_per_s + self.static_power_w


@dataclass(frozen=True)
class SolverInfo:
    status: str
    objective: float  # bottleneck, seconds
    bound: float  # proven lower bound on the bottleneck, seconds
    gap: float  # (objective - bound) / objective
    wall_s: float
    bytes_moved: int
    method: str = ""  # "lattice DP (1808 ideals)", "CP-SAT (...)", "chain DP"


@dataclass(frozen=True)
class ChipRecord:
    """What rebuilds one backend of a plan without the files or code it came from: its name,
    the distribution (and version) that provided it, and its spec as a dict (None when the
    backend cannot describe itself so; ``show`` then needs it installed under ``name``)."""

    name: str
    provider: str
    spec: dict | None = None

    @classmethod
    def of(cls, backend: object) -> ChipRecord:
        module = type(backend).__module__.split(".")[0]
        try:
            from importlib.metadata import packages_distributions, version

            dist = packages_distributions().get(module, [module])[0]
            provider = f"{dist} {version(dist)}"
        except Exception:  # noqa: BLE001 - a backend defined in a script has no distribution
            provider = module
        return cls(backend.name, provider, backend.to_dict())


@dataclass(frozen=True)
class Plan:
    """A partition plan. ``Plan.from_json(p.to_json(path)) == p`` exactly.

    >>> plan = chipcut.compile(model, (x,), chips=2)          # doctest: +SKIP
    >>> plan.to_json("plan.json"); print(chipcut.report(plan))  # doctest: +SKIP
    """

    schema_version: int
    model: ModelInfo
    backend: str
    chips: tuple[str, ...]
    stages: tuple[Stage, ...]
    transfers: tuple[Transfer, ...]
    metrics: Metrics
    solver: SolverInfo
    timeline: tuple[ChipTimeline, ...] = ()
    graph: GraphSummary | None = None  # what re-validating and re-costing an edited plan needs
    notes: tuple[str, ...] = ()  # e.g. nodes kept off chips that cannot run them
    passes: str = ""  # the pass pipeline that ran, in its text form
    fused_groups: int = 0  # fusion groups of two or more nodes
    quantization: QuantReport | None = None  # what quantize chose, its SQNR and savings
    interconnect: Interconnect = CHAIN  # topology, objective, switch and host links, replication
    chip_specs: tuple[ChipRecord, ...] = ()  # what rebuilds each distinct backend (``show``)
    fingerprint: str = ""  # the lowered graph's structure (chipcut.compiler.lowering.summary)
    serving: Serving | None = None  # an LLM step's TTFT or TPOT, tokens/s, KV bytes, bound
    # The captured graph, kept in memory only (not serialized) for split().
    graph_module: Any = field(default=None, compare=False, repr=False)
    # SHA-256 of the rest of the plan as chipcut made it (``sealed``), written as it is: a plan
    # changed afterwards, by hand or through the API, no longer matches it.
    digest: str = field(default="", compare=False)
    # Of a loaded plan: whether its content matches its digest; None when it carries none,
    # or was not loaded. Not serialized; reset by dataclasses.replace.
    intact: bool | None = field(default=None, init=False, compare=False, repr=False)

    def to_dict(self) -> dict:
        out = {f.name: _plain(getattr(self, f.name)) for f in fields(self) if f.name not in _MEMORY}
        return out

    def sealed(self) -> Plan:
        """This plan with the digest of its content, by which ``show`` tells a plan changed
        since from one that another chipcut version costs differently."""
        return replace(self, digest=content_digest(self.to_dict()))

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The plan as JSON text; with ``path``, also written atomically to that file."""
        return json_text(self.to_dict(), path)

    @classmethod
    def from_dict(cls, data: dict) -> Plan:
        if not isinstance(data, dict):
            raise ChipcutError(f"a plan is a JSON object, not {type(data).__name__}; write it with "
                               "chipcut compile --out")
        if data.get("kind") == "serve":
            raise ChipcutError("this is a serve plan (chipcut compile --phase serve): show it "
                               "with chipcut show; its pipelines are the plans in its plans list")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ChipcutError(f"plan schema_version is {version!r}, this chipcut reads "
                               f"{SCHEMA_VERSION}; recompile the model with this version")
        plan = _build(cls, data, "plan")
        intact = plan.digest == content_digest(data) if plan.digest else None
        object.__setattr__(plan, "intact", intact)  # frozen; set once, as loaded
        return plan

    @classmethod
    def from_json(cls, source: str | os.PathLike) -> Plan:
        """Load a plan from a JSON file path (or JSON text)."""
        return cls.from_dict(read_json(source, "plan"))

    def split(self, graph_module: Any = None) -> Any:
        """One GraphModule per chip; see :func:`chipcut.compiler.plan.split.split_plan`."""
        return split_plan(self, graph_module if graph_module is not None else self.graph_module)


def read_json(source: str | os.PathLike, what: str = "plan") -> Any:
    """The JSON a file path (or JSON text) holds; a one-line error when it cannot be read."""
    text = str(source)
    if not text.lstrip().startswith("{"):
        try:
            text = Path(source).read_text()
        except OSError as e:
            raise ChipcutError(f"cannot read {what} {source}: {e.strerror}; check the path") from None
        except UnicodeDecodeError:
            raise ChipcutError(f"{what} {source} is not text (not UTF-8 JSON); write it with "
                               "chipcut compile --out") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ChipcutError(f"{what} {source} is not valid JSON ({e.msg} at line {e.lineno}); "
                           "write it with chipcut compile --out") from None
    except RecursionError:
        raise ChipcutError(f"{what} {source} nests too deeply to be a plan; write it with "
                           "chipcut compile --out") from None


def _plain(value: Any) -> Any:
    if is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


_MEMORY = ("graph_module", "intact")  # Plan fields that are not written to JSON


def content_digest(data: dict) -> str:
    """SHA-256 (hex) of ``data`` as canonical JSON, its ``digest`` key left out."""
    body = {k: v for k, v in data.items() if k != "digest"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ChipcutError(f"plan field {where} must be an object, got {type(data).__name__}")
    hints = get_type_hints(cls)
    kwargs = {}
    for f in fields(cls):
        if f.name in _MEMORY:
            continue
        if f.name not in data:
            if f.default is not MISSING:
                continue
            raise ChipcutError(f"plan field {where}.{f.name} is missing; recompile or restore it")
        kwargs[f.name] = _convert(hints[f.name], data[f.name], f"{where}.{f.name}")
    return cls(**kwargs)


def _convert(hint: Any, value: Any, where: str) -> Any:
    if isinstance(hint, type) and issubclass(hint, Enum):
        if not isinstance(value, str):
            raise ChipcutError(f"plan field {where} = {value!r} must be one of "
                               f"{', '.join(m.value for m in hint)}")
        return parse(hint, value, f"plan field {where}")
    if hint is dict:
        if not isinstance(value, dict):
            raise ChipcutError(f"plan field {where} must be an object, got {type(value).__name__}")
        return value
    if is_dataclass(hint):
        return _build(hint, value, where)
    if get_origin(hint) in (Union, UnionType):
        if value is None:
            return None
        inner = next(a for a in get_args(hint) if a is not type(None))
        return _convert(inner, value, where)
    if get_origin(hint) is tuple:
        if not isinstance(value, list):
            raise ChipcutError(f"plan field {where} must be a list, got {value!r}")
        args = get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],) * len(value)
        elif len(args) != len(value):
            raise ChipcutError(f"plan field {where} must have {len(args)} items, got {len(value)}")
        return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value) or value < 0:
            raise ChipcutError(f"plan field {where} = {value!r} must be a finite number >= 0")
        return float(value)
    if hint is bool and not isinstance(value, bool):
        raise ChipcutError(f"plan field {where} = {value!r} must be true or false")
    if hint in (int, float, str) and (not isinstance(value, hint) or isinstance(value, bool)):
        raise ChipcutError(f"plan field {where} = {value!r} must be {hint.__name__}")
    if hint in (int, float) and value < 0 and where.rsplit(".", 1)[-1] not in SIGNED_FIELDS:
        raise ChipcutError(f"plan field {where} = {value!r} must be >= 0")
    return value


SIGNED_FIELDS = {"replica_of", "bottleneck_chip", "bound_chip", "prefill_plan", "decode_plan"}  # -1: none


__all__ = ["Plan", "Stage", "Transfer", "Metrics", "SolverInfo", "ModelInfo", "OpTiming",
           "ChipTimeline", "asdict"]
