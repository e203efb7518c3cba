"""The gates as functions users call: `gc.exp`, `gc.sum`, `gc.gate`, ...

Stage: front (the public vocabulary). Imports `trace`, `params` and the `ir`. The names here
shadow Python's `abs`, `sum` and `max` on purpose, as NumPy's do; this module uses none of them
(and `from graphc import *` leaves them out, see `graphc.__all__`).

On traced values a gate records itself in the graph; on numbers and arrays alone it computes its
value at once, as NumPy does (`gc.exp(1.0)` is e, `gc.sum([1, 2, 3])` is 6): the table's NumPy
spelling, run.
"""

from __future__ import annotations

import numbers

import numpy as np
import sympy

from ..ir.errors import TraceError
from ..ir.ops import GateName, define_gate, evaluate, gate_call, gate_of
from . import params
from .trace import Arange, Size, Value, apply


def _call(op: str, *args, **params):
    """Gate `op` of `args`: a traced Value if any argument is traced, else its value now."""
    if any(_traced(a) for a in args):
        return apply(op, *args, **params)  # which refuses a list of traced values, as ever
    if any(isinstance(a, sympy.Basic) for a in args):
        raise TraceError(
            f"gc.{op} takes traced values, numbers or arrays, not SymPy expressions; write "
            f"SymPy's own function (sympy.exp, ...), or a gate made with gc.gate, which takes both"
        )
    return evaluate(gate_of(op), args, params)


def _traced(a) -> bool:
    """Whether `a` is, or (a list or tuple) holds, a traced value."""
    if isinstance(a, (list, tuple)):
        return any(_traced(v) for v in a)
    return isinstance(a, Value)


def exp(x):
    """e**x."""
    return _call("exp", x)


def log(x):
    """Natural logarithm."""
    return _call("log", x)


def sqrt(x):
    """Square root."""
    return _call("sqrt", x)


def abs(x):  # noqa: A001 - the gate's name
    """|x|; its gradient at 0 is 0 (sign(0))."""
    return _call("abs", x)


def tanh(x):
    """Hyperbolic tangent; local gradient 1 - out**2."""
    return _call("tanh", x)


def sigmoid(x):
    """1/(1+exp(-x)), computed without overflow; local gradient out*sigmoid(-x)."""
    return _call("sigmoid", x)


def relu(x):
    """max(x, 0); its gradient at 0 is 0."""
    return _call("relu", x)


def maximum(a, b):
    """Elementwise max; routes the gradient to the larger input, to `a` on a tie."""
    return _call("maximum", a, b)


def minimum(a, b):
    """Elementwise min; routes the gradient to the smaller input, to `a` on a tie."""
    return _call("minimum", a, b)


def where(cond, a, b):
    """`a` where the mask `cond` (a comparison) holds, else `b`; no gradient flows into `cond`."""
    return _call("where", cond, a, b)


def sum(x, axis=None, keepdims=False):  # noqa: A001
    """Sum over `axis` (all axes by default); its gradient broadcasts back, no Jacobian formed."""
    return _call("sum", x, **params.reduction(axis, keepdims, "sum"))


def mean(x, axis=None, keepdims=False):
    """Mean over `axis` (all axes by default)."""
    return _call("mean", x, **params.reduction(axis, keepdims, "mean"))


def max(x, axis=None, keepdims=False):  # noqa: A001
    """Max over `axis` (None or one axis); the gradient goes to the first largest entry."""
    return _call("max", x, **params.max_reduction(axis, keepdims))


def matmul(a, b):
    """Matrix product a @ b (vectors and batches of matrices as in NumPy)."""
    return _call("matmul", a, b)


def transpose(x, axes=None):
    """Reverse the axes, or permute them by `axes`."""
    return _call("transpose", x, axes=params.axes(axes))


def reshape(x, shape):
    """Reshape to `shape` (one entry may be -1)."""
    return _call("reshape", x, shape=params.shape(shape))


def take_along_axis(a, indices, axis):
    """`np.take_along_axis(a, indices, axis)`: entries of `a` picked by the integer `indices`
    along `axis` (no gradient flows into them); its backward adds dout back at the picked
    entries, repeats adding up (np.add.at)."""
    return _call("take_along_axis", a, indices, axis=params.one_axis(axis, "take_along_axis"))


def concatenate(arrays, axis=0):
    """`np.concatenate(arrays, axis)`: arrays joined along an existing axis; each gets its own
    stretch of the gradient back."""
    return _call("concatenate", *_sequence(arrays, "concatenate"),
                 axis=params.one_axis(axis, "concatenate"))  # fmt: skip


def stack(arrays, axis=0):
    """`np.stack(arrays, axis)`: arrays of one shape joined along a new axis."""
    return _call("stack", *_sequence(arrays, "stack"), axis=params.one_axis(axis, "stack"))


def _sequence(arrays, name: str) -> list:
    if isinstance(arrays, Value) or not isinstance(arrays, (list, tuple)) or not arrays:
        raise TraceError(
            f"gc.{name} takes a non-empty list or tuple of arrays, e.g. gc.{name}([a, b], axis=0)"
        )
    return list(arrays)


def arange(n):
    """Every index 0..n-1, to pick one entry per row: `scores[gc.arange(N), y]` is
    `scores[i, y[i]]` for each row i, with N = scores.shape[0] read by the generated code. On a
    plain int outside tracing it is np.arange(n)."""
    if isinstance(n, Size):
        return Arange(n)
    if isinstance(n, numbers.Integral) and not isinstance(n, bool):
        return np.arange(n)
    raise TraceError(f"gc.arange takes a size, x.shape[0], or an int; got {n!r}")


class GateFunction:
    """A user-defined elementwise gate made by `gc.gate`.

    On traced values it records the gate, on numbers and arrays it computes it (as NumPy), and
    on SymPy expressions it is a SymPy function (`ops.GateCall`) that `gc.from_sympy` reads back
    as this gate. The gate is the one defined when this object was made, whatever `gc.gate`
    defines under its name later.
    """

    def __init__(self, gate):
        self.gate = gate
        self.__name__ = gate.name

    def __call__(self, *args):
        if len(args) != self.gate.arity:
            raise TraceError(
                f"gate {self.gate.name!r} takes {self.gate.arity} argument(s), got {len(args)}"
            )
        if any(_traced(a) for a in args):
            return apply(GateName(self.gate), *args)
        if any(isinstance(a, sympy.Basic) for a in args):
            return gate_call(self.gate)(*args)
        return evaluate(self.gate, args, {})

    def __repr__(self) -> str:
        return f"<graphc gate {self.gate.name}: {self.gate.expr()}>"


def gate(name: str, formula, symbol: str | None = None) -> GateFunction:
    """Define a new elementwise gate from a SymPy formula; SymPy derives its local gradients.

    >>> swish = gate("swish", lambda a: a * sympy.exp(a) / (1 + sympy.exp(a)))
    """
    return GateFunction(define_gate(name, formula, symbol))
