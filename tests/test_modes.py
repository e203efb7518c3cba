"""Forward mode (`jvp`, `jvp_source`), the backward graph as a Function (`gradient`) and second
derivatives (`hvp`, `gc.hessian`), against oracles graphc did not compute: central differences
of NumPy references along the tangent, `torch.func.jvp`, `torch.autograd.functional.hvp` and
`hessian`, SymPy's `diff` of the whole expression and mpmath at extreme inputs.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import sympy
from hypothesis import given
from strategies import broadcast_programs, examples, vector_programs
from test_gates import DOMAINS, ELEMENTWISE, TENSOR_CASES, reference, traced
from test_oracles_torch import TorchOps

import graphc as gc

torch = pytest.importorskip("torch")


def directional(fn, inputs: dict, tangents: dict, h: float = 1e-6):
    """d/de fn(inputs + e * tangents) at e = 0 by central differences (NumPy alone)."""
    up = {
        k: np.asarray(v, dtype=float) + h * np.asarray(tangents.get(k, 0.0))
        for k, v in inputs.items()
    }
    down = {
        k: np.asarray(v, dtype=float) - h * np.asarray(tangents.get(k, 0.0))
        for k, v in inputs.items()
    }
    return (np.asarray(fn(**up), dtype=float) - np.asarray(fn(**down), dtype=float)) / (2 * h)


@gc.function
def neuron(w0, x0, w1, x1, w2):
    return gc.sigmoid(w0 * x0 + w1 * x1 + w2)


AT = dict(w0=2.0, x0=-1.0, w1=-3.0, x1=-2.0, w2=-3.0)


def neuron_sympy():
    w0, x0, w1, x1, w2 = sympy.symbols("w0 x0 w1 x1 w2", real=True)
    return (w0, x0, w1, x1, w2), 1 / (1 + sympy.exp(-(w0 * x0 + w1 * x1 + w2)))


# ---------------------------------------------------------------- jvp: the lecture's neuron


def test_neuron_jvp_is_the_lectures_number():
    syms, expr = neuron_sympy()
    exact = float(sympy.diff(expr, syms[0]).subs(dict(zip(syms, AT.values()))))
    value, tangent = neuron.jvp(AT, tangents={"w0": 1.0})
    assert type(value) is float and type(tangent) is float
    assert value == pytest.approx(0.7310585786300049, rel=1e-15)
    assert tangent == pytest.approx(exact, rel=1e-14)
    assert round(tangent, 4) == -0.1966


def test_jvp_source_reads_one_tangent_per_gate():
    neuron.jvp(AT, tangents={"w0": 1.0})
    source = neuron.jvp_source
    assert "def jvp(w0, x0, w1, x1, w2, w0_t):" in source  # no tangent argument for the others
    body = source.split("def jvp")[1].splitlines()[1:-1]
    statements = [ln.split("=")[0].strip() for ln in body if ln.strip()]
    # each value's statement, then its tangent's, where a tangent reaches it
    # add passes mul_t through unchanged (local gradient 1): no statement for it
    assert statements == ["mul", "mul_t", "mul_2", "add", "add_2", "out", "out_t"]
    assert "x1_t" not in source and "mul_2_t" not in source  # zero tangents are dropped
    assert "# mul: dmul/dw0 = x0" in source
    assert "# sigmoid: dout/dadd_2 = out * sigmoid(-add_2)" in source
    assert source.rstrip().endswith("return out, out_t")


def test_jvp_matches_torch_on_the_neuron_fused_and_not():
    tangents = {"w0": 0.3, "x0": -1.2, "w2": 2.0}
    args = tuple(torch.tensor(v, dtype=torch.float64) for v in AT.values())
    tans = tuple(torch.tensor(tangents.get(k, 0.0), dtype=torch.float64) for k in AT)

    def f(w0, x0, w1, x1, w2):
        return torch.sigmoid(w0 * x0 + w1 * x1 + w2)

    value, expected = torch.func.jvp(f, args, tans)
    for version in (neuron, neuron.fused(), neuron.fused(level="elementwise")):
        v, t = version.jvp(AT, tangents=tangents)
        assert v == pytest.approx(float(value), rel=1e-15)
        assert t == pytest.approx(float(expected), rel=1e-14)


# ---------------------------------------------------------------- jvp: every gate of the table


@pytest.mark.parametrize("gate", ELEMENTWISE, ids=lambda g: g.name)
def test_every_elementwise_gate_jvp_matches_central_differences(gate, rng):
    f, names = traced(gate)
    args = DOMAINS[gate.name](rng, 9)
    inputs = dict(zip(names, args))
    tangents = {k: rng.uniform(-1.0, 1.0, 9) for i, k in enumerate(names) if i not in gate.nondiff}
    ref = reference(gate)
    expected = directional(lambda **kw: ref(*(kw[n] for n in names)), inputs, tangents)
    value, tangent = f.jvp(inputs, tangents)
    np.testing.assert_allclose(value, ref(*args), rtol=1e-13)
    np.testing.assert_allclose(tangent, expected, rtol=1e-6, atol=1e-8)


CASES = [(name, i, case) for name, cases in TENSOR_CASES.items() for i, case in enumerate(cases)]


@pytest.mark.parametrize("name, i, case", CASES, ids=[f"{n}{i}" for n, i, _ in CASES])
def test_every_tensor_gate_jvp_matches_central_differences(name, i, case, rng):
    build, ref, shapes = case
    names = list(shapes)
    sig = gc.symbols(" ".join(names))
    sig = sig if isinstance(sig, tuple) else (sig,)
    f = gc.function(build(*sig), inputs=list(sig))
    inputs = {k: rng.uniform(-1.0, 1.0, s) for k, s in shapes.items()}
    tangents = {k: rng.uniform(-1.0, 1.0, s) for k, s in shapes.items()}
    value, tangent = f.jvp(
        dict(zip(f.inputs, inputs.values())), dict(zip(f.inputs, tangents.values()))
    )
    expected = directional(lambda **kw: ref(*(kw[n] for n in names)), inputs, tangents)
    np.testing.assert_allclose(value, ref(*inputs.values()), rtol=1e-12)
    np.testing.assert_allclose(tangent, expected, rtol=1e-6, atol=1e-8)


def test_only_some_tangents_of_a_matmul(rng):
    @gc.function
    def layer(X, W, b):
        return gc.sum(gc.tanh(X @ W + b))

    X, W, b = rng.normal(size=(5, 3)), rng.normal(size=(3, 2)), rng.normal(size=2)
    V = rng.normal(size=(3, 2))
    value, tangent = layer.jvp(dict(X=X, W=W, b=b), {"W": V})
    expected = directional(
        lambda X, W, b: np.sum(np.tanh(X @ W + b)), dict(X=X, W=W, b=b), {"W": V}
    )
    assert tangent == pytest.approx(float(expected), rel=1e-7)
    source = layer.jvp_source
    assert "def jvp(X, W, b, W_t):" in source and "X_t" not in source


# ---------------------------------------------------------------- jvp: random programs vs torch


def _torch_jvp(case, tangents):
    names = list(case.inputs)
    fn = case.function(TorchOps)
    primals = tuple(torch.tensor(case.inputs[k], dtype=torch.float64) for k in names)
    tans = tuple(torch.tensor(tangents[k], dtype=torch.float64) for k in names)
    value, tangent = torch.func.jvp(lambda *xs: fn(*xs), primals, tans)
    return value.numpy(), tangent.numpy()


def _check_jvp_against_torch(case):
    rng = np.random.default_rng(len(case.text))
    tangents = {k: rng.uniform(-1.0, 1.0, np.shape(v)) for k, v in case.inputs.items()}
    _, expected = _torch_jvp(case, tangents)
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    f = case.graphc()
    for level, g in {
        "none": f,
        "patterns": f.fused(),
        "elementwise": f.fused(level="elementwise"),
    }.items():
        with np.errstate(all="ignore"):
            _, tangent = g.jvp(
                case.inputs,
                {
                    k: (
                        float(t)
                        if np.ndim(case.inputs[k]) == 0
                        and not isinstance(case.inputs[k], np.ndarray)
                        else t
                    )
                    for k, t in tangents.items()
                },
            )
        assert np.shape(tangent) == np.shape(expected), level
        np.testing.assert_allclose(tangent, expected, rtol=1e-9, atol=1e-11 * scale, err_msg=level)


@examples(ci=60, slow=1000)
@given(vector_programs())
def test_random_programs_jvp_matches_torch(case):
    _check_jvp_against_torch(case)


@examples(ci=40, slow=600)
@given(broadcast_programs())
def test_random_broadcast_programs_jvp_matches_torch(case):
    _check_jvp_against_torch(case)


# ---------------------------------------------------------------- fused gates stay exact


@pytest.mark.parametrize("x", [-800.0, -40.0, 40.0, 800.0])
def test_fused_sigmoid_tangent_is_exact_at_extremes(x):
    f = gc.function(lambda x: 1 / (1 + gc.exp(-x))).fused()
    assert any(op == "sigmoid" for _, op in f.graph.nodes(data="op"))
    mpmath.mp.dps = 50
    s = 1 / (1 + mpmath.exp(-mpmath.mpf(x)))
    exact = float(s * (1 - s))
    _, tangent = f.jvp({"x": x}, {"x": 1.0})
    assert tangent == pytest.approx(exact, rel=1e-14, abs=0.0)  # e**-800 is 0.0 in float64
    if abs(x) == 40.0:
        assert tangent > 0.0  # the textbook s*(1-s) rounds to 0 at x = 40


def test_fused_softmax_cross_entropy_jvp_matches_torch(rng):
    logits, labels = rng.normal(size=(4, 5)) * 30, np.eye(5)[[0, 3, 1, 4]]

    def loss(Z, Y):
        log_softmax = Z - gc.log(gc.sum(gc.exp(Z), axis=1, keepdims=True))
        return gc.sum(-gc.sum(Y * log_softmax, axis=1))

    f = gc.function(loss).fused()
    assert any(op == "softmax_cross_entropy" for _, op in f.graph.nodes(data="op"))
    T = rng.normal(size=(4, 5))
    _, tangent = f.jvp({"Z": logits, "Y": labels}, {"Z": T})

    def torch_loss(Z):
        return torch.nn.functional.cross_entropy(Z, torch.tensor([0, 3, 1, 4]), reduction="sum")

    _, expected = torch.func.jvp(torch_loss, (torch.tensor(logits),), (torch.tensor(T),))
    assert tangent == pytest.approx(float(expected), rel=1e-12)


# ---------------------------------------------------------------- the backward graph as a Function


def test_gradient_is_a_function_of_the_same_inputs():
    dneuron = neuron.gradient("w0")
    assert isinstance(dneuron, gc.Function) and dneuron.inputs == neuron.inputs
    assert dneuron(**AT) == pytest.approx(neuron.grad(**AT)["w0"], rel=1e-15)
    ops = [op for _, op in dneuron.graph.nodes(data="op")]
    assert "expr" in ops and "input" in ops  # dout * local steps, as ordinary gates
    names = dict(dneuron.graph.nodes(data="hint"))
    assert "dw0" in names.values()


def _sympy_at(expr, syms, at):
    return float(expr.subs(dict(zip(syms, at.values()))))


def test_reverse_over_reverse_matches_sympy_second_derivatives():
    syms, expr = neuron_sympy()
    for a, sa in zip(neuron.inputs, syms):
        row = neuron.gradient(a).grad(**AT)
        for b, sb in zip(neuron.inputs, syms):
            exact = _sympy_at(sympy.diff(expr, sa, sb), syms, AT)
            assert row[b] == pytest.approx(exact, rel=1e-12, abs=1e-15), (a, b)


def test_third_derivatives_by_chaining_gradients():
    x, y = sympy.symbols("x y", real=True)
    expr = sympy.tanh(x * y) + sympy.exp(x) / (1 + y**2)
    f = gc.function(lambda x, y: gc.tanh(x * y) + gc.exp(x) / (1 + y**2))
    at = {"x": 0.7, "y": -0.4}
    d3 = f.gradient("x").gradient("y").grad(**at)
    for name, s in (("x", x), ("y", y)):
        exact = _sympy_at(sympy.diff(expr, x, y, s), (x, y), at)
        assert d3[name] == pytest.approx(exact, rel=1e-11), name


def test_gradient_functions_fuse_and_stay_right():
    dneuron = neuron.fused().gradient("x0")
    fused = dneuron.fused()
    syms, expr = neuron_sympy()
    exact = _sympy_at(sympy.diff(expr, syms[1], syms[0]), syms, AT)
    assert fused.grad(**AT)["w0"] == pytest.approx(exact, rel=1e-12)


def test_gradient_of_an_array_function_against_torch(rng):
    @gc.function
    def loss(X, W, b):
        return gc.mean((gc.tanh(X @ W + b)) ** 2)

    X, W, b = rng.normal(size=(6, 3)), rng.normal(size=(3, 2)), rng.normal(size=2)
    dW = loss.gradient("W", X=X, W=W, b=b)
    value = dW(X=X, W=W, b=b)
    tX, tW, tb = (torch.tensor(v, requires_grad=True) for v in (X, W, b))
    (g,) = torch.autograd.grad(torch.mean(torch.tanh(tX @ tW + tb) ** 2), tW, create_graph=True)
    np.testing.assert_allclose(value, g.detach().numpy(), rtol=1e-12)
    # reverse over reverse: the gradient of sum(dW) (graphc's gradient of an array's sum)
    second = dW.grad(X=X, W=W, b=b)
    expected = torch.autograd.grad(g.sum(), (tX, tW, tb))
    for name, e in zip("XWb", expected):
        np.testing.assert_allclose(second[name], e.numpy(), rtol=1e-10, atol=1e-13)
    with pytest.raises(gc.ShapeError, match="gradient built for inputs shaped"):
        dW(X=X[:2], W=W, b=b)


# ---------------------------------------------------------------- hvp and the Hessian


def mlp_loss(X, Y, W1, W2):
    h = gc.tanh(X @ W1)
    return gc.mean((h @ W2 - Y) ** 2)


def test_hvp_of_the_mlp_loss_matches_torch(rng):
    loss = gc.function(mlp_loss)
    X, Y = rng.normal(size=(8, 3)), rng.normal(size=(8, 2))
    W1, W2 = rng.normal(size=(3, 4)), rng.normal(size=(4, 2))
    V1, V2 = rng.normal(size=(3, 4)), rng.normal(size=(4, 2))
    inputs = dict(X=X, Y=Y, W1=W1, W2=W2)
    hvp = loss.hvp(inputs, v={"W1": V1, "W2": V2})
    assert set(hvp) == {"W1", "W2"} and hvp["W1"].shape == (3, 4)

    def f(W1, W2):
        h = torch.tanh(torch.tensor(X) @ W1)
        return torch.mean((h @ W2 - torch.tensor(Y)) ** 2)

    _, (e1, e2) = torch.autograd.functional.hvp(
        f, (torch.tensor(W1), torch.tensor(W2)), (torch.tensor(V1), torch.tensor(V2))
    )
    np.testing.assert_allclose(hvp["W1"], e1.numpy(), rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(hvp["W2"], e2.numpy(), rtol=1e-11, atol=1e-14)
    # reverse over reverse agrees: gradient("W1").grad is d sum(dW1) / d., which is H v for
    # v = ones on W1 and zeros elsewhere
    ones = {"W1": np.ones_like(W1), "W2": np.zeros_like(W2)}
    forward_over_reverse = loss.hvp(inputs, v=ones)
    reverse_over_reverse = loss.gradient("W1", **inputs).grad(**inputs)
    for name in ("W1", "W2"):
        np.testing.assert_allclose(
            forward_over_reverse[name], reverse_over_reverse[name], rtol=1e-12, atol=1e-15
        )
    fused = loss.fused().hvp(inputs, v={"W1": V1, "W2": V2})
    np.testing.assert_allclose(fused["W1"], e1.numpy(), rtol=1e-11, atol=1e-14)


def test_hessian_matches_torch_and_sympy():
    x, y = sympy.symbols("x y", real=True)
    expr = x**2 * y + sympy.exp(x * y)
    f = gc.function(lambda x, y: x**2 * y + gc.exp(x * y))
    H = gc.hessian(f, x=1.0, y=2.0)
    for a, sa in (("x", x), ("y", y)):
        for b, sb in (("x", x), ("y", y)):
            exact = float(sympy.diff(expr, sa, sb).subs({x: 1.0, y: 2.0}))
            assert H[a][b] == pytest.approx(exact, rel=1e-13), (a, b)
            assert H[a][b] == pytest.approx(f.gradient(a).grad(x=1.0, y=2.0)[b], rel=1e-13)

    t = torch.autograd.functional.hessian(
        lambda x, y: x**2 * y + torch.exp(x * y),
        (torch.tensor(1.0, dtype=torch.float64), torch.tensor(2.0, dtype=torch.float64)),
    )
    assert H["x"]["y"] == pytest.approx(float(t[0][1]), rel=1e-14)


def test_hessian_of_arrays_matches_torch(rng):
    f = gc.function(lambda w, x: gc.sum(gc.sigmoid(w * x) * w))
    w, x = rng.normal(size=3), rng.normal(size=3)
    H = gc.hessian(f, w=w, x=x)
    t = torch.autograd.functional.hessian(
        lambda w, x: torch.sum(torch.sigmoid(w * x) * w), (torch.tensor(w), torch.tensor(x))
    )
    for i, a in enumerate("wx"):
        for j, b in enumerate("wx"):
            assert H[a][b].shape == (3, 3)
            np.testing.assert_allclose(H[a][b], t[i][j].numpy(), rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------- bad input


def test_bad_tangents_and_names_are_refused():
    with pytest.raises(gc.InputError, match="not inputs"):
        neuron.jvp(AT, tangents={"z": 1.0})
    with pytest.raises(gc.InputError, match="tangent of 'w0' is shaped"):
        neuron.jvp(AT, tangents={"w0": np.ones(3)})
    with pytest.raises(gc.InputError, match="gradient\\(\\) takes an input name"):
        neuron.gradient("nope")


# ---------------------------------------------------------------- check_grad in forward mode


def test_check_grad_forward_mode_passes_on_right_tangents(rng):
    assert gc.check_grad(neuron, mode="forward", **AT) < 1e-7
    f = gc.function(lambda X, W: gc.sum(gc.tanh(X @ W), axis=0))
    inputs = dict(X=rng.normal(size=(4, 3)), W=rng.normal(size=(3, 2)))
    assert gc.check_grad(f, mode="forward", **inputs) < 1e-7
    assert gc.check_grad(f.fused(), mode="forward", samples=3, **inputs) < 1e-7


def test_check_grad_forward_mode_finds_a_wrong_tangent_rule(monkeypatch, rng):
    from graphc.passes import forward

    def doubled(b, n, args, ts):  # a wrong rule: twice the tangent's sum
        return b.op("mul", [forward._linear(b, n, args, ts), b.const(2.0)])

    monkeypatch.setitem(forward.TANGENT_RULES, "sum", doubled)
    f = gc.function(lambda x: gc.sum(x * x))
    assert gc.check_grad(f, mode="forward", x=rng.normal(size=3)) > 0.3


def test_check_grad_mode_is_checked():
    with pytest.raises(gc.InputError, match="choose 'reverse' or 'forward'"):
        gc.check_grad(neuron, mode="sideways", **AT)
    with pytest.raises(gc.InputError, match="per_gate=True checks the reverse mode only"):
        gc.check_grad(neuron, mode="forward", per_gate=True, **AT)


def test_hvp_of_a_fused_cross_entropy_loss_matches_torch(rng):
    def loss(X, Y, W):
        Z = X @ W
        log_softmax = Z - gc.log(gc.sum(gc.exp(Z), axis=1, keepdims=True))
        return gc.mean(-gc.sum(Y * log_softmax, axis=1))

    f = gc.function(loss).fused()
    assert any(op == "softmax_cross_entropy" for _, op in f.graph.nodes(data="op"))
    labels = np.array([0, 2, 1, 2, 0])
    X, Y, W = rng.normal(size=(5, 4)) * 3, np.eye(3)[labels], rng.normal(size=(4, 3))
    V = rng.normal(size=(4, 3))
    got = f.hvp(dict(X=X, Y=Y, W=W), v={"W": V})["W"]

    def torch_loss(W):
        return torch.nn.functional.cross_entropy(torch.tensor(X) @ W, torch.tensor(labels))

    _, expected = torch.autograd.functional.hvp(torch_loss, torch.tensor(W), torch.tensor(V))
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-11, atol=1e-14)
    # the labels' tangent too (Y moves): the mixed second derivative d/dY of dW, by torch
    T = rng.normal(size=Y.shape)
    dW = f.gradient("W", X=X, Y=Y, W=W)
    _, tangent = dW.jvp(dict(X=X, Y=Y, W=W), {"Y": T})

    def torch_dw(Y):
        tW = torch.tensor(W, requires_grad=True)
        Z = torch.tensor(X) @ tW
        value = torch.mean(-torch.sum(Y * torch.log_softmax(Z, dim=1), dim=1))
        return torch.autograd.grad(value, tW, create_graph=True)[0]

    _, expected = torch.func.jvp(torch_dw, (torch.tensor(Y),), (torch.tensor(T),))
    np.testing.assert_allclose(tangent, expected.detach().numpy(), rtol=1e-11, atol=1e-14)


def test_second_derivatives_through_a_max(rng):
    # the backward pass of max routes dout to the largest entry (route_to_max); differentiated
    # again, that step reads the upstream gradient back at the same entry
    f = gc.function(lambda X, w: gc.sum(gc.max(gc.tanh(X * w), axis=1) ** 2))
    X, w = rng.normal(size=(4, 5)), rng.normal(size=5)
    dw = f.gradient("w", X=X, w=w)
    second = dw.grad(X=X, w=w)
    tX, tw = torch.tensor(X, requires_grad=True), torch.tensor(w, requires_grad=True)
    value = torch.sum(torch.max(torch.tanh(tX * tw), dim=1).values ** 2)
    (g,) = torch.autograd.grad(value, tw, create_graph=True)
    np.testing.assert_allclose(dw(X=X, w=w), g.detach().numpy(), rtol=1e-12)
    expected = torch.autograd.grad(g.sum(), (tX, tw))
    np.testing.assert_allclose(second["X"], expected[0].numpy(), rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(second["w"], expected[1].numpy(), rtol=1e-11, atol=1e-14)
    hvp = f.hvp(dict(X=X, w=w), v={"w": np.ones(5)})["w"]
    np.testing.assert_allclose(hvp, expected[1].numpy(), rtol=1e-11, atol=1e-14)


def test_hvp_and_hessian_of_a_function_of_one_input():
    f = gc.function(lambda x: gc.sum(gc.exp(x) * x))
    x = np.array([0.5, -1.0, 2.0])
    # d2/dx2 (x e^x) = (x + 2) e^x, on the diagonal
    np.testing.assert_allclose(f.hvp({"x": x}, v={"x": np.ones(3)})["x"], (x + 2) * np.exp(x))
    np.testing.assert_allclose(gc.hessian(f, x=x)["x"]["x"], np.diag((x + 2) * np.exp(x)))


def test_reverse_over_reverse_through_a_fused_cross_entropy(rng):
    def loss(X, Y, W):
        Z = X @ W
        return gc.sum(-gc.sum(Y * (Z - gc.log(gc.sum(gc.exp(Z), axis=1, keepdims=True))), axis=1))

    f = gc.function(loss).fused()
    assert any(op == "softmax_cross_entropy" for _, op in f.graph.nodes(data="op"))
    X, W = rng.normal(size=(5, 4)) * 3, rng.normal(size=(4, 3))
    Y = rng.uniform(0.0, 1.0, size=(5, 3))  # soft labels: sum(y) is not 1, dY is not trivial
    second = f.gradient("W", X=X, Y=Y, W=W).grad(X=X, Y=Y, W=W)
    tX, tY, tW = (torch.tensor(v, requires_grad=True) for v in (X, Y, W))
    Z = tX @ tW
    value = torch.sum(-torch.sum(tY * torch.log_softmax(Z, dim=1), dim=1))
    (g,) = torch.autograd.grad(value, tW, create_graph=True)
    expected = torch.autograd.grad(g.sum(), (tX, tY, tW))
    for name, e in zip("XYW", expected):
        np.testing.assert_allclose(second[name], e.numpy(), rtol=1e-11, atol=1e-13, err_msg=name)


def test_every_tensor_gate_has_a_tangent_rule():
    from graphc.ir import ops
    from graphc.passes.forward import TANGENT_DOCS, TANGENT_RULES

    tensor = {g.name for g in ops.TABLE if g.kind == ops.TENSOR}
    assert tensor == set(TANGENT_RULES) == set(TANGENT_DOCS)


EXACT_DERIVATIVES = {  # mpmath's derivative of each fused gate, at 50 digits
    "sigmoid": lambda x: mpmath.exp(-x) / (1 + mpmath.exp(-x)) ** 2,
    "softplus": lambda x: 1 / (1 + mpmath.exp(-x)),
    "log_sigmoid": lambda x: 1 / (1 + mpmath.exp(x)),
    "tanh": lambda x: 1 / mpmath.cosh(x) ** 2,
}


@pytest.mark.parametrize("gate", sorted(EXACT_DERIVATIVES))
@pytest.mark.parametrize("x", [-800.0, -40.0, -1.5, 3.0, 40.0, 800.0])
def test_fused_gates_tangents_at_extreme_inputs_match_mpmath(gate, x):
    from graphc.front.trace import apply

    f = gc.function(lambda x: apply(gate, x))
    mpmath.mp.dps = 50
    exact = float(EXACT_DERIVATIVES[gate](mpmath.mpf(x)))
    value, tangent = f.jvp({"x": x}, {"x": 1.0})
    assert np.isfinite(value)
    assert tangent == pytest.approx(exact, rel=1e-13, abs=0.0), (gate, x)


def test_jvp_of_an_input_or_a_constant_output():
    f = gc.function(lambda x, y: x)
    t = np.ones(3)
    value, tangent = f.jvp({"x": np.zeros(3), "y": 2.0}, {"x": t})
    assert tangent is not t and np.array_equal(tangent, t)  # the caller's array is not returned
    assert f.jvp({"x": 1.0, "y": 2.0}, {"y": 1.0}) == (1.0, 0.0)  # no path from y
    h = gc.function(lambda x, y: x * y + gc.sum(x))
    value, tangent = h.jvp({"x": np.arange(3.0), "y": 2.0}, {})
    assert np.array_equal(tangent, np.zeros(3))


def test_the_hvp_benchmark_row_runs_in_smoke_mode():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    p = subprocess.run(
        [sys.executable, "-m", "benchmarks.hvp", "--smoke"],
        cwd=root, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]
    assert "smoke:" in p.stdout


def test_jacobian_by_forward_mode_matches_torch(rng):
    f = gc.function(lambda W, x, c: gc.tanh(W @ x) * c)
    W, x = rng.normal(size=(3, 2)), rng.normal(size=2)
    J = gc.jacobian(f, W=W, x=x, c=0.5)
    assert J["W"].shape == (3, 3, 2) and J["x"].shape == (3, 2) and J["c"].shape == (3,)
    expected = torch.autograd.functional.jacobian(
        lambda W, x, c: torch.tanh(W @ x) * c,
        (torch.tensor(W), torch.tensor(x), torch.tensor(0.5, dtype=torch.float64)),
    )
    for name, e in zip("Wxc", expected):
        np.testing.assert_allclose(J[name], e.numpy(), rtol=1e-13, atol=1e-15, err_msg=name)
    assert gc.jacobian(neuron, **AT)["w0"] == pytest.approx(neuron.grad(**AT)["w0"], rel=1e-14)
