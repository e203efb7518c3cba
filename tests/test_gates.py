"""Tests generated from the gate table `graphc.ir.ops.TABLE`: every gate, its derived gradients.

For every elementwise gate: the compiled gradient against central differences of a NumPy
reference made by `sympy.lambdify` of the table's formula, on inputs from the gate's safe domain
(positive for log/sqrt/pow's base, away from kinks), and the derived local gradient (in lecture
form, possibly in terms of `out`) against `sympy.diff` of the formula. Every user-facing tensor gate
gets a vector-Jacobian check with a random upstream gradient. Adding a gate to the table without
a domain or case here fails `test_every_gate_is_covered`.
"""

import operator
import warnings

import mpmath
import numpy as np
import pytest
import sympy
from conftest import assert_close, central_diff

import graphc as gc
from graphc.front.trace import apply  # gates of the table that have no public spelling (fused ones)
from graphc.ir import ops

ELEMENTWISE = [g for g in ops.TABLE if g.kind == ops.ELEMENTWISE]
MASKS = [g for g in ops.TABLE if g.kind == ops.MASK]
TENSOR = [g for g in ops.TABLE if g.kind == ops.TENSOR]
# made by vector-Jacobian rules, never by users
BACKWARD_ONLY = {
    "broadcast_to", "sum_to", "route_to_max", "softmax_cross_entropy_grad", "index_add", "pick_add",
    "add_along_axis",
}  # fmt: skip
PICKED = np.array([0, 2, 2, 1])  # labels with a repeat: scatter-add must add, not overwrite
TAKEN = np.array([[0, 0], [3, 1], [2, 2]])  # repeats within a row, too

# ---------------------------------------------------------------- safe input domains


def normal(rng, n):
    return rng.uniform(-2.0, 2.0, n)


def positive(rng, n):
    return rng.uniform(0.3, 3.0, n)


def away_from_zero(rng, n):
    return rng.uniform(0.2, 2.0, n) * rng.choice([-1.0, 1.0], n)


def pair_apart(rng, n):
    """Two arguments that differ by at least 0.2 (away from the tie of max/min)."""
    a = normal(rng, n)
    return a, a + away_from_zero(rng, n)


# Each entry: rng, n -> one array per argument. A mask argument gets raw numbers (mask = x > 0).
DOMAINS = {
    "add": lambda rng, n: (normal(rng, n), normal(rng, n)),
    "sub": lambda rng, n: (normal(rng, n), normal(rng, n)),
    "mul": lambda rng, n: (normal(rng, n), normal(rng, n)),
    "div": lambda rng, n: (normal(rng, n), away_from_zero(rng, n)),
    "neg": lambda rng, n: (normal(rng, n),),
    "pow": lambda rng, n: (positive(rng, n), normal(rng, n)),
    "exp": lambda rng, n: (normal(rng, n),),
    "log": lambda rng, n: (positive(rng, n),),
    "sqrt": lambda rng, n: (positive(rng, n),),
    "abs": lambda rng, n: (away_from_zero(rng, n),),
    "tanh": lambda rng, n: (normal(rng, n),),
    "sigmoid": lambda rng, n: (rng.uniform(-6.0, 6.0, n),),
    "softplus": lambda rng, n: (rng.uniform(-6.0, 6.0, n),),
    "log_sigmoid": lambda rng, n: (rng.uniform(-6.0, 6.0, n),),
    "leaky_relu": lambda rng, n: (away_from_zero(rng, n), rng.uniform(0.01, 0.5, n)),
    "relu": lambda rng, n: (away_from_zero(rng, n),),
    "maximum": pair_apart,
    "minimum": pair_apart,
    "where": lambda rng, n: (away_from_zero(rng, n), normal(rng, n), normal(rng, n)),
}

# How a user spells each gate while tracing.
SPELLING = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "div": operator.truediv,
    "neg": operator.neg,
    "pow": operator.pow,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}


def spelling(name):
    """The public spelling (operator or gc.<name>), else the tracer's gate application."""
    if name in SPELLING:
        return SPELLING[name]
    if hasattr(gc, name):
        return getattr(gc, name)
    return lambda *args, **params: apply(name, *args, **params)


