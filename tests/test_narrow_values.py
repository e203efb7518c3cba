"""Narrow values: a scalar standing for an array must never be read as the whole array.

The generated module may compute a value with fewer entries than its shape -- the 0-d seed
`dout = 1` of `value_and_grad`, a scalar a `broadcast_to` step leaves unspread -- because
NumPy's broadcasting makes that exact in elementwise steps. A sum, reshape, transpose, matmul,
in-place mask, copy or returned gradient reading such a value gets wrong numbers or a crash:
`h * mean(h)` of a biased h gave db wrong by the broadcast factor (issue 11).

Oracles: PyTorch autograd (float64, CPU) and the gradients written out by hand; and, for the
invariant itself, the shapes the generated backward's values really have while it runs (traced
statement by statement), compared with the shapes the program says they have.
"""

from __future__ import annotations

import ast
import dataclasses
import sys
import zlib

import numpy as np
import pytest
from hypothesis import given
from strategies import (
    broadcast_programs,
    examples,
    graphc_ops,
    module_gradients,
    vector_programs,
)

import graphc as gc
from graphc.emit import codegen
from graphc.ir.graph import args_of
from graphc.ir.ops import GATES, TENSOR
from graphc.passes import shortcuts

torch = pytest.importorskip("torch")


def _t(v):
    return torch.tensor(v, dtype=torch.float64, requires_grad=True)


def torch_grads(fn, inputs: dict, dout=None) -> dict:
    """d sum(dout * fn(**inputs)) / d input, by PyTorch autograd."""
    leaves = {k: _t(v) for k, v in inputs.items()}
    out = fn(**leaves)
    out.backward(torch.ones_like(out) if dout is None else torch.tensor(dout))
    return {k: t.grad.numpy() if t.grad is not None else np.zeros(np.shape(v))
            for (k, v), t in zip(inputs.items(), leaves.values())}  # fmt: skip


def versions(f):
    out = {"none": f, "patterns": f.fused(level="patterns")}
    out["elementwise"] = f.fused(level="elementwise")
    out["readable=False"] = f.fused(level="patterns", readable=False)
    return out


def assert_matches(f, inputs: dict, want: dict, names=None):
    names = list(inputs) if names is None else names
    for level, g in versions(f).items():
        grads = g.grad(**inputs)
        raw = module_gradients(g, inputs)
        for name, r in zip(names, raw):
            assert np.shape(r) == np.shape(inputs[name]), (level, name, np.shape(r))
            np.testing.assert_allclose(grads[name], want[name], rtol=1e-12, atol=1e-12,
                                       err_msg=f"{level}: d/d{name}")  # fmt: skip


X = np.array([1.0, 2.0, 3.0, 4.0])
M = np.arange(1.0, 7.0).reshape(2, 3) / 4


def test_a_biased_value_times_its_own_mean_has_the_gradient_pytorch_gives():
    """The issue's example: db was 6.0, the factor 4 of the broadcast short."""

    def f(x, b):
        h = x + b
        return h * gc.mean(h)

    grads = gc.function(f).grad(X, 0.5)
    # d/db sum_i h_i * mean(h) = n * mean(h) + sum_i h_i = 4 * 3 + 12
    assert grads["b"] == 24.0
    np.testing.assert_array_equal(grads["x"], np.full(4, 6.0))
    want = torch_grads(lambda x, b: (x + b) * (x + b).mean(), {"x": X, "b": 0.5})
    assert_matches(gc.function(f), {"x": X, "b": 0.5}, want)
    only_b = gc.function(f).wrt("b")
    assert only_b.grad(X, 0.5) == {"b": 24.0}
    assert np.shape(module_gradients(only_b, {"x": X, "b": 0.5})[0]) == ()


