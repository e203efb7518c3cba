"""`gc.check_grad`: the whole-function check, and the per-gate report that pins a wrong gradient.

A wrong local gradient is planted three ways: a gate whose SymPy function has a wrong `fdiff`,
a correct gate whose derived gradient is swapped for a wrong one, and a tensor gate whose
vector-Jacobian rule is wrong. Each time the report's worst row is that gate, and only that gate
fails, although the whole-function check can only say that something is wrong.
"""

import dataclasses

import numpy as np
import pytest
import sympy

import graphc as gc
from graphc.check import GateCheck, GateReport
from graphc.ir import ops
from graphc.passes import autodiff

TOL = 1e-6


class wrong_cube(sympy.Function):  # noqa: N801 - a SymPy function, named like one
    """x**3 whose derivative is planted wrong: 2*x**2 instead of 3*x**2."""

    nargs = 1

    def fdiff(self, argindex=1):
        return 2 * self.args[0] ** 2

    def _numpycode(self, printer):  # how the generated module computes it
        return f"({printer._print(self.args[0])}) ** 3"


cube = gc.gate("pg_wrong_cube", lambda a: wrong_cube(a))
softsign = gc.gate("pg_softsign", lambda a: a / (1 + sympy.Abs(a)))


@gc.function
def planted(x, y):
    u = x * y
    c = cube(u)
    return gc.tanh(c) + gc.exp(x)


@gc.function
def net(X, W, b, t):
    h = gc.tanh(X @ W + b)
    s = gc.sigmoid(h * 0.5)
    z = gc.log(gc.sum(gc.exp(s), axis=1))
    r = gc.where(h > 0.1, h, 0.5 * h)
    return gc.mean(z * z) + gc.sum(gc.abs(t - r.reshape(-1)))


def net_inputs(rng):
    return dict(
        X=rng.normal(size=(4, 3)),
        W=rng.normal(size=(3, 5)),
        b=rng.normal(size=5),
        t=rng.normal(size=20) + 3.0,  # away from abs's kink
    )


def only_failure(report: GateReport) -> GateCheck:
    """The one row above tolerance (asserting there is exactly one)."""
    bad = [r for r in report.rows if not r.error < TOL]
    assert len(bad) == 1, str(report)
    assert report.worst is bad[0]
    return bad[0]


# ---------------------------------------------------------------- the whole-function check


def test_without_per_gate_check_grad_still_returns_a_float(rng):
    err = gc.check_grad(net, **net_inputs(rng))
    assert isinstance(err, float) and err < TOL


def test_whole_function_check_sees_the_planted_error_but_cannot_place_it():
    assert gc.check_grad(planted, x=0.7, y=-1.3) > 0.1


def test_check_grad_of_a_function_restricted_with_wrt(rng):
    inputs = net_inputs(rng)
    assert gc.check_grad(net.wrt("W"), **inputs) < TOL
    assert gc.check_grad(net.wrt("W", "t"), **inputs, per_gate=True).error < TOL


# ---------------------------------------------------------------- the report


def test_per_gate_report_has_one_row_per_gate_in_forward_order(rng):
    report = gc.check_grad(net, **net_inputs(rng), per_gate=True)
    assert isinstance(report, GateReport)
    gates = [r.gate for r in report.rows]
    # every gate but the comparison mask (no gradient flows through it), in forward order
    assert sorted(gates) == sorted(
        op for _, op in net.graph.nodes(data="op") if op not in ("input", "const", "gt")
    )
    assert [r.node for r in report.rows] == sorted(r.node for r in report.rows)
    assert all(r.error < TOL for r in report.rows), str(report)
    assert report.error < TOL and float(report) == report.error


def test_report_rows_say_what_they_checked(rng):
    report = gc.check_grad(net, **net_inputs(rng), per_gate=True)
    kinds = {r.gate: r.kind for r in report.rows}
    assert kinds["tanh"] == "local gradient"
    assert kinds["matmul"] == "vector-Jacobian product"
    assert kinds["sum"] == "vector-Jacobian product"
    where = next(r for r in report.rows if r.gate == "where")
    assert where.errors[0] is None  # no gradient flows into the mask
    assert len(where.errors) == 3


