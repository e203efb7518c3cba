"""Shared numeric oracles for the test suite.

Everything here is written with NumPy alone, independently of graphc: a central-difference
gradient of any Python callable and a comparison helper. Tests use these to check graphc's
generated gradients against numbers graphc did not compute.
"""

from __future__ import annotations

import numpy as np
import pytest


def _is_python_scalar(v) -> bool:
    return np.ndim(v) == 0 and not isinstance(v, np.ndarray)


def central_diff(fn, inputs: dict, name: str, *, h: float = 1e-6, dout=None, coords=None):
    """d sum(dout * fn(**inputs)) / d inputs[name] by central differences.

    `fn` is any callable taking the inputs by keyword (a NumPy reference or a compiled function);
    `dout` weights the output entries (default: all ones, i.e. the gradient of the sum);
    `coords` restricts the check to some coordinates (others are left as NaN).
    The step is relative, `h * max(1, |x_i|)`.
    """
    scalar = _is_python_scalar(inputs[name])
    x = np.array(inputs[name], dtype=np.float64)
    grad = np.full(x.shape, np.nan) if coords is not None else np.zeros(x.shape)
    for i in coords if coords is not None else np.ndindex(x.shape):
        step = h * max(1.0, abs(float(x[i])))
        plus, minus = x.copy(), x.copy()
        plus[i] += step
        minus[i] -= step
        up = np.asarray(fn(**{**inputs, name: float(plus) if scalar else plus}), dtype=np.float64)
        down = np.asarray(
            fn(**{**inputs, name: float(minus) if scalar else minus}), dtype=np.float64
        )
        weight = 1.0 if dout is None else np.asarray(dout, dtype=np.float64)
        grad[i] = np.sum(weight * (up - down)) / (plus[i] - minus[i])
    return float(grad) if scalar else grad


def central_diff_all(fn, inputs: dict, **kwargs) -> dict:
    """`central_diff` for every input."""
    return {name: central_diff(fn, inputs, name, **kwargs) for name in inputs}


def assert_close(actual, expected, rtol: float = 1e-6, atol: float = 1e-9) -> None:
    """Same shape and close values (NaN entries of `expected` are skipped: unsampled coords)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"shape {actual.shape} != expected {expected.shape}"
    picked = ~np.isnan(expected)
    np.testing.assert_allclose(actual[picked], expected[picked], rtol=rtol, atol=atol)


def assert_grads_close(actual: dict, expected: dict, rtol: float = 1e-6, atol: float = 1e-9):
    """Every gradient in `expected` matches `actual` (same keys, shapes and values)."""
    assert set(actual) == set(expected)
    for name in expected:
        try:
            assert_close(actual[name], expected[name], rtol=rtol, atol=atol)
        except AssertionError as e:
            raise AssertionError(f"gradient of {name!r}: {e}") from None


@pytest.fixture
def rng():
    """A fixed-seed random generator, so every run sees the same data."""
    return np.random.default_rng(20240607)


# ---------------------------------------------------------------- property tests: CI and slow mode


def pytest_addoption(parser):
    parser.addoption(
        "--slow",
        action="store_true",
        default=False,
        help="run the property tests' long budget (10,000 random graphs); same as GRAPHC_SLOW=1",
    )


def pytest_configure(config):
    """Choose the hypothesis profile: fixed-seed CI runs by default, fresh graphs with --slow."""
    import os

    from hypothesis import settings

    if config.getoption("--slow"):
        os.environ["GRAPHC_SLOW"] = "1"
    import strategies  # registers the profiles

    slow = strategies.slow_mode()
    settings.load_profile("graphc-slow" if slow else "graphc-ci")


# Known graphc bugs that the tests below found and that are not fixed yet. Each test stays as
# written and runs as a strict xfail: the day the bug is fixed, the test passes and the xfail
# fails the run, so the entry has to go. Property tests whose failures take minutes to shrink
# are not run until their bugs are fixed (run=False). Each bug is listed in the issue notes.
KNOWN_BUGS: dict[str, str] = {}
NOT_RUN_UNTIL_FIXED: dict[str, str | tuple[str]] = {}


def pytest_collection_modifyitems(config, items):
    for item in items:
        for prefix, reason in KNOWN_BUGS.items():
            if item.nodeid == prefix or item.nodeid.startswith(prefix + "["):
                item.add_marker(pytest.mark.xfail(strict=True, reason=f"known bug: {reason}"))
        for prefix, reason in NOT_RUN_UNTIL_FIXED.items():
            if item.nodeid.startswith(prefix):
                why = reason if isinstance(reason, str) else reason[0]
                item.add_marker(pytest.mark.xfail(run=False, reason=f"known bug: {why}"))
