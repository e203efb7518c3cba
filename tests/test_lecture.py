"""The lecture circuits, checked against the numbers on the slides and against SymPy.

Oracles: hand-derived lecture numbers ((x+y)z, the sigmoid neuron, max routing, fan-out) and
SymPy differentiating the whole expression (x^2 + 2xy^2 + y^3).
"""

import math

import numpy as np
import pytest
import sympy
from conftest import central_diff_all

import graphc as gc

# ---------------------------------------------------------------- (x + y) z


@gc.function
def add_mul(x, y, z):
    return (x + y) * z


def test_add_mul_value_and_gradients_match_the_slide():
    value, grads = add_mul.value_and_grad(x=-2.0, y=5.0, z=-4.0)
    assert value == -12.0
    assert grads == {"x": -4.0, "y": -4.0, "z": 3.0}


def test_add_mul_call_positional_keyword_and_grad_agree():
    assert add_mul(-2.0, 5.0, -4.0) == -12.0
    assert add_mul(x=-2.0, y=5.0, z=-4.0) == -12.0
    assert add_mul(-2.0, 5.0, z=-4.0) == -12.0
    assert add_mul.grad(x=-2.0, y=5.0, z=-4.0) == {"x": -4.0, "y": -4.0, "z": 3.0}


def test_python_float_inputs_give_python_floats():
    value, grads = add_mul.value_and_grad(x=-2.0, y=5.0, z=-4.0)
    assert type(value) is float
    assert all(type(g) is float for g in grads.values())


def test_python_int_inputs_are_accepted_as_numbers():
    value, grads = add_mul.value_and_grad(x=-2, y=5, z=-4)
    assert value == -12.0
    assert grads == {"x": -4.0, "y": -4.0, "z": 3.0}


def test_add_mul_inputs_are_the_parameters_in_order():
    assert tuple(add_mul.inputs) == ("x", "y", "z")


def test_check_grad_on_add_mul_is_tiny():
    assert gc.check_grad(add_mul, x=-2.0, y=5.0, z=-4.0) < 1e-7


# ---------------------------------------------------------------- the sigmoid neuron

NEURON_POINT = dict(w0=2.0, x0=-1.0, w1=-3.0, x1=-2.0, w2=-3.0)
NEURON_VALUE = 0.7311
NEURON_GRADS = {"w0": -0.1966, "x0": 0.3932, "w1": -0.3932, "x1": -0.5898, "w2": 0.1966}


@gc.function
def neuron_staged(w0, x0, w1, x1, w2):
    dot = w0 * x0 + w1 * x1 + w2
    return 1 / (1 + gc.exp(-dot))


@gc.function
def neuron_gate(w0, x0, w1, x1, w2):
    return gc.sigmoid(w0 * x0 + w1 * x1 + w2)


@pytest.mark.parametrize("neuron", [neuron_staged, neuron_gate], ids=["staged", "sigmoid-gate"])
def test_sigmoid_neuron_matches_the_slide(neuron):
    value, grads = neuron.value_and_grad(**NEURON_POINT)
    assert value == pytest.approx(NEURON_VALUE, abs=1e-4)
    assert set(grads) == set(NEURON_GRADS)
    for name, expected in NEURON_GRADS.items():
        assert grads[name] == pytest.approx(expected, abs=1e-4), name


@pytest.mark.parametrize("neuron", [neuron_staged, neuron_gate], ids=["staged", "sigmoid-gate"])
def test_sigmoid_neuron_matches_the_exact_formula(neuron):
    # dot = 1, s = sigmoid(1); d/dw0 = s(1-s) x0, etc.
    s = 1 / (1 + math.exp(-1.0))
    ds = s * (1 - s)
    p = NEURON_POINT
    exact = {"w0": ds * p["x0"], "x0": ds * p["w0"], "w1": ds * p["x1"], "x1": ds * p["w1"]}
    exact["w2"] = ds
    value, grads = neuron.value_and_grad(**p)
    assert value == pytest.approx(s, rel=1e-14)
    for name in exact:
        assert grads[name] == pytest.approx(exact[name], rel=1e-12), name


