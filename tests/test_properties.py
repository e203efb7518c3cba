"""Property tests: graphc's gradients of random graphs against independent oracles.

Each random program (tests/strategies.py) is compiled three ways, unfused, fused at
level="patterns" and fused at level="elementwise", and every version's gradients are compared
with an oracle that never calls graphc:

- central finite differences (float64, a fourth-order central stencil) of the program run in
  NumPy, relative error below 1e-6, for programs over scalars, vectors, matrices and batches of
  matrices, and for programs made mostly of broadcasts and self-reductions;
- SymPy differentiating the whole expression of a scalar program, evaluated to 30 correct
  digits, agreement to 1e-12 (where the derivative cancels to almost nothing, 1e-12 of a few
  ulps of the terms it sums, the most any float program can promise), for programs whose
  every value (and the log of every power's base) float64 computes to 1e-14: else no float
  program has the digits to match.

The PyTorch oracle is in test_oracles_torch.py. Budgets (CI mode and `--slow`) are set with
`strategies.examples`; docs/verification.md explains how to reproduce a failure.
"""

from __future__ import annotations

import ast
import math

import numpy as np
import sympy
from hypothesis import Phase, assume, given, settings
from strategies import (
    Case,
    NumpyOps,
    SympyOps,
    broadcast_programs,
    examples,
    scalar_programs,
    vector_programs,
)

from graphc.ir import ops

FD_RTOL = 1e-6
SYMPY_RTOL = 1e-12
ULPS = 8 * np.finfo(np.float64).eps  # round-off allowed, relative to the size of summed terms


# ---------------------------------------------------------------- the finite-difference oracle


def _run(case: Case, inputs: dict):
    ops = NumpyOps()
    with np.errstate(all="raise", under="ignore"):
        out = case.numpy(ops)(**inputs)
    return np.asarray(out, dtype=np.float64), ops.decisions


def _same_side(a: list, b: list) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def finite_differences(case: Case, h: float = 1e-4) -> tuple[dict, float]:
    """d sum(f) / d input, by the central stencil (-f(x+2h) + 8f(x+h) - 8f(x-h) + f(x-2h))/12h.

    Differences are taken entry by entry before summing, so entries that do not depend on a
    coordinate add exactly zero. Returns the gradients and an estimate of their round-off
    (the output's magnitude times a few ulps over the step). Fails if a step crosses a kink.
    """
    base, decided = _run(case, case.inputs)
    grads, noise = {}, 0.0
    for name, value in case.inputs.items():
        x = np.array(value, dtype=np.float64)
        grad = np.zeros(x.shape)
        for i in np.ndindex(x.shape):
            step = h * max(1.0, abs(float(x[i])))
            samples = []
            for k in (2, 1, -1, -2):
                moved = x.copy()
                moved[i] += k * step
                arg = moved if np.ndim(value) else float(moved)
                out, side = _run(case, {**case.inputs, name: arg})
                assert _same_side(side, decided), (
                    f"generator bug: a finite-difference step on {name}{list(i)} crosses a kink"
                )
                samples.append(out)
            p2, p1, m1, m2 = samples
            grad[i] = np.sum(-(p2 - m2) + 8 * (p1 - m1)) / (12 * step)
            noise = max(noise, 18 * np.finfo(float).eps * np.max(np.abs(base), initial=1) / step)
        grads[name] = grad if np.ndim(value) else float(grad)
    return grads, noise


def relative_errors(actual, expected, floor: float) -> np.ndarray:
    """|a - e| / max(|a| + |e|, floor), entry by entry."""
    a, e = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, f"gradient shape {a.shape}, expected {e.shape}"
    return np.abs(a - e) / np.maximum(np.abs(a) + np.abs(e), floor)


