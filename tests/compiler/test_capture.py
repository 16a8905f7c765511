"""Capture: export first, symbolic_trace fallback, meta models, clear errors for untraceable code."""

from __future__ import annotations

import pytest
import torch

from chipcut.compiler.capture import capture
from chipcut.core.errors import ChipcutError
from chipcut.core.ir import attr_value, get_cost, is_compute, tensor_bytes
from chipcut.passes.accounting import accounting


def test_export_gives_flat_aten_graph_with_values(residual_cnn) -> None:
    model, inputs = residual_cnn
    cap = capture(model, inputs)
    assert cap.method == "export"
    ops = {str(n.target) for n in cap.graph_module.graph.nodes if is_compute(n)}
    assert "aten.conv2d.default" in ops and "aten.linear.default" in ops
    assert all("val" in n.meta for n in cap.graph_module.graph.nodes if is_compute(n))
    torch.testing.assert_close(cap.graph_module(*inputs)[0], model(*inputs), rtol=0, atol=0)


def test_symbolic_trace_fallback_when_export_fails(residual_cnn, monkeypatch) -> None:
    model, inputs = residual_cnn
    exported_macs = sum(get_cost(n).macs for n in accounting(capture(model, inputs).graph_module)
                        .graph.nodes)

    def refuse(*args, **kwargs):
        raise RuntimeError("export refused")

    monkeypatch.setattr(torch.export, "export", refuse)
    cap = capture(model, inputs)
    assert cap.method == "symbolic_trace"
    gm = accounting(cap.graph_module)
    assert sum(get_cost(n).macs for n in gm.graph.nodes) == exported_macs
    torch.testing.assert_close(gm(*inputs)[0], model(*inputs))


class DataDependent(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x * 2
        return x - 1


def test_untraceable_model_names_the_construct_and_fix() -> None:
    with pytest.raises(ChipcutError) as info:
        capture(DataDependent(), (torch.randn(4),))
    message = str(info.value)
    assert "\n" not in message
    assert "test_capture.py" in message and "x.sum() > 0" in message
    assert "torch.cond" in message


def test_meta_model_captures_without_weights() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, vocab_size=1000,
                         use_cache=False)
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    cap = capture(model, (torch.zeros(1, 32, dtype=torch.long, device="meta"),))
    gm = accounting(cap.graph_module)
    weights = {str(n.target): attr_value(n) for n in gm.graph.nodes if n.op == "get_attr"}
    assert "lm_head.weight" in weights and len(weights) > 2 * config.num_hidden_layers
    assert {name: w.device.type for name, w in weights.items()} == dict.fromkeys(weights, "meta")
    params = sum(p.numel() for p in model.parameters())
    # Every weight read once, except lm_head tied? (not tied by default): linear MACs = params * tokens.
    linear_macs = sum(get_cost(n).macs for n in gm.graph.nodes if "linear" in str(n.target))
    embed = config.vocab_size * config.hidden_size
    norms = config.hidden_size * (2 * config.num_hidden_layers + 1)
    assert linear_macs == (params - embed - norms) * 32
    assert tensor_bytes(gm.lm_head.weight) == config.vocab_size * config.hidden_size * 4


def test_non_module_is_rejected() -> None:
    with pytest.raises(ChipcutError, match="not a torch.nn.Module"):
        capture(lambda x: x, (torch.randn(2),))


def test_fallback_names_ops_as_export_does(residual_cnn, monkeypatch) -> None:
    from chipcut.passes.accounting import op_name

    model, inputs = residual_cnn

    def names(cap) -> list[str]:
        return [op_name(n) for n in cap.graph_module.graph.nodes if is_compute(n)]

    exported = names(capture(model, inputs))

    def refuse(*args, **kwargs):
        raise RuntimeError("export refused")

    monkeypatch.setattr(torch.export, "export", refuse)
    cap = capture(model, inputs)
    assert cap.method == "symbolic_trace"
    assert {n.op for n in cap.graph_module.graph.nodes} >= {"call_module", "call_function"}
    assert names(cap) == exported
    assert exported[:3] == ["conv2d", "batch_norm", "relu"] and exported[-1] == "linear"


class Selected(torch.nn.Module):
    """A layer on the positive entries only: the second layer's rows depend on the data."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Linear(16, 16), torch.nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        return self.b(h[h > 0].reshape(-1, 1).expand(-1, 16))


def test_a_shape_that_depends_on_the_data_is_costed_at_the_examples_size() -> None:
    import chipcut

    torch.manual_seed(0)
    model, x = Selected().eval(), torch.randn(1, 16)
    rows = int((model.a(x) > 0).sum())
    with pytest.warns(chipcut.ChipcutWarning, match=rf"^node index \(aten.index.Tensor\) has a "
                      rf"shape that depends on the data: costed at the size the example inputs "
                      rf"give it, \({rows},\)"):
        plan = chipcut.compile(model, (x,), chips=2, backend="cpu")
    assert plan.model.macs == 16 * 16 + rows * 16 * 16
    with torch.no_grad():
        torch.testing.assert_close(plan.split()(x)[0], model(x), rtol=0, atol=0)
    with pytest.raises(ChipcutError, match=r"^node index .* depends on the data, and the model or "
                       "its example inputs are on the meta device"):
        capture(Selected().to("meta").eval(), (torch.empty(1, 16, device="meta"),))


def test_a_lone_tensor_is_one_input() -> None:
    import chipcut

    net = torch.nn.Linear(64, 8)
    x = torch.randn(2, 64)
    assert [tuple(t.shape) for t in capture(net, x).example_inputs] == [(2, 64)]
    plan = chipcut.compile(net, x, chips=1)
    assert plan.model.macs == 2 * 64 * 8


def test_an_input_of_the_wrong_dtype_says_which_fix() -> None:
    with pytest.raises(ChipcutError, match=r"an input has the wrong dtype; check the --input "
                       r"dtypes \(token ids are integers: 1x16:int64\)$"):
        capture(torch.nn.Embedding(10, 4), (torch.randn(1, 16),))


class Where(torch.nn.Module):
    """``torch.where(mask)``: a node whose value is a list of tensors of data-dependent size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        i, j = torch.where(x > 0)
        return x[i, j] * 2 + j.float()


def test_a_list_of_data_dependent_tensors_is_costed_too() -> None:
    import chipcut

    torch.manual_seed(0)
    x = torch.randn(4, 8)
    count = int((x > 0).sum())
    with pytest.warns(chipcut.ChipcutWarning, match=rf"costed at the size the example inputs give "
                      rf"it, \[\({count},\), \({count},\)\]"):
        captured = capture(Where(), (x,))
    torch.testing.assert_close(captured.graph_module(x)[0], Where()(x))
