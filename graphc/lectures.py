"""The circuits of the backpropagation lecture, defined once for every place that shows them.

Stage: surface (lecture material, no compiler work). Imports `gates` only. The examples
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