def test_sigmoid_neuron_built_from_symbols():
    w0, x0, w1, x1, w2 = gc.symbols("w0 x0 w1 x1 w2")
    f = gc.function(1 / (1 + gc.exp(-(w0 * x0 + w1 * x1 + w2))))
    assert tuple(f.inputs) == ("w0", "x0", "w1", "x1", "w2")
    value, grads = f.value_and_grad(**NEURON_POINT)
    assert value == pytest.approx(NEURON_VALUE, abs=1e-4)
    for name, expected in NEURON_GRADS.items():
        assert grads[name] == pytest.approx(expected, abs=1e-4), name


# ---------------------------------------------------------------- max gate routing


@gc.function
def max_gate(z, w):
    return gc.maximum(z, w)


@pytest.mark.parametrize(
    ("z", "w", "expected"),
    [
        (4.0, 2.0, {"z": 1.0, "w": 0.0}),
        (-1.0, 3.0, {"z": 0.0, "w": 1.0}),
        (2.5, 2.5, {"z": 1.0, "w": 0.0}),  # a tie: the first argument takes the whole gradient
    ],
)
def test_max_gate_routes_the_whole_gradient_to_the_larger_input(z, w, expected):
    value, grads = max_gate.value_and_grad(z=z, w=w)
    assert value == max(z, w)
    assert grads == expected


def test_max_gate_scales_the_upstream_gradient():
    # the lecture circuit 2 * max(z, w): the winner gets the upstream 2, the other 0
    @gc.function
    def f(z, w):
        return 2.0 * gc.maximum(z, w)

    assert f.grad(z=2.0, w=-1.0) == {"z": 2.0, "w": 0.0}
    assert f.grad(z=-2.0, w=1.0) == {"z": 0.0, "w": 2.0}


def test_max_gate_tie_swapped_arguments_still_favour_the_first():
    @gc.function
    def f(z, w):
        return gc.maximum(w, z)

    assert f.grad(z=1.0, w=1.0) == {"z": 0.0, "w": 1.0}


def test_max_gate_routing_is_elementwise_on_arrays():
    z = np.array([1.0, 5.0, 3.0, -2.0])
    w = np.array([2.0, 4.0, 3.0, -3.0])
    grads = max_gate.grad(z=z, w=w)
    np.testing.assert_array_equal(grads["z"], [0.0, 1.0, 1.0, 1.0])
    np.testing.assert_array_equal(grads["w"], [1.0, 0.0, 0.0, 0.0])


def test_minimum_gate_routes_to_the_smaller_input_and_the_first_on_a_tie():
    @gc.function
    def f(a, b):
        return gc.minimum(a, b)

    assert f.grad(a=1.0, b=2.0) == {"a": 1.0, "b": 0.0}
    assert f.grad(a=3.0, b=2.0) == {"a": 0.0, "b": 1.0}
    assert f.grad(a=2.0, b=2.0) == {"a": 1.0, "b": 0.0}


def test_the_lecture_circuit_with_add_mul_and_max():
    # f = 2 * (x*y + max(z, w)) at x=3, y=-4, z=2, w=-1: the slide's gradients
    @gc.function
    def f(x, y, z, w):
        return 2.0 * (x * y + gc.maximum(z, w))

    value, grads = f.value_and_grad(x=3.0, y=-4.0, z=2.0, w=-1.0)
    assert value == -20.0
    assert grads == {"x": -8.0, "y": 6.0, "z": 2.0, "w": 0.0}


# ---------------------------------------------------------------- fan-out adds


def test_a_value_used_twice_gets_the_sum_of_its_gradients():
    @gc.function
    def f(x):
        return x * x + x

    value, grads = f.value_and_grad(x=3.0)
    assert value == 12.0
    assert grads == {"x": 7.0}


def test_fan_out_through_intermediate_values():
    # q = x + y used twice: f = q * q * z, df/dx = 2 q z
    @gc.function
    def f(x, y, z):
        q = x + y
        return q * q * z

    value, grads = f.value_and_grad(x=1.0, y=2.0, z=5.0)
    assert value == 45.0
    assert grads == {"x": 30.0, "y": 30.0, "z": 9.0}


