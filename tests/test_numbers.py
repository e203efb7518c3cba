"""Gates on plain numbers and arrays compute as NumPy does; `from graphc import *` is safe.

Outside tracing (no traced value among the arguments) a gate is a NumPy function: `gc.exp(1.0)`
is e, `gc.sum([1, 2, 3])` is 6. Every public gate is checked against NumPy's own function on
Python floats and ints, lists, and arrays of several dtypes: the same values and the same types
(NumPy's rules: a Python scalar adapts to an array's dtype, float32 stays float32). And
`from graphc import *` leaves Python's built-ins (`sum`, `max`, `abs`) as they are.
"""

import builtins
import inspect
import math
import warnings

import mpmath
import numpy as np
import pytest
import sympy

import graphc as gc
from graphc.front import gates

NEP50 = int(np.__version__.split(".")[0]) >= 2


def sigmoid(x):
    """The logistic function by mpmath (50 digits), in x's NumPy type."""
    x = np.asarray(x)
    with mpmath.workdps(50):
        out = [float(1 / (1 + mpmath.exp(-mpmath.mpf(float(v))))) for v in x.ravel()]
    dtype = x.dtype if x.dtype.kind == "f" else np.float64
    return np.array(out, dtype=dtype).reshape(x.shape)[()]


# gate: (graphc's call, NumPy's), each called on the same arguments
ONE_ARGUMENT = {
    "exp": np.exp,
    "log": np.log,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0),
}
VALUES = [  # numbers and arrays as a user passes them
    1.0, 0.5, -2.0, 3, 0, [0.25, 1.0, 4.0], (1, 2), np.float64(2.5), np.float32(0.75),
    np.int64(2), np.array([0.5, 2.0, 8.0]), np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32),
    np.array([1, 4, 9]), np.array(2.0), np.array([], dtype=np.float64),
]  # fmt: skip


def same(got, want) -> None:
    """NumPy's value and NumPy's type (a float64 scalar, a float32 array, ...)."""
    assert type(got) is type(want), (type(got), type(want))
    if isinstance(want, (np.ndarray, np.generic)):
        assert got.dtype == want.dtype and np.shape(got) == np.shape(want)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("value", VALUES, ids=repr)
@pytest.mark.parametrize("name", ONE_ARGUMENT)
def test_elementwise_gates_on_numbers_and_arrays_are_numpy(name, value):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # log(0), sqrt(-2): NumPy's NaN/inf
        same(getattr(gc, name)(value), ONE_ARGUMENT[name](value))


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_sigmoid_on_numbers_and_arrays(value):
    got = gc.sigmoid(value)
    want = sigmoid(value)
    single = np.float32 in (np.asarray(got).dtype, np.asarray(want).dtype)
    np.testing.assert_allclose(got, want, rtol=1e-7 if single else 2e-16)
    if NEP50:  # NumPy 1.x computes a float32 scalar with Python floats in float64
        assert np.asarray(got).dtype == np.asarray(want).dtype
    assert gc.sigmoid(1000.0) == 1.0 and gc.sigmoid(-1000.0) == 0.0  # no overflow


def test_the_examples_of_the_guide():
    assert gc.exp(1.0) == math.e
    assert gc.sum([1, 2, 3]) == 6
    np.testing.assert_array_equal(gc.maximum(np.array([1.0, 3.0]), 2), [2.0, 3.0])
    mask = np.array([True, False, True])
    np.testing.assert_array_equal(gc.where(mask, np.arange(3.0), -1.0), [0.0, -1.0, 2.0])


PAIRS = [
    (1.0, 2.0), (3, 2), (np.array([1.0, 5.0]), 2), (np.array([1, 5]), 2.5),
    (np.float32(1.5), 2.0), (np.array([1.0, 2.0], dtype=np.float32), 1.5),
    ([1.0, -1.0], np.array([[0.0], [2.0]])), (np.nan, 1.0), (np.array([np.nan, 1.0]), 0.0),
]  # fmt: skip


