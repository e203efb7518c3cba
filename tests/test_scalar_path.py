"""The Python-float path: calls with Python floats run the module's statements on floats.

The oracles are independent: hand-written Python, central differences, and the NumPy module
itself where the two paths must agree bit for bit in what they return (inf, NaN, types).
"""

import math
import warnings

import numpy as np
import pytest

import graphc as gc
from graphc.emit.scalar import FLOAT_HELPERS, FLOATS, _logaddexp
from graphc.ir.errors import InputError
from graphc.ir.special import HELPERS


def neuron(w0, x0, w1, x1, w2):
    return 1 / (1 + gc.exp(-(w0 * x0 + w1 * x1 + w2)))


def neuron_by_hand(w0, x0, w1, x1, w2):
    f = 1.0 / (1.0 + math.exp(-(w0 * x0 + w1 * x1 + w2)))
    d = f * (1.0 - f)
    return f, {"w0": x0 * d, "x0": w0 * d, "w1": x1 * d, "x1": w1 * d, "w2": d}


def numpy_path(f, *args):
    """The same call through the NumPy module: NumPy floats do not take the float path."""
    return f.value_and_grad(*(np.float64(a) for a in args))


@pytest.mark.parametrize("fused", [False, True])
def test_the_neuron_on_floats_matches_the_hand_written_backprop(fused):
    f = gc.function(neuron)
    f = f.fused() if fused else f
    args = (2.0, -1.0, -3.0, -2.0, -3.0)
    for _ in range(2):  # the first call compiles, the second takes the float path
        out, grads = f.value_and_grad(*args)
        want, want_grads = neuron_by_hand(*args)
        assert type(out) is float and out == pytest.approx(want, rel=1e-15)
        for k, g in grads.items():
            assert type(g) is float and g == pytest.approx(want_grads[k], rel=1e-14)
    assert f.value_and_grad.__module__ is None  # the straight-line entry took over
    assert f(*args) == pytest.approx(want, rel=1e-15) and type(f(*args)) is float


def test_keywords_and_positions_reach_the_float_path_alike():
    f = gc.function(lambda x, y, z: (x + y) * z)
    f(1.0, 2.0, 3.0)
    assert f.value_and_grad(-2.0, 5.0, -4.0) == (-12.0, {"x": -4.0, "y": -4.0, "z": 3.0})
    assert f.value_and_grad(z=-4.0, x=-2.0, y=5.0) == (-12.0, {"x": -4.0, "y": -4.0, "z": 3.0})
    assert f.value_and_grad(-2.0, z=-4.0, y=5.0)[0] == -12.0
    assert f(-2.0, 5.0, z=-4.0) == -12.0


def test_every_call_style_runs_the_float_path_and_binds_as_python_does():
    # oracle: the hand-written backprop, called the same way; and Python's own binding of a
    # plain function with these parameters decides what each call means
    f = gc.function(neuron)
    args = (2.0, -1.0, -3.0, -2.0, -3.0)
    names = ("w0", "x0", "w1", "x1", "w2")
    f.value_and_grad(*args)
    assert f.value_and_grad.__module__ is None  # the straight-line entry took over
    want = neuron_by_hand(*args)
    for k in range(len(args) + 1):  # k inputs by position, the rest by name, in any order
        by_name = dict(reversed(list(zip(names[k:], args[k:]))))
        out, grads = f.value_and_grad(*args[:k], **by_name)
        assert out == pytest.approx(want[0], rel=1e-15) and type(out) is float
        assert grads == pytest.approx(want[1], rel=1e-14)
        assert f(*args[:k], **by_name) == pytest.approx(want[0], rel=1e-15)
        assert f.__call__.__module__ is None  # f(...) too, once it has been called
    # a NumPy float by name or by position still takes the NumPy path, with NumPy's type
    out, grads = f.value_and_grad(*args[:2], w1=np.float32(-3.0), x1=-2.0, w2=-3.0)
    assert type(out) is np.float32 and out == pytest.approx(want[0], rel=1e-6)  # NEP 50
    assert grads["w1"] == pytest.approx(want[1]["w1"], rel=1e-6)


