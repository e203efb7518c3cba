"""Constants reach the generated code as float64 numbers, with NumPy's overflow behaviour.

docs/errors.md, "Constants": a constant too large for float64 (a Python int such as 10**400, a
power of constants parsed from text, a huge SymPy number, a value in a saved graph) is inf with
NumPy's RuntimeWarning, never Python's OverflowError; integers of 2**64 and more (2**70, the
coefficients of expand((1 + x)**70)) are the nearest float64, anywhere in tracing, fusion,
backward and code generation. Oracles: NumPy on the same expression with float64 constants, and
SymPy's derivative evaluated by mpmath at 50 digits.
"""

import warnings
from fractions import Fraction

import mpmath
import networkx as nx
import numpy as np
import pytest
import sympy
from node_link import round_trip

import graphc as gc
from graphc.emit import numba_backend
from graphc.front.parse import parse

LEVELS = ["none", "patterns", "elementwise"]
F64 = np.float64


def versions(f):
    """The function at every fusion level, readable or not, and on the numba backend."""
    out = {level: f if level == "none" else f.fused(level=level) for level in LEVELS}
    out["patterns, readable=False"] = f.fused(readable=False)
    if numba_backend.available():
        out["numba"] = f.fused(level="none", backend="numba")
        out["numba, elementwise"] = f.fused(level="elementwise", backend="numba")
    return out