@pytest.mark.parametrize(("a", "b"), PAIRS, ids=repr)
def test_maximum_and_minimum_are_numpy(a, b):
    same(gc.maximum(a, b), np.maximum(a, b))
    same(gc.minimum(a, b), np.minimum(a, b))
    same(gc.maximum(b, a), np.maximum(b, a))


@pytest.mark.parametrize(
    ("cond", "a", "b"),
    [
        (np.array([True, False]), 1.0, 2.0),
        (np.array([True, False]), np.array([1, 2]), np.array([3.0, 4.0])),
        (np.array([[True], [False]]), np.arange(3.0), 0),
        (True, 1, 2.5),
        (np.arange(4.0) > 1.5, np.arange(4.0), -np.arange(4.0)),
    ],
    ids=repr,
)
def test_where_is_numpy(cond, a, b):
    same(gc.where(cond, a, b), np.where(cond, a, b))


ARRAYS = [
    np.arange(6.0).reshape(2, 3),
    np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 7,
    np.array([[1, 7, 3], [9, 2, 9]]),
    [[1.0, 2.0], [3.0, 4.0]],
    [4, 1, 3],
]


@pytest.mark.parametrize("x", ARRAYS, ids=lambda x: f"shape{np.shape(x)}")
@pytest.mark.parametrize(
    "kw",
    [{}, {"axis": 0}, {"axis": -1}, {"axis": 0, "keepdims": True}, {"keepdims": True}],
    ids=repr,
)
def test_reductions_are_numpy(x, kw):
    same(gc.sum(x, **kw), np.sum(x, **kw))
    same(gc.mean(x, **kw), np.mean(x, **kw))
    same(gc.max(x, **kw), np.max(x, **kw))
    if np.ndim(x) >= 2:
        same(gc.sum(x, axis=(0, 1)), np.sum(x, axis=(0, 1)))
        same(gc.mean(x, axis=(-1, 0), keepdims=True), np.mean(x, axis=(-1, 0), keepdims=True))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (np.arange(6.0).reshape(2, 3), np.arange(12.0).reshape(3, 4)),
        (np.arange(3.0), np.arange(12.0).reshape(3, 4)),
        (np.arange(6.0).reshape(2, 3), np.arange(3.0)),
        (np.arange(24.0).reshape(2, 3, 4), np.arange(8.0).reshape(4, 2)),
        ([[1, 2], [3, 4]], [[5], [6]]),
        (np.ones((2, 2), dtype=np.float32), np.ones(2, dtype=np.float32)),
    ],
    ids=lambda v: f"shape{np.shape(v)}",
)
def test_matmul_is_numpy(a, b):
    same(gc.matmul(a, b), np.matmul(a, b))


def test_transpose_and_reshape_are_numpy():
    x = np.arange(24.0).reshape(2, 3, 4)
    same(gc.transpose(x), np.transpose(x))
    same(gc.transpose(x, (1, 2, 0)), np.transpose(x, (1, 2, 0)))
    same(gc.transpose([[1, 2, 3]]), np.transpose([[1, 2, 3]]))
    same(gc.reshape(x, (4, -1)), np.reshape(x, (4, -1)))
    same(gc.reshape(x, -1), np.reshape(x, -1))
    same(gc.reshape([1.0, 2.0, 3.0, 4.0], (2, 2)), np.reshape([1.0, 2.0, 3.0, 4.0], (2, 2)))
    with pytest.raises(ValueError):  # NumPy's own error, as NumPy raises it
        gc.reshape(x, (5, 5))


def test_gathering_and_joining_are_numpy():
    x = np.arange(12.0).reshape(3, 4)
    idx = np.array([[0, 0], [3, 1], [2, 2]])
    same(gc.take_along_axis(x, idx, axis=1), np.take_along_axis(x, idx, axis=1))
    same(gc.concatenate([x, x[:1]], axis=0), np.concatenate([x, x[:1]], axis=0))
    same(gc.stack([x, 2 * x], axis=-1), np.stack([x, 2 * x], axis=-1))
    same(gc.arange(4), np.arange(4))
    with pytest.raises(ValueError):  # NumPy's own error, as NumPy raises it
        gc.concatenate([x, x.T], axis=0)