def test_fan_out_of_x_times_x_via_symbols():
    (x,) = (gc.symbols("x"),)
    f = gc.function(x * x + x)
    assert f.grad(x=3.0) == {"x": 7.0}
    assert f.grad(x=-0.5) == {"x": 0.0}


# ---------------------------------------------------------------- x^2 + 2xy^2 + y^3 vs SymPy

POINTS = [(1.0, 2.0), (-1.5, 0.5), (0.0, -3.0), (2.25, -1.25), (10.0, 0.1)]
X, Y = sympy.symbols("x y")
POLY = X**2 + 2 * X * Y**2 + Y**3


def _sympy_grads(x, y):
    at = {X: x, Y: y}
    return {
        "x": float(sympy.diff(POLY, X).evalf(subs=at)),
        "y": float(sympy.diff(POLY, Y).evalf(subs=at)),
    }


def _poly_traced():
    @gc.function
    def f(x, y):
        return x**2 + 2 * x * y**2 + y**3

    return f


def _poly_symbols():
    x, y = gc.symbols("x y")
    return gc.function(x**2 + 2 * x * y**2 + y**3)


def _poly_sympy():
    return gc.from_sympy(POLY)


@pytest.mark.parametrize("make", [_poly_traced, _poly_symbols, _poly_sympy])
@pytest.mark.parametrize(("x", "y"), POINTS)
def test_polynomial_df_dx_is_2x_plus_2y2(make, x, y):
    f = make()
    value, grads = f.value_and_grad(x=x, y=y)
    assert value == pytest.approx(x**2 + 2 * x * y**2 + y**3, rel=1e-14, abs=1e-14)
    assert grads["x"] == pytest.approx(2 * x + 2 * y**2, rel=1e-14, abs=1e-14)
    sym = _sympy_grads(x, y)
    assert grads["x"] == pytest.approx(sym["x"], rel=1e-12, abs=1e-12)
    assert grads["y"] == pytest.approx(sym["y"], rel=1e-12, abs=1e-12)


def test_from_sympy_inputs_are_alphabetical():
    c, a, b = sympy.symbols("c a b")  # created out of alphabetical order
    f = gc.from_sympy(c * a + b)
    assert tuple(f.inputs) == ("a", "b", "c")
    assert f(a=2.0, b=3.0, c=5.0) == 13.0
    assert f(2.0, 3.0, 5.0) == 13.0
    assert f.grad(a=2.0, b=3.0, c=5.0) == {"a": 5.0, "b": 1.0, "c": 2.0}


def test_symbols_keep_creation_order_and_accept_explicit_inputs():
    y, x = gc.symbols("y x")
    f = gc.function(x - y)
    assert tuple(f.inputs) == ("y", "x")
    g = gc.function(x - y, inputs=[x, y])
    assert tuple(g.inputs) == ("x", "y")
    assert g(5.0, 2.0) == 3.0
    assert g.grad(5.0, 2.0) == {"x": 1.0, "y": -1.0}


def test_from_sympy_with_functions_matches_sympy_diff():
    x, y, z = sympy.symbols("x y z")
    expr = sympy.exp(x * y) / (1 + z**2) - sympy.log(x) * sympy.tanh(y - z) + sympy.sqrt(x + z)
    f = gc.from_sympy(expr)
    point = {"x": 0.7, "y": -0.4, "z": 1.3}
    at = {x: point["x"], y: point["y"], z: point["z"]}
    value, grads = f.value_and_grad(**point)
    assert value == pytest.approx(float(expr.evalf(subs=at)), rel=1e-13)
    for s in (x, y, z):
        assert grads[s.name] == pytest.approx(float(sympy.diff(expr, s).evalf(subs=at)), rel=1e-12)


def test_lecture_example_gradients_also_match_central_differences():
    grads = neuron_staged.grad(**NEURON_POINT)
    numeric = central_diff_all(neuron_staged, NEURON_POINT)
    for name in NEURON_POINT:
        assert grads[name] == pytest.approx(numeric[name], rel=1e-7), name
