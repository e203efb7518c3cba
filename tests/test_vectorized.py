"""Vectorized functions on mini-batches: each checked against an independent NumPy reference.

Every test writes the forward pass again in plain NumPy; graphc's value must match it and graphc's
gradients must match central differences of it (and, where the lecture gives one, the
hand-derived analytic gradient). Data are chosen away from the kinks of relu/max.
"""

import numpy as np
import pytest
from conftest import assert_close, assert_grads_close, central_diff, central_diff_all

import graphc as gc

# ---------------------------------------------------------------- relu on a (100, 4096) batch


def test_relu_on_a_100_by_4096_batch(rng):
    X = rng.normal(size=(100, 4096))
    X[np.abs(X) < 1e-3] = 0.5  # away from the kink, so central differences are exact
    D = rng.normal(size=X.shape)

    @gc.function
    def f(X, D):
        return gc.sum(gc.relu(X) * D)

    def ref(X, D):
        return np.sum(np.maximum(X, 0) * D)

    value, grads = f.value_and_grad(X=X, D=D)
    assert value == pytest.approx(ref(X, D), rel=1e-12)
    assert grads["X"].shape == (100, 4096)
    # the exact known gradient: dout where x > 0, else 0
    np.testing.assert_array_equal(grads["X"], (X > 0) * D)
    np.testing.assert_array_equal(grads["D"], np.maximum(X, 0))
    # and central differences of the NumPy reference on a random sample of coordinates, taken of
    # the summand: the sum of 409,600 terms rounds differently at each step (by 1e-7 of the
    # gradient after dividing by the step, on NumPy 1.24), while the summand changes in one entry
    flat = rng.choice(X.size, size=60, replace=False)
    coords = [np.unravel_index(k, X.shape) for k in flat]
    summand = lambda X, D: np.maximum(X, 0) * D  # noqa: E731 - the reference without its sum
    fd = central_diff(summand, {"X": X, "D": D}, "X", coords=coords)
    assert_close(grads["X"], fd, rtol=1e-6)


def test_relu_batch_output_gradient_with_ones_upstream(rng):
    X = rng.normal(size=(100, 4096))
    f = gc.function(gc.relu(gc.symbols("X")))
    value, grads = f.value_and_grad(X=X)
    np.testing.assert_array_equal(value, np.maximum(X, 0))
    np.testing.assert_array_equal(grads["X"], (X > 0).astype(float))


# ---------------------------------------------------------------- 2-layer net, softmax + L2

REG = 0.1


def _two_layer_ref(X, Y, W1, b1, W2, b2):
    hidden = np.maximum(X @ W1 + b1, 0)
    scores = hidden @ W2 + b2
    log_norm = np.log(np.sum(np.exp(scores), axis=1))
    data_loss = np.mean(log_norm - np.sum(scores * Y, axis=1))
    return data_loss + 0.5 * REG * (np.sum(W1 * W1) + np.sum(W2 * W2))


@gc.function
def two_layer(X, Y, W1, b1, W2, b2):
    hidden = gc.relu(X @ W1 + b1)
    scores = hidden @ W2 + b2
    log_norm = gc.log(gc.sum(gc.exp(scores), axis=1))
    data_loss = gc.mean(log_norm - gc.sum(scores * Y, axis=1))
    return data_loss + 0.5 * REG * (gc.sum(W1 * W1) + gc.sum(W2 * W2))


def _two_layer_data(rng, n=8, d=5, h=6, c=3):
    X = rng.normal(size=(n, d))
    Y = np.eye(c)[rng.integers(0, c, n)]
    W1, b1 = rng.normal(size=(d, h)), rng.normal(size=h)
    W2, b2 = rng.normal(size=(h, c)), rng.normal(size=c)
    pre = X @ W1 + b1
    assert np.min(np.abs(pre)) > 1e-4, "data too close to the relu kink"
    return dict(X=X, Y=Y, W1=W1, b1=b1, W2=W2, b2=b2)


def test_two_layer_net_on_a_mini_batch(rng):
    inputs = _two_layer_data(rng)
    value, grads = two_layer.value_and_grad(**inputs)
    assert value == pytest.approx(_two_layer_ref(**inputs), rel=1e-12)
    for k, v in inputs.items():
        assert np.shape(grads[k]) == np.shape(v), k
    assert_grads_close(grads, central_diff_all(_two_layer_ref, inputs), rtol=1e-6, atol=1e-9)