# graphc's own SymPy functions (with exact derivatives), written out in textbook form here, so
# that the oracle `sympy.diff` never sees graphc's derivative rules
PLAIN = {
    "sigmoid": lambda x: 1 / (1 + sympy.exp(-x)),
    "softplus": lambda x: sympy.log(1 + sympy.exp(x)),
    "log_sigmoid": lambda x: -sympy.log(1 + sympy.exp(-x)),
    "tanh": sympy.tanh,
    "sech2": lambda x: 1 / sympy.cosh(x) ** 2,
}


def _graphc_function(e) -> bool:
    return isinstance(e, sympy.Function) and type(e).__module__.startswith("graphc")


def plain(expr):
    """The formula with graphc's SymPy functions replaced by their textbook definitions."""
    return expr.replace(_graphc_function, lambda e: PLAIN[type(e).__name__](*e.args))


def reference(gate):
    """A NumPy function of the raw arguments, lambdified from the table's formula."""
    fn = sympy.lambdify(gate.symbols(), plain(gate.expr()), modules="numpy")

    def run(*args):
        return fn(*(a > 0 if i in gate.nondiff else a for i, a in enumerate(args)))

    return run


def traced(gate):
    """A compiled function of inputs a0, a1, ...: the gate applied to them (masks as a_i > 0)."""
    names = [f"a{i}" for i in range(gate.arity)]
    syms = gc.symbols(" ".join(names))
    syms = syms if isinstance(syms, tuple) else (syms,)
    args = [s > 0 if i in gate.nondiff else s for i, s in enumerate(syms)]
    return gc.function(spelling(gate.name)(*args), inputs=list(syms)), names


def test_every_gate_is_covered():
    assert {g.name for g in ELEMENTWISE} == set(DOMAINS)
    assert {g.name for g in MASKS} <= set(SPELLING)
    assert {g.name for g in TENSOR} == set(TENSOR_CASES) | BACKWARD_ONLY


def test_the_table_has_the_gates_the_issue_names():
    names = {g.name for g in ops.TABLE}
    wanted = {"add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sqrt", "abs", "tanh"}
    wanted |= {"sigmoid", "relu", "maximum", "minimum", "where", "matmul", "transpose"}
    wanted |= {"reshape", "sum", "mean", "max"}
    assert wanted <= names


# ---------------------------------------------------------------- elementwise gates


