"""Chip-count sweep: speedup and efficiency follow from the per-count throughputs."""

from __future__ import annotations

import pytest

import chipcut
from chipcut.compiler.cli.main import main
from chipcut.compiler.sweep import parse_counts, sweep
from chipcut.core.errors import ChipcutError


def test_parse_counts() -> None:
    assert parse_counts("1..4") == [1, 2, 3, 4]
    assert parse_counts("1,2,8") == [1, 2, 8]
    with pytest.raises(ChipcutError, match="range like 1..8"):
        parse_counts("one..two")
    with pytest.raises(ChipcutError, match=">= 1"):
        parse_counts("0..2")
    with pytest.raises(ChipcutError, match="runs backwards; write 2..5"):
        parse_counts("5..2")


def test_sweep_speedup_and_efficiency(residual_cnn) -> None:
    options = chipcut.CompileOptions(time_limit_s=5)
    points = sweep(chipcut.lower(*residual_cnn, chips=3, options=options), [1, 2, 3],
                   options=options)
    assert [p.chips for p in points] == [1, 2, 3]
    assert points[0].speedup == 1.0 and points[0].efficiency == 1.0
    for p in points:
        assert p.speedup == pytest.approx(p.throughput_per_s / points[0].throughput_per_s)
        assert p.efficiency == pytest.approx(p.speedup / p.chips)
        assert p.limit.startswith(("chip", "link", "host"))
    assert points[1].throughput_per_s >= points[0].throughput_per_s


def test_sweep_cli_prints_and_plots(tmp_path, capsys) -> None:
    model = tmp_path / "m.py"
    model.write_text("import torch\n\ndef f():\n    return torch.nn.Sequential(*[torch.nn.Linear(64, 64)"
                     " for _ in range(6)])\n")
    png = tmp_path / "sweep.png"
    code = main(["sweep", f"{model}:f", "--input", "16x64", "--chips", "1..3", "--plot", str(png)])
    out = capsys.readouterr().out
    assert code == 0
    assert "speedup" in out and out.count("OPTIMAL") + out.count("FEASIBLE") == 3
    assert png.read_bytes()[:4] == b"\x89PNG"


TINY_LLM = """
import torch
from transformers import LlamaConfig, LlamaForCausalLM

def tiny():
    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, vocab_size=256,
                         max_position_embeddings=64, use_cache=False)
    with torch.device("meta"):
        return LlamaForCausalLM(config).eval()
"""


def test_decode_grid_finds_the_largest_batch_that_fits(tmp_path, capsys, small_dram_chip) -> None:
    pytest.importorskip("transformers")
    from transformers import LlamaConfig

    from chipcut.compiler.llm.step import kv_cache_bytes

    spec, model = small_dram_chip, tmp_path / "llm.py"
    model.write_text(TINY_LLM)
    code = main(["sweep", f"{model}:tiny", "--phase", "decode", "--batch", "1,16,64,256,1024",
                 "--context", "16,64", "--chips", "2", "--backend", str(spec)])
    out = capsys.readouterr().out
    assert code == 0
    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)
    room = 2 * 2 * 2**20  # 2 chips x 2 MiB, ~0.43 MB of it fp32 weights
    # the largest batches the closed form admits; the next ones up exceed the chips outright
    assert kv_cache_bytes(config, 256, 16, "fp32") < room - 430_000
    assert kv_cache_bytes(config, 1024, 16, "fp32") > room
    assert kv_cache_bytes(config, 64, 64, "fp32") < room - 430_000
    assert kv_cache_bytes(config, 256, 64, "fp32") > room
    assert "largest batch that fits at context 16: 256" in out
    assert "largest batch that fits at context 64: 64" in out
    assert out.count("NO FIT") == 3


@pytest.mark.parametrize("args, message", [
    (["--phase", "decode", "--batch", "1,x", "--context", "16"], "--batch '1,x'"),
    (["--phase", "decode", "--batch", "1", "--context", "16", "--chips", "1..4"], "one chip count"),
    (["--phase", "decode", "--batch", "1", "--context", "128", "--chips", "2"], "longer than"),
    (["--batch", "1,2"], "--batch applies to sweep --phase decode"),
    (["--phase", "decode", "--batch", "1"], "sweep --phase decode needs --context"),
])
def test_decode_grid_bad_flags_are_one_line(tmp_path, capsys, args, message) -> None:
    pytest.importorskip("transformers")
    model = tmp_path / "llm.py"
    model.write_text(TINY_LLM)
    assert main(["sweep", f"{model}:tiny", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