def test_bad_calls_by_name_say_what_is_wrong_on_the_float_path():
    f = gc.function(neuron)
    f.value_and_grad(2.0, -1.0, -3.0, -2.0, -3.0)
    with pytest.raises(InputError, match=r"missing input\(s\) \['w1', 'x1'\]"):
        f.value_and_grad(2.0, x0=-1.0, w2=1.0)  # x0 by name is not reported missing
    with pytest.raises(InputError, match="'x0' twice"):
        f.value_and_grad(2.0, -1.0, -3.0, x0=1.0, x1=-2.0, w2=-3.0)
    with pytest.raises(InputError, match="unexpected input '_pos_w0'"):
        f(_pos_w0=1.0, x0=-1.0, w1=-3.0, x1=-2.0, w2=-3.0)  # the entry's own names are not inputs
    with pytest.raises(InputError, match="got 6 positional"):
        f(1.0, 2.0, 3.0, 4.0, 5.0, 6.0)


@pytest.mark.parametrize("reduction", [gc.sum, gc.mean, gc.max])
@pytest.mark.parametrize("fused", [False, True])
def test_a_reduction_of_a_scalar_takes_the_float_path(reduction, fused):
    # a loss written for arrays, called on floats: sum, mean and max of a scalar are the scalar
    def loss(w, x, y):
        return reduction((gc.sigmoid(w * x) - y) ** 2) + gc.sum(gc.tanh(w) * x)

    def by_hand(w, x, y):
        s = 1.0 / (1.0 + math.exp(-w * x))
        t = math.tanh(w)
        d = 2.0 * (s - y) * s * (1.0 - s)
        grads = {"w": d * x + (1.0 - t * t) * x, "x": d * w + t, "y": -2.0 * (s - y)}
        return (s - y) ** 2 + t * x, grads

    f = gc.function(loss)
    f = f.fused() if fused else f
    f.value_and_grad(0.1, 0.2, 0.3)
    assert f.value_and_grad.__module__ is None  # the straight-line entry took over
    for args in [(0.5, 2.0, 1.0), (-1.5, 0.25, -0.5)]:
        out, grads = f.value_and_grad(w=args[0], x=args[1], y=args[2])
        want, want_grads = by_hand(*args)
        assert type(out) is float and out == pytest.approx(want, rel=1e-14)
        assert all(type(g) is float for g in grads.values())
        assert grads == pytest.approx(want_grads, rel=1e-13)


def test_bad_calls_say_what_is_wrong_on_the_float_path_too():
    f = gc.function(lambda x, y: x * y)
    f.value_and_grad(1.0, 2.0)
    with pytest.raises(InputError, match="missing input"):
        f.value_and_grad(1.0)
    with pytest.raises(InputError, match="takes 2 input"):
        f.value_and_grad(1.0, 2.0, 3.0)
    with pytest.raises(InputError, match="unexpected input 'z'"):
        f.value_and_grad(1.0, z=2.0)
    with pytest.raises(InputError, match="twice"):
        f(1.0, 2.0, x=2.0)
    with pytest.raises(InputError, match="boolean"):
        f.value_and_grad(True, 2.0)