def test_two_layer_net_against_the_hand_derived_backward_pass(rng):
    p = _two_layer_data(rng)
    X, Y, W1, b1, W2, b2 = (p[k] for k in ("X", "Y", "W1", "b1", "W2", "b2"))
    n = X.shape[0]
    # the lecture's staged backward pass
    pre = X @ W1 + b1
    hidden = np.maximum(pre, 0)
    scores = hidden @ W2 + b2
    probs = np.exp(scores) / np.sum(np.exp(scores), axis=1, keepdims=True)
    dscores = (probs - Y) / n
    dW2 = hidden.T @ dscores + REG * W2
    db2 = dscores.sum(axis=0)
    dpre = (dscores @ W2.T) * (pre > 0)
    dW1 = X.T @ dpre + REG * W1
    db1 = dpre.sum(axis=0)
    grads = two_layer.grad(**p)
    expected = {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2, "X": dpre @ W1.T}
    for k, v in expected.items():
        assert_close(grads[k], v, rtol=1e-10, atol=1e-13)


def test_two_layer_net_check_grad(rng):
    assert gc.check_grad(two_layer, **_two_layer_data(rng)) < 1e-6


# ---------------------------------------------------------------- SVM hinge loss

SVM_REG = 0.05


def _svm_ref(X, W, Y):
    scores = X @ W
    correct = np.sum(scores * Y, axis=1, keepdims=True)
    margins = np.maximum(0, scores - correct + 1) * (1 - Y)
    return np.sum(margins) / X.shape[0] + SVM_REG * np.sum(W * W)


@gc.function
def svm(X, W, Y):
    scores = X @ W
    correct = gc.sum(scores * Y, axis=1, keepdims=True)
    margins = gc.maximum(0, scores - correct + 1) * (1 - Y)
    return gc.sum(margins) / 10 + SVM_REG * gc.sum(W * W)


def _svm_data(rng, n=10, d=4, c=5):
    X = rng.normal(size=(n, d))
    W = rng.normal(size=(d, c)) * 0.5
    Y = np.eye(c)[rng.integers(0, c, n)]
    scores = X @ W
    raw = scores - np.sum(scores * Y, axis=1, keepdims=True) + 1
    assert np.min(np.abs(raw[Y == 0])) > 1e-4, "data too close to the hinge"
    assert np.any(raw[Y == 0] > 0) and np.any(raw[Y == 0] < 0), "want both active and inactive"
    return dict(X=X, W=W, Y=Y)


def test_svm_hinge_loss_staged_through_a_scores_matrix(rng):
    inputs = _svm_data(rng)
    value, grads = svm.value_and_grad(**inputs)
    assert value == pytest.approx(_svm_ref(**inputs), rel=1e-12)
    numeric = central_diff_all(_svm_ref, inputs)
    assert_close(grads["W"], numeric["W"], rtol=1e-6, atol=1e-9)
    assert_close(grads["X"], numeric["X"], rtol=1e-6, atol=1e-9)


