"""Property test: graphc's gradients of random vector graphs against PyTorch autograd.

PyTorch is an optional, test-only dependency (`pip install -e .[test-torch]`); without it this
module is skipped. Every program of tests/strategies.py is run in PyTorch (float64, CPU) with
its own implementation of each op, differentiated by autograd, and compared with graphc's
gradients, unfused, fused at both levels and as fast code (readable=False, which lowers
sigmoid-like gates onto a shared exp(-|x|)), to 1e-10 relative.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from strategies import Case, examples, vector_programs

torch = pytest.importorskip("torch")

TORCH_RTOL = 1e-10
ULPS = 8 * np.finfo(np.float64).eps  # round-off allowed, relative to the gradients' scale


def _t(x):
    return x if isinstance(x, torch.Tensor) else torch.tensor(x, dtype=torch.float64)


class TorchOps:
    """Every op in PyTorch, from its own library functions."""

    array = staticmethod(lambda v: torch.tensor(v, dtype=torch.float64))
    # of a tensor, or of a constant (a program may take exp(-1.5): torch wants a tensor)
    exp, log, sqrt = (
        staticmethod(lambda x, f=f: f(_t(x))) for f in (torch.exp, torch.log, torch.sqrt)
    )
    abs, tanh = (staticmethod(lambda x, f=f: f(_t(x))) for f in (torch.abs, torch.tanh))
    sigmoid = staticmethod(lambda x: torch.sigmoid(_t(x)))
    softplus = staticmethod(lambda x: torch.nn.functional.softplus(_t(x)))
    log_sigmoid = staticmethod(lambda x: torch.nn.functional.logsigmoid(_t(x)))
    relu = staticmethod(lambda x: torch.relu(_t(x)))

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
    def transpose(x):
        return x.permute(*reversed(range(x.dim())))

    @staticmethod
    def reshape(x, shape):
        return torch.reshape(x, shape)


def torch_gradients(case: Case) -> tuple[np.ndarray, dict, float]:
    """The output, d sum(output) / d input for every input, by PyTorch autograd, and the scale
    of the gradients summed on the way: the largest gradient of any value of the program."""
    leaves = {
        k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in case.inputs.items()
    }
    values = {k: _t(v) for k, v in case.values(TorchOps, leaves).items()}
    for v in values.values():
        if v.requires_grad:
            v.retain_grad()
    out = values[case.output]
    out.sum().backward()
    grads = {
        k: np.zeros(np.shape(v)) if t.grad is None else t.grad.numpy()
        for (k, v), t in zip(case.inputs.items(), leaves.values())
    }
    scale = max(
        [1.0, *(float(torch.max(torch.abs(v.grad))) for v in values.values() if v.grad is not None)]
    )
    return out.detach().numpy(), grads, scale


@examples(ci=350, slow=3000)
@given(vector_programs())
def test_vector_graphs_match_torch_autograd(case):
    expected_value, expected, values_scale = torch_gradients(case)
    # an entry that cancels to ~0 is compared at the scale of the terms it sums, not at 0: the
    # largest gradient of any input or of any value on the way (log_softmax's backward sums
    # terms of the size of its upstream gradient, to 0 where that is constant)
    scale = max([values_scale, *(float(np.max(np.abs(g), initial=0.0)) for g in expected.values())])
    for level, g in case.versions(fast=True).items():
        value, grads = g.value_and_grad(**case.inputs)
        np.testing.assert_allclose(value, expected_value, rtol=1e-12, atol=1e-13, err_msg=level)
        for name, want in expected.items():
            got = np.asarray(grads[name], dtype=np.float64)
            assert got.shape == np.shape(want), (level, name)
            error = np.abs(got - want) / np.maximum(
                np.abs(got) + np.abs(want), ULPS * scale / TORCH_RTOL
            )
            worst = float(np.max(error, initial=0.0))
            assert worst < TORCH_RTOL, (
                f"level={level}: d/d{name} relative error {worst:.2e}\n"
                f"graphc: {got!r}\ntorch:  {want!r}"
            )
