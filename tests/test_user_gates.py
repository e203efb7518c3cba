"""User gates (`gc.gate`): what a Function traced with one keeps, and the formulas graphc takes.

- Redefining a gate (a notebook cell run again with an edit) changes no Function that exists:
  each keeps computing the formula it was traced with, in every call style (floats, arrays,
  value_and_grad, every fusion level, readable=False, numba, drawings, lint, check_grad,
  copies), and the caches keyed on gates never hand one gate's gradient or code to the other.
  The oracle is SymPy's value and derivative of the traced formula, and central differences.
- Steps (Heaviside, sign, floor, Piecewise, Max, ...): values against SymPy (mpmath), gradients
  against central differences wherever those are defined, in every backend and fusion level;
  every formula graphc cannot compute is refused when the gate is defined, naming the function.
- A gate called on SymPy expressions is a SymPy function: SymPy differentiates and evaluates it
  as the formula, and `gc.from_sympy` reads it back as the gate.
"""

import copy
import importlib.util
import itertools
import pickle
import warnings

import mpmath
import numpy as np
import pytest
import sympy
from conftest import assert_close, central_diff

import graphc as gc
from graphc.draw import render
from graphc.emit import codegen
from graphc.ir import ops
from graphc.passes.autodiff import gate_local_gradients

_names = itertools.count()
HAS_NUMBA = importlib.util.find_spec("numba") is not None


def fresh(stem: str) -> str:
    """A gate name no other test uses (the registry of gc.gate is process-wide)."""
    return f"{stem}_{next(_names)}"


# ---------------------------------------------------------------- redefining a gate

T = sympy.Symbol("t", real=True)
SQUARE, CUBE = T**2, T**3  # the formula traced, and the one defined afterwards under its name


def traced_then_redefined(call_first: bool):
    """A Function traced with gate t**2, whose name is then defined again as t**3; with
    `call_first`, the Function was called (float path and arrays compiled) before."""
    name = fresh("myg")
    square = gc.gate(name, lambda t: t**2)

    @gc.function
    def f(x, y):
        return square(x) * y + x

    if call_first:
        f(2.0, 3.0), f.value_and_grad(2.0, 3.0), f(np.array([2.0]), 3.0)
    cube = gc.gate(name, lambda t: t**3)
    return f, cube


def oracle(x, y):
    """The traced formula t**2 * y + x, its value and gradient, by SymPy."""
    X, Y = sympy.symbols("x y", real=True)
    expr = SQUARE.subs(T, X) * Y + X
    at = {X: x, Y: y}
    return float(expr.subs(at)), {
        "x": float(expr.diff(X).subs(at)),
        "y": float(expr.diff(Y).subs(at)),
    }


STYLES = {
    "as traced": lambda f: f,
    "fused, none": lambda f: f.fused(level="none"),
    "fused, patterns": lambda f: f.fused(),
    "fused, elementwise": lambda f: f.fused(level="elementwise"),
    "readable=False": lambda f: f.fused(level="none", readable=False),
    "elementwise, readable=False": lambda f: f.fused(level="elementwise", readable=False),
    "wrt": lambda f: f.wrt("x", "y"),
    "from_graph": lambda f: gc.from_graph(f.graph),
    "gc.fuse then from_graph": lambda f: gc.from_graph(gc.fuse(f.graph, level="elementwise")),
    "pickled": lambda f: pickle.loads(pickle.dumps(f)),
    "deepcopy": copy.deepcopy,
    "copy": copy.copy,
}


@pytest.mark.parametrize("call_first", [True, False], ids=["called before", "never called"])
@pytest.mark.parametrize("style", STYLES)
def test_a_function_keeps_the_formula_it_was_traced_with(style, call_first):
    f, _ = traced_then_redefined(call_first)
    g = STYLES[style](f)
    for x, y in [(2.0, 3.0), (-1.5, 0.25)]:
        value, grads = oracle(x, y)
        assert g(x, y) == pytest.approx(value, rel=1e-14)  # Python floats: the float path
        got_value, got = g.value_and_grad(x, y)
        assert got_value == pytest.approx(value, rel=1e-14)
        assert got == pytest.approx(grads, rel=1e-14)
        arrays = g.value_and_grad(np.array([x, x]), np.array(y))  # NumPy arrays
        assert_close(arrays[0], [value, value], rtol=1e-14)
        assert_close(arrays[1]["x"], [grads["x"]] * 2, rtol=1e-14)
        assert_close(arrays[1]["y"], 2 * grads["y"], rtol=1e-14)
        assert float(g(np.float64(x), y)) == pytest.approx(value, rel=1e-14)  # a NumPy scalar