def test_svm_gradient_matches_the_vectorized_lecture_formula(rng):
    inputs = _svm_data(rng)
    X, W, Y = inputs["X"], inputs["W"], inputs["Y"]
    n = X.shape[0]
    scores = X @ W
    active = ((scores - np.sum(scores * Y, axis=1, keepdims=True) + 1) > 0) * (1 - Y)
    dscores = active - Y * active.sum(axis=1, keepdims=True)
    dW = X.T @ dscores / n + 2 * SVM_REG * W
    assert_close(svm.grad(**inputs)["W"], dW, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- sigmoid network, CE + L2

LAMBDA = 0.3


def _sigmoid_ref(X, y, W1, b1, W2, b2):
    n = X.shape[0]
    h = 1 / (1 + np.exp(-(X @ W1 + b1)))
    p = 1 / (1 + np.exp(-(h @ W2 + b2)))
    cost = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    return cost + LAMBDA / (2 * n) * (np.sum(W1**2) + np.sum(W2**2))


@gc.function
def sigmoid_net(X, y, W1, b1, W2, b2):
    h = gc.sigmoid(X @ W1 + b1)
    p = gc.sigmoid(h @ W2 + b2)
    cost = -gc.mean(y * gc.log(p) + (1 - y) * gc.log(1 - p))
    return cost + LAMBDA / (2 * 12) * (gc.sum(W1**2) + gc.sum(W2**2))


def test_sigmoid_network_with_cross_entropy_and_l2(rng):
    inputs = dict(
        X=rng.normal(size=(12, 3)),
        y=rng.integers(0, 2, 12).astype(float),
        W1=rng.normal(size=(3, 4)),
        b1=rng.normal(size=4),
        W2=rng.normal(size=4),
        b2=0.3,
    )
    value, grads = sigmoid_net.value_and_grad(**inputs)
    assert value == pytest.approx(_sigmoid_ref(**inputs), rel=1e-12)
    assert type(grads["b2"]) is float
    assert grads["W2"].shape == (4,)
    assert_grads_close(grads, central_diff_all(_sigmoid_ref, inputs), rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------- broadcasting


def test_bias_gradient_is_summed_back_to_its_shape(rng):
    X, b, D = rng.normal(size=(4, 3)), rng.normal(size=3), rng.normal(size=(4, 3))
    f = gc.function(lambda X, b, D: gc.sum((X + b) * D))
    grads = f.grad(X=X, b=b, D=D)
    assert grads["b"].shape == (3,)
    np.testing.assert_allclose(grads["b"], D.sum(axis=0), rtol=1e-14)
    np.testing.assert_allclose(grads["X"], D, rtol=0)


def test_bias_gradient_with_ones_upstream_is_the_column_count():
    @gc.function
    def f(X, b):
        return X + b

    value, grads = f.value_and_grad(X=np.ones((4, 3)), b=np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(value, np.ones((4, 3)) + [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(grads["b"], [4.0, 4.0, 4.0])
    np.testing.assert_array_equal(grads["X"], np.ones((4, 3)))


def test_column_plus_row_broadcasts_both_ways(rng):
    a, b, D = rng.normal(size=(4, 1)), rng.normal(size=(1, 3)), rng.normal(size=(4, 3))
    f = gc.function(lambda a, b, D: gc.sum(a * b * D))
    grads = f.grad(a=a, b=b, D=D)
    assert grads["a"].shape == (4, 1) and grads["b"].shape == (1, 3)
    np.testing.assert_allclose(grads["a"], (b * D).sum(axis=1, keepdims=True), rtol=1e-13)
    np.testing.assert_allclose(grads["b"], (a * D).sum(axis=0, keepdims=True), rtol=1e-13)


def test_broadcast_against_a_leading_batch_axis(rng):
    X, v = rng.normal(size=(2, 3, 4)), rng.normal(size=(3, 1))
    f = gc.function(lambda X, v: gc.sum(gc.tanh(X * v)))

    def ref(X, v):
        return np.sum(np.tanh(X * v))

    inputs = {"X": X, "v": v}
    grads = f.grad(**inputs)
    assert grads["v"].shape == (3, 1)
    assert_grads_close(grads, central_diff_all(ref, inputs), rtol=1e-7)


def test_scalar_times_vector(rng):
    v, D = rng.normal(size=5), rng.normal(size=5)

    @gc.function
    def f(a, v, D):
        return gc.sum(a * v * D)

    value, grads = f.value_and_grad(a=2.5, v=v, D=D)
    assert value == pytest.approx(np.sum(2.5 * v * D), rel=1e-13)
    assert type(grads["a"]) is float
    assert grads["a"] == pytest.approx(np.sum(v * D), rel=1e-13)
    np.testing.assert_allclose(grads["v"], 2.5 * D, rtol=1e-14)
    # a 0-d array scalar behaves the same and keeps its shape
    grads0 = f.grad(a=np.array(2.5), v=v, D=D)
    assert np.shape(grads0["a"]) == ()
    assert float(grads0["a"]) == pytest.approx(np.sum(v * D), rel=1e-13)


def test_constant_array_in_the_function(rng):
    c = np.array([1.0, -2.0, 3.0])
    x = rng.normal(size=3)
    f = gc.function(lambda x: gc.sum(c * x**2))
    np.testing.assert_allclose(f.grad(x=x)["x"], 2 * c * x, rtol=1e-14)
    c[:] = 0.0  # the graph kept a copy
    np.testing.assert_allclose(f.grad(x=x)["x"], 2 * np.array([1.0, -2.0, 3.0]) * x, rtol=1e-14)


# ---------------------------------------------------------------- reductions


REDUCTIONS = [
    (None, False),
    (None, True),
    (0, False),
    (1, True),
    (-1, False),
    ((0, 2), False),
    ((0, 1), True),
]


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize(("axis", "keepdims"), REDUCTIONS)
def test_reductions_with_axis_and_keepdims(reduction, axis, keepdims, rng):
    X = rng.normal(size=(3, 4, 2))
    numpy_reduce, graphc_reduce = getattr(np, reduction), getattr(gc, reduction)
    D = rng.normal(size=np.shape(numpy_reduce(X, axis=axis, keepdims=keepdims)))

    @gc.function
    def f(X, D):
        r = graphc_reduce(gc.tanh(X) * X, axis=axis, keepdims=keepdims)
        return gc.sum(r**2 * D)

    def ref_tanh(X, D):
        return np.sum(numpy_reduce(np.tanh(X) * X, axis=axis, keepdims=keepdims) ** 2 * D)

    inputs = {"X": X, "D": D}
    value, grads = f.value_and_grad(**inputs)
    assert value == pytest.approx(ref_tanh(**inputs), rel=1e-12)
    assert grads["X"].shape == X.shape and np.shape(grads["D"]) == D.shape
    assert_grads_close(grads, central_diff_all(ref_tanh, inputs), rtol=1e-6, atol=1e-9)


def test_centering_rows_with_keepdims(rng):
    X, D = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))

    def ref(X, D):
        return np.sum((X - X.mean(axis=1, keepdims=True)) ** 2 * D)

    f = gc.function(lambda X, D: gc.sum((X - gc.mean(X, axis=1, keepdims=True)) ** 2 * D))
    inputs = {"X": X, "D": D}
    value, grads = f.value_and_grad(**inputs)
    assert value == pytest.approx(ref(**inputs), rel=1e-12)
    assert_grads_close(grads, central_diff_all(ref, inputs), rtol=1e-6, atol=1e-9)


def test_stable_softmax_with_max_over_rows(rng):
    S = rng.normal(size=(6, 4))
    D = rng.normal(size=(6, 4))

    def ref(S, D):
        e = np.exp(S - S.max(axis=1, keepdims=True))
        return np.sum(e / e.sum(axis=1, keepdims=True) * D)

    @gc.function
    def f(S, D):
        e = gc.exp(S - gc.max(S, axis=1, keepdims=True))
        return gc.sum(e / gc.sum(e, axis=1, keepdims=True) * D)

    inputs = {"S": S, "D": D}
    value, grads = f.value_and_grad(**inputs)
    assert value == pytest.approx(ref(**inputs), rel=1e-12)
    assert_grads_close(grads, central_diff_all(ref, inputs), rtol=1e-6, atol=1e-9)


def test_max_reduction_routes_to_the_first_largest_entry():
    f = gc.function(lambda X: gc.max(X, axis=1))
    X = np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0], [5.0, 5.0, 5.0]])
    value, grads = f.value_and_grad(X=X)
    np.testing.assert_array_equal(value, [3.0, 2.0, 5.0])
    np.testing.assert_array_equal(grads["X"], [[0, 1, 0], [1, 0, 0], [1, 0, 0]])
    g = gc.function(lambda X: gc.max(X))
    # over all entries: the first of the three 5.0s, in row-major order
    np.testing.assert_array_equal(g.grad(X=X)["X"], [[0, 0, 0], [0, 0, 0], [1, 0, 0]])


