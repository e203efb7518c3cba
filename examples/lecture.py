"""The circuits of the backpropagation lecture, compiled by graphc.

Each circuit is a module-level `@gc.function`, so other tools can load one by name (for example
`examples/lecture.py:neuron`). Run the file to see, for each circuit, its value at the lecture's
inputs, the gradient of the output with respect to every input, a numerical gradient check and
the NumPy forward/backward module graphc generates for it:

    PYTHONPATH=. python3 examples/lecture.py
"""

import textwrap

import graphc as gc


@gc.function
def circuit(x, y, z):
    """The first circuit of the lecture: f = (x + y) z."""
    q = x + y
    return q * z


@gc.function
def neuron(w0, x0, w1, x1, w2):
    """A 2-input sigmoid neuron, written gate by gate: 1 / (1 + exp(-(w0 x0 + w1 x1 + w2)))."""
    dot = w0 * x0 + w1 * x1 + w2
    return 1 / (1 + gc.exp(-dot))


@gc.function
def max_gate(x, y, z, w):
    """The lecture's gradient-routing circuit 2 (x y + max(z, w)): add, max and mul gates."""
    return 2 * (x * y + gc.maximum(z, w))


@gc.function
def fanout(x):
    """A value used twice: x*x + x. The gradients of the two uses add (2x + 1 = 7 at x = 3)."""
    return x * x + x


EXAMPLES = [
    ("(x + y) * z", circuit, dict(x=-2.0, y=5.0, z=-4.0)),
    (
        "sigmoid neuron 1 / (1 + exp(-(w0*x0 + w1*x1 + w2)))",
        neuron,
        dict(w0=2.0, x0=-1.0, w1=-3.0, x1=-2.0, w2=-3.0),
    ),
    ("max gate 2 * (x*y + max(z, w))", max_gate, dict(x=3.0, y=-4.0, z=2.0, w=-1.0)),
    ("a value used twice: x*x + x", fanout, dict(x=3.0)),
]


def show(title: str, f: gc.Function, inputs: dict) -> None:
    """Print one circuit: inputs, value, gradients, gradient check and generated code."""
    value, grads = f.value_and_grad(**inputs)
    at = ", ".join(f"{k}={v:g}" for k, v in inputs.items())
    print(f"== {title} ==")
    print(f"at        {at}")
    print(f"value     {value:.4g}")
    print(f"gradients {', '.join(f'd{k}={g:.4g}' for k, g in grads.items())}")
    print(f"gradient check: max relative error {gc.check_grad(f, **inputs):.1e}")
    print("generated code:")
    print(textwrap.indent(f.source, "    ").rstrip())
    print()


def main() -> None:
    for title, f, inputs in EXAMPLES:
        show(title, f, inputs)


if __name__ == "__main__":
    main()
