"""Specs with absurd but finite figures: accepted with a warning naming the range, and no report
figure prints inf or nan; a binary file is one error line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import chipcut
from chipcut.backends.loader import from_toml
from chipcut.backends.presets import PRESETS_DIR
from chipcut.backends.schema import SpecWarning
from chipcut.core.errors import ChipcutError


def _spec(tmp_path: Path, old: str, new: str) -> Path:
    text = (PRESETS_DIR / "generic.toml").read_text().replace('name = "generic"', 'name = "odd"')
    assert old in text
    path = tmp_path / "odd.toml"
    path.write_text(text.replace(old, new))
    return path


@pytest.mark.parametrize(("old", "new", "field"), [
    ('bytes_per_s = "31.5 GB/s"', 'bytes_per_s = "1e-300 B/s"', "[link] bytes_per_s"),
    ('fp32 = 4e12', 'fp32 = 1e-300', "peak_macs_per_s.fp32"),
])
def test_absurd_values_warn_and_reports_stay_finite(tmp_path, old, new, field) -> None:
    path = _spec(tmp_path, old, new)
    with pytest.warns(SpecWarning, match=re.escape(field) + r".*outside the range real chips span"):
        chip = from_toml(path)
    net = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8))
    plan = chipcut.compile(net.eval(), (torch.randn(1, 8),), chips=2, backend=chip, passes="none",
                           time_limit_s=2)
    text = chipcut.report(plan)
    assert not re.search(r"\b(inf|nan)\b", text, re.I)


def test_the_presets_are_all_plausible(recwarn) -> None:
    for path in PRESETS_DIR.glob("*.toml"):
        from_toml(path)
    assert not [w for w in recwarn if issubclass(w.category, SpecWarning)]


def test_a_binary_spec_file_is_one_line(tmp_path) -> None:
    path = tmp_path / "chip.toml"
    path.write_bytes(bytes(range(256)))
    with pytest.raises(ChipcutError, match="not a text file"):
        from_toml(path)


def test_a_misspelled_capability_op_warns_with_the_closest_aten_names(tmp_path) -> None:
    text = (PRESETS_DIR / "generic.toml").read_text().replace('name = "generic"', 'name = "odd"')
    path = tmp_path / "odd.toml"
    path.write_text(text + '\n[capabilities]\nops = ["conv2dd", "linear", "my_fused_op"]\n')
    with pytest.warns(SpecWarning) as caught:
        from_toml(path)
    said = [str(w.message) for w in caught if isinstance(w.message, SpecWarning)]
    assert len(said) == 2 and "'linear'" not in " ".join(said)
    assert "[capabilities] ops lists 'conv2dd'" in said[0] and "did you mean 'conv2d'" in said[0]
    assert "'my_fused_op', which no ATen op is named" in said[1]


def test_two_chips_of_one_name_must_be_one_chip(tmp_path) -> None:
    t4 = (PRESETS_DIR / "t4.toml").read_text()
    same, other = tmp_path / "same.toml", tmp_path / "other.toml"
    same.write_text(t4)
    other.write_text(t4.replace('efficiency = {', 'efficiency = { depthwise = 0.01, ', 1))
    net = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8))
    inputs = (torch.randn(1, 8),)
    plan = chipcut.compile(net.eval(), inputs, chips=["t4", str(same)], passes="none")
    assert plan.chips == ("t4", "t4")  # the preset's own figures: no warning, one chip
    with pytest.warns(SpecWarning, match=r"named 't4', as an installed backend with other figures"):
        with pytest.raises(ChipcutError, match=r"^chips 0 and 1 are both named 't4' but are not "
                           r"the same chip"):
            chipcut.compile(net.eval(), inputs, chips=["t4", str(other)], passes="none")