def check_against_differences(case: Case):
    """Every version's value and gradients against the differences; where a gradient misses
    them, against differences with a quarter of the step (256 times less truncation error: a
    chain of exps has fifth derivatives of 1e12), which then decide alone."""
    reference, noise = finite_differences(case)
    refined = None
    expected_value, _ = _run(case, case.inputs)
    floor = max(1e-8, noise / FD_RTOL)  # below this, the differences are round-off
    for level, f in case.versions().items():
        value, grads = f.value_and_grad(**case.inputs)
        np.testing.assert_allclose(value, expected_value, rtol=1e-12, atol=1e-12, err_msg=level)
        assert list(grads) == list(case.inputs), level
        for name in case.inputs:
            worst = float(np.max(relative_errors(grads[name], reference[name], floor), initial=0))
            if worst >= FD_RTOL and refined is None:
                refined = finite_differences(case, h=2.5e-5)
                reference, noise = refined
                floor = max(1e-8, noise / FD_RTOL)
            if refined is not None:
                errors = relative_errors(grads[name], reference[name], floor)
                worst = float(np.max(errors, initial=0))
            assert worst < FD_RTOL, (
                f"level={level}: d/d{name} relative error {worst:.2e}\n"
                f"graphc:      {grads[name]!r}\ndifferences: {reference[name]!r}"
            )


@examples(ci=300, slow=4000)
@given(vector_programs())
def test_vector_graphs_match_finite_differences(case):
    check_against_differences(case)


@examples(ci=150, slow=2000)
@given(scalar_programs())
def test_scalar_graphs_match_finite_differences(case):
    check_against_differences(case)


@examples(ci=150, slow=1500)
@given(broadcast_programs())
def test_broadcast_graphs_match_finite_differences(case):
    check_against_differences(case)


# ---------------------------------------------------------------- the SymPy oracle


def _working_precision(case: Case, digits: int) -> int:
    """Decimal digits to evaluate exactly with: `digits`, plus twice the decades of the smallest
    input (exp(x) at x = 1e-116 is 1 + 1e-116: evalf would not notice that log of it needs
    117 digits and give 0), plus a margin."""
    tiny = min((abs(float(v)) for v in case.inputs.values() if float(v) != 0.0), default=1.0)
    return digits + 30 + 2 * max(0, -math.floor(math.log10(tiny)))


def _point(case: Case, symbols: dict, precision: int) -> dict:
    """The inputs as exact binary floats (SymPy converts a float's every bit)."""
    return {symbols[k]: sympy.Float(float(v), precision) for k, v in case.inputs.items()}


def sympy_gradients(case: Case, digits: int = 30) -> dict[str, tuple[float, float]]:
    """Each input's derivative of the whole expression by SymPy, and the size of its terms.

    The derivative is evaluated to `digits` correct digits, with enough working precision where
    terms cancel (-1 + exp(x) at x = 1e-116) or values round to 1. The size of the terms
    (`terms_size`) is what float round-off is relative to: a sum that cancels to almost nothing
    is computed by any float program to a few ulps of its terms, not of itself.
    """
    expr, symbols = case.sympy()
    precision = _working_precision(case, digits)
    point = _point(case, symbols, precision)
    out = {}
    for k, s in symbols.items():
        derivative = sympy.diff(expr, s)
        value = derivative.evalf(precision, subs=point)
        out[k] = (float(value), float(terms_size(derivative).evalf(15, subs=point)))
    return out