@pytest.mark.skipif(not HAS_NUMBA, reason="needs numba")
@pytest.mark.parametrize("call_first", [True, False], ids=["called before", "never called"])
def test_the_numba_backend_keeps_the_traced_formula(call_first):
    f, _ = traced_then_redefined(call_first)
    for g in (f.fused(backend="numba"), f.fused(level="elementwise", backend="numba")):
        value, grads = oracle(2.0, 3.0)
        got_value, got = g.value_and_grad(np.array([2.0, 2.0]), 3.0)
        assert_close(got_value, [value, value], rtol=1e-14)
        assert_close(got["x"], [grads["x"]] * 2, rtol=1e-14)
        assert got["y"] == pytest.approx(2 * grads["y"], rel=1e-14)


def test_code_drawings_and_checks_keep_the_traced_formula():
    f, _ = traced_then_redefined(call_first=False)
    value, grads = oracle(2.0, 3.0)  # 14: 2**2 * 3 + 2 (the cube would give 26)
    assert "x ** 2" in f.source_for(2.0, 3.0) and "** 3" not in f.source_for(2.0, 3.0)
    picture = f.svg(2.0, 3.0, digits=1, show_local=True)
    assert f">{value:.1f}<" in picture and ">26.0<" not in picture
    local = render.local_texts(f.graph, gate_local_gradients)  # what show_local draws
    assert "∂/∂x = 2x" in local.values()  # the square's local gradient, not 3x²
    assert gc.check_grad(f, x=2.0, y=3.0) < 1e-7
    report = gc.check_grad(f, x=2.0, y=3.0, per_gate=True)
    assert report.worst.error < 1e-7
    assert "exp" not in str(gc.lint(f))  # lint runs on the traced formula: nothing to fuse
    comparison = gc.compare(f, x=2.0, y=3.0)
    assert comparison is not None


def test_what_is_traced_after_the_redefinition_gets_the_new_formula():
    f, cube = traced_then_redefined(call_first=True)
    new = gc.function(lambda x, y: cube(x) * y + x)
    assert new(2.0, 3.0) == 26.0 and new.grad(2.0, 3.0) == {"x": 37.0, "y": 8.0}
    assert f(2.0, 3.0) == 14.0 and f.grad(2.0, 3.0) == {"x": 13.0, "y": 4.0}
    # a graph that names the gate in text (built by hand, or loaded from a file) means the gate
    # of that name when it is read
    g = __import__("networkx").DiGraph(name="h", inputs=["x"], output="out")
    g.add_node("x", op="input", name="x")
    g.add_node("out", op=cube.gate.name)
    g.add_edge("x", "out", pos=0)
    assert gc.from_graph(g)(2.0) == 8.0


def test_the_caches_never_give_one_gate_what_was_derived_for_another():
    name = fresh("cached")
    square = gc.gate(name, lambda t: t**2).gate
    a0 = ops.ARGS[0]
    assert ops.local_gradients(square) == (2 * a0,)
    assert "** 2" in codegen.gate_template(square)
    cube = gc.gate(name, lambda t: t**3).gate
    assert hash(cube) != hash(square) and cube != square
    assert ops.local_gradients(cube) == (3 * a0**2,)
    assert "** 3" in codegen.gate_template(cube)
    assert ops.local_gradients(square) == (2 * a0,)  # the first is still its own
    # the same formula again is the same gate: caches may share its work
    assert gc.gate(name, lambda u: u**3).gate == cube


def test_the_gate_object_computes_the_formula_it_was_made_with():
    name = fresh("handle")
    old = gc.gate(name, lambda t: 2 * t)
    gc.gate(name, lambda t: 3 * t)
    assert gc.function(lambda x: old(x))(1.0) == 2.0
    assert old(1.0) == 2.0


# ---------------------------------------------------------------- steps and other SymPy functions

