"""Circuits to draw in the picture tests: the lecture's, the fork circuits, random DAGs, the net.

Random DAGs are scalar programs of up to 30 gates written from a seeded generator: each gate
reads one or two earlier values (any of them, so values fork and wires cross), with the ops
whose argument order matters (-, /, maximum) among them.
"""

from __future__ import annotations

import numpy as np

import graphc as gc
from graphc import lectures

BINARY = ("+", "*", "-", "/")
UNARY = ("exp", "tanh", "sigmoid")


def random_program(seed: int, gates: int, inputs: int = 3) -> tuple[str, dict]:
    """The text of a random scalar function of `gates` gates, and inputs to draw it at."""
    rng = np.random.default_rng(seed)
    names = [f"x{i}" for i in range(inputs)]
    lines, values = [], list(names)
    for k in range(gates):
        kind = rng.integers(0, 4)
        a = values[rng.integers(max(0, len(values) - 6), len(values))]
        b = values[rng.integers(0, len(values))]
        if kind == 0:
            expr = f"gc.{UNARY[rng.integers(0, len(UNARY))]}({a} * 0.5)"
        elif kind == 1:
            expr = f"gc.maximum({a}, {b})"
        else:
            op = BINARY[rng.integers(0, len(BINARY))]
            expr = f"{a} {op} (1.5 + {b} * {b})" if op == "/" else f"{a} {op} {b}"
        lines.append(f"    v{k} = {expr}")
        values.append(f"v{k}")
    text = f"def f({', '.join(names)}):\n" + "\n".join(lines) + f"\n    return {values[-1]}\n"
    return text, {n: 0.3 + 0.4 * i for i, n in enumerate(names)}


def random_function(seed: int, gates: int):
    text, at = random_program(seed, gates)
    scope = {"gc": gc}
    exec(text, scope)
    return gc.function(scope["f"]), at


def two_layer_net():
    """The loss of examples/two_layer_net.py at a small batch, and its inputs."""
    from examples.two_layer_net import loss

    rng = np.random.default_rng(0)
    at = dict(
        X=rng.standard_normal((4, 2)), Y=np.eye(3)[[0, 1, 2, 0]],
        W1=0.3 * rng.standard_normal((2, 5)), b1=np.zeros(5),
        W2=0.3 * rng.standard_normal((5, 3)), b2=np.zeros(3), reg=1e-3,
    )  # fmt: skip
    return loss, at


def corpus():
    """(name, function, inputs) of every circuit the picture rules are tested on."""
    for lecture in lectures.LECTURES:
        yield lecture.name, gc.function(lecture.fn), lecture.inputs
    yield "square_plus", gc.function(lambda x: x * x + x), dict(x=3.0)
    yield "xy_times_x_plus_y", gc.function(lambda x, y: (x * y) * (x + y)), dict(x=3.0, y=-2.0)
    yield "operand_order", gc.function(lambda a, b, c: (c - a) / (b - c)), dict(a=1.0, b=2.0, c=4.0)
    for seed, gates in ((1, 8), (2, 12), (3, 16), (4, 20), (5, 25), (6, 30)):
        f, at = random_function(seed, gates)
        yield f"random{seed}_{gates}", f, at
    net, at = two_layer_net()
    yield "two_layer_net", net, at
    yield "two_layer_net_fused", net.fused(), at