SELF_REDUCTIONS = {
    "h * sum(h)": (lambda h: h * gc.sum(h), lambda h: h * h.sum()),
    "h * mean(h)": (lambda h: h * gc.mean(h), lambda h: h * h.mean()),
    "h / sum(h)": (lambda h: h / gc.sum(h), lambda h: h / h.sum()),
    "h + sum(h)": (lambda h: h + gc.sum(h), lambda h: h + h.sum()),
    "h - max(h)": (lambda h: h - gc.max(h), lambda h: h - h.max()),
    "h * mean(h, axis=0)": (lambda h: h * gc.mean(h, axis=0), lambda h: h * h.mean(0)),
    "h * sum(h, axis=-1, keepdims)": (
        lambda h: h * gc.sum(h, axis=-1, keepdims=True),
        lambda h: h * h.sum(-1, keepdim=True),
    ),
    "h * mean(h, axis=(0, 1))": (lambda h: h * gc.mean(h, axis=(0, 1)), lambda h: h * h.mean()),
}
BIASES = {"()": 0.5, "(1,)": np.array([0.5]), "row": np.array([0.5, -1.0, 2.0])}
BEHIND = {  # what reads h's gradient after the self-reduction's backward: (x, graphc, torch)
    "plain": (M, lambda x: x, lambda x: x),
    "reshape": (M.reshape(3, 2), lambda x: gc.reshape(x, (2, 3)), lambda x: x.reshape(2, 3)),
    "matmul": (M[:, :2], lambda x: x @ M / 3, lambda x: x @ torch.tensor(M) / 3),
    "transpose": (M.T, lambda x: gc.transpose(x) * M, lambda x: x.T * torch.tensor(M)),
}


@pytest.mark.parametrize("behind", list(BEHIND))
@pytest.mark.parametrize("bias", list(BIASES))
@pytest.mark.parametrize("reduction", list(SELF_REDUCTIONS))
def test_self_reductions_of_a_biased_value_match_pytorch(reduction, bias, behind):
    g_red, t_red = SELF_REDUCTIONS[reduction]
    x, g_in, t_in = BEHIND[behind]

    def f(x, b):
        return g_red(g_in(x) + b)

    def t(x, b):
        return t_red(t_in(x) + b)

    inputs = {"x": x, "b": BIASES[bias]}
    assert_matches(gc.function(f), inputs, torch_grads(t, inputs))


def test_an_in_place_mask_never_works_in_a_narrow_array():
    """x * relu(z) with x a row: relu's gradient `dout * x` has x's shape under the 0-d seed, so
    `dz *= relu > 0` in its array failed (non-broadcastable output operand)."""

    def f(x, z):
        return x * gc.relu(z)

    inputs = {"x": np.array([1.0, 2.0, 3.0]), "z": np.array([[1.0, -2.0, 3.0], [-1.0, 2.0, 3.0]])}
    assert_matches(gc.function(f), inputs, torch_grads(lambda x, z: x * torch.relu(z), inputs))


BATCHED = {
    "batch @ batch": ((2, 3, 4), (2, 4, 5)),
    "batch @ matrix": ((2, 3, 4), (4, 5)),
    "matrix @ batch": ((3, 4), (2, 4, 5)),
    "broadcast batches": ((1, 3, 4), (2, 4, 5)),
    "vector @ batch": ((4,), (2, 4, 5)),
    "batch @ vector": ((2, 3, 4), (4,)),
    "vector @ 4-d batch": ((4,), (2, 1, 4, 5)),
}


@pytest.mark.parametrize("shapes", list(BATCHED))
def test_batched_matmul_gradients_match_pytorch(shapes, rng):
    a, b = (rng.standard_normal(s) for s in BATCHED[shapes])

    def f(a, b):
        return gc.tanh(a @ b)

    inputs = {"a": a, "b": b}
    want = torch_grads(lambda a, b: torch.tanh(a @ b), inputs)
    assert_matches(gc.function(f), inputs, want)