def float_exact(case: Case, rtol: float = 1e-14, digits: int = 30) -> bool:
    """Whether float64 computes every value of the program within `rtol` of its exact value, and
    the log of every power's base too (the pow gate's gradient in its exponent is log(base)*out).

    Where it does not, no float program has the derivative's digits: log(log(exp(exp(x)))) at
    x = 1e-71 is 0 in float64 (exp(x) rounds to 1), whatever computes it, and so is its
    derivative, where the exact one is 4e-71; so is log(exp(x)) in exp(x)**x's derivative.
    """
    symbols = {k: sympy.Symbol(k, real=True) for k in case.inputs}
    precision = _working_precision(case, digits)
    point = _point(case, symbols, precision)
    floats = {"ops": NumpyOps(), "np": np, **case.inputs}
    exact = {"ops": SympyOps, "np": np, **symbols}

    def close(code: str, log: bool = False) -> bool:
        with np.errstate(all="ignore"):
            value = eval(code, floats)  # the case's own code, on NumPy and on SymPy
            value = np.log(value) if log else value
        try:
            want = eval(code, exact)
            want = sympy.sympify(sympy.log(want) if log else want).evalf(precision, subs=point)
        except TypeError:  # a branch not taken compares log(0) = zoo: SymPy cannot evaluate it
            return False
        if not want.is_real:  # the log of a negative base: no real derivative to compare
            return False
        return abs(float(value) - float(want)) <= rtol * abs(float(want))

    for line in case.lines:
        name, code = line.split(" = ", 1)
        for node in ast.walk(ast.parse(code, mode="eval")):
            is_power = isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow)
            if is_power and not _is_number(node.right) and not close(ast.unparse(node.left), True):
                return False
        if not close(code):
            return False
        with np.errstate(all="ignore"):
            floats[name] = eval(code, floats)
        exact[name] = eval(code, exact)
    return True


def _is_number(node: ast.expr) -> bool:
    if isinstance(node, ast.UnaryOp):
        return _is_number(node.operand)
    return isinstance(node, ast.Constant)


def terms_size(e: sympy.Expr) -> sympy.Expr:
    """|e| with every sum and product inside taken term by term: the scale of e's round-off."""
    if e.is_Add:
        return sympy.Add(*map(terms_size, e.args))
    if e.is_Mul:
        return sympy.Mul(*map(terms_size, e.args))
    return sympy.Abs(e)


@examples(ci=200, slow=3000)
@given(scalar_programs(max_steps=6))
def test_scalar_graphs_match_sympy(case):
    assume(float_exact(case))  # else no float program can match to 1e-12 (the FD test still runs)
    expected = sympy_gradients(case)
    for level, f in case.versions().items():
        grads = f.grad(**case.inputs)
        for name, (want, size) in expected.items():
            floor = max(ULPS * size / SYMPY_RTOL, 1e-300)  # cancelled to below round-off
            error = float(relative_errors(grads[name], want, floor))
            assert error < SYMPY_RTOL, (
                f"level={level}: d/d{name} = {grads[name]!r}, SymPy says {want!r} "
                f"(relative error {error:.2e}; its terms have size {size:.3g})"
            )


# ---------------------------------------------------------------- the generator itself

# every gate of the table a user can write: a gate added to the table must be generated too
USER_GATES = [g.name for g in ops.TABLE if g.kind != ops.TENSOR] + [
    "matmul", "transpose", "reshape", "sum", "mean", "max",
]  # fmt: skip


def test_the_generator_reaches_every_gate():
    """Every gate of the table a user can write appears in the first graphs generated.

    Hypothesis also draws numbers from the constants in the code under test, so which programs
    come first shifts whenever graphc's source changes: the budget leaves room for that."""
    seen: set[str] = set()

    @settings(max_examples=1500, derandomize=True, database=None, phases=[Phase.generate])
    @given(vector_programs())
    def collect(case):
        if set(USER_GATES) - seen:  # done once every gate was seen; the rest is cheap
            seen.update(op for _, op in case.graphc().graph.nodes(data="op"))

    collect()
    assert not set(USER_GATES) - seen, sorted(set(USER_GATES) - seen)


@examples(ci=30, slow=300)
@given(vector_programs())
def test_a_printed_case_reads_back_as_the_same_case(case):
    again = Case.from_text(case.text)
    assert again.source == case.source and again.text == case.text
    for name, value in case.inputs.items():
        np.testing.assert_array_equal(again.inputs[name], value)
