"""The circuits of the backpropagation lecture, defined once for every place that shows them.

Stage: surface (lecture material, no compiler work). Imports `gates` (and NumPy for the
2-layer net's example inputs). The examples
(`examples/lecture.py`), `graphc demo` and its checked-in gallery (`docs/gallery/`) and the
tests all read `LECTURES`, so a circuit, its title and the lecture's inputs cannot drift apart.
The functions are plain Python; wrap one with `graphc.function` to compile it:

>>> import graphc as gc
>>> from graphc.lectures import LECTURES
>>> circuit = LECTURES[0]
>>> gc.function(circuit.fn).value_and_grad(**circuit.inputs)
(-12.0, {'x': -4.0, 'y': -4.0, 'z': 3.0})
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .front import gates


def circuit(x, y, z):
    """The first circuit of the lecture: f = (x + y) z."""
    q = x + y
    return q * z


def neuron(w0, x0, w1, x1, w2):
    """A 2-input sigmoid neuron, written gate by gate: 1 / (1 + exp(-(w0 x0 + w1 x1 + w2)))."""
    dot = w0 * x0 + w1 * x1 + w2
    return 1 / (1 + gates.exp(-dot))


def max_gate(x, y, z, w):
    """The lecture's gradient-routing circuit 2 (x y + max(z, w)): add, max and mul gates."""
    return 2 * (x * y + gates.maximum(z, w))


def fanout(x):
    """A value used twice: x*x + x. The gradients of the two uses add (2x + 1 = 7 at x = 3)."""
    return x * x + x


@dataclass(frozen=True)
class Lecture:
    """One lecture circuit: a file-name-safe name, a title, the function, the slide's inputs."""

    name: str
    title: str
    fn: Callable
    inputs: dict


LECTURES = [
    Lecture("circuit", "(x + y) * z", circuit, dict(x=-2.0, y=5.0, z=-4.0)),
    Lecture(
        "neuron",
        "sigmoid neuron 1 / (1 + exp(-(w0*x0 + w1*x1 + w2)))",
        neuron,
        dict(w0=2.0, x0=-1.0, w1=-3.0, x1=-2.0, w2=-3.0),
    ),
    Lecture(
        "max_gate", "max gate 2 * (x*y + max(z, w))", max_gate, dict(x=3.0, y=-4.0, z=2.0, w=-1.0)
    ),
    Lecture("fanout", "a value used twice: x*x + x", fanout, dict(x=3.0)),
]


def forks(x, y):
    """(x y)(x + y): x and y are each read twice; their gradients add (2xy + y², x² + 2xy)."""
    return (x * y) * (x + y)


def two_layer_net(X, Y, W1, b1, W2, b2, reg):  # noqa: N803 - the lecture's names
    """The loss of examples/two_layer_net.py: softmax cross-entropy of a 2-layer net, plus L2."""
    hidden = gates.relu(X @ W1 + b1)
    scores = hidden @ W2 + b2
    shifted = scores - gates.max(scores, axis=1, keepdims=True)  # exp never overflows
    log_probs = shifted - gates.log(gates.sum(gates.exp(shifted), axis=1, keepdims=True))
    data_loss = -gates.mean(gates.sum(Y * log_probs, axis=1))
    reg_loss = 0.5 * reg * (gates.sum(W1 * W1) + gates.sum(W2 * W2))
    return data_loss + reg_loss


@dataclass(frozen=True)
class Slide:
    """A picture for the slides beyond the lecture circuits: how to draw which circuit."""

    name: str
    title: str
    fn: Callable
    inputs: dict
    options: dict  # drawing options (show_local, fit, ...)
    fused: bool = False


NET_INPUTS = dict(
    X=np.array([[0.5, -1.0], [1.5, 0.25], [-0.75, 0.5], [0.0, 1.0]]),
    Y=np.eye(3)[[0, 1, 2, 0]],
    W1=np.array([[0.2, -0.3, 0.1, 0.4, -0.2], [0.3, 0.1, -0.4, 0.2, 0.1]]),
    b1=np.zeros(5),
    W2=np.array([[0.1, -0.2, 0.3], [0.2, 0.1, -0.1], [-0.3, 0.2, 0.1], [0.1, 0.3, -0.2],
                 [0.2, -0.1, 0.1]]),
    b2=np.zeros(3),
    reg=1e-3,
)  # fmt: skip

SLIDES = [
    Slide("forks", "gradients add at forks: (x*y) * (x+y)", forks, dict(x=3.0, y=-2.0), {}),
    Slide(
        "max_gate-local",
        "the max gate routes the gradient, local gradients shown",
        max_gate,
        dict(x=3.0, y=-4.0, z=2.0, w=-1.0),
        {"show_local": True},
    ),
    Slide(
        "two_layer_net-16x9",
        "the 2-layer net, fused, fitted to a 16:9 slide",
        two_layer_net,
        NET_INPUTS,
        {"fit": "16:9"},
        fused=True,
    ),
]