@pytest.mark.parametrize("axes", [(2, 0, 1), (1, 2, 0), (-1, 0, 1), (0, -1, -2), None])
def test_permuted_transposes_match_pytorch(axes, rng):
    x = rng.standard_normal((2, 3, 4))
    w = rng.standard_normal(np.transpose(x, axes).shape[-2:])  # a matrix per permuted batch

    def f(x, w):
        return gc.transpose(x, axes=axes) * w

    def t(x, w):
        return x.permute(*(axes or (2, 1, 0))) * w

    inputs = {"x": x, "w": w}
    assert_matches(gc.function(f), inputs, torch_grads(t, inputs))


# ---------------------------------------------------------------- the rule, checked on programs


def _plan(f, inputs):
    compiled = f.compiled_for(**inputs)
    return compiled.program, shortcuts.shortcuts(compiled.program)


def test_the_check_finds_a_broadcast_left_unspread_under_the_scalar_seed():
    """The plan the old rule made for the issue's example: the 0-d seed, and mean's gradient
    left a scalar. Checked again from the start, the check names the sum that reads it."""

    def f(x, b):
        h = x + b
        return h * gc.mean(h)

    program, plan = _plan(gc.function(f), {"x": X, "b": 0.5})
    assert plan.scalar_seed and not plan.scalars  # the rule keeps the seed, spreads the scalar
    g = program.graph
    spread = next(n for n in program.order if g.nodes[n]["op"] == "broadcast_to")
    narrow = shortcuts.narrow_shapes(program, (), [spread])
    faults = list(shortcuts.whole_reads(program, narrow))
    assert any("sum_to step" in fault for fault in faults), faults
    assert list(shortcuts.whole_reads(program, shortcuts.narrow_shapes(program, ()))) == []


def test_the_check_finds_a_narrow_value_returned_as_a_gradient():
    program, plan = _plan(gc.function(lambda x: x * 2.0), {"x": X})
    faults = list(shortcuts.whole_reads(program, shortcuts.narrow_shapes(program, ())))
    assert faults == ["backward returns a narrow value as the gradient of x"]
    assert not plan.scalar_seed  # so value_and_grad passes ones_like(out)


def _elementwise(data) -> bool:
    return data["op"] == "expr" or data["op"] in GATES and GATES[data["op"]].kind != TENSOR