def test_report_prints_a_table_naming_the_worst_gate():
    report = gc.check_grad(planted, x=0.7, y=-1.3, per_gate=True)
    text = str(report)
    lines = text.splitlines()
    assert lines[0].startswith("per-gate gradient check of planted")
    assert "worst: pg_wrong_cube (c)" in lines[1]
    header = next(ln for ln in lines if ln.startswith("gate"))
    assert "variable" in header and "max rel. error" in header
    row = next(ln for ln in lines if ln.startswith("pg_wrong_cube"))
    assert row.endswith("<- worst") and " c " in row
    assert sum("<- worst" in ln for ln in lines) == 1
    assert lines[-1].startswith("whole function: max relative error")
    for gate in ("mul", "tanh", "exp", "add"):
        assert any(ln.startswith(gate) for ln in lines), gate


def test_rows_are_found_by_variable_name():
    report = gc.check_grad(planted, x=0.7, y=-1.3, per_gate=True)
    assert report["c"].gate == "pg_wrong_cube"
    assert report["u"].gate == "mul"
    with pytest.raises(KeyError, match="nope"):
        report["nope"]


# ---------------------------------------------------------------- planted wrong gradients


@pytest.mark.parametrize("x", [0.7, np.array([0.7, -0.4, 1.1])], ids=["scalar", "vector"])
def test_a_wrong_fdiff_is_pinned_to_its_gate_and_no_other(x):
    report = gc.check_grad(planted, x=x, y=-1.3, per_gate=True)
    bad = only_failure(report)
    assert (bad.gate, bad.name) == ("pg_wrong_cube", "c")
    # 2u**2 against 3u**2: relative error |3-2|/(3+2) = 0.2 wherever u != 0
    assert bad.error == pytest.approx(0.2, rel=1e-6)
    assert report.error > 0.1


def test_a_wrong_derived_gradient_is_pinned_to_its_gate(monkeypatch):
    @gc.function
    def f(x, y):
        a = softsign(x * y)
        return gc.sigmoid(a) * y

    assert gc.check_grad(f, per_gate=True, x=0.3, y=2.0).worst.error < TOL
    right = ops.local_gradients

    def planted_gradients(gate):
        if gate.name == "pg_softsign":  # d/da a/(1+|a|) is 1/(1+|a|)**2; plant 1/(1+|a|)
            return (1 / (1 + sympy.Abs(ops.ARGS[0])),)
        return right(gate)

    monkeypatch.setattr(autodiff, "local_gradients", planted_gradients)
    fresh = gc.from_graph(f.graph)  # a new function: no module compiled before the plant
    report = gc.check_grad(fresh, x=0.3, y=2.0, per_gate=True)
    bad = only_failure(report)
    assert (bad.gate, bad.name) == ("pg_softsign", "a")


def test_a_wrong_vector_jacobian_rule_is_pinned_to_its_tensor_gate(monkeypatch, rng):
    mean = ops.GATES["mean"]

    def off_by_one(b, node, args, dout):  # 0.9 times the right gradient
        (grad,) = mean.vjp(b, node, args, dout)
        return (b.op("mul", [grad, b.const(0.9)]),)

    monkeypatch.setitem(ops.GATES, "mean", dataclasses.replace(mean, vjp=off_by_one))
    fresh = gc.from_graph(net.graph.copy())
    report = gc.check_grad(fresh, **net_inputs(rng), per_gate=True)
    bad = only_failure(report)
    assert bad.gate == "mean" and bad.kind == "vector-Jacobian product"


# ---------------------------------------------------------------- fused and lowered graphs


@pytest.mark.parametrize("level", ["patterns", "elementwise"])
def test_fused_gates_are_checked_on_their_own_formulas(level, rng):
    report = gc.check_grad(net.fused(level=level), **net_inputs(rng), per_gate=True)
    assert all(r.error < TOL for r in report.rows), str(report)
    if level == "elementwise":
        assert any("_" in r.gate for r in report.rows)  # a fused region, e.g. tanh_mul_sigmoid


def test_fused_gate_with_a_planted_error_is_still_pinned():
    report = gc.check_grad(planted.fused(level="elementwise"), x=0.7, y=-1.3, per_gate=True)
    bad = only_failure(report)
    assert "pg_wrong_cube" in bad.gate


def test_lowered_gates_of_fast_code_are_checked(rng):
    f = gc.function(lambda x: gc.sum(gc.sigmoid(x) * gc.exp(-x)), readable=False)

    report = gc.check_grad(f, x=rng.normal(size=5), per_gate=True)
    assert "sigmoid" in [r.gate for r in report.rows]
    assert all(r.error < TOL for r in report.rows), str(report)


