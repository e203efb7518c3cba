"""Part 5 of the fusion issue: fused gates are finite and accurate where the mathematics is.

Oracle: mpmath at 50 significant digits (with exponents far beyond float64's range, so e**-800 is
a number, not 0). Standard: relative error <= 1e-12 wherever the true value is above 1e-300; where
it is 0 or underflows, absolute error <= 1e-300. Every evaluation runs with warnings turned into
errors, so an overflow, an invalid operation or a division by zero fails the test.
"""

from __future__ import annotations

import importlib.util
import re
import warnings

import mpmath
import numpy as np
import pytest
from mpmath import mp, mpf

import graphc as gc

mp.dps = 50

TINY = mpf("1e-300")
RTOL = mpf("1e-12")
EXTREMES = [-1000.0, -800.0, -40.0, 0.0, 40.0, 800.0, 1000.0]
GRID = np.unique(np.concatenate([np.linspace(-700.0, 700.0, 201), EXTREMES, [-37.5, 37.5, 1e-9]]))


# ---------------------------------------------------------------- helpers


def strict(fn, *args, **kwargs):
    """fn(...) with every warning an error (RuntimeWarning from NumPy included)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args, **kwargs)


def overflows(f, **inputs) -> bool:
    """Whether f's value or gradients warn, or come out inf/NaN, at these inputs."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value, grads = f.value_and_grad(**inputs)
        except FloatingPointError:
            return True
    warned = any(issubclass(w.category, RuntimeWarning) for w in caught)
    finite = np.all(np.isfinite(value)) and all(np.all(np.isfinite(g)) for g in grads.values())
    return warned or not finite


def assert_accurate(got, reference, what: str) -> None:
    """Each entry of `got` (floats) against `reference` (mpf, same shape) to the standard above."""
    got = np.asarray(got, dtype=np.float64)
    reference = np.asarray(reference, dtype=object)
    assert got.shape == reference.shape, f"{what}: shape {got.shape} != {reference.shape}"
    bad = []
    for index in np.ndindex(got.shape):
        g, r = got[index], reference[index]
        if not np.isfinite(g):
            bad.append((index, g, r))
            continue
        err = abs(mpf(float(g)) - r)
        ok = err <= RTOL * abs(r) if abs(r) > TINY else err <= TINY
        if not ok:
            bad.append((index, g, r))
    shown = "; ".join(f"at {i}: got {g!r}, true {mpmath.nstr(r, 17)}" for i, g, r in bad[:6])
    assert not bad, f"{what}: {len(bad)} entries off ({shown})"


def each(fn, xs):
    return np.array([fn(mpf(float(x))) for x in np.ravel(xs)], dtype=object).reshape(np.shape(xs))


def mp_sigmoid(x):
    return 1 / (1 + mp.exp(-x))


def mp_dsigmoid(x):
    e = mp.exp(-x)
    return e / (1 + e) ** 2


def gates(f):
    return sorted(op for _, op in f.graph.nodes(data="op") if op not in ("input", "const"))


def fused_unary(spelling, gate: str, readable: bool):
    x = gc.symbols("x")
    f = gc.function(spelling(x), inputs=[x], name=gate, readable=readable)
    fused = f.fused()
    assert gates(fused) == [gate], gates(fused)
    return f, fused


# ---------------------------------------------------------------- elementwise gates

UNARY = {
    "sigmoid": (
        lambda x: 1 / (1 + gc.exp(-x)),
        mp_sigmoid,
        mp_dsigmoid,
    ),
    "tanh": (
        lambda x: (gc.exp(x) - gc.exp(-x)) / (gc.exp(x) + gc.exp(-x)),
        mp.tanh,
        lambda x: 1 / mp.cosh(x) ** 2,
    ),
    "softplus": (
        lambda x: gc.log(1 + gc.exp(x)),
        lambda x: mp.log1p(mp.exp(x)),
        mp_sigmoid,
    ),
    "log_sigmoid": (
        lambda x: -gc.log(1 + gc.exp(-x)),
        lambda x: -mp.log1p(mp.exp(-x)),
        lambda x: mp_sigmoid(-x),
    ),
}


@pytest.mark.parametrize("readable", [True, False], ids=["readable", "fast"])
@pytest.mark.parametrize("gate", sorted(UNARY))
def test_fused_gate_is_exact_on_a_dense_grid(gate, readable):
    spelling, value_of, slope_of = UNARY[gate]
    _, fused = fused_unary(spelling, gate, readable)
    value, grads = strict(fused.value_and_grad, x=GRID)
    assert_accurate(value, each(value_of, GRID), f"{gate} value")
    assert_accurate(grads["x"], each(slope_of, GRID), f"{gate} gradient")


