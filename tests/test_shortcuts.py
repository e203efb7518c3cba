"""Print-time shortcuts (graphc/passes/shortcuts.py): fewer passes, the same values, nothing shared.

Each shortcut fires on its spelling and not on near misses, the gradients agree with central
differences, float32 stays float32, the caller's arrays are never written, and the values the
drawings read still include every step the shortcut folded away.
"""

import ast

import numpy as np
import pytest
from conftest import assert_grads_close, central_diff_all

import graphc as gc


def function_def(source: str, name: str) -> ast.FunctionDef:
    return next(n for n in ast.parse(source).body if getattr(n, "name", None) == name)


def cached_names(source: str) -> list[str]:
    ret = function_def(source, "forward").body[-1].value
    return [e.id for e in ret.elts[1].elts]


def regularised(X, W, b, reg):
    h = gc.relu(X @ W + b)
    return gc.sum(h * h) + reg * gc.sum(W * W)


def inputs(rng, dtype="float64"):
    return {
        "X": rng.standard_normal((6, 4)).astype(dtype),
        "W": rng.standard_normal((4, 3)).astype(dtype),
        "b": rng.standard_normal(3).astype(dtype),
        "reg": np.dtype(dtype).type(0.25),
    }


def test_sum_of_a_product_is_one_vdot_and_its_gradients_agree(rng):
    f = gc.function(regularised)
    d = inputs(rng)
    _, grads = f.value_and_grad(**d)
    src = f.source
    assert "np.vdot(W, W)" in src and "np.vdot(h, h)" in src
    assert "W * W" not in src.split("np.vdot(W, W)")[0]  # the product is never materialised
    assert_grads_close(grads, central_diff_all(f, d))


def test_vdot_statement_comment_names_both_gates(rng):
    f = gc.function(regularised)
    f(**inputs(rng))
    line = next(s for s in f.source.splitlines() if "np.vdot(W, W)" in s)
    assert "# mul and sum:" in line


@pytest.mark.parametrize(
    "fn",
    [
        lambda x, v: gc.sum(x * v),  # v broadcasts: pairs differ from a flat dot
        lambda x, v: gc.sum(x * x, axis=0) @ v,  # not a full sum
        lambda x, v: (lambda p: gc.sum(p) + gc.sum(gc.exp(p)))(x * x),  # p has another reader
    ],
    ids=["broadcast", "axis", "shared"],
)
def test_vdot_does_not_fire_on_near_misses(fn, rng):
    f = gc.function(fn, inputs=["x", "v"])
    d = {"x": 0.5 * rng.standard_normal((5, 3)), "v": rng.standard_normal(3)}
    _, grads = f.value_and_grad(**d)
    assert "vdot" not in f.source
    assert_grads_close(grads, central_diff_all(f, d))


def test_scalar_gradient_is_not_broadcast_into_an_array(rng):
    f = gc.function(regularised)
    d = inputs(rng)
    _, grads = f.value_and_grad(**d)
    backward = ast.unparse(function_def(f.source, "backward"))
    assert "broadcast_to" not in backward
    assert_grads_close(grads, central_diff_all(f, d))


def test_relu_mask_is_read_from_its_output_and_its_input_leaves_the_cache(rng):
    f = gc.function(regularised)
    d = inputs(rng)
    d["b"][:] = 0.0
    d["X"][0] = 0.0  # a row of exact zeros: relu'(0) = 0 must hold through `h > 0`
    _, grads = f.value_and_grad(**d)
    assert "h > 0" in f.source
    assert "h" in cached_names(f.source)
    assert len(cached_names(f.source)) == len(set(cached_names(f.source)))
    # the relu's input (X @ W + b) is no longer kept for backward
    assert not any(n.startswith("add") for n in cached_names(f.source))
    h = np.maximum(d["X"] @ d["W"] + d["b"], 0)
    np.testing.assert_allclose(grads["b"], np.sum(2 * h, axis=0), rtol=1e-12)
    np.testing.assert_array_equal(grads["X"][0], 0.0)  # relu'(0) = 0 on the row of zeros


def test_relu_mask_keeps_nan_where_its_input_is_nan():
    f = gc.function(lambda x: gc.sum(gc.relu(x) * gc.relu(x)), inputs=["x"])
    _, grads = f.value_and_grad(np.array([np.nan, -1.0, 0.0, 2.0]))
    with np.errstate(invalid="ignore"):
        want = 2 * np.maximum(np.array([np.nan, -1.0, 0.0, 2.0]), 0) * (np.array([0, 0, 0, 1.0]))
    np.testing.assert_array_equal(grads["x"][1:], want[1:])
    assert np.isnan(grads["x"][0])


def test_relu_input_stays_cached_when_its_output_is_not():
    # backward reads relu's input only: trading it for the output would save nothing
    f = gc.function(lambda x, y: gc.sum(gc.relu(x) * y), inputs=["x", "y"]).wrt("x")
    f(np.ones(3), np.ones(3))
    assert "x > 0" in f.source and "h > 0" not in f.source


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_shortcuts_keep_the_inputs_dtype(dtype, rng):
    f = gc.function(regularised)
    d = inputs(rng, dtype)
    value, grads = f.value_and_grad(**d)
    assert np.asarray(value).dtype == dtype
    assert all(np.asarray(g).dtype == dtype for g in grads.values())
    compiled = f.compiled_for(**d)
    _, raw = compiled.module.value_and_grad(*d.values())
    assert all(g.dtype == dtype for g in raw)  # no widening inside the module either
    assert np.asarray(compiled.module.forward(*d.values())[0]).dtype == dtype