@pytest.mark.parametrize("gate", ELEMENTWISE, ids=lambda g: g.name)
def test_gate_forward_matches_its_formula(gate, rng):
    f, names = traced(gate)
    args = DOMAINS[gate.name](rng, 9)
    out = f(**dict(zip(names, args)))
    assert_close(out, reference(gate)(*args), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("gate", ELEMENTWISE, ids=lambda g: g.name)
def test_gate_gradient_matches_central_differences(gate, rng):
    f, names = traced(gate)
    args = DOMAINS[gate.name](rng, 9)
    inputs = dict(zip(names, args))
    ref = reference(gate)

    def ref_kw(**kw):
        return ref(*(kw[n] for n in names))

    grads = f.grad(**inputs)
    for i, name in enumerate(names):
        expected = central_diff(ref_kw, inputs, name)
        if i in gate.nondiff:  # no gradient flows through a mask
            np.testing.assert_array_equal(grads[name], np.zeros(9))
        assert_close(grads[name], expected, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("gate", ELEMENTWISE, ids=lambda g: g.name)
def test_gate_gradient_on_python_scalars(gate, rng):
    f, names = traced(gate)
    args = [float(a[0]) for a in DOMAINS[gate.name](rng, 1)]
    inputs = dict(zip(names, args))
    ref = reference(gate)
    value, grads = f.value_and_grad(**inputs)
    assert type(value) is float
    assert value == pytest.approx(float(ref(*args)), rel=1e-13, abs=1e-15)
    for name in names:
        assert type(grads[name]) is float
        expected = central_diff(lambda **kw: ref(*(kw[n] for n in names)), inputs, name)
        assert grads[name] == pytest.approx(expected, rel=1e-6, abs=1e-8), name


@pytest.mark.parametrize("gate", ELEMENTWISE, ids=lambda g: g.name)
def test_derived_local_gradient_equals_sympy_diff(gate, rng):
    """The lecture form (maybe in terms of `out`) has the value of d formula / d argument."""
    formula = plain(gate.expr())
    local = ops.local_gradients(gate)
    assert len(local) == gate.arity
    symbols = gate.symbols()
    args = DOMAINS[gate.name](rng, 7)
    for i, s in enumerate(symbols):
        if i in gate.nondiff:
            assert local[i] is None
            continue
        derived = plain(local[i].xreplace({ops.OUT: gate.expr()}))
        oracle = sympy.diff(formula, s)
        at = [a > 0 if j in gate.nondiff else a for j, a in enumerate(args)]
        got = sympy.lambdify(symbols, derived, modules="numpy")(*at)
        want = sympy.lambdify(symbols, oracle, modules="numpy")(*at)
        assert_close(np.broadcast_to(got, (7,)), np.broadcast_to(want, (7,)), rtol=1e-12)


def test_local_gradients_are_derived_once_per_gate_kind():
    gate = ops.GATES["tanh"]
    assert ops.local_gradients(gate) is ops.local_gradients(gate)


def test_lecture_forms_use_the_gate_output():
    out, a0 = ops.OUT, ops.ARGS[0]
    assert ops.local_gradients(ops.GATES["exp"]) == (out,)
    (dsig,) = ops.local_gradients(ops.GATES["sigmoid"])
    assert sympy.simplify(plain(dsig - out * ops.sigmoid(-a0))) == 0


def test_tanh_local_gradient_is_one_minus_out_squared_in_value():
    (dtanh,) = ops.local_gradients(ops.GATES["tanh"])
    a0 = ops.ARGS[0]
    lecture = 1 - sympy.tanh(a0) ** 2
    derived = plain(dtanh.xreplace({ops.OUT: ops.GATES["tanh"].expr()}))
    for v in [-3.0, -0.2, 0.0, 0.9, 4.0]:
        assert float(derived.subs(a0, v)) == pytest.approx(float(lecture.subs(a0, v)), rel=1e-14)


@pytest.mark.parametrize("x", [0.5, 5.0, 19.0, 25.0, -30.0])
def test_tanh_gradient_keeps_its_digits_where_tanh_rounds_to_one(x):
    f = gc.function(gc.tanh(gc.symbols("x")))
    with mpmath.workdps(50):
        want = float(1 / mpmath.cosh(mpmath.mpf(x)) ** 2)
    assert f.grad(x=x)["x"] == pytest.approx(want, rel=1e-12)


def test_lecture_forms_appear_in_the_generated_backward():
    x = gc.symbols("x")
    for fn, forward_call in [(gc.exp, "np.exp"), (gc.tanh, "np.tanh")]:
        f = gc.function(fn(x) * 3.0)
        f(0.5)
        backward = f.source.split("def backward")[1].split("def value_and_grad")[0]
        assert forward_call not in backward, f"{forward_call} recomputed in backward:\n{backward}"


def test_relu_and_abs_subgradient_at_zero_is_zero():
    x = gc.symbols("x")
    assert gc.function(gc.relu(x)).grad(x=0.0) == {"x": 0.0}
    assert gc.function(gc.abs(x)).grad(x=0.0) == {"x": 0.0}
    np.testing.assert_array_equal(
        gc.function(gc.relu(x)).grad(x=np.array([-1.0, 0.0, 2.0]))["x"], [0.0, 0.0, 1.0]
    )


def test_where_selects_and_routes_the_gradient():
    c, a, b = gc.symbols("c a b")
    f = gc.function(gc.where(c > 0, a, b) * 2.0)
    cv = np.array([1.0, -1.0, 3.0, -0.5])
    av, bv = np.array([1.0, 2.0, 3.0, 4.0]), np.array([10.0, 20.0, 30.0, 40.0])
    value, grads = f.value_and_grad(c=cv, a=av, b=bv)
    np.testing.assert_array_equal(value, [2.0, 40.0, 6.0, 80.0])
    np.testing.assert_array_equal(grads["a"], [2.0, 0.0, 2.0, 0.0])
    np.testing.assert_array_equal(grads["b"], [0.0, 2.0, 0.0, 2.0])
    np.testing.assert_array_equal(grads["c"], np.zeros(4))


# ---------------------------------------------------------------- mask gates


@pytest.mark.parametrize("gate", MASKS, ids=lambda g: g.name)
def test_comparison_masks_select_and_pass_no_gradient(gate):
    x, y, a = gc.symbols("x y a")
    f = gc.function(gc.where(SPELLING[gate.name](x, y), a, 2.0 * a))
    xv = np.array([1.0, 2.0, 3.0])
    yv = np.array([2.0, 2.0, 2.0])
    av = np.array([1.0, 1.0, 1.0])
    mask = SPELLING[gate.name](xv, yv)
    value, grads = f.value_and_grad(x=xv, y=yv, a=av)
    np.testing.assert_array_equal(value, np.where(mask, 1.0, 2.0))
    np.testing.assert_array_equal(grads["a"], np.where(mask, 1.0, 2.0))
    np.testing.assert_array_equal(grads["x"], np.zeros(3))
    np.testing.assert_array_equal(grads["y"], np.zeros(3))


# ---------------------------------------------------------------- sigmoid accuracy


def _sigmoid_derivative_mp(x: float) -> float:
    with mpmath.workdps(60):
        e = mpmath.exp(-mpmath.mpf(x))  # s*(1-s) = e/(1+e)**2, with no cancellation
        return float(e / (1 + e) ** 2)


def test_sigmoid_gradient_at_40_is_accurate():
    expected = 4.248354255291589e-18
    assert _sigmoid_derivative_mp(40.0) == pytest.approx(expected, rel=1e-15)
    f = gc.function(gc.sigmoid(gc.symbols("x")))
    assert f.grad(x=40.0)["x"] == pytest.approx(expected, rel=1e-12)
    assert f.grad(x=-40.0)["x"] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("x", [-745.0, -80.0, -37.0, -5.0, 0.0, 3.0, 37.0, 50.0, 80.0, 700.0])
def test_sigmoid_gradient_matches_mpmath_across_the_range(x):
    f = gc.function(gc.sigmoid(gc.symbols("x")))
    assert f.grad(x=x)["x"] == pytest.approx(_sigmoid_derivative_mp(x), rel=1e-12, abs=1e-320)


def test_sigmoid_does_not_overflow_at_plus_minus_1000():
    f = gc.function(gc.sigmoid(gc.symbols("x")))
    x = np.array([-1000.0, -40.0, 0.0, 40.0, 1000.0])
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        value, grads = f.value_and_grad(x=x)
        scalar_hi = f.value_and_grad(x=1000.0)
        scalar_lo = f.value_and_grad(x=-1000.0)
    with mpmath.workdps(30):
        want = [float(1 / (1 + mpmath.exp(-mpmath.mpf(v)))) for v in x]
    np.testing.assert_allclose(value, want, rtol=1e-15)
    assert np.all(np.isfinite(grads["x"]))
    np.testing.assert_allclose(grads["x"], [_sigmoid_derivative_mp(v) for v in x], rtol=1e-12)
    assert scalar_hi == (1.0, {"x": 0.0})
    assert scalar_lo == (0.0, {"x": 0.0})


# ---------------------------------------------------------------- user-defined gates


def test_user_gate_gradient_is_derived_by_sympy():
    swish = gc.gate("swish_test", lambda a: a * sympy.exp(a) / (1 + sympy.exp(a)))
    x = gc.symbols("x")
    f = gc.function(swish(x) * 2.0)
    a = sympy.Symbol("a", real=True)
    formula = 2 * a * sympy.exp(a) / (1 + sympy.exp(a))
    for v in [-3.0, -0.5, 0.0, 0.7, 2.5]:
        value, grads = f.value_and_grad(x=v)
        assert value == pytest.approx(float(formula.subs(a, v)), rel=1e-13, abs=1e-15)
        want = float(sympy.diff(formula, a).subs(a, v))
        assert grads["x"] == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_user_gate_with_two_arguments_on_arrays(rng):
    soft = gc.gate("softplus_diff", lambda a, b: sympy.log(1 + sympy.exp(a - b)))
    a, b = gc.symbols("a b")
    f = gc.function(soft(a, b))

    def ref(a, b):
        return np.log1p(np.exp(a - b))

    inputs = {"a": rng.normal(size=5), "b": rng.normal(size=5)}
    assert_close(f(**inputs), ref(**inputs), rtol=1e-13)
    grads = f.grad(**inputs)
    for name in inputs:
        assert_close(grads[name], central_diff(ref, inputs, name), rtol=1e-6)


def test_user_gate_cannot_replace_a_builtin_gate():
    with pytest.raises(gc.GateError, match="exp"):
        gc.gate("exp", lambda a: 2 * a)


# ---------------------------------------------------------------- tensor gates (VJP rules)

TENSOR_CASES = {
    "matmul": [
        (lambda A, B: A @ B, lambda A, B: A @ B, {"A": (3, 4), "B": (4, 2)}),
        (lambda A, B: A @ B, lambda A, B: A @ B, {"A": (4,), "B": (4, 2)}),
        (lambda A, B: A @ B, lambda A, B: A @ B, {"A": (3, 4), "B": (4,)}),
        (lambda A, B: gc.matmul(A, B), lambda A, B: A @ B, {"A": (2, 3, 4), "B": (2, 4, 2)}),
    ],
    "transpose": [
        (lambda X: X.T, lambda X: X.T, {"X": (3, 4)}),
        (lambda X: gc.transpose(X, (1, 2, 0)), lambda X: X.transpose(1, 2, 0), {"X": (2, 3, 4)}),
    ],
    "reshape": [
        (lambda X: gc.reshape(X, (4, 3)), lambda X: X.reshape(4, 3), {"X": (3, 4)}),
        (lambda X: X.reshape(-1), lambda X: X.reshape(-1), {"X": (2, 3, 2)}),
    ],
    "sum": [
        (lambda X: gc.sum(X), lambda X: np.sum(X), {"X": (3, 4)}),
        (lambda X: gc.sum(X, axis=1), lambda X: X.sum(axis=1), {"X": (3, 4)}),
        (lambda X: gc.sum(X, 0, keepdims=True), lambda X: X.sum(0, keepdims=True), {"X": (3, 4)}),
        (lambda X: gc.sum(X, axis=(0, 2)), lambda X: X.sum(axis=(0, 2)), {"X": (2, 3, 4)}),
    ],
    "mean": [
        (lambda X: gc.mean(X), lambda X: np.mean(X), {"X": (3, 4)}),
        (lambda X: gc.mean(X, axis=0), lambda X: X.mean(axis=0), {"X": (3, 4)}),
        (lambda X: X.mean(-1, keepdims=True), lambda X: X.mean(-1, keepdims=True), {"X": (3, 4)}),
    ],
    "max": [
        (lambda X: gc.max(X), lambda X: np.max(X), {"X": (3, 4)}),
        (lambda X: gc.max(X, axis=1), lambda X: X.max(axis=1), {"X": (3, 4)}),
        (lambda X: gc.max(X, 0, keepdims=True), lambda X: X.max(0, keepdims=True), {"X": (3, 4)}),
        (lambda X: gc.max(X, keepdims=True), lambda X: X.max(keepdims=True), {"X": (3, 4)}),
    ],
    # fused gates (made by fusion rules; applied directly here)
    "logsumexp": [
        (
            lambda X: apply("logsumexp", X, axis=1, keepdims=False),
            lambda X: np.log(np.sum(np.exp(X), axis=1)),
            {"X": (3, 4)},
        ),
        (
            lambda X: apply("logsumexp", X, axis=0, keepdims=True),
            lambda X: np.log(np.sum(np.exp(X), axis=0, keepdims=True)),
            {"X": (3, 4)},
        ),
    ],
    "log_softmax": [
        (
            lambda X: apply("log_softmax", X, axis=1),
            lambda X: X - np.log(np.sum(np.exp(X), axis=1, keepdims=True)),
            {"X": (3, 4)},
        ),
    ],
    "softmax_cross_entropy": [
        (
            lambda X, Y: apply("softmax_cross_entropy", X, Y, axis=1),
            lambda X, Y: -np.sum(Y * (X - np.log(np.sum(np.exp(X), axis=1, keepdims=True))), 1),
            {"X": (3, 4), "Y": (3, 4)},
        ),
    ],
    "affine": [
        (
            lambda X, W, b: apply("affine", X, W, b),
            lambda X, W, b: X @ W + b,
            {"X": (3, 4), "W": (4, 2), "b": (2,)},
        ),
    ],
    "sum_squares": [
        (
            lambda X: apply("sum_squares", X, axis=None, keepdims=False),
            lambda X: np.sum(X**2),
            {"X": (3, 4)},
        ),
        (
            lambda X: apply("sum_squares", X, axis=1, keepdims=True),
            lambda X: np.sum(X**2, axis=1, keepdims=True),
            {"X": (3, 4)},
        ),
    ],
    # indexing and gathering (indices are constants here; see test_indexing.py for inputs)
    "getitem": [
        (lambda X: X[1:3], lambda X: X[1:3], {"X": (4, 3)}),
        (lambda X: X[:, 1], lambda X: X[:, 1], {"X": (4, 3)}),
        (lambda X: X[..., None], lambda X: X[..., None], {"X": (4, 3)}),
        (lambda X: X[-1, ::-2], lambda X: X[-1, ::-2], {"X": (4, 5)}),
        (lambda X: X[None, :, 0:3:2], lambda X: X[None, :, 0:3:2], {"X": (2, 4, 5)}),
    ],
    "pick": [
        (lambda X: X[np.arange(4), PICKED], lambda X: X[np.arange(4), PICKED], {"X": (4, 3)}),
        (
            lambda X: X[gc.arange(X.shape[0]), PICKED],
            lambda X: X[np.arange(4), PICKED],
            {"X": (4, 3)},
        ),  # fmt: skip
    ],
    "take_along_axis": [
        (
            lambda X: gc.take_along_axis(X, TAKEN, axis=1),
            lambda X: np.take_along_axis(X, TAKEN, axis=1),
            {"X": (3, 4)},
        ),
        (
            lambda X: gc.take_along_axis(X, TAKEN.T, axis=0),
            lambda X: np.take_along_axis(X, TAKEN.T, axis=0),
            {"X": (4, 3)},
        ),
    ],
    "concatenate": [
        (
            lambda A, B: gc.concatenate([A, B], axis=1),
            lambda A, B: np.concatenate([A, B], axis=1),
            {"A": (3, 2), "B": (3, 4)},
        ),
        (
            lambda A, B: gc.concatenate((A, B, A), axis=0),
            lambda A, B: np.concatenate((A, B, A), axis=0),
            {"A": (1, 3), "B": (2, 3)},
        ),
    ],
    "stack": [
        (lambda A, B: gc.stack([A, B]), lambda A, B: np.stack([A, B]), {"A": (3,), "B": (3,)}),
        (
            lambda A, B: gc.stack([A, B, A], axis=-1),
            lambda A, B: np.stack([A, B, A], axis=-1),
            {"A": (2, 3), "B": (2, 3)},
        ),
    ],
}

TENSOR_PARAMS = [
    pytest.param(name, i, id=f"{name}-{i}")
    for name, cases in TENSOR_CASES.items()
    for i in range(len(cases))
]


@pytest.mark.parametrize(("name", "case"), TENSOR_PARAMS)
def test_tensor_gate_vjp_matches_central_differences(name, case, rng):
    """sum(op(inputs) * D) with a random upstream gradient D: every input's gradient."""
    traced_op, numpy_op, shapes = TENSOR_CASES[name][case]
    inputs = {k: rng.normal(size=s) for k, s in shapes.items()}
    out_shape = np.shape(numpy_op(**inputs))
    inputs["D"] = rng.normal(size=out_shape)
    syms = gc.symbols(" ".join(inputs))
    *args, D = syms
    f = gc.function(gc.sum(traced_op(*args) * D), inputs=list(syms))

    def ref(**kw):
        dout = kw.pop("D")
        return np.sum(numpy_op(**kw) * dout)

    value, grads = f.value_and_grad(**inputs)
    assert value == pytest.approx(ref(**inputs), rel=1e-12)
    for k, v in inputs.items():
        assert np.shape(grads[k]) == np.shape(v), k
        assert_close(grads[k], central_diff(ref, inputs, k), rtol=1e-6, atol=1e-8)
