"""The gates as functions users call while tracing: `gc.exp`, `gc.sum`, `gc.gate`, ...

Stage: front-end (the public vocabulary). Imports `trace`, `ops` and `errors`. The names here
shadow Python's `abs`, `sum` and `max` on purpose, as NumPy's do; this module uses none of them.
"""

from __future__ import annotations

from .errors import TraceError
from .ops import define_gate
from .trace import apply


def exp(x):
    """e**x."""
    return apply("exp", x)


def log(x):
    """Natural logarithm."""
    return apply("log", x)


def sqrt(x):
    """Square root."""
    return apply("sqrt", x)


def abs(x):  # noqa: A001 - the gate's name
    """|x|; its gradient at 0 is 0 (sign(0))."""
    return apply("abs", x)


def tanh(x):
    """Hyperbolic tangent; local gradient 1 - out**2."""
    return apply("tanh", x)


def sigmoid(x):
    """1/(1+exp(-x)), computed without overflow; local gradient out*sigmoid(-x)."""
    return apply("sigmoid", x)


def relu(x):
    """max(x, 0); its gradient at 0 is 0."""
    return apply("relu", x)


def maximum(a, b):
    """Elementwise max; routes the gradient to the larger input, to `a` on a tie."""
    return apply("maximum", a, b)


def minimum(a, b):
    """Elementwise min; routes the gradient to the smaller input, to `a` on a tie."""
    return apply("minimum", a, b)


def where(cond, a, b):
    """`a` where the mask `cond` (a comparison) holds, else `b`; no gradient flows into `cond`."""
    return apply("where", cond, a, b)


def _axis(axis, gate):
    if axis is None or isinstance(axis, int) and not isinstance(axis, bool):
        return axis
    if isinstance(axis, tuple) and axis and all(isinstance(a, int) for a in axis):
        return axis
    raise TraceError(f"gc.{gate}: axis must be None, an int or a tuple of ints, got {axis!r}")


def sum(x, axis=None, keepdims=False):  # noqa: A001
    """Sum over `axis` (all axes by default); its gradient broadcasts back, no Jacobian formed."""
    return apply("sum", x, axis=_axis(axis, "sum"), keepdims=bool(keepdims))


def mean(x, axis=None, keepdims=False):
    """Mean over `axis` (all axes by default)."""
    return apply("mean", x, axis=_axis(axis, "mean"), keepdims=bool(keepdims))


def max(x, axis=None, keepdims=False):  # noqa: A001
    """Max over `axis` (None or one axis); the gradient goes to the first largest entry."""
    axis = _axis(axis, "max")
    if isinstance(axis, tuple) and len(axis) != 1:
        raise TraceError("gc.max reduces over one axis or all of them; pass axis=None or an int")
    return apply(
        "max", x, axis=axis[0] if isinstance(axis, tuple) else axis, keepdims=bool(keepdims)
    )


def matmul(a, b):
    """Matrix product a @ b (vectors and batches of matrices as in NumPy)."""
    return apply("matmul", a, b)


def transpose(x, axes=None):
    """Reverse the axes, or permute them by `axes`."""
    if axes is not None:
        axes = tuple(int(a) for a in axes)
    return apply("transpose", x, axes=axes)


def reshape(x, shape):
    """Reshape to `shape` (one entry may be -1)."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if not all(isinstance(n, int) and n >= -1 for n in shape):
        raise TraceError(
            f"gc.reshape: shape must be a tuple of non-negative ints or -1, got {shape!r}"
        )
    return apply("reshape", x, shape=shape)


class GateFunction:
    """A user-defined elementwise gate made by `gc.gate`; call it on traced values."""

    def __init__(self, gate):
        self.gate = gate
        self.__name__ = gate.name

    def __call__(self, *args):
        if len(args) != self.gate.arity:
            raise TraceError(
                f"gate {self.gate.name!r} takes {self.gate.arity} argument(s), got {len(args)}"
            )
        return apply(self.gate.name, *args)

    def __repr__(self) -> str:
        return f"<graphc gate {self.gate.name}: {self.gate.expr()}>"


def gate(name: str, formula, symbol: str | None = None) -> GateFunction:
    """Define a new elementwise gate from a SymPy formula; SymPy derives its local gradients.

    >>> swish = gate("swish", lambda a: a * sympy.exp(a) / (1 + sympy.exp(a)))
    """
    return GateFunction(define_gate(name, formula, symbol))