@pytest.mark.parametrize("readable", [True, False], ids=["readable", "fast"])
@pytest.mark.parametrize("gate", sorted(UNARY))
@pytest.mark.parametrize("x", EXTREMES)
def test_fused_gate_is_exact_at_scalar_extremes(gate, x, readable):
    spelling, value_of, slope_of = UNARY[gate]
    _, fused = fused_unary(spelling, gate, readable)
    value, grads = strict(fused.value_and_grad, x=x)
    assert type(value) is float and type(grads["x"]) is float
    assert_accurate(value, value_of(mpf(x)), f"{gate}({x}) value")
    assert_accurate(grads["x"], slope_of(mpf(x)), f"{gate}({x}) gradient")


@pytest.mark.parametrize("readable", [True, False], ids=["readable", "fast"])
def test_sigmoid_gradient_at_40_is_not_rounded_to_zero(readable):
    # the textbook s*(1-s) gives exactly 0 here
    s = 1.0 / (1.0 + np.exp(-40.0))
    assert s * (1.0 - s) == 0.0
    _, fused = fused_unary(UNARY["sigmoid"][0], "sigmoid", readable)
    grad = strict(fused.grad, x=40.0)["x"]
    assert grad == pytest.approx(4.248354255291589e-18, rel=1e-12)
    assert grad == pytest.approx(float(mp_dsigmoid(mpf(40))), rel=1e-12)
    direct = gc.function(lambda x: gc.sigmoid(x), readable=readable)
    assert strict(direct.grad, x=40.0)["x"] == pytest.approx(4.248354255291589e-18, rel=1e-12)


NUMBA = pytest.mark.skipif(importlib.util.find_spec("numba") is None, reason="numba not installed")


@pytest.mark.parametrize(
    "readable, level, backend",
    [
        (True, "patterns", "numpy"),
        (False, "patterns", "numpy"),
        (True, "elementwise", "numpy"),  # one fused gate sigmoid(w * x + b), its sigmoid paired
        (False, "elementwise", "numpy"),  # split into w * x + b and a lowered sigmoid
        pytest.param(True, "elementwise", "numba", marks=NUMBA),
    ],
    ids=["readable", "fast", "elementwise", "elementwise-fast", "elementwise-numba"],
)
def test_sigmoid_in_a_larger_graph_keeps_its_digits(readable, level, backend):
    @gc.function
    def neuron(w, x, b):
        return 1 / (1 + gc.exp(-(w * x + b)))

    fused = neuron.fused(level=level, readable=readable, backend=backend)
    w = np.array([1.0, 2.0, -3.0, 20.0, -400.0])
    x = np.array([40.0, 20.0, 10.0, -2.0, 2.0])
    b = np.array([0.0, 0.0, 5.0, 0.5, 0.0])
    value, grads = strict(fused.value_and_grad, w=w, x=x, b=b)
    z = [mpf(float(a)) * mpf(float(c)) + mpf(float(d)) for a, c, d in zip(w, x, b)]
    assert_accurate(value, np.array([mp_sigmoid(t) for t in z], dtype=object), "value")
    slope = np.array([mp_dsigmoid(t) for t in z], dtype=object)
    assert_accurate(grads["b"], slope, "db")
    assert_accurate(grads["w"], slope * np.array([mpf(float(c)) for c in x], dtype=object), "dw")
    assert_accurate(grads["x"], slope * np.array([mpf(float(a)) for a in w], dtype=object), "dx")


# ---------------------------------------------------------------- tensor gates over an axis

SIZES = [0.0, 40.0, 800.0, 1000.0]


def spread_rows(sizes, negate=False):
    """Rows [x, 0, -x] for each size (as float64), and the same rows as mpf."""
    rows = np.array([[s, 0.0, -s] for s in sizes])
    if negate:
        rows = -rows
    return rows, [[mpf(float(v)) for v in row] for row in rows]


def mp_log_softmax(row):
    """log(softmax(row)) at 50 digits, exact also where one entry dominates: no 1 + tiny."""
    top = max(row)
    k = row.index(top)
    rest = mp.fsum(mp.exp(v - top) for j, v in enumerate(row) if j != k)
    return [(v - top) - mp.log1p(rest) for v in row]


def mp_logsumexp(row):
    top = max(row)
    return top + mp.log1p(mp.fsum(mp.exp(v - top) for v in row) - 1)


