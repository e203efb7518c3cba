"""Regressions found by the property tests and the oracles, one test per bug, named after it.

Oracles: the numbers written out here and NumPy; never graphc against itself.
"""

from __future__ import annotations

import numpy as np

import graphc as gc


def test_gradient_code_does_not_depend_on_what_was_compiled_before():
    """A cache of gradient formulas took the constants 2 and 2.0 for one key (2 == 2.0 and
    hash(2) == hash(2.0) in Python), so x*2's backward read `2.0 * dout` or `2 * dout` depending
    on which the process had compiled first, and the code differed between processes."""
    x = gc.symbols("x")
    sources = {}
    for c in (2.0, 2, 2.0):  # both orders, whatever ran before this test
        f = gc.function(x * c, inputs=[x], name="double")
        backward = f.source_for(x=1.0).split("def backward", 1)[1]
        sources.setdefault(repr(c), set()).add(backward)
        assert f"dx = {c!r} * dout" in backward
    assert all(len(s) == 1 for s in sources.values())


def test_a_gradient_a_zero_constant_cancels_keeps_its_shape():
    """mul's gradient dout * 0.0 folded to the number 0: the step lost dout's shape, and the sum
    gate's backward before it failed (expand_dims of a scalar, reshape of one entry)."""
    f = gc.function(lambda x: gc.sum(x * 2.0, axis=1) * 0.0)
    x = np.arange(6.0).reshape(2, 3)
    for level in ("none", "patterns", "elementwise"):
        value, grads = f.fused(level=level).value_and_grad(x=x)
        np.testing.assert_array_equal(value, np.zeros(2))
        assert grads["x"].shape == (2, 3)
        np.testing.assert_array_equal(grads["x"], np.zeros((2, 3)))
    with np.errstate(invalid="ignore"):
        value, grads = f.value_and_grad(x=np.array([[np.inf, 1.0, 1.0]]))
    assert np.isnan(value[0])  # inf * 0.0, as NumPy computes it


def test_elementwise_fusion_of_a_power_of_an_abs_is_finite_for_negative_inputs():
    """simplify wrote the fused gradient of |x|**(exp(|x|)/2) with |x**p| for |x|**p: the same
    to SymPy (complex powers), but NaN in NumPy for x < 0. Such a form is never chosen now."""
    f = gc.function(lambda x: gc.abs(x) ** (gc.exp(gc.abs(x)) * 0.5))
    xs = np.array([-2.0, -1.0, -0.5, 0.5, 1.0, 2.0])
    for level in ("none", "elementwise"):
        value, grads = f.fused(level=level).value_and_grad(x=xs)
        a, p = np.abs(xs), np.exp(np.abs(xs)) * 0.5
        np.testing.assert_allclose(value, a**p, rtol=1e-14)
        # d/dx |x|**p(x) = |x|**p * (p' log|x| + p/|x|) * sign(x), with p' = p
        want = a**p * (p * np.log(a) + p / a) * np.sign(xs)
        np.testing.assert_allclose(grads["x"], want, rtol=1e-12)


def test_fused_gradient_of_an_abs_of_graphc_functions_has_no_complex_parts():
    """graphc's tanh, sigmoid, ... did not say they are real, so SymPy differentiated |log(...)|
    of them through re, im and arg: np.arctan2, sin, cos, and a division by the log, NaN where
    it is 0. abs'(0) is 0, as for the unfused gate."""
    f = gc.function(lambda x: gc.abs(gc.log(gc.sqrt(gc.exp(gc.tanh(x))))))
    fused = f.fused(level="elementwise")
    assert "arctan2" not in fused.source_for(x=1.0)
    xs = np.array([-1.5, -0.2, 0.0, 0.3, 2.0])
    value, grads = fused.value_and_grad(x=xs)
    np.testing.assert_allclose(value, np.abs(np.tanh(xs) / 2), rtol=1e-14)
    want = np.sign(np.tanh(xs)) * (1 - np.tanh(xs) ** 2) / 2
    np.testing.assert_allclose(grads["x"], want, rtol=1e-12)


def test_elementwise_fusion_survives_sympy_failing_to_simplify_a_derivative():
    """sympy.simplify of the fused derivative of |log|log(x**2 + 0.5)||| raises KeyError: zoo
    (inside logcombine); the fused gate then keeps its unsimplified derivative (found by the
    SymPy property test's long run)."""
    f = gc.function(lambda x: gc.abs(gc.log(gc.abs(gc.log(x**2 + 0.5)))))
    xs = np.array([-2.0, -0.3, 0.0, 0.4, 1.5])
    inner = np.log(xs**2 + 0.5)
    # d/dx |log|u||| with u = log(x**2 + 0.5): sign(log|u|) * sign(u) / |u| * 2x / (x**2 + 0.5)
    want = np.sign(np.log(np.abs(inner))) * np.sign(inner) / np.abs(inner) * 2 * xs / (xs**2 + 0.5)
    for level in ("none", "elementwise"):
        value, grads = f.fused(level=level).value_and_grad(x=xs)
        np.testing.assert_allclose(value, np.abs(np.log(np.abs(inner))), rtol=1e-14)
        np.testing.assert_allclose(grads["x"], want, rtol=1e-12, atol=1e-300)
    assert f.fused(level="elementwise").grad(0.0) == {"x": 0.0}
