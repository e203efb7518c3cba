"""The array API backend (`backend="array_api"`): one module, run on every library's arrays.

Oracles: array_api_strict (a minimal implementation of the standard that refuses anything
outside it: the oracle for "uses only the standard"), the NumPy backend's module (gradients to
1e-12 relative, float64), PyTorch autograd on the same program text (`test_oracles_torch`,
when PyTorch is installed) and central differences for the MLP. Dask's laziness is checked
with Dask's own callbacks: building the result runs no task. Skipped where array-api-compat
or the library is missing; CuPy without a GPU is skipped with a message that says so.
"""

from __future__ import annotations

import ast
import importlib.util
import math

import numpy as np
import pytest
from conftest import central_diff
from hypothesis import given
from strategies import broadcast_programs, examples, scalar_programs, vector_programs

import graphc as gc

xps = pytest.importorskip("array_api_strict", reason="array-api-strict is not installed")
pytest.importorskip("array_api_compat", reason="array-api-compat is not installed")

if importlib.util.find_spec("torch") is not None:  # PyTorch autograd, an independent oracle
    from test_oracles_torch import assert_matches_torch, torch_gradients

RTOL = 1e-12


def assert_close(got, want, rtol=RTOL):
    """Same shape, and within `rtol` of the largest |want| (the sums of a chunked or threaded
    library add in another order)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape
    scale = np.max(np.abs(want), initial=0.0) + 1e-300
    assert np.max(np.abs(got - want), initial=0.0) <= rtol * scale, (got, want)


def to_numpy(v) -> np.ndarray:
    """A result of any library as a NumPy array (Dask computes; tensors leave the graph)."""
    if hasattr(v, "compute"):
        v = v.compute()
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    return np.asarray(v, dtype=np.float64)


def numpy_reference(f, inputs: dict):
    """The NumPy backend's value and gradients (with 0-d NumPy numbers for scalars)."""
    args = {k: np.float64(v) if np.ndim(v) == 0 else v for k, v in inputs.items()}
    with np.errstate(all="ignore"):
        return f.value_and_grad(**args)


def assert_same_as_numpy(f_numpy, convert, inputs: dict):
    """The array API module on `convert`ed inputs gives the NumPy module's value and
    gradients, each shaped like its input."""
    f = f_numpy.fused(level="none", backend="array_api")
    want_value, want_grads = numpy_reference(f_numpy, inputs)
    value, grads = f.value_and_grad(**{k: convert(np.asarray(v)) for k, v in inputs.items()})
    assert_close(to_numpy(value), want_value)
    assert list(grads) == list(want_grads)
    for k in want_grads:
        assert_close(to_numpy(grads[k]), np.broadcast_to(want_grads[k], np.shape(inputs[k])))
    return value, grads


def strict(v):
    return xps.asarray(v, dtype=xps.float64)


def check_case_on(case, convert):
    """Every version of a random program (unfused, fused at both levels) on `convert`ed
    inputs gives the NumPy module's value and gradients."""
    for f in case.versions().values():
        assert_same_as_numpy(f, convert, case.inputs)


# ---------------------------------------------------------------- array_api_strict


@examples(ci=30, slow=1500)
@given(vector_programs())
def test_random_vector_programs_on_array_api_strict(case):
    check_case_on(case, strict)


@examples(ci=20, slow=1000)
@given(scalar_programs())
def test_random_scalar_programs_on_array_api_strict(case):
    check_case_on(case, strict)


@examples(ci=20, slow=1000)
@given(broadcast_programs())
def test_random_broadcast_programs_on_array_api_strict(case):
    check_case_on(case, strict)


# ---------------------------------------------------------------- the MLP


def mlp_loss(X, Y, W1, b1, W2, b2, reg):
    """The lecture's 2-layer net: softmax cross-entropy of relu features, plus L2."""
    hidden = gc.relu(X @ W1 + b1)
    scores = hidden @ W2 + b2
    shifted = scores - gc.max(scores, axis=1, keepdims=True)
    log_probs = shifted - gc.log(gc.sum(gc.exp(shifted), axis=1, keepdims=True))
    data_loss = -gc.mean(gc.sum(Y * log_probs, axis=1))
    return data_loss + 0.5 * reg * (gc.sum(W1 * W1) + gc.sum(W2 * W2))


def mlp_inputs(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "X": rng.normal(size=(n, 2)),
        "Y": np.eye(3)[rng.integers(0, 3, size=n)],
        "W1": 0.5 * rng.normal(size=(2, 10)),
        "b1": 0.1 * rng.normal(size=10),
        "W2": 0.5 * rng.normal(size=(10, 3)),
        "b2": 0.1 * rng.normal(size=3),
        "reg": np.asarray(1e-3),
    }