def test_numpy_semantics_for_python_numbers_too():
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(RuntimeWarning):  # NumPy warns of log(0), and gives -inf
            gc.log(0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert gc.log(0) == -np.inf and np.isnan(gc.sqrt(-1.0))


def test_user_gates_on_numbers_and_arrays():
    softsign = gc.gate("numbers_softsign", lambda a: a / (1 + sympy.Abs(a)))
    hinge = gc.gate("numbers_hinge", lambda a, b: sympy.Max(a - b, 0) ** 2)
    step = gc.gate("numbers_step", lambda a: sympy.Heaviside(a))
    inv = gc.gate("numbers_inv", lambda a: 1 / a)
    x = np.array([-2.0, 0.0, 0.5, 3.0])
    same(softsign(x), x / (1 + np.abs(x)))
    same(softsign(x.astype(np.float32)), x.astype(np.float32) / (1 + np.abs(x.astype(np.float32))))
    assert softsign(1.0) == 0.5 and softsign(3) == 0.75
    same(hinge(x, 0.25), np.maximum(x - 0.25, 0) ** 2)
    same(step(x), np.heaviside(x, 0.5))
    assert step(0.0) == 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert inv(0.0) == np.inf and inv(0) == np.inf  # NumPy's 1/0, not ZeroDivisionError


def test_a_gate_of_constants_inside_a_traced_function_is_a_constant():
    f = gc.function(lambda x: x * gc.exp(2.0) + gc.sum(np.array([1.0, 2.0])))
    value, grads = f.value_and_grad(x=1.0)
    assert value == pytest.approx(math.exp(2.0) + 3.0) and grads["x"] == pytest.approx(math.e**2)


def test_a_list_holding_traced_values_is_refused_as_in_tracing():
    x = gc.symbols("x")
    softsign = gc.gate("numbers_list", lambda a: a / (1 + sympy.Abs(a)))
    for call in (lambda: gc.exp([x, 1.0]), lambda: gc.sum((1.0, x)), lambda: softsign([x])):
        with pytest.raises(gc.TraceError, match="list|tuple"):
            call()


def test_every_public_gate_is_checked_here():
    tested = set(ONE_ARGUMENT) | {"sigmoid", "maximum", "minimum", "where", "sum", "mean", "max"}
    tested |= {"matmul", "transpose", "reshape", "take_along_axis", "concatenate", "stack"}
    tested |= {"arange"}
    public = {
        name
        for name, fn in vars(gates).items()
        if inspect.isfunction(fn) and fn.__module__ == gates.__name__ and not name.startswith("_")
    } - {"gate"}
    assert public == tested


# ---------------------------------------------------------------- from graphc import *

DOCUMENTED = [
    "function", "symbols", "from_sympy", "from_graph", "gate", "fuse", "compare", "check_grad",
    "lint", "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "maximum", "minimum", "where",
    "mean", "matmul", "transpose", "reshape", "Function", "GraphcError", "InputError",
    "TraceError", "ShapeError", "GraphError", "GateError",
]  # fmt: skip


def test_import_star_leaves_the_builtins_alone():
    namespace: dict = {}
    exec("from graphc import *", namespace)  # a fresh module namespace, as a script has
    for name in DOCUMENTED:
        assert namespace[name] is getattr(gc, name)
    assert not set(namespace) & set(dir(builtins)) - {"__builtins__"}
    exec("r = sum([1, 2, 3]), max(3, 7), max([4, 1]), abs(-2), min(2, 1)", namespace)
    assert namespace["r"] == (6, 7, 4, 2, 1)
    assert gc.sum is gates.sum and gc.max is gates.max and gc.abs is gates.abs  # still there


def test_all_names_every_public_name_but_the_shadowing_gates():
    exported = {
        n for n in dir(gc) if not n.startswith("_") and not inspect.ismodule(getattr(gc, n))
    }
    exported -= {"sympy_graph"}  # an internal helper that `from_sympy` wraps
    assert set(gc.__all__) == exported - set(dir(builtins))
    assert {"abs", "max", "sum"} <= exported - set(gc.__all__)
