"""The circuits of the backpropagation lecture, compiled by graphc.

The circuits live in `graphc/lectures.py` (shared with `graphc demo`, the docs gallery and the
tests); each is compiled here into a module-level `gc.Function`, so other tools can load one by
name (for example `examples/lecture.py:neuron`). Run the file to see, for each circuit, its value
at the lecture's inputs, the gradient of the output with respect to every input, a numerical
gradient check and the NumPy forward/backward module graphc generates for it:

    PYTHONPATH=. python3 examples/lecture.py
"""

import textwrap

import graphc as gc
from graphc.lectures import LECTURES

circuit, neuron, max_gate, fanout = (gc.function(lecture.fn) for lecture in LECTURES)

EXAMPLES = [
    (lecture.title, f, lecture.inputs)
    for lecture, f in zip(LECTURES, (circuit, neuron, max_gate, fanout), strict=True)
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