# ---------------------------------------------------------------- matmul, transpose, reshape


def test_bilinear_form_vector_matrix_vector(rng):
    v, M, w = rng.normal(size=3), rng.normal(size=(3, 4)), rng.normal(size=4)
    f = gc.function(lambda v, M, w: v @ M @ w)
    value, grads = f.value_and_grad(v=v, M=M, w=w)
    assert np.shape(value) == ()
    assert float(value) == pytest.approx(v @ M @ w, rel=1e-13)
    np.testing.assert_allclose(grads["v"], M @ w, rtol=1e-13)
    np.testing.assert_allclose(grads["M"], np.outer(v, w), rtol=1e-13)
    np.testing.assert_allclose(grads["w"], M.T @ v, rtol=1e-13)


def test_dot_product_of_two_vectors(rng):
    a, b = rng.normal(size=6), rng.normal(size=6)
    f = gc.function(lambda a, b: gc.matmul(a, b) * 3.0)
    grads = f.grad(a=a, b=b)
    np.testing.assert_allclose(grads["a"], 3.0 * b, rtol=1e-14)
    np.testing.assert_allclose(grads["b"], 3.0 * a, rtol=1e-14)


def test_matrix_vector_product_batch(rng):
    W, x, D = rng.normal(size=(3, 5)), rng.normal(size=5), rng.normal(size=3)
    f = gc.function(lambda W, x, D: gc.sum((W @ x) * D))
    grads = f.grad(W=W, x=x, D=D)
    np.testing.assert_allclose(grads["W"], np.outer(D, x), rtol=1e-13)
    np.testing.assert_allclose(grads["x"], W.T @ D, rtol=1e-13)