@pytest.mark.parametrize(
    "fn, args, want",
    [
        (lambda x: gc.exp(x), (1000.0,), math.inf),  # math.exp raises OverflowError
        (lambda x, y: x / y, (1.0, 0.0), math.inf),  # ZeroDivisionError
        (lambda x: gc.log(x), (0.0,), -math.inf),  # math.log raises ValueError
        (lambda x: gc.sqrt(x), (-1.0,), math.nan),
        (lambda x, y: x**y, (-8.0, 1 / 3), math.nan),  # Python goes complex
    ],
)
def test_where_python_raises_or_goes_complex_numpy_answers(fn, args, want):
    f = gc.function(fn)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        f.value_and_grad(*(a + 0.5 for a in args))  # compiled on a harmless call
        expected = numpy_path(f, *args)
        got = f.value_and_grad(*args)
    assert type(got[0]) is float and not isinstance(got[0], complex)
    assert np.array_equal(got[0], want, equal_nan=True)
    for k, g in got[1].items():
        assert type(g) is float
        assert np.array_equal(g, expected[1][k], equal_nan=True)
    with pytest.warns(RuntimeWarning):  # NumPy's warning, as on the NumPy path
        f.value_and_grad(*args)


def test_numpy_floats_and_integers_keep_the_numpy_path():
    f = gc.function(lambda x, y: x * gc.exp(y))
    f.value_and_grad(1.0, 2.0)
    out, grads = f.value_and_grad(np.float32(1.0), np.float32(2.0))
    assert type(out) is np.float32 and type(grads["y"]) is np.float32
    with pytest.warns(RuntimeWarning, match="overflow"):  # NumPy's semantics: inf, warned
        out, _ = f.value_and_grad(np.float64(1.0), 1000.0)
    assert out == math.inf
    out, _ = f.value_and_grad(1, 2)
    assert out == pytest.approx(math.exp(2.0))
    x = np.array([1.0, 2.0])
    out, grads = f.value_and_grad(x, 0.0)
    assert np.array_equal(out, x) and grads["y"] == pytest.approx(3.0)


def test_comparisons_give_floats_not_bools():
    f = gc.function(lambda x, y: gc.relu(x) + gc.maximum(x, y) + gc.where(x > y, x, y))
    f(0.5, 0.25)
    for args in [(2.0, 1.0), (-2.0, 1.0), (-2.0, -3.0)]:
        out, grads = f.value_and_grad(*args)
        expected = numpy_path(f, *args)
        assert type(out) is float and out == expected[0]
        assert all(type(g) is float for g in grads.values())
        assert grads == {k: float(v) for k, v in expected[1].items()}


def test_gradients_match_central_differences_on_floats():
    def f(a, b):
        return gc.tanh(a * b) + gc.sigmoid(a - b) * gc.log(b * b + 1.0) + gc.abs(a) ** 1.5

    fn = gc.function(f).fused()
    fn(0.1, 0.2)
    a, b, h = 0.7, -1.3, 1e-6
    _, grads = fn.value_and_grad(a, b)
    da = (fn(a + h, b) - fn(a - h, b)) / (2 * h)
    db = (fn(a, b + h) - fn(a, b - h)) / (2 * h)
    assert grads["a"] == pytest.approx(da, rel=1e-7)
    assert grads["b"] == pytest.approx(db, rel=1e-7)


@pytest.mark.parametrize(
    "name",
    [
        *("_args", "_kwargs", "_checked", "_np_exp", "_np_", "_result"),
        *("_absent", "_twice", "_more", "_unknown", "_otherwise", "_pos_", "_pos_y", "absent"),
    ],
)
def test_an_input_named_like_the_entry_variables_takes_the_float_path_too(name):
    # the module renames such an input (`_args_`), and the float path's own `np` functions take
    # a prefix no variable of the module starts with: the floats go straight through, right
    a, y = gc.symbols(f"{name} y")
    f = gc.function(a * y * gc.exp(a))
    value, grads = f.value_and_grad(2.0, 3.0)
    e2 = math.exp(2.0)
    assert value == pytest.approx(6.0 * e2, rel=1e-15)
    assert grads[name] == pytest.approx(9.0 * e2, rel=1e-15)  # y e^a + a y e^a
    assert grads["y"] == pytest.approx(2.0 * e2, rel=1e-15)
    assert f.value_and_grad.__module__ != "graphc.function"  # the float path's entry
    assert f.value_and_grad(**{"y": 3.0, name: 2.0}) == (value, grads)  # by name too
    assert f.value_and_grad(2.0, y=3.0) == (value, grads)
    with pytest.raises(InputError, match="twice"):
        f.value_and_grad(2.0, 3.0, **{name: 2.0})