@pytest.mark.parametrize("level", ["none", "patterns", "elementwise"])
def test_the_mlp_on_array_api_strict_equals_numpy_and_central_differences(level):
    f = gc.function(mlp_loss)
    f = f if level == "none" else f.fused(level=level)
    inputs = mlp_inputs()
    _, grads = assert_same_as_numpy(f, strict, inputs)
    for name in ("W1", "b1", "W2", "b2"):
        want = central_diff(lambda **kw: mlp_loss_numpy(**kw), inputs, name)
        np.testing.assert_allclose(to_numpy(grads[name]), want, rtol=1e-6, atol=1e-9)


def mlp_loss_numpy(X, Y, W1, b1, W2, b2, reg):
    """The same loss in NumPy, by hand: the central differences' function."""
    scores = np.maximum(X @ W1 + b1, 0.0) @ W2 + b2
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -np.mean(np.sum(Y * log_probs, axis=1)) + 0.5 * reg * (np.sum(W1**2) + np.sum(W2**2))


def test_the_fused_softmax_gates_run_in_the_standard():
    """logsumexp, log_softmax, the cross-entropy and its gradient, sum_squares and the max's
    one-hot backward, on array_api_strict, against the NumPy module."""

    def f(x, y, w):
        lse = gc.sum(gc.log(gc.sum(gc.exp(x), axis=1)))
        ce = gc.sum(-gc.sum(y * (x - gc.log(gc.sum(gc.exp(x), axis=1, keepdims=True))), axis=1))
        return lse + ce + gc.sum(w * w) + gc.sum(gc.max(x * w, axis=0))

    rng = np.random.default_rng(1)
    inputs = {"x": rng.normal(size=(5, 4)), "y": np.eye(4)[[0, 3, 1, 1, 2]]}
    inputs["w"] = rng.normal(size=(5, 4))
    fused = gc.function(f).fused()
    ops = {fused.graph.nodes[n]["op"] for n in fused.graph}
    assert {"logsumexp", "softmax_cross_entropy", "sum_squares", "max"} <= ops
    assert_same_as_numpy(fused, strict, inputs)


# ---------------------------------------------------------------- the module itself


def test_the_module_imports_no_numpy_and_takes_its_namespace_from_its_inputs():
    f = gc.function(mlp_loss).fused(backend="array_api")
    source = f.source_for(**mlp_inputs())
    tree = ast.parse(source)
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert [ast.unparse(n) for n in imports] == ["from array_api_compat import array_namespace"]
    assert "np." not in source and "numpy" not in source.split('"""', 2)[2]
    for banned in ("put_along_axis", "vdot", "ravel", ".flat", "out=", "*=", "float("):
        assert banned not in source, banned
    assert "xp = array_namespace(X, Y, W1, b1, W2, b2, reg)" in source
    assert "backward(xp.ones_like(out), cache)" in source
    # every xp function the module calls is one array_api_strict has
    called = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    called &= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and _on_xp(n)}
    assert called and all(hasattr(xps, name) for name in called), called - set(dir(xps))


def _on_xp(node: ast.Attribute) -> bool:
    return isinstance(node.value, ast.Name) and node.value.id == "xp"


def test_numpy_stays_the_default_and_its_module_is_unchanged():
    f = gc.function(mlp_loss)
    assert f.backend == "numpy"
    assert "import numpy as np" in f.source_for(**mlp_inputs())
    g = f.fused(backend="array_api")
    assert repr(g).endswith("backend='array_api'>")
    assert g.fused().backend == "array_api"


def test_a_python_number_input_becomes_a_0d_array_of_the_first_arrays_library():
    f = gc.function(mlp_loss).fused(backend="array_api")
    inputs = {k: strict(v) for k, v in mlp_inputs().items()}
    inputs["reg"] = 1e-3
    value, grads = f.value_and_grad(**inputs)
    want_value, want_grads = numpy_reference(gc.function(mlp_loss), mlp_inputs())
    assert isinstance(value, type(inputs["X"]))
    assert_close(to_numpy(value), want_value)
    assert_close(to_numpy(grads["reg"]), want_grads["reg"])


def test_bad_inputs_say_what_to_pass():
    f = gc.function(lambda x, y: x * y, name="f").fused(backend="array_api")
    with pytest.raises(gc.InputError, match=r"input 'x' is list; backend='array_api' takes"):
        f([1.0], strict([1.0]))
    with pytest.raises(gc.InputError, match=r"input 'x' has dtype .*int64.*real floats"):
        f(xps.asarray([1, 2]), strict([1.0, 2.0]))
    with pytest.raises(gc.InputError, match="all are Python numbers; pass at least one"):
        f(1.0, 2.0)
    with pytest.raises(gc.InputError, match=r"different libraries \('x' of array_api_strict"):
        f(strict([1.0]), np.array([1.0]))
    with pytest.raises(gc.InputError, match="unknown backend 'jax'; choose 'numpy'.*'array_api'"):
        gc.function(lambda x: x, backend="jax")