S = sympy
FORMULAS = {  # name: (formula, arity); every one must compute and differentiate correctly
    "heaviside": (lambda a: S.Heaviside(a), 1),
    "heaviside_0": (lambda a: S.Heaviside(a, 0) * a, 1),
    "heaviside_1": (lambda a: S.Heaviside(a - 0.5, 1), 1),
    "heaviside_of_square": (lambda a: S.Heaviside(a**2 - 1) * S.exp(a), 1),
    "sign": (lambda a: S.sign(a) * a**2, 1),
    "sign_of_sin": (lambda a: S.sign(S.sin(3 * a)), 1),
    "steps_summed": (lambda a, b: S.Heaviside(a - b, 0) + S.Heaviside(b, 1) - S.sign(a), 2),
    "indicator": (lambda a: S.Piecewise((1, a > 0.3), (0, True)), 1),
    "indicators_subtracted": (
        lambda a: S.Piecewise((a, a > 0), (0, True)) - S.Piecewise((a, a > 1), (0, True)),
        1,
    ),
    "piecewise_3": (lambda a: S.Piecewise((a**2, a > 1), (a, a > -1), (-1, True)), 1),
    "piecewise_and": (lambda a: S.Piecewise((S.sin(a), S.And(a > 0, a < 1.5)), (a / 4, True)), 1),
    "piecewise_or": (lambda a, b: S.Piecewise((a * b, S.Or(a > 1, b < 0)), (a, True)), 2),
    "max_3": (lambda a, b: S.Max(a, 0, 2 * b), 2),
    "min_squared": (lambda a, b: S.Min(a, b) ** 2, 2),
    "max_of_sin_cos": (lambda a: S.Max(S.sin(a), S.cos(a)), 1),
    "abs_power": (lambda a: S.Abs(a) ** S.Rational(3, 2), 1),
    "floor": (lambda a: S.floor(2 * a) * a, 1),
    "ceiling": (lambda a: S.ceiling(a) + a, 1),
    "frac": (lambda a: S.frac(a), 1),
    "mod": (lambda a, b: S.Mod(a, b + 3), 2),
    "atan2": (lambda a, b: S.atan2(a, b), 2),
    "trig": (lambda a: S.sec(a) + S.cot(a + 4) + S.asin(a / 3), 1),
    "hyperbolic": (lambda a: S.acosh(a**2 + 1) + S.atanh(a / 3), 1),
    "roots": (lambda a: S.real_root(a, 3) + S.cbrt(a**2 + 1), 1),
    "log_base_2": (lambda a: S.log(a**2 + 1, 2), 1),
    "constant": (lambda a: S.pi, 1),
    "one_argument_unused": (lambda a, b: 2 * a, 2),
}


def sympy_reference(formula, arity):
    """The formula's value by SymPy (mpmath, 30 digits), NaN where it is not a real number."""
    syms = sympy.symbols(f"p0:{arity}", real=True)
    fn = sympy.lambdify(syms, formula(*syms), modules="mpmath")

    def value(*xs):
        with mpmath.workdps(30):
            try:
                v = complex(fn(*(mpmath.mpf(x) for x in xs)))
            except (ValueError, ZeroDivisionError, TypeError):
                return np.nan
        return v.real if abs(v.imag) < 1e-20 else np.nan

    return value


def defined_slope(value, xs: list[float], i: int) -> float | None:
    """The derivative in argument i by central differences, where it exists: both one-sided
    differences agree with it, at two step sizes (no jump or kink within reach); else None."""
    here = value(*xs)
    slopes = []
    for h in (1e-6, 2e-6):
        up, down = list(xs), list(xs)
        up[i] += h
        down[i] -= h
        slopes += [(value(*up) - here) / h, (here - value(*down)) / h]
    if not all(np.isfinite(slopes)) or not np.allclose(slopes, slopes[0], rtol=1e-4, atol=1e-5):
        return None
    return (slopes[0] + slopes[1]) / 2


def styles_of(f):
    """The code paths a user gate's formula takes (patterns and readable=False change nothing
    of a user gate: they print it as the unfused module does)."""
    yield "plain", f
    yield "elementwise", f.fused(level="elementwise")
    if HAS_NUMBA:
        yield "numba", f.fused(backend="numba")
        yield "numba elementwise", f.fused(level="elementwise", backend="numba")