def test_transpose_and_views_are_checked_alone(rng):
    @gc.function
    def f(A, B):
        return gc.sum(gc.tanh(A.T @ B))

    report = gc.check_grad(f, A=rng.normal(size=(3, 2)), B=rng.normal(size=(3, 4)), per_gate=True)
    assert [r.gate for r in report.rows] == ["transpose", "matmul", "tanh", "sum"]
    assert all(r.error < TOL for r in report.rows), str(report)


# ---------------------------------------------------------------- every gate, negative points too


class wrong_in_b(sympy.Function):  # noqa: N801 - a SymPy function, named like one
    """a * b whose derivative in b is planted wrong: 2*a instead of a."""

    nargs = 2

    def fdiff(self, argindex=1):
        return self.args[1] if argindex == 1 else 2 * self.args[0]

    def _numpycode(self, printer):
        return f"({printer._print(self.args[0])}) * ({printer._print(self.args[1])})"


times = gc.gate("pg_wrong_in_b", lambda a, b: wrong_in_b(a, b))


def test_the_pow_of_a_negative_base_has_finite_figures():
    # the exponent 2 is a constant: no gradient flows into it, so d/db = out*log(a) (NaN at
    # a < 0) is never computed and not checked; d/da = 2a is, and is right
    report = gc.check_grad(gc.function(lambda x: x**2), x=-1.5, per_gate=True)
    (row,) = report.rows
    assert row.gate == "pow" and row.errors[1] is None
    assert row.errors[0] < TOL and report.worst.error < TOL, str(report)
    assert "nan" not in str(report)


POWERS = {  # x ** c and c ** x at negative and positive x, every exponent a constant
    "x**2": lambda x: x**2,
    "x**3": lambda x: x**3,
    "x**-1": lambda x: x**-1,
    "x**-2.0": lambda x: x**-2.0,
    "x**4.0 + x": lambda x: x**4.0 + x,
    "2.0**x": lambda x: 2.0**x,
    "0.5**x * x**2": lambda x: 0.5**x * x**2,
}


@pytest.mark.parametrize("name", list(POWERS))
@pytest.mark.parametrize("level", ["none", "patterns", "elementwise"])
def test_powers_with_constant_exponents_have_finite_figures_at_negative_bases(name, level):
    f = gc.function(POWERS[name]).fused(level=level)
    for x in (-1.5, -0.3, 0.7, 2.5, np.array([-1.5, -0.4, 0.6, 1.9])):
        report = gc.check_grad(f, x=x, per_gate=True)
        assert all(r.error < TOL for r in report.rows), f"at {x}:\n{report}"


def _gate_cases():
    """Every elementwise gate of the table on inputs from its domain (tests/test_gates.py),
    negative numbers included wherever the gate's derivative is defined there."""
    from test_gates import DOMAINS, ELEMENTWISE, spelling

    for gate in ELEMENTWISE:
        names = [f"x{i}" for i in range(gate.arity)]
        if gate.name == "where":
            fn = lambda x0, x1, x2: gc.where(x0 > 0, x1, x2)  # noqa: E731
        else:
            fn = spelling(gate.name)
        symbols = gc.symbols(" ".join(names))
        symbols = symbols if isinstance(symbols, tuple) else (symbols,)
        yield gate.name, gc.function(fn(*symbols), inputs=list(symbols)), DOMAINS[gate.name]


@pytest.mark.parametrize("level", ["none", "elementwise"])
def test_every_elementwise_gate_has_finite_figures_at_several_points(level, rng):
    for name, f, domain in _gate_cases():
        g = f.fused(level=level)
        for seed in range(4):
            args = domain(np.random.default_rng(seed), 5)
            points = [dict(zip(f.inputs, (float(a[k]) for a in args))) for k in range(3)]
            points.append(dict(zip(f.inputs, args)))  # the vectors at once
            for at in points:
                report = gc.check_grad(g, **at, per_gate=True)
                assert all(r.error < TOL for r in report.rows), f"{name} at {at}:\n{report}"