def test_the_callers_arrays_are_never_written(rng):
    f = gc.function(regularised).fused()
    d = inputs(rng)
    before = {k: np.copy(v) for k, v in d.items()}
    for v in d.values():
        if isinstance(v, np.ndarray):
            v.setflags(write=False)  # any write into an input raises
    f.value_and_grad(**d)
    gc.function(regularised).value_and_grad(**d)
    for k in d:
        np.testing.assert_array_equal(d[k], before[k])


def test_drawing_values_still_include_the_folded_steps(rng):
    f = gc.function(regularised)
    d = inputs(rng)
    compiled = f.compiled_for(**d)
    values = compiled.values(list(d.values()), 1.0)
    g = compiled.program.graph
    products = [n for n in g.nodes if g.nodes[n]["op"] == "mul" and g.nodes[n].get("role") is None]
    square = next(n for n in products if g.nodes[n]["shape"] == (4, 3))
    np.testing.assert_allclose(values[square], d["W"] * d["W"])
    svg = f.svg(**d)
    assert "<svg" in svg


@pytest.mark.parametrize("labels", ["y", "Y"])  # integer labels (gathered), one-hot labels
@pytest.mark.parametrize("variant", ["plain", "fused", "fused-fast"])
def test_mlp_gradients_match_the_hand_written_reference(variant, labels):
    from benchmarks import mlp

    d = mlp.make_data("float64", **mlp.SMOKE)
    f = gc.function(mlp.net if labels == "y" else mlp.net_one_hot).wrt(*mlp.GRADS)
    if variant == "fused":
        f = f.fused()
    elif variant == "fused-fast":
        f = f.fused(readable=False)
    value, grads = f.value_and_grad(**{k: d[k] for k in ("X", labels, *mlp.GRADS, "reg")})
    want_value, want = mlp.reference(*(d[k] for k in ("X", "y", *mlp.GRADS, "reg")))
    np.testing.assert_allclose(value, want_value, rtol=1e-12)
    for k in mlp.GRADS:
        np.testing.assert_allclose(grads[k], want[k], rtol=1e-10, atol=1e-13)
    assert mlp.unread_cache(f.source) == []


def test_two_broadcast_scalars_meeting_in_one_step_keep_its_shape(rng):
    # d(sum(s) + mean(s))/ds: both gradients are a scalar spread to s's shape; their sum must
    # keep that shape, so one of the two stays broadcast (found by the fusion fan-out tests)
    f = gc.function(lambda x: gc.sum(gc.sum(x, axis=1)) + gc.mean(gc.sum(x, axis=1)), inputs=["x"])
    d = {"x": rng.standard_normal((3, 4))}
    _, grads = f.value_and_grad(**d)
    np.testing.assert_allclose(grads["x"], np.full((3, 4), 1 + 1 / 3))


def test_relu_backward_masks_a_gradient_in_its_own_array_and_agrees_with_every_step(rng):
    f = gc.function(regularised)
    d = inputs(rng)
    _, grads = f.value_and_grad(**d)
    lines = [line.strip() for line in f.source.splitlines()]
    assert any(line.startswith("dadd *= h > 0") for line in lines), f.source
    compiled = f.compiled_for(**d)
    values = compiled.values(list(d.values()), 1.0)  # every step, no shortcut
    for name, node in zip(("X", "W", "b", "reg"), compiled.program.grads):
        np.testing.assert_array_equal(grads[name], values[node])
    assert_grads_close(grads, central_diff_all(f, d))


def test_a_gradient_read_again_or_returned_is_not_masked_in_place(rng):
    # dh is read by the mask and by the second term: it must keep its values
    def twice(x, w):
        h = x @ w
        return gc.sum(gc.relu(h)) + gc.sum(h * h)

    f = gc.function(twice)
    d = {"x": rng.standard_normal((4, 3)), "w": rng.standard_normal((3, 2))}
    _, grads = f.value_and_grad(**d)
    assert "*=" not in f.source
    assert_grads_close(grads, central_diff_all(f, d))
    # a returned gradient is the caller's: relu of an input masks a fresh array instead
    g = gc.function(lambda x: gc.sum(gc.relu(x) * x), inputs=["x"])
    x = rng.standard_normal(5)
    assert_grads_close(g.grad(x), central_diff_all(g, {"x": x}))


def tall_layer(X, W, reg):
    return gc.sum(gc.relu(X @ W)) + reg * gc.sum(W * W)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_tall_weight_gradient_is_computed_transposed_in_float64_only(dtype, rng):
    X = rng.standard_normal((16, 2048)).astype(dtype)
    W = (0.05 * rng.standard_normal((2048, 32))).astype(dtype)
    reg = np.dtype(dtype).type(0.5)
    f = gc.function(tall_layer)
    _, grads = f.value_and_grad(X, W, reg)
    transposed = "(dmatmul.T @ X + dW.T).T" in f.source
    assert transposed == (dtype == "float64"), f.source
    mask = (X @ W > 0).astype(dtype)
    want = X.T @ mask + 2 * reg * W
    tol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(grads["W"], want, rtol=tol, atol=tol)
    assert grads["W"].dtype == dtype
    compiled = f.compiled_for(X, W, reg)  # the drawings' values: the plain product
    values = compiled.values([X, W, reg], 1.0)
    np.testing.assert_allclose(grads["W"], values[compiled.program.grads[1]], rtol=tol, atol=tol)


def test_a_small_or_square_weight_gradient_keeps_the_plain_product(rng):
    f = gc.function(tall_layer)
    f(rng.standard_normal((16, 64)), rng.standard_normal((64, 32)), 0.5)  # 64 < 8 * 32
    assert "X.T @ dmatmul" in f.source and ".T).T" not in f.source
    f(rng.standard_normal((16, 1024)), rng.standard_normal((1024, 8)), 0.5)  # small
    assert "X.T @ dmatmul" in f.source and ".T).T" not in f.source