@pytest.mark.parametrize("name", FORMULAS)
def test_every_accepted_formula_computes_and_differentiates_correctly(name, rng):
    formula, arity = FORMULAS[name]
    gate = gc.gate(fresh(name), formula)
    args = ", ".join(f"p{i}" for i in range(arity))
    f = gc.function(eval(f"lambda {args}: g({args}) * 1.5", {"g": gate}))  # also fused with mul
    reference = sympy_reference(formula, arity)
    points = rng.uniform(-2.5, 2.5, size=(arity, 12))
    points[:, :2] = 0.0 if arity == 1 else [[0.0, 1.0], [0.0, -3.0]][:arity]  # jumps, kinks
    checked = 0
    for style, g in styles_of(f):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # NaN outside a formula's domain
            values, grads = g.value_and_grad(*points)
            floats = [g.value_and_grad(*map(float, points[:, k])) for k in range(4)]
        for k in range(points.shape[1]):
            xs = [float(p) for p in points[:, k]]
            want = 1.5 * reference(*xs)
            if np.isfinite(want):
                assert values[k] == pytest.approx(want, rel=1e-12, abs=1e-14), (style, xs)
            if k < 4:
                assert floats[k][0] == pytest.approx(values[k], rel=1e-13, nan_ok=True), style
            for i in range(arity):
                slope = defined_slope(reference, xs, i)
                if slope is None:
                    continue
                got = np.broadcast_to(grads[f"p{i}"], points.shape[1:])[k]
                assert got == pytest.approx(1.5 * slope, rel=1e-5, abs=1e-5), (style, xs, i)
                checked += 1
    assert checked > 0


def test_a_step_has_gradient_zero_at_its_jump_too():
    hv = gc.gate(fresh("hv"), lambda a: sympy.Heaviside(a))
    sg = gc.gate(fresh("sg"), lambda a: sympy.sign(a))
    fl = gc.gate(fresh("fl"), lambda a: sympy.floor(a))
    f = gc.function(lambda x: hv(x) + sg(x) + fl(x))
    assert f.value_and_grad(0.0) == (0.5, {"x": 0.0})  # Heaviside(0) = 1/2, as SymPy's
    assert f.value_and_grad(1.0) == (3.0, {"x": 0.0})
    assert_close(f.grad(np.array([-1.0, 0.0, 1.0, 2.5]))["x"], np.zeros(4))


def test_a_step_gate_gives_floats_not_booleans():
    step = gc.gate(fresh("step"), lambda a: sympy.Heaviside(a, 0))
    f = gc.function(lambda x: step(x))
    out = f(np.array([-1.0, 0.0, 2.0]))
    assert out.dtype == np.float64 and out.tolist() == [0.0, 0.0, 1.0]
    assert f.fused(level="elementwise")(np.array([3.0])).dtype == np.float64


