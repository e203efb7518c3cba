"""Property test: graphc's gradients of random vector graphs against PyTorch autograd.

PyTorch is an optional, test-only dependency (`pip install -e .[test-torch]`); without it this
module is skipped. Every program of tests/strategies.py is run in PyTorch (float64, CPU) with
its own implementation of each op, differentiated by autograd, and compared with graphc's
gradients, unfused, fused at both levels and as fast code (readable=False, which lowers
sigmoid-like gates onto a shared exp(-|x|)), to 1e-10 relative. Each gradient the generated
module returns must have exactly its input's shape (the Function's own result is broadcast to
it). The programs made mostly of broadcasts and reductions (`broadcast_programs`) are also
compiled for the last input alone (`wrt`) and run through `backward` with a random upstream
gradient, against PyTorch's vector-Jacobian product.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import given
from strategies import (
    Case,
    NumpyOps,
    broadcast_programs,
    examples,
    module_gradients,
    vector_programs,
)

torch = pytest.importorskip("torch")

TORCH_RTOL = 1e-10
ULPS = 8 * np.finfo(np.float64).eps  # round-off allowed, relative to the gradients' scale


def _t(x):
    return x if isinstance(x, torch.Tensor) else torch.tensor(x, dtype=torch.float64)


def _numbers_too(fn):
    """`fn` on tensors and on the plain numbers a program may write (`ops.exp(-1.5) + 0.25`)."""
    return staticmethod(lambda x: fn(_t(x)))


class TorchOps:
    """Every op in PyTorch, from its own library functions."""

    array = staticmethod(lambda v: torch.tensor(v, dtype=torch.float64))
    exp, log, sqrt = _numbers_too(torch.exp), _numbers_too(torch.log), _numbers_too(torch.sqrt)
    abs, tanh, relu = _numbers_too(torch.abs), _numbers_too(torch.tanh), _numbers_too(torch.relu)
    sigmoid = _numbers_too(torch.sigmoid)
    softplus = _numbers_too(torch.nn.functional.softplus)
    log_sigmoid = _numbers_too(torch.nn.functional.logsigmoid)

    @staticmethod
    def leaky_relu(x, slope):
        return torch.nn.functional.leaky_relu(_t(x), slope)

    @staticmethod
    def maximum(a, b):
        return torch.maximum(_t(a), _t(b))

    @staticmethod
    def minimum(a, b):
        return torch.minimum(_t(a), _t(b))

    @staticmethod
    def where(mask, a, b):
        return torch.where(mask, _t(a), _t(b))

    @staticmethod
    def _dims(x, axis):
        return tuple(range(x.dim())) if axis is None else axis

    @staticmethod
    def sum(x, axis=None, keepdims=False):
        x = _t(x)
        return torch.sum(x, dim=TorchOps._dims(x, axis), keepdim=keepdims)

    @staticmethod
    def mean(x, axis=None, keepdims=False):
        x = _t(x)
        return torch.mean(x, dim=TorchOps._dims(x, axis), keepdim=keepdims)

    @staticmethod
    def max(x, axis=None, keepdims=False):
        x = _t(x)
        if axis is None:
            top = torch.max(x)
            return top.reshape((1,) * x.dim()) if keepdims else top
        return torch.max(x, dim=axis, keepdim=keepdims).values

    @staticmethod
    def transpose(x, axes=None):
        return x.permute(*(reversed(range(x.dim())) if axes is None else axes))

    @staticmethod
    def reshape(x, shape):
        return torch.reshape(x, shape)

    indices = staticmethod(lambda v: torch.tensor(v, dtype=torch.int64))

    @staticmethod
    def take_along_axis(x, idx, axis):
        return torch.take_along_dim(_t(x), idx, dim=axis)

    @staticmethod
    def concatenate(xs, axis):
        return torch.cat([_t(x) for x in xs], dim=axis)

    @staticmethod
    def stack(xs, axis):
        return torch.stack([_t(x) for x in xs], dim=axis)


def torch_gradients(case: Case, dout=None) -> tuple[np.ndarray, dict, float]:
    """The output, d sum(output) / d input for every input (d sum(dout * output) with `dout`),
    by PyTorch autograd, and the scale of the gradients summed on the way: the largest gradient
    of any value of the program."""
    leaves = {
        k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in case.inputs.items()
    }
    values = {k: _t(v) for k, v in case.values(TorchOps, leaves).items()}
    for v in values.values():
        if v.requires_grad:
            v.retain_grad()
    out = values[case.output]
    if dout is None:
        out.sum().backward()
    else:
        out.backward(torch.tensor(dout, dtype=torch.float64))
    grads = {
        k: np.zeros(np.shape(v)) if t.grad is None else t.grad.numpy()
        for (k, v), t in zip(case.inputs.items(), leaves.values())
    }
    scale = max(
        [1.0, *(float(torch.max(torch.abs(v.grad))) for v in values.values() if v.grad is not None)]
    )
    return out.detach().numpy(), grads, scale


def assert_matches_torch(level: str, got: dict, expected: dict, scale: float) -> None:
    """Each gradient within TORCH_RTOL of PyTorch's, at the floor set by `scale`."""
    for name, value in got.items():
        g, want = np.asarray(value, dtype=np.float64), expected[name]
        assert g.shape == np.shape(want), (level, name)
        error = np.abs(g - want) / np.maximum(np.abs(g) + np.abs(want), ULPS * scale / TORCH_RTOL)
        worst = float(np.max(error, initial=0.0))
        assert worst < TORCH_RTOL, (
            f"level={level}: d/d{name} relative error {worst:.2e}\ngraphc: {g!r}\ntorch:  {want!r}"
        )