def test_every_tensor_gate_has_finite_figures_at_several_points():
    from test_gates import TENSOR_CASES

    for name, cases in TENSOR_CASES.items():
        for traced_op, _, shapes in cases:
            symbols = gc.symbols(" ".join(shapes))
            symbols = symbols if isinstance(symbols, tuple) else (symbols,)
            f = gc.function(gc.sum(traced_op(*symbols) * 0.7), inputs=list(symbols))
            for seed in range(3):
                r = np.random.default_rng(seed)
                at = {k: r.normal(size=s) for k, s in shapes.items()}
                report = gc.check_grad(f, **at, per_gate=True)
                assert all(x.error < TOL for x in report.rows), f"{name} at {at}:\n{report}"


def test_an_undefined_derivative_is_nan_never_a_pass():
    # d(x**y)/dy = out*log(x): at x < 0 the real function has no derivative in y, so the
    # figure is NaN (not a pass); restricted to x, nothing flows into y and x's figure is finite
    f = gc.function(lambda x, y: x**y)
    row = gc.check_grad(f, x=-1.5, y=2.0, per_gate=True).rows[0]
    assert row.errors[0] < TOL and np.isnan(row.errors[1]) and np.isnan(row.error)
    row = gc.check_grad(f.wrt("x"), x=-1.5, y=2.0, per_gate=True).rows[0]
    assert row.errors == (pytest.approx(0.0, abs=TOL), None)


def test_a_wrong_gradient_into_a_used_argument_is_never_skipped():
    # the planted error is in d/db: caught where b is an input, not reported where b is a
    # constant, since no gradient flows into a constant (the function's gradient is right)
    with_input = gc.check_grad(gc.function(lambda x, y: times(x, y)), x=0.7, y=-1.3, per_gate=True)
    bad = only_failure(with_input)
    assert bad.gate == "pg_wrong_in_b" and bad.errors[0] < TOL and bad.errors[1] > 0.1
    with_constant = gc.check_grad(gc.function(lambda x: times(x, -1.3)), x=0.7, per_gate=True)
    assert with_constant.rows[0].errors[1] is None and with_constant.error < TOL


class wrong_plus(sympy.Function):  # noqa: N801 - a SymPy function, named like one
    """a + b whose derivative in b is planted wrong: 2 instead of 1."""

    nargs = 2

    def fdiff(self, argindex=1):
        return sympy.S.One if argindex == 1 else sympy.Integer(2)

    def _numpycode(self, printer):
        return f"({printer._print(self.args[0])}) + ({printer._print(self.args[1])})"


plus = gc.gate("pg_wrong_plus", lambda a, b: wrong_plus(a, b))


@pytest.mark.parametrize("level", ["none", "patterns", "elementwise"])
def test_figures_see_past_round_off(level):
    # expand((1+x)**70) adds terms up to 1e20 to terms of 1: a step of 1e-6 in a small term
    # does not change a sum of 1e20 at all, so the check takes the step that shows it
    x = sympy.Symbol("x")
    f = gc.from_sympy(sympy.expand((1 + x) ** 70)).fused(level=level)
    for at in (0.5, np.array([0.3, 1.2])):
        report = gc.check_grad(f, x=at, per_gate=True)
        assert all(r.error < TOL for r in report.rows), str(report)
    saturated = gc.check_grad(gc.function(lambda x: gc.sigmoid(x)), x=40.0, per_gate=True)
    assert saturated.worst.error < TOL  # 4.2e-18 against differences that round to 0


def test_a_wrong_gradient_next_to_a_huge_value_is_still_caught():
    right = gc.check_grad(gc.function(lambda x, y: x + y), x=1e20, y=1.0, per_gate=True)
    assert right.worst.error < TOL, str(right)
    report = gc.check_grad(gc.function(lambda x, y: plus(x, y)), x=1e20, y=1.0, per_gate=True)
    (row,) = report.rows
    assert row.errors[0] < TOL and row.errors[1] == pytest.approx(1 / 3, rel=1e-3)


# ---------------------------------------------------------------- the upstream gradient (issue 14)


class wrong_sqrt(sympy.Function):  # noqa: N801 - a SymPy function, named like one
    """sqrt whose derivative is planted wrong: 0.4/sqrt(x) instead of 0.5/sqrt(x)."""

    nargs = 1

    def fdiff(self, argindex=1):
        return sympy.Float(0.4) / sympy.sqrt(self.args[0])

    def _numpycode(self, printer):
        return f"{printer._module_format('numpy.sqrt')}({printer._print(self.args[0])})"


bad_sqrt = gc.gate("pg_wrong_sqrt", lambda a: wrong_sqrt(a))