def traced_shapes(f, inputs: dict, dout=None) -> list[str]:
    """Run the generated backward statement by statement and list every value a step reads as
    whole (a tensor step, np.vdot, an in-place mask, a transposed sum, a copy) whose shape,
    as it runs, is not the shape the program gives it; and every value that does not even
    broadcast to its shape, and every returned gradient not shaped like its input."""
    compiled = f.compiled_for(**inputs)
    plan = codegen.shortcuts(compiled.program)  # the plan emit_module printed
    program = dataclasses.replace(compiled.program, cache=plan.cache)
    g, emit = program.graph, codegen.Emitter(program, plan)
    module = compiled.module
    backward = next(
        n for n in ast.parse(compiled.source).body if getattr(n, "name", "") == "backward"
    )
    # the cache may also carry an input whose sizes backward reads (issue 14): skip its unpacking
    unpacks = getattr(backward.body[0], "value", None)
    unpacked = isinstance(unpacks, ast.Name) and unpacks.id == "cache"
    statements = iter(backward.body[1:-1] if unpacked else backward.body[:-1])
    line_of = {}
    for n in plan.backward:  # one statement each; an in-place mask may take two lines
        first = next(statements)
        line_of[first.lineno] = n
        if n in plan.masked and isinstance(first, ast.Assign):
            next(statements)
    faults: list[str] = []

    def shape(frame, n):
        return np.shape(eval(emit.ref(n), frame.f_globals, dict(frame.f_locals)))

    def check(frame, n, whole, where):
        have, want = shape(frame, n), g.nodes[n]["shape"]
        wrong = have != want if whole else np.broadcast_shapes(have, want) != want
        if wrong:
            faults.append(f"{where} reads node {n} ({g.nodes[n]['op']}) as {have}, not {want}")

    def reads(frame, n):
        data = g.nodes[n]
        whole = not _elementwise(data) or bool(data.get("copy"))
        if n in plan.dots:  # np.vdot(x, y) of the product it skips
            for a in plan.dots[n]:
                check(frame, a, True, f"np.vdot at {n}")
            return
        for a in (plan.rereads.get((n, a), a) for a in args_of(g, n)):
            check(frame, a, whole, f"{data['op']} step {n}")
            if a in program.inline and a not in plan.scalars:
                reads(frame, a)
        for a, _ in [plan.masked.get(n, (None, None)), plan.summed_transposed.get(n, (None, 0))]:
            if a is not None:
                check(frame, a, True, f"the in-place or transposed step {n}")

    def local(frame, event, arg):
        if event == "line" and frame.f_lineno in line_of:
            reads(frame, line_of[frame.f_lineno])
        if event == "return" and arg is not None:  # None: an exception leaves backward
            for name, grad in zip(f.gradient_names, arg):
                if np.shape(grad) != np.shape(inputs[name]):
                    faults.append(f"the gradient of {name} has shape {np.shape(grad)}")
        return local

    def calls(frame, event, arg):
        return local if frame.f_code is module.backward.__code__ else None

    args = [np.float64(v) if isinstance(v, float) else v for v in inputs.values()]
    previous = sys.gettrace()
    sys.settrace(calls)
    try:
        with np.errstate(all="ignore"):
            if dout is None:
                module.value_and_grad(*args)
            else:
                out, cache = module.forward(*args)
                module.backward(dout, cache)
    finally:
        sys.settrace(previous)
    return faults


def test_the_traced_check_finds_what_the_old_rule_did(monkeypatch):
    """The tracer is an oracle of its own: with the old plan forced (the scalar left unspread
    under the 0-d seed), it sees the sum over b's broadcast read a scalar."""

    def f(x, b):
        h = x + b
        return h * gc.mean(h)

    fn = gc.function(f)
    assert traced_shapes(fn, {"x": X, "b": 0.5}) == []
    real = shortcuts.shortcuts

    def old_plan(program, dtype="float64"):
        plan = real(program, dtype)
        g = program.graph
        for n in program.order:
            if g.nodes[n]["op"] == "broadcast_to" and g.nodes[args_of(g, n)[0]]["shape"] == ():
                plan.scalars[n] = args_of(g, n)[0]
                plan.skipped.add(n)
        return plan

    monkeypatch.setattr(codegen, "shortcuts", old_plan)
    faults = traced_shapes(gc.function(f), {"x": X, "b": 0.5})
    assert any("sum_to step" in fault for fault in faults), faults


def _upstream(case, f) -> np.ndarray:
    """A random upstream gradient of the output's shape, the same for the same case."""
    out = f(**case.inputs)
    rng = np.random.default_rng(zlib.crc32(case.text.encode()))
    return rng.uniform(-2.0, 2.0, np.shape(out))


def _audit(case):
    f = gc.function(case.function(graphc_ops()))
    last = list(case.inputs)[-1]
    fns = {**versions(f), f"wrt {last}": f.wrt(last)}
    dout = _upstream(case, f)
    for level, g in fns.items():
        for seed in (None, dout):
            faults = traced_shapes(g, case.inputs, seed)
            assert not faults, f"level={level}, dout={'ones' if seed is None else seed}: {faults}"


@examples(ci=120, slow=1500)
@given(broadcast_programs())
def test_no_narrow_value_is_read_whole_in_broadcast_programs(case):
    _audit(case)


@examples(ci=60, slow=500)
@given(vector_programs(max_steps=6))
def test_no_narrow_value_is_read_whole_in_random_programs(case):
    _audit(case)