def test_float_helpers_compute_what_the_numpy_helpers_compute():
    namespace = {"np": np}
    for name in FLOAT_HELPERS:
        exec(HELPERS[name], namespace)
    points = [0.0, -0.0, 1e-300, 0.5, -0.5, 3.0, -3.0, 40.0, -40.0, 710.0, -710.0, 1e308]
    points += [-1e308, math.inf, -math.inf, math.nan]
    for name, fn in FLOAT_HELPERS.items():
        for x in points:
            args = {"leaky_relu": (x, 0.1), "route_to_max": (0.5, x)}.get(name, (x,))
            options = (None, False) if name == "route_to_max" else ()  # axis, keepdims
            with np.errstate(all="ignore"):
                want = namespace[name](*map(np.float64, args), *options)
            got = fn(*args, *options)
            wants, gots = (want, got) if isinstance(want, tuple) else ((want,), (got,))  # a pair
            assert len(gots) == len(wants), (name, x)
            for w, g in zip(wants, gots):
                assert g == pytest.approx(float(w), rel=4e-16, nan_ok=True), (name, x)
    for a, b in [(0.0, 1.0), (1.0, 0.0), (2.0, 2.0), (-1e308, 1e308), (math.inf, math.inf)]:
        with np.errstate(over="ignore"):
            assert _logaddexp(a, b) == np.logaddexp(a, b)
    assert FLOATS.maximum(math.nan, 1.0) != FLOATS.maximum(math.nan, 1.0)  # NaN wins
    assert FLOATS.maximum(1.0, math.nan) != FLOATS.maximum(1.0, math.nan)
    assert FLOATS.minimum(1.0, math.nan) != FLOATS.minimum(1.0, math.nan)


@pytest.mark.parametrize(
    "fn, args, want",
    [
        (lambda x, y: x, (1.5, -2.0), (1.5, {"x": 1.0, "y": 0.0})),  # y unused: gradient 0.0
        (lambda x, y: x * 0.0 + 2.0, (1.5, -2.0), (2.0, {"x": 0.0, "y": 0.0})),  # a constant
        (lambda x, y: gc.relu(x - y), (1.0, 1.0), (0.0, {"x": 0.0, "y": 0.0})),  # at the kink
    ],
)
def test_degenerate_circuits_give_floats_on_the_float_path(fn, args, want):
    f = gc.function(fn)
    f(0.5, 0.25)
    assert f.value_and_grad.__module__ != "graphc.function"  # the float entry runs these calls
    out, grads = f.value_and_grad(*args)
    assert (out, grads) == want
    assert type(out) is float and all(type(g) is float for g in grads.values())


@pytest.mark.parametrize("style", ["keywords", "positions"])
def test_an_array_constant_keeps_floats_on_the_numpy_path(style):
    # a module with `C1 = np.array([0.5, 2.0])` has no float version (math has no arrays): the
    # call must still answer, with NumPy's values, first call and repeated ones alike
    def f(x0, x1):
        return gc.sum(x0 * x1 * np.array([0.5, 2.0])) + x0 + np.array([0.25])

    g = gc.function(f)
    for _ in range(3):
        if style == "keywords":
            value, grads = g.value_and_grad(x0=1.5, x1=-2.0)
        else:
            value, grads = g.value_and_grad(1.5, -2.0)
        np.testing.assert_allclose(value, [1.5 * -2.0 * 2.5 + 1.5 + 0.25], rtol=1e-15)
        assert grads["x0"] == pytest.approx(-2.0 * 2.5 + 1.0, rel=1e-15)  # by hand
        assert grads["x1"] == pytest.approx(1.5 * 2.5, rel=1e-15)
