"""Indexing and gathering on traced arrays (issue 14): basic slicing, `a[gc.arange(N), y]` with
integer labels, `gc.take_along_axis`, `gc.concatenate`, `gc.stack`, and the CS231n softmax and
multiclass SVM losses written as in the assignment.

Oracles: PyTorch (autograd of the same loss, and of gathers with repeated indices), central
differences of a NumPy reference, and NumPy's own indexing for values. A module saved at one
batch size runs, without graphc, at others against PyTorch.
"""

# ruff: noqa: N803, N806  (the lecture's X, W, N, ...)

import importlib.util
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import assert_close, central_diff
from hypothesis import given
from strategies import examples, indexing_programs
from test_oracles_torch import check_against_torch
from test_properties import check_against_differences

import graphc as gc

torch = pytest.importorskip("torch")


# ---------------------------------------------------------------- the assignment's losses


@gc.function
def softmax_loss(W, X, y):
    """CS231n's softmax loss with integer labels, as a student writes it (vectorized)."""
    N = X.shape[0]
    scores = X @ W
    shifted = scores - gc.max(scores, axis=1, keepdims=True)  # for numeric stability
    exp_scores = gc.exp(shifted)
    probs = exp_scores / gc.sum(exp_scores, axis=1, keepdims=True)
    correct_logprobs = -gc.log(probs[gc.arange(N), y])
    loss = gc.mean(correct_logprobs) + 0.5 * 0.1 * gc.sum(W * W)
    return loss


@gc.function
def svm_loss(W, X, y):
    """CS231n's multiclass SVM loss: margins of every class but the correct one. The correct
    class's margin is max(0, 1) = 1, so it is subtracted instead of set to 0."""
    scores = X @ W
    correct = scores[np.arange(5), y]
    margins = gc.maximum(0.0, scores - correct[:, None] + 1.0)
    loss = gc.mean(gc.sum(margins, axis=1) - 1.0) + 0.1 * gc.sum(W * W)
    return loss


def torch_softmax_loss(W, X, y):
    Wt = torch.tensor(W, requires_grad=True)
    scores = torch.tensor(X) @ Wt
    loss = torch.nn.functional.cross_entropy(scores, torch.tensor(y)) + 0.05 * (Wt * Wt).sum()
    loss.backward()
    return loss.item(), Wt.grad.numpy()


def torch_svm_loss(W, X, y):
    Wt = torch.tensor(W, requires_grad=True)
    scores = torch.tensor(X) @ Wt
    yt = torch.tensor(y)
    correct = scores[torch.arange(len(y)), yt]
    margins = torch.clamp(scores - correct[:, None] + 1.0, min=0.0)
    margins = margins * (1 - torch.nn.functional.one_hot(yt, scores.shape[1]))  # margins[.., y] = 0
    loss = margins.sum() / len(y) + 0.1 * (Wt * Wt).sum()
    loss.backward()
    return loss.item(), Wt.grad.numpy()


def problem(rng, N, D=4, C=3):
    return rng.normal(size=(D, C)), rng.normal(size=(N, D)), rng.integers(0, C, size=N)


@pytest.mark.parametrize("seed", range(4))
def test_softmax_loss_gives_torch_gradients(seed):
    rng = np.random.default_rng(seed)
    for N in (5, 8, 3):  # one module for every batch size
        W, X, y = problem(rng, N)
        loss, grads = softmax_loss.value_and_grad(W, X, y)
        want, dW = torch_softmax_loss(W, X, y)
        assert loss == pytest.approx(want, rel=1e-12)
        assert_close(grads["W"], dW, rtol=1e-10, atol=1e-13)
        assert set(grads) == {"W", "X"}  # the labels index: no gradient for y


@pytest.mark.parametrize("seed", range(4))
def test_svm_loss_gives_torch_gradients(seed):
    rng = np.random.default_rng(seed)
    W, X, y = problem(rng, 5)
    loss, grads = svm_loss.value_and_grad(W, X, y)
    want, dW = torch_svm_loss(W, X, y)
    assert loss == pytest.approx(want, rel=1e-12)
    assert_close(grads["W"], dW, rtol=1e-10, atol=1e-13)
    assert set(grads) == {"W", "X"}


