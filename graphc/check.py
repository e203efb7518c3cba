"""Numerical gradient check: analytic gradients against central differences.

Stage: surface (a tool over `Function`). Imports `function` and `errors`.

The numerical gradient of input x along coordinate i is sum(dout * (f(x+h e_i) - f(x-h e_i)))/2h
with the differences taken elementwise before summing, so outputs that do not depend on x_i
contribute exactly zero and a large output adds no round-off. Coordinates are checked all, or a
fixed-seed sample of `samples` per input for large arrays, as in a sparse gradient check.
"""

from __future__ import annotations

import numpy as np


def relative_error(a, b) -> float:
    """max |a - b| / max(|a| + |b|, 1e-8), the lecture's relative error."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-8)))


def numerical_gradient(f, values: dict, name: str, samples: int | None = None, seed: int = 0):
    """Central-difference gradient of `f` w.r.t. input `name` (NaN where not sampled)."""
    x = np.array(values[name], dtype=np.float64)
    out = np.asarray(f(**values), dtype=np.float64)
    dout = np.ones_like(out)
    grad = np.full(x.shape, np.nan)
    index = list(np.ndindex(x.shape))
    if samples is not None and len(index) > samples:
        pick = np.random.default_rng(seed).choice(len(index), size=samples, replace=False)
        index = [index[k] for k in sorted(pick)]
    for i in index:
        h = 1e-5 * max(1.0, abs(x[i]))
        x_plus, x_minus = x.copy(), x.copy()
        x_plus[i] += h
        x_minus[i] -= h
        up = np.asarray(f(**{**values, name: _like(values[name], x_plus)}), dtype=np.float64)
        down = np.asarray(f(**{**values, name: _like(values[name], x_minus)}), dtype=np.float64)
        grad[i] = np.sum(dout * (up - down)) / (x_plus[i] - x_minus[i])
    return grad


def _like(original, x):
    return float(x) if np.ndim(original) == 0 and not isinstance(original, np.ndarray) else x


def check_grad(f, *args, samples: int | None = 100, **inputs) -> float:
    """Max relative error between f's gradients and central differences, over all inputs.

    Inputs are promoted to float64 for the check. `samples` caps the coordinates checked per
    input (a fixed-seed random subset); `samples=None` checks every coordinate.

    >>> check_grad(f, x=-2.0, y=5.0, z=-4.0) < 1e-7
    True
    """
    bound = f._bind(args, inputs)  # missing, unexpected or refused inputs: InputError
    values = {
        k: v if isinstance(v, float) else np.asarray(v, dtype=np.float64)
        for k, v in zip(f.inputs, bound)
    }
    _, analytic = f.value_and_grad(**values)
    worst = 0.0
    for name in f.inputs:
        numeric = numerical_gradient(f, values, name, samples)
        picked = ~np.isnan(numeric)
        worst = max(worst, relative_error(np.asarray(analytic[name])[picked], numeric[picked]))
    return worst