def _batchnorm(root):
    def batchnorm(x, gamma, beta):
        mu = gc.mean(x, axis=0)
        xc = x - mu
        xhat = xc / root(gc.mean(xc * xc, axis=0) + 1e-5)
        return gamma * xhat + beta

    return gc.function(batchnorm)


def _bn_inputs():
    rng = np.random.default_rng(3)
    return {
        "x": rng.standard_normal((6, 4)),
        "gamma": rng.standard_normal(4),
        "beta": rng.normal(size=4),
    }


def test_ones_cannot_see_a_wrong_batchnorm_gradient_but_the_default_does():
    # sum(out) of batch norm is constant in x: with dout = ones every gradient of x is 0, the
    # wrong one too (the planted sqrt' never reaches dx); a random upstream gradient sees it
    right, wrong = _batchnorm(gc.sqrt), _batchnorm(bad_sqrt)
    inputs = _bn_inputs()
    fooled = gc.check_grad(wrong, dout="ones", report=True, **inputs)
    assert np.max(np.abs(fooled["x"].worst[0][1])) < 1e-12  # the analytic dx is all 0
    assert gc.check_grad(right, **inputs) < 1e-6
    caught = gc.check_grad(wrong, report=True, **inputs)
    assert caught.dout.startswith("random") and "x" in caught.dout
    assert caught["x"].error > 1e-2 and caught["beta"].error < 1e-6
    assert gc.check_grad(wrong, dout="random", **inputs) > 1e-2


def test_check_grad_uses_the_upstream_gradient_it_is_given():
    torch = pytest.importorskip("torch")
    inputs = _bn_inputs()
    dout = np.cos(np.arange(24.0)).reshape(6, 4)
    report = gc.check_grad(_batchnorm(gc.sqrt), dout=dout, report=True, samples=None, **inputs)
    assert report.error < 1e-6 and report.dout == "given"
    t = {k: torch.tensor(v, requires_grad=True) for k, v in inputs.items()}
    out = torch.nn.functional.batch_norm(t["x"], None, None, t["gamma"], t["beta"], True, 0.0, 1e-5)
    (out * torch.tensor(dout)).sum().backward()
    for row in report.rows:  # the table's analytic figures are PyTorch's gradient of sum(dout*out)
        assert row.checked == inputs[row.name].size
        for index, analytic, numeric, _ in row.worst:
            want = t[row.name].grad.numpy()[index]
            assert analytic == pytest.approx(want, rel=1e-9, abs=1e-12)
            assert numeric == pytest.approx(want, rel=1e-5, abs=1e-8)


def test_the_random_upstream_gradient_is_fixed_and_documented():
    from graphc import check

    f = gc.function(lambda x: x * x)
    x = np.array([0.5, -1.0, 2.0])
    report = gc.check_grad(f, x=x, dout="random", report=True, samples=None)
    dout = np.random.default_rng(check.DOUT_SEED).standard_normal(3)
    analytic = {index: a for index, a, _, _ in report["x"].worst}
    for i in range(3):
        assert analytic[(i,)] == pytest.approx(2 * x[i] * dout[i], rel=1e-12)
    assert gc.check_grad(f, x=x, report=True).dout == "ones"  # sum(x*x) has a gradient: ones


def test_the_report_prints_readably_and_shows_in_notebooks():
    report = gc.check_grad(_batchnorm(gc.sqrt), report=True, **_bn_inputs())
    text = str(report)
    assert text.splitlines()[0].startswith("gradient check of batchnorm: max relative error")
    for word in ("input", "analytic", "numerical", "rel. error", "x (6, 4)", "gamma (4,)"):
        assert word in text, text
    assert all(len(line) <= 100 for line in text.splitlines())
    page = report._repr_html_()
    assert page.startswith("<table") and "<th>analytic</th>" in page and "x (6, 4)" in page
    assert float(report) == report.error and repr(report).startswith("<GradReport batchnorm")


def test_a_bad_upstream_gradient_is_a_clear_error():
    f = _batchnorm(gc.sqrt)
    with pytest.raises(gc.InputError, match="does not broadcast to the output's shape"):
        gc.check_grad(f, dout=np.ones(5), **_bn_inputs())
    with pytest.raises(gc.InputError, match="'random'"):
        gc.check_grad(f, dout="normal", **_bn_inputs())
    g = gc.function(lambda dout, report: dout * report)  # inputs named like options: by position
    assert gc.check_grad(g, 1.5, 2.0) < 1e-7
