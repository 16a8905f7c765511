"""Fuzzing: random and mutated inputs into every surface a user feeds, counting outcomes.

Surfaces: ``chipcut show`` on mutated plans and random bytes, the chip spec loader on
mutated TOML, the pass pipeline text, and ``--input`` shapes. Each case must end in a
valid result or in one ``ChipcutError`` line (exit 2 at the CLI); anything else (another
exception, a multi-line message) counts as a traceback. Seeded: the same cases every run.

    python -m benchmarks.fuzz_bench [cases per surface]
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

import chipcut
from benchmarks.results import machine, table, write_section
from chipcut.backends.presets import PRESETS_DIR, preset_names
from chipcut.backends.registry import get_backend
from chipcut.compiler.cli.loading import parse_input
from chipcut.compiler.cli.main import main
from chipcut.core.errors import ChipcutError
from chipcut.passes.manager import Pipeline

TOML_VALUES = ["-1", "0", "1e-300", "1e300", "nan", "inf", '"x"', "[]", "{}", '"5 parsecs"', "true",
               '"1e-300 TMAC/s"', '"1e300 GB/s"', '{ fp64 = "1 TMAC/s" }', '{ int3 = 1 }']
ODD = [None, True, False, 0, -1, -5, 2**63, 2**70, 1e-300, 1e300, float("nan"), float("inf"), -0.0,
       "", "x", "chain", "mesh", "OPTIMAL", [], [1, 2], {}, {"a": 1}, "1e400", "\u00ff" * 3]


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


def _set(data, path, value):
    if not path:
        return value
    out = copy.deepcopy(data)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


class Tally:
    def __init__(self) -> None:
        self.cases = self.ok = self.errors = 0
        self.tracebacks: list[str] = []

    def run(self, fn) -> None:
        self.cases += 1
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = fn()
        except ChipcutError as e:
            code = 2 if "\n" not in str(e) else -1
            err.write(f"chipcut: error: {e}\n")
        except Exception as e:  # noqa: BLE001 - what this program counts
            self.tracebacks.append(f"{type(e).__name__}: {str(e)[:120]}")
            return
        lines = err.getvalue().strip().splitlines()
        if code == 0:
            self.ok += 1
        elif code == 2 and len([x for x in lines if x.startswith("chipcut: error:")]) == 1:
            self.errors += 1
        else:
            self.tracebacks.append(f"exit {code}: {err.getvalue()[:120]!r}")


def show_surface(rng: random.Random, n: int, folder: Path) -> Tally:
    net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32),
                              torch.nn.ReLU(), torch.nn.Linear(32, 4))
    plan = json.loads(chipcut.compile(net.eval(), (torch.randn(2, 16),), chips=3,
                                      time_limit_s=2).to_json())
    paths = list(_paths(plan))
    tally, target = Tally(), folder / "plan.json"
    for i in range(n):
        if i % 10 == 0:
            target.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))))
        else:
            data = plan
            for _ in range(rng.randint(1, 3)):
                data = _set(data, rng.choice(list(_paths(data)) if isinstance(data, (dict, list))
                                             else paths[:1]), rng.choice(ODD))
            target.write_text(json.dumps(data))
        tally.run(lambda: main(["show", str(target)]))
    return tally


def spec_surface(rng: random.Random, n: int, folder: Path) -> Tally:
    texts = [(PRESETS_DIR / f"{name}.toml").read_text().splitlines() for name in preset_names()]
    tally = Tally()
    for i in range(n):
        lines = list(rng.choice(texts))
        for _ in range(rng.randint(1, 3)):
            k = rng.randrange(len(lines))
            op = rng.randrange(4)
            if op == 0:
                del lines[k]
            elif op == 1:
                lines.insert(k, lines[rng.randrange(len(lines))])
            elif op == 2 and "=" in lines[k]:
                key = lines[k].split("=", 1)[0]
                lines[k] = key + "= " + rng.choice(TOML_VALUES)
            else:
                lines[k] = lines[k][: rng.randrange(len(lines[k]) + 1)]
        path = folder / f"chip{i}.toml"
        if i % 20 == 0:
            path.write_bytes(bytes(rng.randrange(256) for _ in range(100)))
        else:
            path.write_text("\n".join(lines))
        tally.run(lambda p=path: (get_backend.cache_clear(), get_backend(str(p)), 0)[-1])
    return tally


def pipeline_surface(rng: random.Random, n: int) -> Tally:
    words = ["fold-bn", "quantize", "fuse", "none", "default", "{", "}", ",", "=", ";", ":", "dtype",
             "int8", "auto", "nan", "threshold_db", "modules", "types", "weights", "first_last",
             "measure", "true", "-1", "1e400", " ", "x", "fp16", "*", "head"]
    tally = Tally()
    for _ in range(n):
        text = "".join(rng.choice(words) for _ in range(rng.randint(0, 12)))
        tally.run(lambda t=text: (Pipeline.parse(t), 0)[-1])
    return tally


def input_surface(rng: random.Random, n: int) -> Tally:
    parts = ["1", "3", "224", "0", "-1", "x", ":", "int64", "float32", "bf16", "complex", "1e3",
             "100000000000", " ", "", "2x", "x2", "::"]
    tally = Tally()
    for _ in range(n):
        text = "".join(rng.choice(parts) for _ in range(rng.randint(0, 8)))
        tally.run(lambda t=text: (parse_input(t), 0)[-1])
    return tally


def main_bench(n: int = 5000) -> None:
    rng = random.Random(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in (("chipcut show (mutated plans, random bytes)", lambda: show_surface(rng, n, Path(tmp))),
                           ("chip spec loader (mutated TOML, random bytes)", lambda: spec_surface(rng, n, Path(tmp))),
                           ("pass pipeline text", lambda: pipeline_surface(rng, n)),
                           ("--input shapes", lambda: input_surface(rng, n))):
            start = time.perf_counter()
            t = make()
            rows.append([name, t.cases, t.ok, t.errors, len(t.tracebacks), f"{time.perf_counter() - start:.1f}"])
            print(" | ".join(map(str, rows[-1])), *t.tracebacks[:5], sep="\n  ", flush=True)
    body = (f"## Fuzzing: every input surface (`benchmarks/fuzz_bench.py`)\n\n"
            f"Seeded random and mutated inputs; {machine()}. A case passes with a valid result "
            "(exit 0) or one error line (exit 2); anything else is a traceback. Target: >= 5,000 "
            "cases per surface, 0 tracebacks.\n\n"
            + table(["surface", "cases", "valid", "one-line errors", "tracebacks", "s"], rows))
    write_section("fuzz", body)


if __name__ == "__main__":
    main_bench(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
