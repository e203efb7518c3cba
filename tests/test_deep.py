"""Deep graphs: 50,000 chained gates compile and differentiate without hitting the recursion limit.

Python's default recursion limit is 1,000, so any recursive walk (tracing, graph building, shape
inference, the backward pass, scheduling, printing) would fail long before 50,000 gates.
"""

import math
import sys

import numpy as np
import pytest

import graphc as gc

STEPS = 25_000  # each step is a mul gate and an add gate: 50,000 chained gates
RATE = 1.0001


def test_fifty_thousand_chained_gates_compile_and_differentiate():
    assert sys.getrecursionlimit() < STEPS  # a recursive walk would have to fail

    @gc.function
    def chain(x):
        for _ in range(STEPS):
            x = x * RATE + 0.0
        return x

    gates = [op for _, op in chain.graph.nodes(data="op") if op not in ("input", "const")]
    assert len(gates) >= 2 * STEPS
    value, grads = chain.value_and_grad(x=1.5)
    # x * RATE**STEPS, computed independently with exact powers
    assert value == pytest.approx(1.5 * RATE**STEPS, rel=1e-10)
    assert grads["x"] == pytest.approx(RATE**STEPS, rel=1e-10)
    assert grads["x"] == pytest.approx(math.exp(STEPS * math.log1p(1e-4)), rel=1e-10)
    # the generated module has one statement per gate, at least
    assert chain.source.count("\n") > 2 * STEPS


def test_deep_chain_on_arrays_and_from_symbols():
    x = gc.symbols("x")
    y = x
    for _ in range(3_000):  # 9,000 gates: tanh, mul, add per step
        y = y + 1e-3 * gc.tanh(y)
    f = gc.function(y)
    v = np.array([-1.0, 0.25, 2.0])
    value, grads = f.value_and_grad(x=v)

    # an independent forward pass and chain rule, written by hand
    z, derivative = v.copy(), np.ones(3)
    for _ in range(3_000):
        t = np.tanh(z)
        derivative = derivative * (1 + 1e-3 * (1 - t**2))
        z = z + 1e-3 * t
    assert np.all((derivative > 1.01) & (derivative < 100))  # a gradient worth checking
    np.testing.assert_allclose(value, z, rtol=1e-12)
    np.testing.assert_allclose(grads["x"], derivative, rtol=1e-10)