def test_gram_matrix_through_transpose(rng):
    X, D = rng.normal(size=(4, 3)), rng.normal(size=(3, 3))
    f = gc.function(lambda X, D: gc.sum((X.T @ X) * D))
    grads = f.grad(X=X, D=D)
    np.testing.assert_allclose(grads["X"], X @ (D + D.T), rtol=1e-12)
    np.testing.assert_allclose(grads["D"], X.T @ X, rtol=1e-13)


def test_reshape_and_transpose_chain(rng):
    X = rng.normal(size=(2, 6))
    D = rng.normal(size=(4, 3))

    def ref(X, D):
        return np.sum(np.exp(X.reshape(3, 4).T) * D)

    f = gc.function(lambda X, D: gc.sum(gc.exp(gc.transpose(X.reshape(3, 4))) * D))
    inputs = {"X": X, "D": D}
    value, grads = f.value_and_grad(**inputs)
    assert value == pytest.approx(ref(**inputs), rel=1e-13)
    assert grads["X"].shape == (2, 6)
    assert_grads_close(grads, central_diff_all(ref, inputs), rtol=1e-7)


# ---------------------------------------------------------------- inputs and shapes


def test_one_function_many_shapes(rng):
    f = gc.function(lambda x: gc.sum(x * x))
    assert f.grad(x=3.0) == {"x": 6.0}
    for shape in [(3,), (2, 4), (2, 1, 3)]:
        x = rng.normal(size=shape)
        value, grads = f.value_and_grad(x=x)
        assert float(value) == pytest.approx(np.sum(x * x), rel=1e-13)
        np.testing.assert_allclose(grads["x"], 2 * x, rtol=1e-15)


def test_integer_arrays_are_promoted_to_float64():
    f = gc.function(lambda x, y: gc.sum(x * y / 2))
    value, grads = f.value_and_grad(x=np.array([1, 2, 3]), y=np.array([4, 5, 7]))
    assert float(value) == 17.5
    assert grads["x"].dtype == np.float64 and grads["y"].dtype == np.float64
    np.testing.assert_array_equal(grads["x"], [2.0, 2.5, 3.5])
    np.testing.assert_array_equal(grads["y"], [0.5, 1.0, 1.5])


def test_an_input_the_output_does_not_use_gets_a_zero_gradient(rng):
    y = rng.normal(size=(2, 3))
    f = gc.function(lambda x, y: x * 2.0)
    grads = f.grad(x=1.5, y=y)
    assert grads["x"] == 2.0
    np.testing.assert_array_equal(grads["y"], np.zeros((2, 3)))


def test_gradients_are_fresh_arrays_not_views_of_each_other(rng):
    f = gc.function(lambda x, y: gc.sum(x + y))
    grads = f.grad(x=rng.normal(size=3), y=rng.normal(size=3))
    grads["x"][0] = 100.0
    np.testing.assert_array_equal(grads["y"], np.ones(3))


def test_check_grad_on_a_vector_function(rng):
    f = gc.function(lambda x, W: gc.sum(gc.tanh(W @ x) ** 2))
    err = gc.check_grad(f, x=rng.normal(size=4), W=rng.normal(size=(3, 4)))
    assert err < 1e-6


def test_a_function_without_inputs_has_a_value_and_no_gradients():
    f = gc.function(lambda: 3.0)
    assert f() == 3.0
    assert f.value_and_grad() == (3.0, {})
    assert f.grad() == {}


def test_column_convention_two_layer_net(rng):
    """The issue's W2 @ relu(W1 @ x + b1) + b2 on a batch of column vectors."""
    inputs = dict(
        x=rng.normal(size=(4, 7)),
        W1=rng.normal(size=(5, 4)),
        b1=rng.normal(size=(5, 1)),
        W2=rng.normal(size=(3, 5)),
        b2=rng.normal(size=(3, 1)),
        D=rng.normal(size=(3, 7)),
    )
    pre = inputs["W1"] @ inputs["x"] + inputs["b1"]
    assert np.min(np.abs(pre)) > 1e-4, "data too close to the relu kink"

    def ref(x, W1, b1, W2, b2, D):
        return np.sum((W2 @ np.maximum(W1 @ x + b1, 0) + b2) * D)

    @gc.function
    def f(x, W1, b1, W2, b2, D):
        return gc.sum((W2 @ gc.relu(W1 @ x + b1) + b2) * D)

    value, grads = f.value_and_grad(**inputs)
    assert value == pytest.approx(ref(**inputs), rel=1e-12)
    assert grads["b1"].shape == (5, 1) and grads["b2"].shape == (3, 1)
    assert_grads_close(grads, central_diff_all(ref, inputs), rtol=1e-6, atol=1e-9)
