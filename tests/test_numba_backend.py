"""The numba backend (`backend="numba"`): one compiled loop per call, numbers as the NumPy module's.

Oracles: the NumPy module (the readable reference), an exact sigmoid written per element with
`math`, and central differences. Each distinct generated module and argument layout costs numba
a compile (about a second), so the tests share a few functions. Skipped without numba, except
the errors that say what to do without it.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from strategies import graphc_ops, vector_programs

import graphc as gc
from graphc.emit import numba_backend


@pytest.fixture(scope="module")
def numba():
    return pytest.importorskip("numba")


def neuron(w0, x0, w1, x1, w2):
    return 1 / (1 + gc.exp(-(w0 * x0 + w1 * x1 + w2)))


def everything(x, y, z):
    """Every elementwise gate, each kink and mask included (fusion adds softplus, log_sigmoid
    and leaky_relu)."""
    a = x * y - z / (y * y + 1.0) + (-x) ** 2 + gc.abs(z) ** 1.5
    b = gc.exp(-gc.abs(x)) + gc.log(1.0 + z * z) + gc.sqrt(gc.abs(y) + 1.0) + gc.tanh(x)
    c = gc.sigmoid(y) + gc.log(1 + gc.exp(x)) + gc.log(gc.sigmoid(z))
    d = gc.relu(x) + gc.maximum(0.1 * y, y) + gc.minimum(x, z) + gc.maximum(x, y)
    e = gc.where(x > y, x * z, y) + gc.where(x <= 0.5, z, 1.0) + gc.where(y < z, 1.0, x)
    return a + b + c + d + e + gc.where(z >= 0, y, z)


def inputs(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(scale=3.0, size=n) for _ in range(5)]


def assert_close(got, want, rtol=1e-12):
    """Relative to the largest |want| (NaN where want is NaN)."""
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    assert got.shape == want.shape
    assert np.array_equal(np.isnan(got), np.isnan(want))
    finite = np.isfinite(want)
    assert np.array_equal(got[~finite], want[~finite], equal_nan=True)
    scale = np.max(np.abs(want[finite]), initial=0.0) + 1e-300
    assert np.max(np.abs(got[finite] - want[finite]), initial=0.0) <= rtol * scale


def assert_same_as_numpy(f_numba, f_numpy, args):
    value, grads = f_numba.value_and_grad(*args)
    want_value, want_grads = f_numpy.value_and_grad(*args)
    assert_close(value, want_value)
    assert list(grads) == list(want_grads)
    for k in want_grads:
        assert_close(grads[k], want_grads[k])
        assert np.shape(grads[k]) == np.shape(want_grads[k])


def exact_neuron(w0, x0, w1, x1, w2):
    """Independent oracle: the sigmoid neuron per element with `math`, exact for any input."""
    out, grads = [], []
    for args in zip(w0, x0, w1, x1, w2):
        dot = args[0] * args[1] + args[2] * args[3] + args[4]
        e = math.exp(-abs(dot)) if math.isfinite(dot) else (0.0 if abs(dot) == math.inf else dot)
        out.append((1.0 if dot >= 0 else e) / (1.0 + e))
        ddot = e / (1.0 + e) ** 2
        grads.append([args[1] * ddot, args[0] * ddot, args[3] * ddot, args[2] * ddot, ddot])
    return np.array(out), np.array(grads).T


def test_the_neuron_agrees_with_an_exact_oracle_and_the_numpy_module(numba):
    f = gc.function(neuron).fused()
    g = f.fused(backend="numba")
    args = inputs(200)
    args[4][:8] = [40.0, -40.0, 800.0, -800.0, 0.0, -0.0, 1e-300, -37.5]  # exact far out
    for k in range(4):
        args[k][:8] = 0.0
    value, grads = g.value_and_grad(*args)
    want_value, want_grads = exact_neuron(*args)
    assert_close(value, want_value)
    for k, name in enumerate(f.inputs):
        assert_close(grads[name], want_grads[k])
    assert grads["w2"][0] == pytest.approx(4.248354255291589e-18, rel=1e-12)  # not s*(1-s) = 0
    assert_same_as_numpy(g, f, args)


def test_gradients_agree_with_central_differences(numba):
    g = gc.function(neuron, backend="numba")  # unfused: one loop all the same
    args = inputs(32, seed=1)
    _, grads = g.value_and_grad(*args)
    h = 1e-6
    for k, name in enumerate(g.inputs):
        up = [a + h if j == k else a for j, a in enumerate(args)]
        down = [a - h if j == k else a for j, a in enumerate(args)]
        numeric = (g(*up) - g(*down)) / (2 * h)
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("level", ["patterns", "elementwise"])
def test_every_elementwise_gate_agrees_with_the_numpy_module(numba, level):
    f = gc.function(everything).fused(level=level)
    rng = np.random.default_rng(2)
    x, y, z = (rng.normal(scale=2.0, size=96) for _ in range(3))
    x[:4], y[:4], z[:4] = [0.0, 0.5, 1.0, -1.0], [0.0, 0.5, 1.0, 2.0], [0.0, 0.0, -0.0, 3.0]
    with np.errstate(all="ignore"):
        assert_same_as_numpy(f.fused(backend="numba"), f, [x, y, z])


def test_inf_and_nan_as_numpy_gives_them_never_an_exception(numba):
    def h(x, y):
        return 1 / x + x**-2 + gc.log(y) + gc.sqrt(y) + gc.exp(1000.0 * x) + x**3 * y**0.5

    x = np.array([0.0, -0.0, 1.0, 2.0, np.inf, np.nan, -3.0])
    y = np.array([0.0, -1.0, 1.0, 0.0, 2.0, 1.0, 2.0])
    with np.errstate(all="ignore"):
        assert_same_as_numpy(gc.function(h, backend="numba"), gc.function(h), [x, y])


def test_inputs_broadcast_and_gradients_sum_back(numba):
    f = gc.function(neuron).fused()
    g = f.fused(backend="numba")
    rng = np.random.default_rng(3)
    args = [0.5, rng.normal(size=(3, 4)), rng.normal(size=(4,)), rng.normal(size=(3, 1)), -0.25]
    assert_same_as_numpy(g, f, args)
    _, grads = g.value_and_grad(*args)
    assert isinstance(grads["w0"], float) and grads["x1"].shape == (3, 1)


def test_gradients_of_scalar_parameters_are_summed_in_the_loop(numba):
    f = gc.function(neuron).fused()
    g = f.fused(backend="numba")
    rng = np.random.default_rng(8)
    x0, x1 = rng.normal(size=100_003), rng.normal(size=100_003)
    args = [0.75, x0, -1.25, x1, 0.5]
    assert "dw0_block += dw0" in g.source_for(*args)
    _, grads = g.value_and_grad(*args)
    _, exact = exact_neuron(*np.broadcast_arrays(*args))
    for k, name in enumerate(f.inputs):
        want = math.fsum(exact[k]) if name.startswith("w") else exact[k]
        assert_close(grads[name], want)
    assert_same_as_numpy(g, f, args)
    with pytest.raises(ValueError, match="w0 must have one element"):
        g.compiled_for(*args).module.value_and_grad(x0, *args[1:])


def test_the_loop_runs_over_the_output_not_over_inputs_it_does_not_read(numba):
    def h(x0, x1):
        return gc.exp(x1)

    g = gc.function(h, backend="numba")
    value, grads = g.value_and_grad(np.ones(5), 0.5)
    assert value == math.exp(0.5) and grads["x1"] == math.exp(0.5)  # not summed 5 times
    assert np.array_equal(grads["x0"], np.zeros(5))
    assert_same_as_numpy(g, gc.function(h), [np.ones(5), 0.5])


@settings(max_examples=12, deadline=None, database=None)
@given(case=vector_programs(max_steps=6))
def test_random_programs_agree_with_the_numpy_module(numba, case):
    f = gc.function(case.function(graphc_ops()))
    try:
        g = gc.Function(f.graph, backend="numba")
    except gc.GraphcError:
        return  # a reduction or matmul: refused, as the next test checks
    with np.errstate(all="ignore"):
        assert_same_as_numpy(g, f, list(case.inputs.values()))


def test_scalars_give_scalars(numba):
    g = gc.function(neuron, backend="numba").fused()  # fused keeps the backend
    assert g.backend == "numba"
    value, grads = g.value_and_grad(1.0, 2.0, -3.0, 0.5, 0.25)
    dot = 2.0 - 1.5 + 0.25
    s = 1 / (1 + math.exp(-dot))
    assert isinstance(value, float) and value == pytest.approx(s, rel=1e-15)
    assert grads["w2"] == pytest.approx(s * (1 - s), rel=1e-13)


def test_forward_and_backward_with_any_upstream_gradient(numba):
    f = gc.function(neuron).fused()
    g = f.fused(backend="numba")
    args = inputs(50, seed=4)
    dout = np.random.default_rng(5).normal(size=50)
    fast, ref = g.compiled_for(*args).module, f.compiled_for(*args).module
    out, cache = fast.forward(*args)
    assert_close(out, ref.forward(*args)[0])
    assert_close(g(*args), out)
    for got, want in zip(fast.backward(dout, cache), ref.backward(dout, ref.forward(*args)[1])):
        assert_close(got, want)


def test_wrt_and_float32(numba):
    f = gc.function(neuron).fused()
    g = f.fused(backend="numba").wrt("x0", "w2")
    args = [a.astype(np.float32) for a in inputs(40, seed=6)]
    value, grads = g.value_and_grad(*args)
    want_value, want_grads = f.wrt("x0", "w2").value_and_grad(*args)
    assert list(grads) == ["x0", "w2"] and value.dtype == np.float32
    np.testing.assert_allclose(value, want_value, rtol=1e-6)
    for k in grads:
        assert grads[k].dtype == np.float32
        np.testing.assert_allclose(grads[k], want_grads[k], rtol=1e-5, atol=1e-7)


def test_the_source_is_one_readable_loop_and_deterministic(numba):
    args = inputs(8)
    a = gc.function(neuron).fused(backend="numba").source_for(*args)
    b = gc.function(neuron).fused(backend="numba").source_for(*[x[:3] for x in args])
    assert a == b  # the loop is the same for every shape
    assert '@numba.njit(error_model="numpy")' in a and "for i in range(out.size):" in a
    assert "out[i] = (1.0 if add_2 >= 0 else e) / (e + 1)" in a  # one exp per element
    assert a.count("np.exp(") == 2  # e, in forward_loop and in backward_loop
    assert all(len(line) <= 100 for line in a.splitlines() if "  # " not in line)


def test_only_elementwise_functions_run_as_a_loop(numba):
    def loss(x, w):
        return gc.sum(gc.matmul(x, w))

    with pytest.raises(gc.GraphcError, match="tensor gate 'matmul'.*backend='numpy'"):
        gc.function(loss, backend="numba")
    with pytest.raises(gc.GraphcError, match="constant array"):
        gc.function(lambda x: x * np.array([1.0, 2.0]), backend="numba")


def test_unknown_backend_and_missing_numba_say_what_to_do(monkeypatch):
    with pytest.raises(gc.InputError, match="unknown backend 'jax'; choose 'numpy'"):
        gc.function(neuron, backend="jax")
    monkeypatch.setattr(numba_backend, "available", lambda: False)
    with pytest.raises(gc.GraphcError, match=r"needs numba.*pip install 'graphc\[numba\]'"):
        gc.function(neuron).fused(backend="numba")
    assert gc.function(neuron).fused().backend == "numpy"  # the default needs NumPy alone


def test_the_one_exp_sigmoid_gives_the_bits_of_the_two_exp_one(numba):
    from graphc.ir.special import HELPERS

    def compiled(source):
        namespace = {"np": np}
        exec(source, namespace)
        return numba.njit(namespace["sigmoid"])

    one, two = compiled(numba_backend.SCALAR_HELPERS["sigmoid"]), compiled(HELPERS["sigmoid"])
    xs = [0.0, -0.0, 1e-300, -1e-300, 0.5, -0.5, 36.7, -36.7, 745.2, -745.2, 800.0, -800.0]
    xs += [np.inf, -np.inf, np.nan, *np.random.default_rng(7).normal(scale=20.0, size=200)]
    got, want = np.array([one(x) for x in xs]), np.array([two(x) for x in xs])
    assert np.array_equal(got, want, equal_nan=True)