def test_a_gate_the_standard_cannot_spell_is_refused_with_what_to_do():
    import sympy

    gate = gc.gate("sinc_gate", lambda a: sympy.sinc(a))
    f = gc.function(lambda x: gate(x) * 2.0, name="waves").fused(backend="array_api")
    with pytest.raises(gc.GateError, match="waves: NumPy's sinc has no spelling in the array"):
        f(strict([1.0, -1.0]))


def test_a_piecewise_of_numbers_is_a_choice_of_arrays():
    """A user's step of three numbers (SymPy's Heaviside with H(0) = 1/2) times x, and alone."""
    import sympy

    gate = gc.gate("half_step", lambda a: sympy.Heaviside(a, sympy.Rational(1, 2)))
    x = np.array([-1.5, 0.0, 2.0])
    for fn in (lambda x: gate(x) * x, lambda x: gate(x) + 0.0 * x):
        f = gc.function(fn, name="stepped")
        value, grads = f.fused(level="none", backend="array_api").value_and_grad(strict(x))
        assert_close(to_numpy(value), np.heaviside(x, 0.5) * (x if fn(2.0) == 2.0 else 1.0))
        assert_close(to_numpy(grads["x"]), f.grad(x)["x"])


# ---------------------------------------------------------------- Dask


def test_dask_builds_a_lazy_result_and_computes_only_when_asked():
    da = pytest.importorskip("dask.array")
    from dask.callbacks import Callback

    started = []

    class Count(Callback):
        def _start(self, dsk):
            started.append(len(dsk))

    f = gc.function(mlp_loss).fused(backend="array_api")
    inputs = mlp_inputs(n=40)
    lazy = {k: da.from_array(v, chunks=10 if k in ("X", "Y") else -1) for k, v in inputs.items()}
    with Count():
        value, grads = f.value_and_grad(**lazy)
        assert started == [], "building the result ran a Dask graph"
        assert isinstance(value, da.Array) and all(isinstance(g, da.Array) for g in grads.values())
        import dask

        value, grads = dask.compute(value, grads)
    assert len(started) == 1  # one graph, computed once, on asking
    want_value, want_grads = numpy_reference(gc.function(mlp_loss).fused(), inputs)
    assert_close(value, want_value)
    for k in want_grads:
        assert_close(grads[k], want_grads[k])


@examples(ci=10, slow=500)
@given(vector_programs())
def test_random_vector_programs_on_dask(case):
    da = pytest.importorskip("dask.array")
    check_case_on(case, lambda v: da.from_array(v, chunks=2) if v.ndim else da.from_array(v))


# ---------------------------------------------------------------- PyTorch, JAX, CuPy


@examples(ci=10, slow=500)
@given(vector_programs())
def test_random_vector_programs_on_torch_against_autograd(case):
    torch = pytest.importorskip("torch")
    check_case_on(case, lambda v: torch.asarray(v, dtype=torch.float64))
    _, want, scale = torch_gradients(case)
    f = case.graphc().fused(level="none", backend="array_api")
    _, grads = f.value_and_grad(**{k: torch.asarray(np.asarray(v)) for k, v in case.inputs.items()})
    assert_matches_torch("array_api", {k: to_numpy(g) for k, g in grads.items()}, want, scale)


def test_the_mlp_on_torch_tensors_stays_in_torch():
    torch = pytest.importorskip("torch")
    f = gc.function(mlp_loss).fused()
    value, grads = assert_same_as_numpy(f, torch.asarray, mlp_inputs())
    assert isinstance(value, torch.Tensor) and grads["W1"].dtype == torch.float64


def test_the_mlp_on_jax_arrays():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)  # float64, as the NumPy module computes
    import jax.numpy as jnp

    f = gc.function(mlp_loss).fused()
    value, _ = assert_same_as_numpy(f, jnp.asarray, mlp_inputs())
    assert isinstance(value, jax.Array)


def test_the_mlp_on_cupy_where_a_gpu_is_present():
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed (it needs an NVIDIA GPU)")
    try:
        cupy.cuda.runtime.getDeviceCount()
    except Exception as e:
        pytest.skip(f"CuPy is installed but no GPU is usable here ({e})")
    f = gc.function(mlp_loss).fused()
    value, _ = assert_same_as_numpy(f, cupy.asarray, mlp_inputs())
    assert isinstance(value, cupy.ndarray)


@pytest.mark.parametrize("level", ["patterns", "elementwise"])
def test_a_circuit_fusion_folds_to_a_number_runs_on_the_standard(level):
    # x - x folds to 0 and log(sigmoid(0)) to a number SymPy cannot evaluate: the module must
    # neither call a helper on a Python number nor take its namespace from one (the random
    # program generator found both)
    f = gc.function(lambda x0: gc.log(gc.sigmoid(x0 - x0)))
    value, grads = f.fused(level=level, backend="array_api").value_and_grad(x0=strict(0.5))
    assert float(to_numpy(value)) == pytest.approx(-math.log(2.0), rel=1e-15)
    assert float(to_numpy(grads["x0"])) == 0.0
