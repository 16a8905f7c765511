"""Every Python block of the README runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_the_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index: int, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)  # blocks write plan.json where they run
    exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), {"__name__": "__readme__"})
    assert capsys.readouterr().out.strip()


TOML_BLOCKS = re.findall(r"```toml\n(.*?)```", README.read_text(), re.S)


@pytest.mark.parametrize("index", range(len(TOML_BLOCKS)))
def test_readme_spec_fragment_loads_into_a_spec(index: int) -> None:
    import tomllib

    from chipcut.backends.registry import get_backend
    from chipcut.backends.schema import spec_from_dict

    fragment = tomllib.loads(TOML_BLOCKS[index])
    table = get_backend("cpu").to_dict()
    for section, values in fragment.items():
        table[section] = {**table.get(section, {}), **values}
    spec = spec_from_dict(table, f"README.md toml block {index}")
    assert set(fragment["compute"]) <= {"class_overhead_s", "activation_bytes_per_s"}
    assert spec.class_overhead_s == {"depthwise": pytest.approx(1.4e-4)}
    assert spec.activation_bytes_per_s == {"depthwise": 1.4e10}