def mp_softmax(row):
    return [mp.exp(v) for v in mp_log_softmax(row)]


def mp_one_minus_softmax(row, k):
    """1 - softmax(row)[k], summed from the other entries (no cancellation)."""
    p = mp_softmax(row)
    return mp.fsum(p[j] for j in range(len(row)) if j != k)


def _spell_log_softmax(x):
    return x - gc.log(gc.sum(gc.exp(x), axis=1, keepdims=True))


@pytest.fixture(scope="module")
def logsumexp_fn():
    x = gc.symbols("x")
    f = gc.function(gc.log(gc.sum(gc.exp(x), axis=1)), inputs=[x], name="lse")
    fused = f.fused()
    assert gates(fused) == ["logsumexp"]
    return f, fused


@pytest.fixture(scope="module")
def log_softmax_fn():
    x, m = gc.symbols("x m")
    f = gc.function(gc.sum(_spell_log_softmax(x) * m), inputs=[x, m], name="picked")
    fused = f.fused()
    assert "log_softmax" in gates(fused) and "exp" not in gates(fused)
    return f, fused


@pytest.fixture(scope="module")
def cross_entropy_fn():
    x, y = gc.symbols("x y")
    f = gc.function(-gc.sum(y * _spell_log_softmax(x), axis=1), inputs=[x, y], name="ce")
    fused = f.fused()
    assert gates(fused) == ["softmax_cross_entropy"]
    return f, fused


@pytest.mark.parametrize("negate", [False, True], ids=["rows", "negated-rows"])
def test_logsumexp_over_an_axis_is_exact(logsumexp_fn, negate):
    _, fused = logsumexp_fn
    rows, exact = spread_rows(SIZES, negate)
    value, grads = strict(fused.value_and_grad, x=rows)
    assert value.shape == (len(SIZES),)
    assert_accurate(value, np.array([mp_logsumexp(r) for r in exact], dtype=object), "value")
    assert_accurate(grads["x"], np.array([mp_softmax(r) for r in exact], dtype=object), "softmax")


def test_log_softmax_value_is_exact():
    x = gc.symbols("x")
    fused = gc.function(_spell_log_softmax(x), inputs=[x], name="ls").fused()
    assert gates(fused) == ["log_softmax"]
    rows, exact = spread_rows(SIZES)
    value = strict(fused, x=rows)
    assert_accurate(value, np.array([mp_log_softmax(r) for r in exact], dtype=object), "value")


@pytest.mark.parametrize("k", [0, 1, 2])
def test_log_softmax_gradient_of_one_picked_entry_is_exact(log_softmax_fn, k):
    """d log_softmax(x)[k] / dx = onehot(k) - softmax(x): 1 - softmax[k] must keep its digits."""
    _, fused = log_softmax_fn
    rows, exact = spread_rows(SIZES)
    pick = np.zeros_like(rows)
    pick[:, k] = 1.0
    value, grads = strict(fused.value_and_grad, x=rows, m=pick)
    assert_accurate(value, mp.fsum(mp_log_softmax(r)[k] for r in exact), "value")
    expected = np.array(
        [
            [mp_one_minus_softmax(r, k) if j == k else -mp_softmax(r)[j] for j in range(3)]
            for r in exact
        ],
        dtype=object,
    )
    assert_accurate(grads["x"], expected, f"gradient with entry {k} picked")


@pytest.mark.parametrize("negate", [False, True], ids=["rows", "negated-rows"])
@pytest.mark.parametrize(
    "weights",
    [[0.0, 0.0, 1.0], [0.25, 0.5, 0.25], [2.0, -1.0, 0.75]],
    ids=["last-picked", "spread", "signed"],
)
def test_log_softmax_backward_is_exact_for_any_upstream_gradient(log_softmax_fn, weights, negate):
    """dx_j = w_j - softmax_j * sum(w) = w_j * (1 - softmax_j) - softmax_j * (sum(w) - w_j)."""
    _, fused = log_softmax_fn
    rows, exact = spread_rows(SIZES, negate)
    w = [mpf(v) for v in weights]
    value, grads = strict(fused.value_and_grad, x=rows, m=np.tile(weights, (len(SIZES), 1)))
    assert_accurate(
        value, mp.fsum(w[j] * mp_log_softmax(r)[j] for r in exact for j in range(3)), "value"
    )
    expected = np.array(
        [
            [
                w[j] * mp_one_minus_softmax(r, j)
                - mp_softmax(r)[j] * mp.fsum(w[i] for i in range(3) if i != j)
                for j in range(3)
            ]
            for r in exact
        ],
        dtype=object,
    )
    assert_accurate(grads["x"], expected, f"gradient with upstream weights {weights}")


