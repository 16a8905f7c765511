"""`chipcut show` on mutated plans: a valid report (exit 0) or one line (exit 2), never a traceback."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chipcut
from chipcut.compiler.cli.main import main

VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.lists(st.integers(-3, 3), max_size=3), st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


@pytest.fixture(scope="module")
def plan_dict() -> dict:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 32),
                              torch.nn.ReLU(), torch.nn.Linear(32, 4))
    plan = chipcut.compile(net.eval(), (torch.randn(2, 16),), chips=3, time_limit_s=2)
    return json.loads(plan.to_json())


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


def _mutate(data: dict, path: tuple, value) -> object:
    if not path:
        return value
    out = copy.deepcopy(data)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def _show(tmp_path, text: str | bytes, capsys) -> tuple[int, str]:
    path = tmp_path / "plan.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    code = main(["show", str(path)])
    return code, capsys.readouterr().err


@settings(max_examples=int(__import__("os").environ.get("CHIPCUT_FUZZ_EXAMPLES", 300)), deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_mutated_plans_exit_cleanly(plan_dict, tmp_path, capsys, data) -> None:
    paths = list(_paths(plan_dict))
    path = data.draw(st.sampled_from(paths))
    mutated = _mutate(plan_dict, path, data.draw(VALUES))
    code, err = _show(tmp_path, json.dumps(mutated), capsys)
    assert code in (0, 2)
    if code == 2:
        assert err.startswith("chipcut: error: ") and err.count("\n") == 1


@pytest.mark.parametrize("text", ["[]", "null", "1", "[" * 100000, "{\"schema_version\": 2}",
                                  b"\xff\xfe\x00 not text"])
def test_not_a_plan_is_one_line(tmp_path, capsys, text) -> None:
    code, err = _show(tmp_path, text, capsys)
    assert code == 2 and err.count("\n") == 1


def test_a_plan_without_its_graph_is_refused(plan_dict, tmp_path, capsys) -> None:
    code, err = _show(tmp_path, json.dumps(_mutate(plan_dict, ("graph",), None)), capsys)
    assert code == 2 and "graph is null" in err


def test_negative_switch_bandwidth_is_refused(plan_dict, tmp_path, capsys) -> None:
    bad = _mutate(plan_dict, ("interconnect", "switch_bytes_per_s"), -5)
    code, err = _show(tmp_path, json.dumps(bad), capsys)
    assert code == 2 and "switch_bytes_per_s = -5" in err
