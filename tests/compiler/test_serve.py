"""Serving plans: every candidate pipeline is its phase's exact plan, the decode batch is the
largest that meets TPOT and fits, the pool choice is optimal against brute force, and the CLI
writes, shows and refuses serve plans in one line."""

from __future__ import annotations

import itertools
import json
import random
import textwrap
from pathlib import Path

import pytest
import torch

import chipcut
from chipcut.compiler.cli.main import main
from chipcut.compiler.llm.step import decode_step, kv_cache_bytes
from chipcut.compiler.plan.serve import ServePlan, Targets, served
from chipcut.compiler.serve import serve
from chipcut.compiler.solver.cpsat import choose_replicas
from chipcut.core.errors import ChipcutError, DoesNotFit

transformers = pytest.importorskip("transformers")

TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=256, max_position_embeddings=64, use_cache=False)
TARGETS = Targets(ttft_s=1e-3, tpot_s=3e-4, prompt=16, output=16)


def _llama() -> torch.nn.Module:
    with torch.device("meta"):
        return transformers.LlamaForCausalLM(transformers.LlamaConfig(**TINY)).eval()


def _brute(chips: list[int], kinds: list[str], values: list[float], total: int) -> float:
    best = 0.0
    for counts in itertools.product(*(range(total // c + 1) for c in chips)):
        if sum(c * r for c, r in zip(chips, counts, strict=True)) > total:
            continue
        sums = {k: sum(v * r for v, r, kk in zip(values, counts, kinds, strict=True) if kk == k)
                for k in ("prefill", "decode", "shared")}
        best = max(best, min(sums["prefill"], sums["decode"]) + sums["shared"])
    return best


def test_pool_choice_equals_brute_force_on_random_options() -> None:
    rng = random.Random(7)
    for _ in range(60):
        n = rng.randint(1, 5)
        total = rng.randint(1, 7)
        chips = [rng.randint(1, 4) for _ in range(n)]
        kinds = [rng.choice(["prefill", "decode", "shared"]) for _ in range(n)]
        values = [rng.uniform(0.1, 100.0) for _ in range(n)]
        counts, status = choose_replicas(chips, kinds, values, total)
        assert status == "OPTIMAL"
        assert sum(c * r for c, r in zip(chips, counts, strict=True)) <= total
        sums = {k: sum(v * r for v, r, kk in zip(values, counts, kinds, strict=True) if kk == k)
                for k in ("prefill", "decode", "shared")}
        got = min(sums["prefill"], sums["decode"]) + sums["shared"]
        assert got == pytest.approx(_brute(chips, kinds, values, total), rel=1e-5)


@pytest.fixture(scope="module")
def plan() -> ServePlan:
    return serve(_llama(), TARGETS, 3, "h100-sxm", max_batch=64)


def test_serve_figures_follow_from_the_pipelines(plan: ServePlan) -> None:
    t = plan.targets
    for o in plan.options:
        pre = plan.plans[o.prefill_plan] if o.prefill_plan >= 0 else None
        dec = plan.plans[o.decode_plan] if o.decode_plan >= 0 else None
        if o.role == "prefill":
            assert (o.ttft_s, o.requests_per_s) == (pre.metrics.latency_s,
                                                    pre.metrics.throughput_per_s)
        elif o.role == "decode":
            assert o.tpot_s == dec.metrics.latency_s
            assert o.tokens_per_s == pytest.approx(o.batch / dec.metrics.latency_s)
            assert dec.serving.kv_bytes == kv_cache_bytes(transformers.LlamaConfig(**TINY),
                                                          o.batch, t.context, "fp32")
        else:
            step = dec.metrics.latency_s + o.batch / t.output * pre.metrics.latency_s
            assert o.tpot_s == pytest.approx(step)
            assert o.ttft_s == pytest.approx(pre.metrics.latency_s + dec.metrics.latency_s)
        assert o.meets == (o.ttft_s <= t.ttft_s and o.tpot_s <= t.tpot_s)
    assert all(plan.options[p.option].meets for p in plan.pools)
    assert plan.chips_used <= plan.chips
    counts = {p.option: p.replicas for p in plan.pools}
    again = served(plan.options, counts, t.output)
    assert plan.tokens_per_s == pytest.approx(again.tokens_per_s)
    assert plan.tokens_per_s == pytest.approx(plan.requests_per_s * t.output)


def test_chosen_pools_are_the_best_over_the_options(plan: ServePlan) -> None:
    meeting = [o for o in plan.options if o.meets]
    value = [o.requests_per_s if o.role == "prefill" else o.tokens_per_s / TARGETS.output
             for o in meeting]
    best = _brute([o.chips for o in meeting], [o.role for o in meeting], value, plan.chips)
    assert plan.requests_per_s == pytest.approx(best, rel=1e-5)
    assert plan.chosen.startswith("OPTIMAL")


def test_decode_batch_is_the_largest_power_of_two_that_meets(plan: ServePlan) -> None:
    decodes = [o for o in plan.options if o.role == "decode"]
    assert decodes
    for o in decodes:
        assert o.batch & (o.batch - 1) == 0
        if o.batch == 64:
            continue  # max_batch
        step = decode_step(_llama(), batch=2 * o.batch, context=TARGETS.context)
        try:
            bigger = chipcut.compile(step, chips=o.chips, backend="h100-sxm", objective="latency")
        except DoesNotFit:
            continue
        assert bigger.metrics.latency_s > TARGETS.tpot_s


def test_serve_plan_round_trips_json(plan: ServePlan, tmp_path: Path) -> None:
    path = tmp_path / "serve.json"
    plan.to_json(path)
    assert ServePlan.from_json(path) == plan


@pytest.mark.parametrize("targets, chips, message", [
    (Targets(1e-6, 3e-4, 16, 16), 2, "--ttft 0.001 ms cannot be met for a 16-token prompt"),
    (Targets(1e-3, 1e-6, 16, 16), 2, "--tpot 0.001 ms cannot be met at context 32"),
    (Targets(1e-3, 2e-4, 16, 1), 1, "chips: a prefill pool needs 1 and a decode pool 1 chip(s)"),
    (Targets(1e-3, 3e-4, 60, 16), 2, "--prompt + --output 76 is longer than the model's 64"),
    (Targets(1e-3, 3e-4, 16, 16), 0, "--chips 0: serving plans pools of identical chips"),
    ((1e-3, 3e-4, 16, 16), 2, "give a chipcut.Targets(ttft_s=..."),
])
def test_targets_that_cannot_be_met_name_the_binding_resource(targets, chips, message) -> None:
    with pytest.raises(ChipcutError) as e:
        serve(_llama(), targets, chips, "h100-sxm", max_batch=8)
    assert message in str(e.value) and "\n" not in str(e.value)


FACTORY = textwrap.dedent("""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    def tiny():
        config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, vocab_size=256,
                             max_position_embeddings=64, use_cache=False)
        with torch.device("meta"):
            return LlamaForCausalLM(config).eval()
""")


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "serve_models.py"
    path.write_text(FACTORY)
    return path


SERVE = ["--phase", "serve", "--prompt", "16", "--output", "16", "--ttft", "1ms",
         "--tpot", "300us", "--backend", "h100-sxm", "--batch", "16"]


def test_cli_serve_writes_shows_and_traces(capsys, model_file: Path, tmp_path: Path) -> None:
    out, trace, png = tmp_path / "serve.json", tmp_path / "t.json", tmp_path / "p.png"
    code = main(["compile", f"{model_file}:tiny", *SERVE, "--chips", "2", "--out", str(out),
                 "--trace", str(trace), "--plot", str(png)])
    text = capsys.readouterr().out
    saved = ServePlan.from_json(out)
    assert code == 0 and "pools chosen" in text and "output tokens/s" in text
    assert all(saved.options[p.option].batch in (1, 16) for p in saved.pools)
    names = {e["args"]["name"] for e in json.loads(trace.read_text())["traceEvents"]
             if e["name"] == "process_name"}
    assert len(names) == saved.chips_used and png.read_bytes()[:4] == b"\x89PNG"
    assert main(["show", str(out)]) == 0
    shown = capsys.readouterr().out
    assert f"{saved.tokens_per_s:,.0f} output tokens/s" in shown
    assert main(["run", f"{model_file}:tiny", str(out)]) == 2
    assert "this is a serve plan" in capsys.readouterr().err
    data = json.loads(out.read_text())
    data["pools"][0]["first_chip"] = 1
    out.write_text(json.dumps(data))
    assert main(["show", str(out)]) == 2
    err = capsys.readouterr().err
    assert "pools[0].first_chip = 1" in err and err.count("\n") == 1


@pytest.mark.parametrize("args, message", [
    (["--phase", "serve", "--prompt", "16", "--ttft", "1ms", "--tpot", "1ms"], "needs --output"),
    ([*SERVE, "--context", "8"], "--context applies to --phase decode"),
    ([*SERVE, "--chips", "h100-sxm,h100-sxm"], "pools of identical chips"),
    ([*SERVE[:7], "1 parsec", *SERVE[8:]], "--ttft '1 parsec'"),
    ([*SERVE[:8], "--tpot=-5ms", *SERVE[10:]], "--tpot '-5ms'"),
    (["--output", "8"], "--output applies to --phase serve"),
    ([*SERVE[:7], "500", *SERVE[8:]], "--ttft '500': give a unit, e.g. --ttft 500ms"),
])
def test_cli_bad_serve_flags_are_one_line_exit_2(capsys, model_file: Path, tmp_path: Path,
                                                 args: list[str], message: str) -> None:
    out = tmp_path / "serve.json"
    code = main(["compile", f"{model_file}:tiny", *args, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1 and not out.exists()


def test_a_cache_no_chip_count_holds_is_one_line(capsys, model_file: Path, tmp_path: Path,
                                                 small_dram_chip: str) -> None:
    spec = small_dram_chip
    out = tmp_path / "plan.json"
    # one layer's K cache alone: 1024 x 2 kv_heads x 64 x 16 x 4 bytes = 8.4 MB > 2 MiB
    code = main(["compile", f"{model_file}:tiny", "--phase", "decode", "--context", "64",
                 "--batch", "1024", "--chips", "4", "--backend", str(spec), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "no chip count fits it" in err and err.count("\n") == 1
    assert not out.exists()
    code = main(["compile", f"{model_file}:tiny", *SERVE[:-2], "--batch", "1024", "--chips", "2",
                 "--backend", str(spec), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "memory: the decode step" in err and "no chip count fits it" in err
    assert err.count("\n") == 1 and not out.exists()


def _edited(path: Path, tmp_path: Path, edit) -> Path:
    data = json.loads(path.read_text())
    edit(data)
    out = tmp_path / "edited.json"
    out.write_text(json.dumps(data))
    return out


@pytest.mark.parametrize(("digest", "says", "chosen"), [
    ("kept", "serve plan was costed by another version of chipcut", "RECOSTED"),
    ("stale", "serve plan was edited by hand", "EDITED"),
    ("none", "serve plan differs from what this chipcut computes for it", "EDITED"),
])
def test_show_tells_a_serve_plan_edit_from_another_versions_costs(
        capsys, plan: ServePlan, tmp_path: Path, digest: str, says: str, chosen: str) -> None:
    from chipcut.compiler.plan.model import content_digest

    saved = tmp_path / "serve.json"
    plan.to_json(saved)
    assert ServePlan.from_json(saved).intact is True

    def edit(data):  # what an older chipcut could have written: another decode round time
        data["tpot_s"] *= 2
        if digest == "kept":
            data["digest"] = content_digest(data)
        elif digest == "none":
            del data["digest"]

    path = _edited(saved, tmp_path, edit)
    assert main(["show", str(path)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(says) and f"choice: {chosen}" in text


def test_show_computes_serve_figures_again_and_refuses_contradictions(
        capsys, plan: ServePlan, tmp_path: Path) -> None:
    saved = tmp_path / "serve.json"
    plan.to_json(saved)
    pool = plan.pools[-1]  # the last pool: fewer replicas leave the others where they sit
    one = _edited(saved, tmp_path, lambda d: (d["pools"][-1].update(replicas=1),
                                              d.update(tokens_per_s=1.0)))
    if pool.replicas >= 1:  # tokens_per_s was edited too: either way it is computed again
        assert main(["show", str(one)]) == 0
        text = capsys.readouterr().out
        counts = {p.option: p.replicas for p in plan.pools} | {pool.option: 1}
        again = served(plan.options, counts, plan.targets.output)
        assert "edited by hand" in text and f"{again.tokens_per_s:,.0f} output tokens/s" in text
    decode = next(k for k, o in enumerate(plan.options) if o.role == "decode")
    cases = [
        (lambda d: d.update(pools=[]), "serve plan field pools = []"),
        (lambda d: d["targets"].update(output=0), "targets.output = 0"),
        (lambda d: d["options"][decode].update(decode_plan=plan.options[0].prefill_plan),
         f"options[{decode}].decode_plan"),
        (lambda d: d["targets"].update(tpot_s=1e-9), "misses the targets"),
        (lambda d: d.update(kv_dtype="fp8"), "serve plan field kv_dtype = 'fp8'"),
    ]
    for edit, message in cases:
        assert main(["show", str(_edited(saved, tmp_path, edit))]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (message, err)


def test_fixed_batch_holds_for_shared_pools_too() -> None:
    plan = serve(_llama(), Targets(1e-3, 1e-3, 16, 16), 2, "h100-sxm", batch=4)
    assert {o.batch for o in plan.options if o.role != "prefill"} == {4}