@pytest.mark.parametrize("k", [0, 1, 2])
def test_softmax_cross_entropy_with_one_hot_labels_is_exact(cross_entropy_fn, k):
    _, fused = cross_entropy_fn
    rows, exact = spread_rows(SIZES)
    labels = np.zeros_like(rows)
    labels[:, k] = 1.0
    value, grads = strict(fused.value_and_grad, x=rows, y=labels)
    assert_accurate(value, np.array([-mp_log_softmax(r)[k] for r in exact], dtype=object), "loss")
    dx = np.array(
        [
            [-mp_one_minus_softmax(r, k) if j == k else mp_softmax(r)[j] for j in range(3)]
            for r in exact
        ],
        dtype=object,
    )
    assert_accurate(grads["x"], dx, "gradient wrt the scores")
    dy = np.array([[-v for v in mp_log_softmax(r)] for r in exact], dtype=object)
    assert_accurate(grads["y"], dy, "gradient wrt the labels")


def test_cross_entropy_at_40_keeps_the_tiny_loss_and_gradient(cross_entropy_fn):
    _, fused = cross_entropy_fn
    value, grads = strict(fused.value_and_grad, x=np.array([[40.0, 0.0]]), y=np.array([[1.0, 0.0]]))
    # loss = log(1 + e**-40) and dloss/dx0 = -e**-40/(1+e**-40): both ~4.25e-18, not 0
    assert value[0] == pytest.approx(4.248354255291589e-18, rel=1e-12)
    assert grads["x"][0, 0] == pytest.approx(-4.248354255291589e-18, rel=1e-12)
    assert grads["x"][0, 1] == pytest.approx(4.248354255291589e-18, rel=1e-12)


# ---------------------------------------------------------------- the unfused spellings overflow


@pytest.mark.parametrize("x", [-1000.0, -800.0])
def test_unfused_sigmoid_overflows_where_the_fused_one_does_not(x):
    f, fused = fused_unary(UNARY["sigmoid"][0], "sigmoid", True)
    assert overflows(f, x=x)
    assert not overflows(fused, x=x)


@pytest.mark.parametrize("x", [800.0, 1000.0])
def test_unfused_softplus_overflows_where_the_fused_one_does_not(x):
    f, fused = fused_unary(UNARY["softplus"][0], "softplus", True)
    assert overflows(f, x=x)
    assert not overflows(fused, x=x)
    assert strict(fused, x=x) == x


def test_unfused_tanh_overflows_where_the_fused_one_does_not():
    f, fused = fused_unary(UNARY["tanh"][0], "tanh", True)
    assert overflows(f, x=1000.0) and overflows(f, x=-1000.0)
    assert not overflows(fused, x=1000.0) and not overflows(fused, x=-1000.0)


def test_unfused_cross_entropy_overflows_where_the_fused_one_does_not(cross_entropy_fn):
    f, fused = cross_entropy_fn
    rows = np.array([[1000.0, 0.0, -1000.0]])
    labels = np.array([[0.0, 1.0, 0.0]])
    assert overflows(f, x=rows, y=labels)
    assert not overflows(fused, x=rows, y=labels)
    assert strict(fused, x=rows, y=labels)[0] == pytest.approx(1000.0, rel=1e-15)


def test_unfused_logsumexp_overflows_where_the_fused_one_does_not(logsumexp_fn):
    f, fused = logsumexp_fn
    rows, _ = spread_rows([1000.0])
    assert overflows(f, x=rows)
    assert not overflows(fused, x=rows)


# ---------------------------------------------------------------- the generated code says why


@pytest.mark.parametrize("readable", [True, False], ids=["readable", "fast"])
def test_fused_sigmoid_source_says_why_it_is_exact(readable):
    _, fused = fused_unary(UNARY["sigmoid"][0], "sigmoid", readable)
    src = fused.source_for(x=np.zeros(3))
    comments = "\n".join(re.findall(r"#.*|\"\"\"[\s\S]*?\"\"\"", src))
    # why: no exp of a large positive number is ever taken, only of -|x| (or sigmoid(-x))
    assert re.search(r"overflow|exact", comments, flags=re.I), src
    assert re.search(r"sigmoid\(-|exp\(-\|x\|\)|-\|x\|", comments), src
    assert "errstate" not in src and "seterr" not in src  # nothing is hidden