def test_the_labels_stay_integers_and_get_no_gradient(rng):
    W, X, y = problem(rng, 5)
    assert softmax_loss.gradient_names == ("W", "X")
    assert softmax_loss.index_inputs == ("y",)
    with pytest.raises(gc.InputError, match=r"'y' indexes.*integers.*astype\(int\)"):
        softmax_loss.value_and_grad(W, X, y.astype(float))
    with pytest.raises(gc.InputError, match="index and get no gradient"):
        softmax_loss.wrt("W", "y")


def test_the_generated_code_reads_the_batch_size(rng):
    W, X, y = problem(rng, 6)
    source = softmax_loss.source_for(W, X, y)
    assert "np.arange(X.shape[0])" in source or "np.arange(" in source and ".shape[0])" in source
    assert "scatter_add(" in source and "np.add.at" in source
    code = [line.split("  #")[0] for line in source.splitlines()]
    assert not any(" 6" in c or "(6" in c for c in code), source


def test_a_saved_module_runs_without_graphc_at_other_batch_sizes(rng, tmp_path):
    W, X, y = problem(rng, 6)
    softmax_loss.value_and_grad(W, X, y)
    path = softmax_loss.save_source(tmp_path / "softmax_module.py")
    checks = []
    for N in (2, 9, 40):
        W, X, y = problem(rng, N)
        want, dW = torch_softmax_loss(W, X, y)
        checks.append((W.tolist(), X.tolist(), y.tolist(), want, dW.tolist()))
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["graphc"] = None  # `import graphc` fails: the module stands alone
        import importlib.util
        import numpy as np
        spec = importlib.util.spec_from_file_location("m", {str(path)!r})
        m = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(m)
        for W, X, y, want, dW in {checks!r}:
            out, (gW, gX) = m.value_and_grad(np.array(W), np.array(X), np.array(y))
            assert abs(out - want) <= 1e-12 * abs(want), (out, want)
            assert np.allclose(gW, dW, rtol=1e-10, atol=1e-13), (gW, dW)
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr


# ---------------------------------------------------------------- repeated indices


def test_repeated_labels_add_their_gradients(rng):
    """Every row picks column 0: a plain dx[idx] = g would keep one row's gradient."""

    @gc.function
    def picked(S, y):
        return gc.sum(S[gc.arange(S.shape[0]), y] * np.arange(1.0, 5.0))

    S, y = rng.normal(size=(4, 3)), np.zeros(4, dtype=np.int64)
    _, grads = picked.value_and_grad(S, y)
    St = torch.tensor(S, requires_grad=True)
    (
        St[torch.arange(4), torch.tensor(y)] * torch.arange(1.0, 5.0, dtype=torch.float64)
    ).sum().backward()
    assert_close(grads["S"], St.grad.numpy(), rtol=1e-14, atol=0)


def test_take_along_axis_with_repeats_matches_torch(rng):
    @gc.function
    def taken(A, idx):
        t = gc.take_along_axis(A, idx, axis=1)
        return gc.sum(t * t * t)

    A = rng.normal(size=(3, 4))
    idx = np.array([[0, 0, 0], [3, 1, 3], [2, 2, 1]])
    value, grads = taken.value_and_grad(A, idx)
    At = torch.tensor(A, requires_grad=True)
    out = (torch.take_along_dim(At, torch.tensor(idx), 1) ** 3).sum()
    out.backward()
    assert value == pytest.approx(out.item(), rel=1e-13)
    assert_close(grads["A"], At.grad.numpy(), rtol=1e-13, atol=1e-15)
    assert set(grads) == {"A"}