def _scale(values_scale: float, expected: dict) -> float:
    # an entry that cancels to ~0 is compared at the scale of the terms it sums, not at 0: the
    # largest gradient of any input or of any value on the way (log_softmax's backward sums
    # terms of the size of its upstream gradient, to 0 where that is constant)
    return max([values_scale, *(float(np.max(np.abs(g), initial=0.0)) for g in expected.values())])


def _entries(case: Case) -> int:
    """The most entries any value of the program has: a gradient summed over them (b's in
    `h / sum(h)` of h = x + b, exactly 0) rounds to that many ulps of its terms."""
    values = [*case.inputs.values(), *case.values(NumpyOps(), case.inputs).values()]
    return max(int(np.size(v)) for v in values)


def check_against_torch(case: Case, versions: dict, scale: float | None = None) -> None:
    expected_value, expected, values_scale = torch_gradients(case)
    scale = _scale(values_scale, expected) * (scale or 1.0)
    for level, g in versions.items():
        value, grads = g.value_and_grad(**case.inputs)
        np.testing.assert_allclose(value, expected_value, rtol=1e-12, atol=1e-13, err_msg=level)
        assert_matches_torch(level, {k: grads[k] for k in g.gradient_names}, expected, scale)
        returned = module_gradients(g, case.inputs)
        for name, grad in zip(g.gradient_names, returned):
            assert np.shape(grad) == np.shape(case.inputs[name]), (level, name, np.shape(grad))


@examples(ci=350, slow=3000)
@given(vector_programs())
def test_vector_graphs_match_torch_autograd(case):
    check_against_torch(case, case.versions(fast=True))


@examples(ci=200, slow=2000)
@given(broadcast_programs())
def test_broadcast_graphs_match_torch_autograd(case):
    f = case.graphc()
    last = list(case.inputs)[-1]
    versions = {**case.versions(fast=True), f"wrt={last!r}": f.wrt(last)}
    check_against_torch(case, versions, _entries(case))
    # backward(dout, cache) with a random upstream gradient, the same one for the same case
    shape = np.shape(f(**case.inputs))
    dout = np.random.default_rng(zlib.crc32(case.text.encode())).uniform(-2.0, 2.0, shape)
    _, expected, values_scale = torch_gradients(case, dout)
    scale = _scale(values_scale, expected) * _entries(case)
    for level, g in versions.items():
        returned = dict(zip(g.gradient_names, module_gradients(g, case.inputs, dout)))
        for name, grad in returned.items():
            assert np.shape(grad) == np.shape(case.inputs[name]), (level, name, np.shape(grad))
        assert_matches_torch(f"{level}, random dout", returned, expected, scale)
