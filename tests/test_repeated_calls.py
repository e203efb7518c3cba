"""Repeated calls on arrays (issue 19): a call like one before it skips binding's checks and
conversions, and must return exactly what a first call returns, of the same types.

The oracle is a fresh Function for every call (which binds in full) and, for the values,
central differences; the errors a bad call raises are the ones binding names.
"""

import numpy as np
import pytest
from conftest import assert_grads_close, central_diff_all

import graphc as gc
from graphc.ir.errors import InputError
from graphc.lectures import NET_INPUTS, two_layer_net


def affine_loss(x, w, b, reg):
    return gc.sum(gc.tanh(x @ w + b)) + reg * gc.sum(w * w)


def inputs(rng, n=4, dtype=np.float64):
    return {
        "x": rng.standard_normal((n, 3)).astype(dtype),
        "w": rng.standard_normal((3, 2)).astype(dtype),
        "b": rng.standard_normal(2).astype(dtype),
        "reg": 0.1,
    }


def same(a, b):
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b or (np.isnan(a) and np.isnan(b))


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_repeated_call_returns_what_a_first_call_returns(fused, dtype, rng):
    f = gc.function(affine_loss)
    f = f.fused() if fused else f
    for n in (4, 4, 7, 4, 7):  # repeats of two size patterns, interleaved
        given = inputs(rng, n, dtype)
        fresh = gc.function(affine_loss)
        fresh = fresh.fused() if fused else fresh
        for by_name in (True, False):
            args, kwargs = ((), given) if by_name else (tuple(given.values()), {})
            out, grads = f.value_and_grad(*args, **kwargs)
            want_out, want_grads = fresh.value_and_grad(*args, **kwargs)
            same(out, want_out)
            assert list(grads) == list(want_grads)
            for k in grads:
                same(grads[k], want_grads[k])
            same(f(**given), fresh(**given))
    if dtype == np.float64:  # float32 differences are too coarse to be an oracle at 1e-6
        want = central_diff_all(gc.function(affine_loss), given)
        assert_grads_close(f.grad(**given), want, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("scalar", [np.float64, np.float32])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_numpy_float_scalars_repeat_like_python_floats(scalar, dtype, rng):
    f = gc.function(affine_loss)
    for n in (4, 4, 4, 7):
        given = {**inputs(rng, n, dtype), "reg": scalar(0.1)}
        out, grads = f.value_and_grad(**given)
        want_out, want = gc.function(affine_loss).value_and_grad(**given)
        same(out, want_out)
        for k in want:
            same(grads[k], want[k])
    assert type(grads["reg"]) is scalar  # its gradient keeps the scalar's type, as binding does
    out, grads = f.value_and_grad(**{**given, "reg": 0.1})  # a Python float: a call of its own
    same(grads["reg"], gc.function(affine_loss).grad(**{**given, "reg": 0.1})["reg"])


def test_a_repeated_call_still_converts_what_binding_converts(rng):
    f = gc.function(affine_loss)
    given = inputs(rng)
    f.value_and_grad(**given)
    f.value_and_grad(**given)
    ints = {**given, "x": np.arange(12).reshape(4, 3)}  # integers: float64, as a first call does
    out, grads = f.value_and_grad(**ints)
    assert grads["x"].dtype == np.float64 and grads["x"].shape == (4, 3)
    listed = {**given, "b": [0.5, -0.5]}  # a list: an array, as binding makes it
    out2, grads2 = f.value_and_grad(**listed)
    assert isinstance(grads2["b"], np.ndarray) and grads2["b"].shape == (2,)
    assert type(grads["reg"]) is float and type(f.grad(**given)["reg"]) is float


def test_a_bad_call_after_good_ones_says_what_is_wrong(rng):
    f = gc.function(affine_loss)
    given = inputs(rng)
    f.value_and_grad(**given)
    f.value_and_grad(**given)
    with pytest.raises(InputError, match="missing input"):
        f.value_and_grad(x=given["x"], w=given["w"], b=given["b"])
    with pytest.raises(InputError, match="unexpected input 'bias'"):
        f.value_and_grad(x=given["x"], w=given["w"], bias=given["b"], reg=0.1)
    with pytest.raises(InputError, match="twice"):
        f.value_and_grad(given["x"], given["w"], given["b"], x=given["x"])
    with pytest.raises(InputError, match="boolean"):
        f.value_and_grad(**{**given, "reg": True})


def test_the_source_follows_the_latest_call_pattern(rng):
    f = gc.function(affine_loss)
    f.value_and_grad(**inputs(rng, 4))
    f.value_and_grad(**inputs(rng, 4))
    f.value_and_grad(**{**inputs(rng, 4), "x": np.ones((1, 3))})  # N = 1: its own pattern
    assert "x: (1, 3)" in f.source or "sizes of 1 stay 1" in f.source
    f.value_and_grad(**inputs(rng, 4))  # a repeat of the first pattern: source follows it
    assert f.source == gc.function(affine_loss).source_for(**inputs(rng, 4))


def test_the_two_layer_net_repeated_at_a_small_batch_matches_a_fresh_function():
    f = gc.function(two_layer_net).fused()
    for _ in range(3):
        out, grads = f.value_and_grad(**NET_INPUTS)
    want_out, want = gc.function(two_layer_net).fused().value_and_grad(**NET_INPUTS)
    same(out, want_out)
    for k in want:
        same(grads[k], want[k])


def test_integer_labels_repeat_like_float_inputs(rng):
    def softmax_loss(scores, y):
        n = scores.shape[0]
        shifted = scores - gc.max(scores, axis=1, keepdims=True)
        log_probs = shifted - gc.log(gc.sum(gc.exp(shifted), axis=1, keepdims=True))
        return -gc.mean(log_probs[gc.arange(n), y])

    f = gc.function(softmax_loss)
    for _ in range(3):
        scores, y = rng.standard_normal((5, 4)), rng.integers(0, 4, size=5)
        out, grads = f.value_and_grad(scores=scores, y=y)
        want_out, want = gc.function(softmax_loss).value_and_grad(scores=scores, y=y)
        same(out, want_out)
        assert list(grads) == ["scores"] and list(want) == ["scores"]
        same(grads["scores"], want["scores"])
    with pytest.raises(InputError, match="integers"):
        f.value_and_grad(scores=scores, y=y.astype(float))  # a float label: refused, still


def test_every_call_style_after_the_entry_for_repeats_matches_a_fresh_function(rng):
    """From the second like call, value_and_grad is a generated entry (graphc.entries): every
    other call must still get what binding gives, or its error."""
    f = gc.function(affine_loss)
    given = inputs(rng)
    for _ in range(3):
        f.value_and_grad(**given)
    x, w, b, reg = given.values()
    calls = [
        ((), given),
        ((x, w, b, reg), {}),
        ((x, w), {"b": b, "reg": reg}),  # mixed
        ((), {**given, "reg": np.float32(0.1)}),  # a NumPy scalar where a float was
        ((), {**given, "x": x.astype(np.float32)}),
        ((), {**given, "x": x[:2]}),  # another size
        ((), {**given, "b": [0.5, -0.5]}),  # a list, made an array by binding
        ((x, w, b), {}),  # too few, by position
    ]
    for args, kwargs in calls:
        try:
            want = gc.function(affine_loss).value_and_grad(*args, **kwargs)
        except InputError as e:
            with pytest.raises(InputError, match=str(e)[:20]):
                f.value_and_grad(*args, **kwargs)
            continue
        out, grads = f.value_and_grad(*args, **kwargs)
        same(out, want[0])
        assert list(grads) == list(want[1])
        for k in grads:
            same(grads[k], want[1][k])
    with pytest.raises(InputError, match="twice"):
        f.value_and_grad(x, w, b, reg, x=x)
    with pytest.raises(InputError, match="unexpected input 'z'"):
        f.value_and_grad(**given, z=1.0)
    f.value_and_grad(**{**given, "x": x[:1]})
    f.value_and_grad(**given)  # the entry's own call: the source follows it too
    assert f.source == gc.function(affine_loss).source_for(**given)
