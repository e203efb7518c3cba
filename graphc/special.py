"""Special functions: SymPy functions with exact derivatives, and the NumPy helpers for them.

Stage: vocabulary. Imports nothing from graphc.

SymPy knows sigmoid-like functions only as compositions of exp, whose naive NumPy spelling
overflows, and whose textbook derivatives cancel (s*(1-s) rounds to 0 for x > 37 although the
true value, 4.25e-18 at x=40, is far from underflow). Each function here is a SymPy `Function`
whose `fdiff` gives a derivative that stays exact, and has a helper that the generated module
defines when it uses the function. Every helper is accurate to a few ulps wherever its result
does not underflow, and never overflows.
"""

from __future__ import annotations

import sympy

OUT = sympy.Symbol("out", real=True)  # a gate's own output, used by lecture-form gradients
DOUT = sympy.Symbol("dout", real=True)  # the upstream gradient, in gradient formulas
ARGS = sympy.symbols("a0:8", real=True)  # positional arguments of elementwise formulas
MASKS = sympy.symbols("m0:8")  # boolean (mask) arguments such as the condition of `where`

HELPERS: dict[str, str] = {}  # helper name -> source, in the order they are defined here


def helper(source: str) -> str:
    """Register a helper's source under the name of the function it defines."""
    name = source.split("def ", 1)[1].split("(", 1)[0]
    HELPERS[name] = source
    return name


class sigmoid(sympy.Function):  # noqa: N801 - the generated module's `sigmoid`
    """The logistic function 1/(1+exp(-x))."""

    nargs = 1

    def fdiff(self, argindex=1):
        # sigma'(x) = sigma(x) * sigma(-x): equal to s*(1-s) but exact where 1-s rounds to 0
        return sigmoid(self.args[0]) * sigmoid(-self.args[0])

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return 1 / (1 + sympy.exp(-x))


class softplus(sympy.Function):  # noqa: N801
    """log(1 + exp(x)), the smooth relu."""

    nargs = 1

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return sympy.log(1 + sympy.exp(x))


class log_sigmoid(sympy.Function):  # noqa: N801
    """log(sigmoid(x)) = -softplus(-x)."""

    nargs = 1

    def fdiff(self, argindex=1):
        return sigmoid(-self.args[0])

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return -sympy.log(1 + sympy.exp(-x))


class sech2(sympy.Function):  # noqa: N801
    """1/cosh(x)**2, the derivative of tanh: 1 - tanh(x)**2 without its cancellation."""

    nargs = 1

    def fdiff(self, argindex=1):
        return -2 * sech2(self.args[0]) * tanh(self.args[0])

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return 4 / (sympy.exp(x) + sympy.exp(-x)) ** 2


class tanh(sympy.Function):  # noqa: N801 - printed as np.tanh
    """tanh(x), whose derivative is the exact sech2(x) rather than 1 - tanh(x)**2."""

    nargs = 1

    def fdiff(self, argindex=1):
        # 1 - out**2 on the slides; sech2 keeps its digits where tanh(x) rounds to +-1
        return sech2(self.args[0])

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return (sympy.exp(x) - sympy.exp(-x)) / (sympy.exp(x) + sympy.exp(-x))


SPECIAL = {f.__name__: f for f in (sigmoid, softplus, log_sigmoid, sech2, tanh)}

helper('''\
def sigmoid(x):
    """1/(1+exp(-x)) for any x: exp is only taken of -|x|, so it never overflows."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0, e) / (1.0 + e)
''')

helper('''\
def softplus(x):
    """log(1+exp(x)) for any x, exact also where exp(x) is tiny: max(x, 0) + log1p(exp(-|x|))."""
    return np.logaddexp(0.0, x)
''')

helper('''\
def log_sigmoid(x):
    """log(sigmoid(x)) = -softplus(-x) for any x, without overflow or log(0)."""
    return -np.logaddexp(0.0, -x)
''')

helper('''\
def sech2(x):
    """1/cosh(x)**2 = 1 - tanh(x)**2, exact for any x (no overflow, no cancellation)."""
    e = np.exp(-2.0 * np.abs(x))
    return 4.0 * e / (1.0 + e) ** 2
''')

helper('''\
def log_softmax(x, axis=-1):
    """log(softmax(x)) over axis, exact for any x.

    With m the largest entry, log_softmax = (x - m) - log1p(sum of the other exp(x - m)): no
    exp overflows, and a tiny remainder is not lost by adding it to 1 first.
    """
    top = np.max(x, axis=axis, keepdims=True)
    shifted = x - np.where(np.isfinite(top), top, 0.0)
    rest = np.exp(shifted)
    np.put_along_axis(rest, np.expand_dims(np.argmax(x, axis=axis), axis), 0.0, axis=axis)
    return shifted - np.log1p(np.sum(rest, axis=axis, keepdims=True))
''')

helper('''\
def logsumexp(x, axis=-1, keepdims=False):
    """log(sum(exp(x))) over axis, exact for any x: the largest entry minus its log_softmax."""
    top = np.max(x, axis=axis, keepdims=True)
    out = top - np.max(log_softmax(x, axis), axis=axis, keepdims=True)
    return out if keepdims else np.squeeze(out, axis=axis)
''')

helper('''\
def softmax_cross_entropy(x, y, axis=-1):
    """-sum(y * log_softmax(x)) over axis: the cross-entropy of labels y against softmax(x)."""
    return -np.sum(y * log_softmax(x, axis), axis=axis)
''')

helper('''\
def softmax_cross_entropy_grad(x, y, axis=-1):
    """d/dx softmax_cross_entropy = softmax(x) * sum(y) - y, exact where y is one-hot.

    At the labelled entry softmax - 1 would cancel; it is computed as expm1(log_softmax) instead.
    """
    logp = log_softmax(x, axis)
    mass = np.sum(y, axis=axis, keepdims=True)
    return np.where(y == mass, mass * np.expm1(logp), np.exp(logp) * mass - y)
''')

helper('''\
def route_to_max(dout, x, axis, keepdims):
    """The max gate's backward: dout goes to the first largest entry along axis, 0 elsewhere."""
    dx = np.zeros(np.shape(x), dtype=np.result_type(x, dout))
    if axis is None:
        dx.flat[np.argmax(x)] = np.ravel(dout)[0]  # dout has one entry (kept axes or not)
        return dx
    where = np.expand_dims(np.argmax(x, axis=axis), axis)
    np.put_along_axis(dx, where, dout if keepdims else np.expand_dims(dout, axis), axis)
    return dx
''')

# helpers that call other helpers
HELPER_NEEDS = {
    "logsumexp": ("log_softmax",),
    "softmax_cross_entropy": ("log_softmax",),
    "softmax_cross_entropy_grad": ("log_softmax",),
}
