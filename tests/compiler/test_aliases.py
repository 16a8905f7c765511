"""In-place writes: a tensor written in place and read past the write stays in one unit."""

from __future__ import annotations

import pytest
import torch

import chipcut
from chipcut.compiler.lowering.aliases import alias_groups
from chipcut.compiler.lowering.units import build_units
from chipcut.core.aliasing import has_effect, written
from chipcut.core.ir import is_compute

NONE = chipcut.CompileOptions(passes="none")


class ShiftRight(torch.nn.Module):
    """transformers' shift_tokens_right: writes into slices of a fresh tensor (``copy_`` and
    ``fill_`` with no users), then embeds the tensor itself, then six layers."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(100, 64)
        self.layers = torch.nn.Sequential(*[torch.nn.Linear(64, 64) for _ in range(6)])

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        shifted = ids.new_zeros(ids.shape)
        shifted[:, 1:] = ids[:, :-1].clone()
        shifted[:, 0] = 7
        return self.layers(self.emb(shifted)) * (ids[:, :-1].clone().sum() > 0)


class InPlaceChain(torch.nn.Module):
    """relu_ and a residual add_ after each layer: every later read is of the write's result."""

    def __init__(self, inplace: bool) -> None:
        super().__init__()
        self.inplace = inplace
        self.layers = torch.nn.ModuleList(torch.nn.Linear(256, 256) for _ in range(6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            y = layer(x)
            x = y.relu_().add_(x) if self.inplace else y.relu() + x
        return x


class ReadAroundWrite(torch.nn.Module):
    """A read before the write, and a reader that also takes a value made from the tensor by
    other layers (a path out of the group and back)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = (torch.nn.Linear(32, 32) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        buf = self.a(x)
        before = buf.sum(dim=-1, keepdim=True)
        side = self.c(self.b(buf).tanh())
        buf[:, :8].mul_(2.0)
        return buf * side + before


@pytest.mark.parametrize("chips", [2, 3])
def test_a_tensor_written_through_a_slice_is_read_after_the_write_on_every_cut(chips) -> None:
    torch.manual_seed(0)
    model, ids = ShiftRight().eval(), (torch.randint(1, 100, (1, 8)),)
    plan = chipcut.compile(model, ids, chips=chips, backend="cpu", options=NONE)
    chip_of = {n: s.chip for s in plan.stages for n in s.nodes}
    writes = [n for n in chip_of if n.startswith(("copy_", "fill_"))]
    assert len(writes) == 2
    assert {chip_of[n] for n in writes + ["new_zeros", "embedding"]} == {chip_of["embedding"]}
    with torch.no_grad():
        torch.testing.assert_close(plan.split()(*ids)[0], model(*ids), rtol=0, atol=0)


def test_writes_read_through_their_own_result_join_nothing() -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 256)
    counts = []
    for inplace in (False, True):
        gm = chipcut.lower(InPlaceChain(inplace).eval(), (x,), chips=1, options=NONE).graph_module
        compute = [n for n in gm.graph.nodes if is_compute(n)]
        assert sum(written(n) is not None for n in compute) == (12 if inplace else 0)
        assert alias_groups(compute) == []
        counts.append(len(build_units(gm).units))
    assert counts[0] == counts[1] == 18  # linear, relu, add: unfused, each its own unit
    model = InPlaceChain(True).eval()
    plan = chipcut.compile(model, (x,), chips=3, backend="cpu", options=NONE)
    assert sum(bool(s.nodes) for s in plan.stages) >= 2
    with torch.no_grad():
        torch.testing.assert_close(plan.split()(x)[0], model(x.clone()), rtol=0, atol=0)


def test_a_group_takes_in_every_path_between_its_members() -> None:
    torch.manual_seed(0)
    model, x = ReadAroundWrite().eval(), torch.randn(4, 32)
    gm = chipcut.lower(model, (x,), chips=1, options=NONE).graph_module
    compute = [n for n in gm.graph.nodes if is_compute(n)]
    (group,) = alias_groups(compute)
    linears = sorted(n.name for n in compute if n.name.startswith("linear"))
    assert set(linears) <= group  # b and c lie between the buffer and its last reader
    units = build_units(gm)
    assert len({units.unit_of[n] for n in group}) == 1
    plan = chipcut.compile(model, (x,), chips=2, options=NONE)
    with torch.no_grad():
        torch.testing.assert_close(plan.split()(x)[0], model(x), rtol=0, atol=0)


class ResidualInPlace(torch.nn.Module):
    """``x += layer(x)``: each layer reads the sum so far, and feeds the next write."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(256, 256) for _ in range(6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * 1.0
        for layer in self.layers:
            x += layer(x)
        return x


class ZeroThenRelu(torch.nn.Module):
    """Two writes to one tensor that no data edge orders: a slice zeroed, then relu_."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Linear(256, 256), torch.nn.Linear(256, 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x) * 2
        y[:, :128] = 0
        y = y.relu_()
        return self.b(y * 3)


class ReadThenOut(torch.nn.Module):
    """A read of y, then ``out=y`` overwrites it: the read must not move past the write."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = (torch.nn.Linear(256, 256) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        early = self.b(y)
        torch.add(x, 1.0, out=y)
        return self.c(y) + early


def test_a_residual_summed_in_place_still_cuts_between_layers() -> None:
    torch.manual_seed(0)
    model, x = ResidualInPlace().eval(), torch.randn(64, 256)
    gm = chipcut.lower(model, (x,), chips=1, options=NONE).graph_module
    assert alias_groups([n for n in gm.graph.nodes if is_compute(n)]) == []
    plan = chipcut.compile(model, (x,), chips=3, backend="cpu", options=NONE)
    assert sum(bool(s.nodes) for s in plan.stages) == 3
    with torch.no_grad():
        torch.testing.assert_close(plan.split()(x)[0], model(x), rtol=0, atol=0)


@pytest.mark.parametrize("model_type, joined", [
    (ZeroThenRelu, {"fill_", "relu_"}),
    (ReadThenOut, {"linear_1", "add"}),
])
def test_unordered_writes_and_a_read_before_an_overwrite_share_a_unit(model_type, joined) -> None:
    torch.manual_seed(0)
    model, x = model_type().eval(), torch.randn(64, 256)
    gm = chipcut.lower(model, (x,), chips=1, options=NONE).graph_module
    units = build_units(gm)
    names = {n.name for n in gm.graph.nodes}
    assert joined <= names
    assert len({units.unit_of[n] for n in joined}) == 1
    for chips in (2, 3):
        plan = chipcut.compile(model, (x,), chips=chips, backend="cpu", options=NONE)
        with torch.no_grad():
            torch.testing.assert_close(plan.split()(x)[0], model(x), rtol=0, atol=0)


class ShiftRightMethods(ShiftRight):
    """ShiftRight written with Tensor methods (symbolic_trace cannot trace item assignment)."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        shifted = torch.zeros_like(ids)
        shifted.narrow(1, 1, 7).copy_(ids.narrow(1, 0, 7))
        shifted.select(1, 0).fill_(7)
        return self.layers(self.emb(shifted))


def test_the_symbolic_trace_fallback_keeps_a_slice_write_with_its_reader(monkeypatch) -> None:
    import chipcut.compiler.capture as capture_module

    def no_export(*args, **kwargs):
        raise RuntimeError("export unavailable")

    monkeypatch.setattr(capture_module.torch.export, "export", no_export)
    torch.manual_seed(0)
    model, ids = ShiftRightMethods().eval(), (torch.randint(1, 100, (1, 8)),)
    captured = chipcut.capture(model, ids)
    assert captured.method == "symbolic_trace"
    compute = [n for n in captured.graph_module.graph.nodes if is_compute(n)]
    (group,) = alias_groups(compute)
    assert {"zeros_like", "copy_", "fill_", "emb"} <= group  # the embedding reads the tensor
    for chips in (2, 3):
        plan = chipcut.compile(captured, chips=chips, backend="cpu", options=NONE)
        with torch.no_grad():
            torch.testing.assert_close(plan.split()(*ids)[0], model(*ids), rtol=0, atol=0)


class WritesIntoABuffer(torch.nn.Module):
    """Two layers' outputs written into slices of a registered buffer, read after both."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(64, 64) for _ in range(6))
        self.register_buffer("mem", torch.zeros(4, 16, 64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.layers[0](x))
        self.mem[:, :8] = h
        for layer in self.layers[1:4]:
            h = torch.relu(layer(h))
        self.mem[:, 8:] = h
        context = self.mem.mean(1, keepdim=True)
        return self.layers[5](torch.relu(self.layers[4](h)) + context)


def test_writes_into_a_buffer_are_not_fused_into_a_layer() -> None:
    """The fuse pass took the first write into the first layer's group, which the writes'
    unit then had to span: 'unit graph has a cycle' at compile."""
    torch.manual_seed(0)
    model, x = WritesIntoABuffer().eval(), torch.randn(4, 8, 64)
    for chips in (2, 3):
        plan = chipcut.compile(model, (x,), chips=chips, backend="cpu")
        with torch.no_grad():
            torch.testing.assert_close(plan.split()(x)[0], model(x), rtol=1e-6, atol=1e-6)


class RectifiedInPlaceByAModule(torch.nn.Module):
    """A layer's output read, then rectified in place by nn.ReLU(inplace=True), then read again
    by name (not through the ReLU's result)."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(64, 64) for _ in range(6))
        self.act = torch.nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layers[0](x)
        before = self.layers[2](self.layers[1](y))
        self.act(y)
        after = self.layers[4](self.layers[3](y))
        return self.layers[5](before + after)


def test_the_symbolic_trace_fallback_sees_an_in_place_module_write(monkeypatch) -> None:
    import chipcut.compiler.capture as capture_module

    def no_export(*args, **kwargs):
        raise RuntimeError("export unavailable")

    monkeypatch.setattr(capture_module.torch.export, "export", no_export)
    torch.manual_seed(0)
    model, x = RectifiedInPlaceByAModule().eval(), torch.randn(4, 64)
    captured = chipcut.capture(model, (x,))
    assert captured.method == "symbolic_trace"
    nodes = captured.graph_module.graph.nodes
    assert [n.name for n in nodes if is_compute(n) and has_effect(n)] == ["act"]
    for chips in (2, 3):
        plan = chipcut.compile(captured, chips=chips, backend="cpu", options=NONE)
        with torch.no_grad():
            torch.testing.assert_close(plan.split()(x)[0], model(x.clone()), rtol=0, atol=0)