def quietly(fn, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with np.errstate(all="ignore"):
            return fn(*args)


# ---------------------------------------------------------------- overflow: inf, with a warning

# text for the parser -> NumPy on the same expression, constants as float64 (value, d/dx)
PARSED = {
    "10**400 * x": (lambda x: F64(10.0) ** 400.0 * x, lambda x: F64(10.0) ** 400.0 + 0 * x),
    "2**10000 * x": (lambda x: F64(2.0) ** 10000.0 * x, lambda x: F64(2.0) ** 10000.0 + 0 * x),
    "9**9**9**9 * x": (lambda x: np.inf * x, lambda x: np.inf + 0 * x),
    "x * (1e200 * 1e200)": (lambda x: x * (F64(1e200) * 1e200), lambda x: np.inf + 0 * x),
    "x - 10.0**309": (lambda x: x - F64(10.0) ** 309, lambda x: 1.0 + 0 * x),
    "x / (1 / 0)": (lambda x: x / (F64(1.0) / 0.0), lambda x: 1.0 / (F64(1.0) / 0.0) + 0 * x),
    "exp(1000) * x + x": (lambda x: np.exp(1000.0) * x + x, lambda x: np.exp(1000.0) + 1 + 0 * x),
    "x * 1e200 * 1e200": (lambda x: x * 1e200 * 1e200, lambda x: F64(1e200) * 1e200 + 0 * x),
    "x ** (3 ** 800)": (lambda x: x ** (F64(3.0) ** 800), None),
}


@pytest.mark.parametrize("text", list(PARSED))
def test_constant_powers_that_overflow_give_numpys_inf_with_its_warning(text):
    value_of, grad_of = PARSED[text]
    for label, f in versions(gc.Function(parse(text))).items():
        for x in (2.0, np.array([2.0, -0.5, 0.0]), F64(-3.0)):
            if label.startswith("numba") and np.ndim(x) == 0:
                continue
            want = quietly(value_of, x)
            value, grads = quietly(f.value_and_grad, x)  # never OverflowError
            np.testing.assert_array_equal(value, want, err_msg=f"{text} ({label}) at {x}")
            if grad_of is not None:
                np.testing.assert_array_equal(grads["x"], quietly(grad_of, x), err_msg=label)
        if not label.startswith("numba"):  # numba's loops compute NumPy's values, no warnings
            with pytest.warns(RuntimeWarning):
                gc.Function(parse(text)).fused(level=label.split(",")[0])(2.0)
            with pytest.warns(RuntimeWarning):
                gc.Function(parse(text)).fused(level=label.split(",")[0])(np.array([2.0]))


def test_a_python_float_call_of_overflowing_constants_warns_every_time():
    f = gc.Function(parse("x * (1e200 * 1e200)"))
    for _ in range(3):  # the straight-line float path hands such calls to NumPy, which warns
        with pytest.warns(RuntimeWarning, match="overflow"):
            assert f(2.0) == np.inf
        with pytest.warns(RuntimeWarning, match="overflow"):
            assert f.value_and_grad(2.0) == (np.inf, {"x": np.inf})


# traced Python ints, SymPy numbers, saved graphs: the constant itself is beyond float64
def _saved_graph(value):
    g = nx.DiGraph(name="f", inputs=["x"], output="p")
    g.add_node("x", op="input", name="x")
    g.add_node("c", op="const", value=value)
    g.add_node("p", op="mul")
    g.add_edge("c", "p", pos=0)
    g.add_edge("x", "p", pos=1)
    return round_trip(g)


X = sympy.Symbol("x")
TOO_LARGE = {
    "traced 10**400 * x": (lambda: gc.function(lambda x: 10**400 * x), np.inf),
    "traced x * -(2**10000)": (lambda: gc.function(lambda x: x * -(2**10000)), -np.inf),
    "traced x * 10**400 / 10**400": (
        lambda: gc.function(lambda x: x * 10**400 / 10**400),
        np.inf / np.inf,
    ),
    "sympy 10**400 * x": (lambda: gc.from_sympy(sympy.Integer(10) ** 400 * X), np.inf),
    "sympy rational": (lambda: gc.from_sympy(sympy.Rational(10**400, 3) * X), np.inf),
    "sympy float": (lambda: gc.from_sympy(sympy.Float("-1e400") * X), -np.inf),
    "sympy unevaluated power": (
        lambda: gc.from_sympy(sympy.Pow(10, 400, evaluate=False) * X),
        F64(10.0) ** 400,
    ),
    "saved graph": (lambda: gc.from_graph(_saved_graph(10**400)), np.inf),
    "traced fraction": (lambda: gc.function(lambda x: x * Fraction(10**400, 3)), np.inf),
}


@pytest.mark.parametrize("case", list(TOO_LARGE))
def test_constants_beyond_float64_are_inf_with_numpys_warning(case):
    build, c = TOO_LARGE[case]
    with pytest.warns(RuntimeWarning, match="overflow"):
        f = build()
        f(np.array([1.0]))
    for label, g in versions(f).items():
        for x in (1.5, np.array([1.5, 0.0, -2.0])):
            if label.startswith("numba") and np.ndim(x) == 0:
                continue
            value, grads = quietly(g.value_and_grad, x)
            want = quietly(lambda x: c * x if "/" not in case else x * np.inf / np.inf, x)
            np.testing.assert_array_equal(value, want, err_msg=f"{case} ({label})")
            if "/" not in case:
                np.testing.assert_array_equal(grads["x"], c + 0 * np.asarray(x), err_msg=label)


def test_the_parser_computes_constant_powers_in_float64_and_does_not_hang():
    # Python's own 9**9**9**9 would not finish (so a traced function computing it hangs in
    # Python, before graphc sees it); in text it is a power of float64 constants
    f = gc.Function(parse("9**9**9**9 * x"))
    with pytest.warns(RuntimeWarning):
        for level in LEVELS:
            assert f.fused(level=level)(np.array([1.0]))[0] == np.inf


# ---------------------------------------------------------------- integers of 2**64 and more


def _mp_gradient(expr, at: float) -> float:
    with mpmath.workdps(50):
        return float(sympy.diff(expr, X).evalf(50, subs={X: sympy.Float(at, 50)}))


def _mp_value(expr, at: float) -> float:
    with mpmath.workdps(50):
        return float(expr.evalf(50, subs={X: sympy.Float(at, 50)}))


BIG = {
    "expand((1 + x)**70)": sympy.expand((1 + X) ** 70),
    "x * 2**70": X * 2**70,
    "x**3 * 3**60 + x": X**3 * sympy.Integer(3) ** 60 + X,
    "(x + 2**64) * x": (X + 2**64) * X,
    "x / 2**70": X / sympy.Integer(2) ** 70,
    "x**2 * (2**80 + 1) / 3**40": X**2 * sympy.Rational(2**80 + 1, 3**40),
    "binomial(100, 50) * x**2": sympy.binomial(100, 50) * X**2,
    "expand((2 + x)**40) / 2**64": sympy.expand((2 + X) ** 40) / sympy.Integer(2) ** 64,
}


@pytest.mark.parametrize("case", list(BIG))
def test_integers_of_2_to_the_64_and_more_differentiate_to_mpmath_precision(case):
    expr = BIG[case]
    f = gc.from_sympy(expr)
    points = [0.3, 0.5, 1.7]  # x > 0: every term positive, the sums well conditioned
    for label, g in versions(f).items():
        for at in points:
            want_value, want_grad = _mp_value(expr, at), _mp_gradient(expr, at)
            for x in (at, np.array([at, at])):
                if label.startswith("numba") and np.ndim(x) == 0:
                    continue
                value, grads = g.value_and_grad(x)
                np.testing.assert_allclose(value, want_value, rtol=1e-13, err_msg=label)
                np.testing.assert_allclose(grads["x"], want_grad, rtol=1e-13, err_msg=label)


def test_traced_integers_beyond_int64_are_their_nearest_float64():
    f = gc.function(lambda x: x * 2**70 + x**2 * 3**45)
    for label, g in versions(f).items():
        x = np.array([0.5, 1.25])
        value, grads = g.value_and_grad(x)
        want = x * 2.0**70 + x**2 * float(3**45)
        np.testing.assert_allclose(value, want, rtol=1e-15, err_msg=label)
        want = 2.0**70 + 2 * x * float(3**45)
        np.testing.assert_allclose(grads["x"], want, rtol=1e-15, err_msg=label)


def test_numbers_sympy_makes_from_constants_print_as_float64():
    # with no clean-up rules, SymPy itself multiplies 2**30 * 2**30 * 2**30 = 2**90 in the
    # fused formula, and divides 1 / 3**40
    f = gc.function(lambda x: x * 2**30 * 2**30 * 2**30 / 3**20 / 3**20)
    g = f.fused(rules=[], level="elementwise")
    assert "expr" in dict(g.graph.nodes(data="op")).values()  # one fused gate
    x = np.array([0.5, 3.0])
    value, grads = g.value_and_grad(x)
    np.testing.assert_allclose(value, x * 2.0**90 / 3.0**40, rtol=1e-15)
    np.testing.assert_allclose(grads["x"], 2.0**90 / 3.0**40 + 0 * x, rtol=1e-15)
    assert "1237940039285380274899124224" not in g.source_for(x)  # 2**90 as a float literal