def test_concatenate_and_stack_match_torch(rng):
    @gc.function
    def joined(a, b):
        c = gc.concatenate([a, b, a], axis=1)
        s = gc.stack([a, gc.tanh(a)], axis=-1)
        return gc.sum(c * c[::-1]) + gc.sum(s[..., 0] * s[..., 1])

    a, b = rng.normal(size=(3, 2)), rng.normal(size=(3, 4))
    value, grads = joined.value_and_grad(a, b)
    at, bt = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    c = torch.cat([at, bt, at], 1)
    s = torch.stack([at, torch.tanh(at)], -1)
    out = (c * c.flip(0)).sum() + (s[..., 0] * s[..., 1]).sum()
    out.backward()
    assert value == pytest.approx(out.item(), rel=1e-13)
    assert_close(grads["a"], at.grad.numpy(), rtol=1e-12, atol=1e-14)
    assert_close(grads["b"], bt.grad.numpy(), rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- random basic indexing


def random_index(rng, shape):
    """A random basic index of `shape`: ints (negative too), slices with steps, None, '...'."""
    key, axis = [], 0
    ellipsis = rng.random() < 0.3
    while axis < len(shape):
        roll = rng.random()
        n = shape[axis]
        if ellipsis and roll < 0.15:
            key.append(Ellipsis)
            ellipsis = False
            break
        if roll < 0.3:
            key.append(int(rng.integers(-n, n)))
        elif roll < 0.4:
            key.append(None)
            continue
        else:
            start = None if rng.random() < 0.4 else int(rng.integers(-n - 1, n + 1))
            stop = None if rng.random() < 0.4 else int(rng.integers(-n - 1, n + 1))
            step = None if rng.random() < 0.5 else int(rng.choice([-3, -2, -1, 1, 2, 3]))
            key.append(slice(start, stop, step))
        axis += 1
    return tuple(key)


@pytest.mark.parametrize("seed", range(30))
def test_random_basic_indexing_matches_numpy_and_central_differences(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(1, 5, size=rng.integers(1, 4)))
    key = random_index(rng, shape)
    x = rng.normal(size=shape)
    picked = x[key]
    D = rng.normal(size=picked.shape)

    def ref(x, D):
        return np.sum(np.exp(x[key]) * D)

    f = gc.function(lambda x, D: gc.sum(gc.exp(x[key]) * D))
    value, grads = f.value_and_grad(x, D)
    assert value == pytest.approx(ref(x, D), rel=1e-12, abs=1e-300), key
    want = central_diff(ref, {"x": x, "D": D}, "x")
    assert_close(grads["x"], want, rtol=1e-6, atol=1e-8)
    assert_close(grads["D"], np.exp(picked), rtol=1e-13, atol=0)


# ---------------------------------------------------------------- what is refused, and how


def test_assignment_and_masks_say_what_to_use():
    x = gc.symbols("x")
    with pytest.raises(gc.TraceError, match=r"gc\.where\(mask, v, x\)"):
        x[0] = 1.0
    with pytest.raises(gc.TraceError, match=r"boolean-mask.*gc\.where"):
        x[x > 0]
    with pytest.raises(gc.TraceError, match=r"boolean-mask"):
        x[True]
    with pytest.raises(gc.TraceError, match="take_along_axis"):
        x[[0, 2]]
    with pytest.raises(gc.TraceError, match="integer indices.*not a value computed by gates"):
        x[gc.arange(3), x * 2.0]
    with pytest.raises(gc.TraceError, match="integer indices"):
        gc.take_along_axis(x, np.array([[0.5]]), axis=0)
    with pytest.raises(gc.TraceError, match="not known while tracing"):
        len(x.shape)
    with pytest.raises(gc.TraceError, match=r"gc\.arange\(x\.shape\[0\]\)"):
        np.arange(x.shape[0])


def test_a_bad_index_names_the_gate_and_the_shape(rng):
    f = gc.function(lambda x: gc.sum(x[:, 5]))
    with pytest.raises(gc.ShapeError, match=r"getitem.*index 5 is out of bounds.*axis 1"):
        f(rng.normal(size=(3, 4)))
    g = gc.function(lambda s, y: gc.sum(s[gc.arange(s.shape[0]), y]))
    with pytest.raises(gc.ShapeError, match=r"pick.*shape \(N,\)"):
        g(rng.normal(size=(3, 4)), np.zeros(2, dtype=int))
    with pytest.raises(gc.GraphError, match="used both as an index and as a number"):
        gc.function(lambda y, x: gc.sum(x[gc.arange(3), y] * y))


def test_numba_and_array_api_name_the_gate(rng):
    @gc.function
    def first_column(x):
        return gc.sum(x[:, 0])

    pytest.importorskip("numba")
    with pytest.raises(gc.GraphcError, match="tensor gate 'getitem'"):
        first_column.fused(backend="numba")
    pytest.importorskip("array_api_compat")
    f = first_column.fused(backend="array_api")
    with pytest.raises(gc.GateError, match=r"\['index_add'\].*scatter-add.*backend='numpy'"):
        f.value_and_grad(rng.normal(size=(3, 4)))
    # concatenate and stack need no scatter: their backward slices (against NumPy's slices)
    joined = gc.function(lambda a, b: gc.sum(gc.stack([a, gc.concatenate([a, b])]) ** 2))
    a, b = rng.normal(size=2), rng.normal(size=2)
    with pytest.raises(gc.ShapeError):
        joined(a, b)  # stack needs one shape: (2,) and (4,)
    joined = gc.function(lambda a, b: gc.sum(gc.concatenate([a, b * b]) ** 2))
    _, grads = joined.fused(backend="array_api").value_and_grad(a, b)
    assert_close(grads["a"], 2 * a, rtol=1e-14, atol=0)
    assert_close(grads["b"], 4 * b**3, rtol=1e-14, atol=0)


def test_the_drawing_writes_the_index(rng):
    @gc.function
    def tail(x):
        return gc.sum(x[:, 1:])

    svg = tail.svg(x=rng.normal(size=(3, 4)))
    assert "[:, 1:]" in svg
    W, X, y = problem(rng, 5)
    assert ">gather<" in softmax_loss.svg(W=W, X=X, y=y)


def test_check_grad_lint_and_fusion_leave_the_labels_alone(rng):
    W, X, y = problem(rng, 6)
    assert gc.check_grad(softmax_loss, W=W, X=X, y=y) < 1e-6
    gates = gc.check_grad(softmax_loss, W=W, X=X, y=y, per_gate=True)
    assert "pick" in str(gates) and gates.worst.error < 1e-6
    assert list(gc.lint(softmax_loss, W=W, X=X, y=y)) == []  # y is never probed with floats
    for level in ("patterns", "elementwise"):  # fused, against PyTorch
        loss, grads = softmax_loss.fused(level=level).value_and_grad(W, X, y)
        want, dW = torch_softmax_loss(W, X, y)
        assert loss == pytest.approx(want, rel=1e-12)
        assert_close(grads["W"], dW, rtol=1e-10, atol=1e-13)


def test_a_traced_graph_with_indexing_round_trips(rng):
    W, X, y = problem(rng, 5)
    again = gc.from_graph(svm_loss.graph)
    assert again.value_and_grad(W, X, y)[0] == svm_loss.value_and_grad(W, X, y)[0]
    assert again.index_inputs == ("y",)


def test_forward_mode_goes_through_every_indexing_gate(rng):
    """jvp along a random direction = torch's gradient . direction (its own autograd)."""

    @gc.function
    def mixed(a, b, y):
        c = gc.concatenate([a, b * b], axis=0)
        s = gc.stack([a, gc.tanh(a)], axis=1)
        picked = c[gc.arange(c.shape[0]), y]
        taken = gc.take_along_axis(a, np.array([[1, 1], [0, 1], [1, 0]]), axis=1)
        return gc.sum(picked**2) + gc.sum(s[:, 1, ::-1] * taken) + gc.sum(c[1:] ** 3)

    a, b, y = rng.normal(size=(3, 2)), rng.normal(size=(2, 2)), np.array([1, 0, 0, 1, 1])
    da, db = rng.normal(size=a.shape), rng.normal(size=b.shape)
    _, tangent = mixed.jvp({"a": a, "b": b, "y": y}, {"a": da, "b": db})
    at, bt = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    c = torch.cat([at, bt * bt], 0)
    s = torch.stack([at, torch.tanh(at)], 1)
    taken = torch.take_along_dim(at, torch.tensor([[1, 1], [0, 1], [1, 0]]), 1)
    picked = c[torch.arange(5), torch.tensor(y)]
    out = (picked**2).sum() + (s[:, 1].flip(-1) * taken).sum() + (c[1:] ** 3).sum()
    out.backward()
    want = float((at.grad * torch.tensor(da)).sum() + (bt.grad * torch.tensor(db)).sum())
    assert tangent == pytest.approx(want, rel=1e-12)


# ---------------------------------------------------------------- random programs


@examples(ci=60, slow=1000)
@given(indexing_programs())
def test_random_indexing_programs_match_torch_autograd(case):
    check_against_torch(case, case.versions(fast=True))


@examples(ci=40, slow=600)
@given(indexing_programs())
def test_random_indexing_programs_match_finite_differences(case):
    check_against_differences(case)


def test_second_order_goes_through_the_scatter_adds(rng):
    """hvp and the Hessian of the softmax loss in W: PyTorch's Hessian (its own autograd)."""
    W, X, y = problem(rng, 6)

    def loss(Wt):
        scores = torch.tensor(X) @ Wt
        return torch.nn.functional.cross_entropy(scores, torch.tensor(y)) + 0.05 * (Wt * Wt).sum()

    V = rng.normal(size=W.shape)
    _, want = torch.autograd.functional.hvp(loss, torch.tensor(W), torch.tensor(V))
    hv = softmax_loss.hvp({"W": W, "X": X, "y": y}, {"W": V})
    assert_close(hv["W"], want.numpy(), rtol=1e-10, atol=1e-13)
    H = gc.hessian(softmax_loss, W=W, X=X, y=y)
    assert set(H) == {"W", "X"}
    expected = torch.autograd.functional.hessian(loss, torch.tensor(W)).numpy()
    assert_close(H["W"]["W"], expected, rtol=1e-10, atol=1e-13)
    J = gc.jacobian(svm_loss, W=W, X=X[:5], y=y[:5])
    assert set(J) == {"W", "X"}


def test_slices_that_follow_the_batch_size_stay_generic(rng, tmp_path):
    """x[1:] and x[:-1] along the batch axis, x[:, k] across it: one module, saved at N=6, runs
    at N=3 and N=11 (gradients against central differences of NumPy's own slicing)."""

    @gc.function
    def lagged(x):
        return gc.sum(gc.tanh(x[1:, 0] * x[:-1, -1])) + gc.sum(x[::-1, 1] * x[:, 2])

    def ref(x):
        return np.sum(np.tanh(x[1:, 0] * x[:-1, -1])) + np.sum(x[::-1, 1] * x[:, 2])

    lagged.value_and_grad(rng.normal(size=(6, 3)))
    source = lagged.source
    assert "any N" in " ".join(source.split()), source
    path = lagged.save_source(tmp_path / "lagged.py")
    spec = importlib.util.spec_from_file_location("lagged_module", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for N in (3, 11):
        x = rng.normal(size=(N, 3))
        value, (dx,) = module.value_and_grad(x)
        assert value == pytest.approx(ref(x), rel=1e-13)
        assert_close(dx, central_diff(ref, {"x": x}, "x"), rtol=1e-6, atol=1e-8)
    x = rng.normal(size=(2, 3))  # x[1:] of 2 rows is 1 row: a module for that shape, still right
    assert_close(lagged.grad(x)["x"], central_diff(ref, {"x": x}, "x"), rtol=1e-6, atol=1e-8)