REFUSED = {  # formula: the SymPy function the refusal names
    "erf": (lambda a: sympy.erf(a), "erf"),
    "gamma": (lambda a: a * sympy.gamma(a), "gamma"),
    "loggamma, in the gradient": (lambda a: sympy.log(sympy.factorial(a)), "factorial"),
    "besselj": (lambda a: sympy.besselj(0, a), "besselj"),
    "LambertW": (lambda a: sympy.LambertW(a), "LambertW"),
    "zeta": (lambda a: sympy.zeta(a), "zeta"),
    "DiracDelta": (lambda a: sympy.DiracDelta(a), "DiracDelta"),
    "an undefined function": (lambda a: sympy.Function("mystery")(a), "mystery"),
    "KroneckerDelta": (lambda a: sympy.KroneckerDelta(a, 1), "KroneckerDelta"),
    "Integral": (lambda a: sympy.Integral(a, (sympy.Symbol("s"), 0, 1)), "Integral"),
    "complex": (lambda a: sympy.I * a, "complex"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_a_formula_graphc_cannot_compute_is_refused_when_defined(case):
    formula, culprit = REFUSED[case]
    name = fresh("refused")
    with pytest.raises(gc.GateError, match=culprit) as caught:
        gc.gate(name, formula)
    assert name in str(caught.value)
    assert ops.user_gate(name) is None  # nothing is left defined


class erf_slope(sympy.Function):  # noqa: N801 - a SymPy function, named like one
    """A function the generated module can compute (its `_numpycode`), whose derivative it cannot
    (erf: NumPy has none)."""

    nargs = 1

    def fdiff(self, argindex=1):
        return sympy.erf(self.args[0])

    def _numpycode(self, printer):
        return f"np.exp({printer._print(self.args[0])})"


def test_a_gradient_numpy_cannot_compute_is_refused_naming_its_function():
    with pytest.raises(gc.GateError, match="local gradient in argument 0.* erf"):
        gc.gate(fresh("slope"), lambda a: erf_slope(a))


# ---------------------------------------------------------------- gates on SymPy expressions


def test_a_gate_called_on_sympy_symbols_is_a_sympy_function():
    swish = gc.gate(fresh("swish"), lambda t: t / (1 + sympy.exp(-t)))
    x, y = sympy.symbols("x y", real=True)
    e = swish(x * y) + x
    assert isinstance(e, sympy.Expr) and swish.gate.name in str(e)
    plain = x * y / (1 + sympy.exp(-x * y)) + x  # SymPy's own spelling, the oracle
    assert sympy.simplify(sympy.expand_func(e) - plain) == 0
    for var in (x, y):
        assert sympy.simplify(sympy.diff(e, var) - sympy.diff(plain, var)) == 0
    at = {x: 0.7, y: -1.3}
    assert float(e.subs(at)) == pytest.approx(float(plain.subs(at)), rel=1e-15)
    assert float(e.evalf(30, subs=at)) == pytest.approx(float(plain.evalf(30, subs=at)), rel=1e-15)
    assert swish(sympy.Integer(0)) == 0
    for module in ("mpmath", "math", "numpy"):  # lambdify prints it as its formula
        fn = sympy.lambdify((x, y), e, module)
        assert float(fn(0.7, -1.3)) == pytest.approx(float(plain.subs(at)), rel=1e-15)


def test_from_sympy_reads_a_gate_call_back_as_the_gate():
    swish = gc.gate(fresh("swish"), lambda t: t / (1 + sympy.exp(-t)))
    x, y = sympy.symbols("x y", real=True)
    e = swish(x * y) + x
    f = gc.from_sympy(e)
    assert swish.gate.name in [op for _, op in f.graph.nodes(data="op")]
    plain = x * y / (1 + sympy.exp(-x * y)) + x
    for at in [(0.7, -1.3), (-2.0, 0.4)]:
        value, grads = f.value_and_grad(*at)
        subs = dict(zip((x, y), at))
        assert value == pytest.approx(float(plain.subs(subs)), rel=1e-14)
        assert grads["x"] == pytest.approx(float(plain.diff(x).subs(subs)), rel=1e-13)
        assert grads["y"] == pytest.approx(float(plain.diff(y).subs(subs)), rel=1e-13)
    # the gate inside another gate's formula, differentiated through its own formula
    outer = gc.gate(fresh("outer"), lambda t: sympy.sin(swish(t)))
    g = gc.function(lambda v: outer(v))
    assert g.grad(0.9)["v"] == pytest.approx(
        central_diff(lambda v: np.sin(v / (1 + np.exp(-v))), {"v": 0.9}, "v"), rel=1e-8
    )


def test_a_gate_inside_another_gate_keeps_its_steps_flat():
    inner = gc.gate(fresh("inner"), lambda t: sympy.floor(t) + sympy.Heaviside(t) + t)
    outer = gc.gate(fresh("outer"), lambda t: sympy.sin(inner(t)))
    f = gc.function(lambda v: outer(v) * 2.0)
    for v in (0.5, -1.25, 2.75):
        want = central_diff(
            lambda v: 2 * np.sin(np.floor(v) + np.heaviside(v, 0.5) + v), {"v": v}, "v"
        )
        for g in (f, f.fused(level="elementwise")):
            assert g.grad(v)["v"] == pytest.approx(want, rel=1e-7)


def test_a_gate_call_on_sympy_keeps_its_gate_after_a_redefinition_and_pickles():
    name = fresh("kept")
    square = gc.gate(name, lambda t: t**2)
    x = sympy.Symbol("x", real=True)
    e = square(x) + 1
    gc.gate(name, lambda t: t**3)
    assert gc.from_sympy(e)(2.0) == 5.0
    assert gc.from_sympy(pickle.loads(pickle.dumps(e)))(2.0) == 5.0
    assert sympy.diff(pickle.loads(pickle.dumps(e)), x) == 2 * x


def test_builtin_gates_on_sympy_expressions_say_what_to_write():
    with pytest.raises(gc.TraceError, match="sympy.exp"):
        gc.exp(sympy.Symbol("x"))
