"""dtypes follow NumPy (NEP 50): graphc's value has the dtype NumPy gives the same expression.

docs/index.md, "Numbers and dtypes": Python numbers are weak (`x32 * 2.0` stays float32), NumPy
arrays and scalars strong (`x32 * np.float64(2.0)` is float64), NumPy's functions of Python
numbers give float64, and a value of constants alone is a constant; every gradient has its
input's dtype (a Python float for a Python float), at every fusion level, readable or not, and
on the numba backend. The oracle is NumPy itself: the same program run by the NumPy interpreter
of tests/strategies.py (`NumpyOps`) on the same arguments.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import NumpyOps, examples, scalar_programs, vector_programs

import graphc as gc
from graphc.emit import numba_backend

NEP50 = int(np.__version__.split(".")[0]) >= 2
needs_nep50 = pytest.mark.skipif(not NEP50, reason="NumPy 1.x promotes by value, not NEP 50")
LEVELS = ["none", "patterns", "elementwise"]


def kind(v) -> str:
    """How NumPy types a value: "py" for a Python float (weak), else its dtype."""
    if type(v) is float:
        return "py"
    return str(np.result_type(v))


def versions(f, numba: bool = False) -> dict:
    out = {level: f if level == "none" else f.fused(level=level) for level in LEVELS}
    out["patterns, readable=False"] = f.fused(readable=False)
    if numba and numba_backend.available():
        out["numba"] = f.fused(level="none", backend="numba")
        out["numba, elementwise"] = f.fused(level="elementwise", backend="numba")
    return out


def quietly(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)


def assert_numpy_dtypes(f, numpy_fn, inputs: dict, label: str = "") -> None:
    """f's value has numpy_fn's dtype on these inputs (a Python float where every input is one,
    graphc's documented rule), and each gradient its input's."""
    want = quietly(numpy_fn, **inputs)
    value, grads = quietly(f.value_and_grad, **inputs)
    every_python = all(type(v) is float for v in inputs.values())
    expected = "py" if every_python else kind(want)
    assert kind(value) == expected, f"{label}: value {kind(value)}, NumPy {expected}"
    assert np.ndim(value) == np.ndim(want)
    for name, g in grads.items():
        assert kind(g) == kind(inputs[name]), f"{label}: d{name} {kind(g)}, {kind(inputs[name])}"
        assert np.shape(g) == np.shape(inputs[name])


# ---------------------------------------------------------------- the cases

x32 = np.array([0.5, -1.25, 2.0], dtype=np.float32)
x64 = x32.astype(np.float64)
x16 = x32.astype(np.float16)


def test_a_python_float_next_to_a_float32_array_stays_float32():
    f = gc.function(lambda x, y: x * y)
    value, grads = f.value_and_grad(x32, 2.0)
    assert value.dtype == np.float32 and (x32 * 2.0).dtype == np.float32
    np.testing.assert_array_equal(value, x32 * 2.0)  # computed as NumPy does: in float32
    assert grads["x"].dtype == np.float32 and type(grads["y"]) is float
    assert grads["y"] == pytest.approx(float(np.sum(x64)))
    assert f(x32, np.float64(2.0)).dtype == np.float64  # a NumPy scalar is strong
    assert f(x32, np.float32(2.0)).dtype == np.float32
    assert f(x64, 2.0).dtype == np.float64
    assert type(f(np.float32(1.5), 2.0)) is np.float32
    assert type(f(1.5, 2.0)) is float
    assert f(x32, 3).dtype == np.float32  # a Python int is weak too
    assert f(x32, np.int64(3)).dtype == np.float64  # a NumPy integer is a float64 scalar


@pytest.mark.parametrize("level", LEVELS)
def test_fusion_that_folds_a_constant_into_a_call_keeps_float32(level):
    f = gc.function(lambda x: gc.tanh(x * 0.0) + x).fused(level=level)
    value, grads = f.value_and_grad(x32)
    assert value.dtype == np.float32 and grads["x"].dtype == np.float32
    assert "np.tanh(0)" not in f.source_for(x32)


CASES = {  # the function, in graphc and in NumPy (the same expression)
    "x * y": (lambda x, y: x * y, lambda x, y: x * y),
    "x / y + y ** 2": (lambda x, y: x / y + y**2, lambda x, y: x / y + y**2),
    "x * (2.0 * y)": (lambda x, y: x * (2.0 * y), lambda x, y: x * (2.0 * y)),
    "x * exp(y)": (lambda x, y: x * gc.exp(y), lambda x, y: x * np.exp(y)),
    "sigmoid(x * y) - y": (
        lambda x, y: gc.sigmoid(x * y) - y,
        lambda x, y: 1.0 / (1.0 + np.exp(-(x * y))) - y,
    ),
    "maximum(x, y) * y": (lambda x, y: gc.maximum(x, y) * y, lambda x, y: np.maximum(x, y) * y),
    "where(x > y, x, y)": (lambda x, y: gc.where(x > y, x, y), lambda x, y: np.where(x > y, x, y)),
    "sum(x * y) + y": (lambda x, y: gc.sum(x * y) + y, lambda x, y: np.sum(x * y) + y),
    "mean(tanh(x)) * y": (
        lambda x, y: gc.mean(gc.tanh(x)) * y,
        lambda x, y: np.mean(np.tanh(x)) * y,
    ),
    # a value of constants alone is a constant (graphc's rule: folded or not, it is weak)
    "x * exp(2.0) + y": (lambda x, y: x * gc.exp(2.0) + y, lambda x, y: x * 7.38905609893065 + y),
    "x * 2**70 + y": (lambda x, y: x * 2**70 + y, lambda x, y: x * 2**70 + y),
}
ARGUMENTS = {
    "float32, python": (x32, 1.5),
    "float32, float64 scalar": (x32, np.float64(1.5)),
    "float32, float32 scalar": (x32, np.float32(1.5)),
    "float32, float64 array": (x32, x64 + 1),
    "float64, python": (x64, 1.5),
    "float16, python": (x16, 1.5),
    "float16, float32 scalar": (x16, np.float32(1.5)),
    "float32 scalar, python": (np.float32(0.5), 1.5),
    "python, float32": (1.5, x32),
    "python, python": (0.5, 1.5),
}


@needs_nep50
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("arguments", list(ARGUMENTS))
def test_the_value_has_numpys_dtype_and_each_gradient_its_inputs(case, arguments):
    traced, numpy_fn = CASES[case]
    x, y = ARGUMENTS[arguments]
    for label, f in versions(gc.function(traced)).items():
        assert_numpy_dtypes(f, numpy_fn, {"x": x, "y": y}, f"{case} at {arguments}, {label}")


@needs_nep50
@pytest.mark.skipif(not numba_backend.available(), reason="numba is not installed")
def test_the_numba_backend_gives_numpys_dtypes_too():
    f = gc.function(lambda x, y: gc.sigmoid(x * y) - 2.0 * y)
    for label, g in versions(f, numba=True).items():
        for x, y in [(x32, 1.5), (x32, np.float64(1.5)), (x16, 1.5), (x64, np.float32(1.5))]:
            inputs = {"x": x, "y": y}
            assert_numpy_dtypes(g, lambda x, y: 1.0 / (1.0 + np.exp(-(x * y))) - 2.0 * y, inputs)
            want = 1.0 / (1.0 + np.exp(-(x64 * float(y)))) - 2.0 * float(y)
            rtol = {np.float16: 2e-3, np.float32: 2e-6}.get(np.result_type(x, y).type, 1e-13)
            np.testing.assert_allclose(g(x, y), want, rtol=rtol, atol=rtol, err_msg=label)


def test_constants_are_python_numbers_even_when_written_as_numpy_scalars():
    # docs/index.md: a constant in a traced function is folded into the code as a number, so
    # it is weak whatever its type (NumPy itself would make x32 * np.float64(2.0) float64)
    f = gc.function(lambda x: x * np.float64(2.0) + np.float32(1.0))
    assert f(x32).dtype == np.float32 and f(x16).dtype == np.float16
    assert f(x64).dtype == np.float64
    with_array = gc.function(lambda x: x * np.array([1.0, 2.0, 3.0]))  # arrays keep their dtype
    assert with_array(x32).dtype == np.float64
    assert gc.function(lambda x: x * np.ones(3, np.float32))(x16).dtype == np.float32


def test_float32_with_a_python_scalar_computes_in_float32_throughout():
    # the Python float is converted as NumPy converts it, to float32: no float64 temporaries
    f = gc.function(lambda x, lr: x - lr * gc.tanh(x) * x)
    out = f.compiled_for(x32, 0.1).prepared([x32, 0.1])
    assert type(out[1]) is np.float32
    values = f.compiled_for(x32, 0.1).values([x32, 0.1], np.ones(3, np.float32))
    assert all(np.result_type(v) == np.float32 for v in values.values()), values


# ---------------------------------------------------------------- random programs


def _variant(draw, value):
    """The input as one of the types a user passes: Python float, NumPy scalars, arrays."""
    if np.ndim(value) == 0:
        return draw(st.sampled_from([float, np.float64, np.float32, np.float16]))(value)
    return np.asarray(value, dtype=draw(st.sampled_from([np.float64, np.float32, np.float16])))


@needs_nep50
@examples(ci=150, slow=3000)
@given(vector_programs(), st.data())
def test_random_programs_have_numpys_dtypes(case, data):
    inputs = {k: _variant(data.draw, v) for k, v in case.inputs.items()}
    f = case.graphc()
    for label, g in versions(f).items():
        assert_numpy_dtypes(g, case.numpy(), inputs, f"{label}\n{case.text}\ninputs {inputs!r}")


@needs_nep50
@examples(ci=60, slow=1000)
@given(scalar_programs(), st.data())
def test_random_scalar_programs_have_numpys_dtypes(case, data):
    inputs = {k: _variant(data.draw, v) for k, v in case.inputs.items()}
    f = case.graphc()
    for label, g in versions(f).items():
        assert_numpy_dtypes(g, case.numpy(), inputs, f"{label}\n{case.text}\ninputs {inputs!r}")


@needs_nep50  # NumPy 1.x itself computes float32 scalars with Python floats in float64
@examples(ci=60, slow=1000)
@given(vector_programs(), st.sampled_from(["none", "patterns"]), st.booleans())
def test_float32_programs_compute_in_float32_throughout(case, level, with_python_float):
    """Where NumPy computes every statement of a program in float32, graphc computes every
    value forward and backward in float32 (or a mask): no float64 temporary, at the unfused and
    patterns levels (fused formulas that mix masks and numbers may use one; the value and the
    gradients are float32 all the same). A Python float is computed in float64, as NumPy
    computes Python floats, until it meets a float32 value."""
    inputs = {
        k: np.float32(v) if np.ndim(v) == 0 else np.asarray(v, np.float32)
        for k, v in case.inputs.items()
    }
    scalars = [k for k, v in case.inputs.items() if np.ndim(v) == 0]
    python = with_python_float and scalars and len(inputs) > len(scalars)
    if python:
        inputs[scalars[0]] = float(case.inputs[scalars[0]])
    in_numpy = quietly(case.values, NumpyOps(), inputs).values()
    if any(kind(v) not in ("py", "float32", "bool") for v in in_numpy):
        return  # NumPy itself computes in float64 here (an array constant, exp of a float)
    f = case.graphc().fused(level=level)
    compiled = f.compiled_for(**inputs)
    shape = compiled.program.graph.nodes[compiled.program.output]["shape"]
    seed = np.ones(shape, np.float32) if shape else np.float32(1.0)
    values = quietly(compiled.values, list(inputs.values()), seed)
    names = compiled.program.names
    wide = {
        names.get(n, n): np.result_type(v)
        for n, v in values.items()
        if np.result_type(v) not in (np.float32, np.bool_) and not (python and np.ndim(v) == 0)
    }
    assert not wide, f"float64 temporaries {wide}\n{case.text}\n{compiled.source}"
