"""Special functions: SymPy functions with exact derivatives, and the NumPy helpers for them.

Stage: ir, part of the gate table's vocabulary. Imports nothing from graphc.

SymPy knows sigmoid-like functions only as compositions of exp, whose naive NumPy spelling
overflows, and whose textbook derivatives cancel (s*(1-s) rounds to 0 for x > 37 although the
true value, 4.25e-18 at x=40, is far from underflow). Each function here is a SymPy `Function`
whose `fdiff` gives a derivative that stays exact, and has a helper that the generated module
defines when it uses the function. Every helper is accurate to a few ulps wherever its result
does not underflow, and never overflows.
"""

from __future__ import annotations

import math
import operator

import sympy
from sympy.printing.precedence import PRECEDENCE

OUT = sympy.Symbol("out", real=True)  # a gate's own output, used by lecture-form gradients
DOUT = sympy.Symbol("dout", real=True)  # the upstream gradient, in gradient formulas
ARGS = sympy.symbols("a0:8", real=True)  # positional arguments of elementwise formulas
MASKS = sympy.symbols("m0:8")  # boolean (mask) arguments such as the condition of `where`
# SymPy's infinities and NaN are no IEEE numbers (1/0 is the unsigned zoo): a formula that folds
# into one of them is written with its constants unfolded, for NumPy to compute
NOT_FINITE = (sympy.zoo, sympy.nan, sympy.oo, -sympy.oo)


def folds_badly(formula: sympy.Expr) -> bool:
    """Whether folding constants into `formula` left what no float64 computes as NumPy would:
    SymPy's infinities and NaN (x/0 is zoo), or a number beyond float64's range (SymPy's
    1e200 * 1e200 is 1e400, NumPy's inf with a warning; 1e-400 is 0). NumPy then computes."""
    if formula.has(*NOT_FINITE):
        return True
    numbers = formula.atoms(sympy.Float, sympy.Rational)
    return any(math.isinf(float(a)) or (a != 0 and float(a) == 0) for a in numbers)


def is_plain_float(value) -> bool:
    """Whether `value` is a finite float SymPy treats like any other: not a whole or half number
    (0, 1.0, 2.0 and 0.5 can fold away, or print as sqrt), so a formula's shape and printed text
    do not depend on it beyond its sign."""
    if not isinstance(value, (float, sympy.Float)):
        return False
    v = float(value)
    return math.isfinite(v) and not (2 * v).is_integer()


HELPERS: dict[str, str] = {}  # helper name -> source, in the order they are defined here


def helper(source: str) -> str:
    """Register a helper's source under the name of the function it defines."""
    name = source.split("def ", 1)[1].split("(", 1)[0]
    HELPERS[name] = source
    return name


class _RealFunction(sympy.Function):
    """A function that is real for a real argument (so SymPy never differentiates |f(x)| or
    log(f(x)) through re, im and arg), positive or negative as `sign` says."""

    sign = 0

    def _eval_is_real(self):
        return self.args[0].is_real

    def _eval_is_positive(self):
        return self.args[0].is_real and self.sign > 0 or None

    def _eval_is_negative(self):
        return self.args[0].is_real and self.sign < 0 or None


class sigmoid(_RealFunction):  # noqa: N801 - the generated module's `sigmoid`
    """The logistic function 1/(1+exp(-x))."""

    nargs = 1
    sign = 1

    def fdiff(self, argindex=1):
        # sigma'(x) = sigma(x) * sigma(-x): equal to s*(1-s) but exact where 1-s rounds to 0
        return sigmoid(self.args[0]) * sigmoid(-self.args[0])

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return 1 / (1 + sympy.exp(-x))


class softplus(_RealFunction):  # noqa: N801
    """log(1 + exp(x)), the smooth relu."""

    nargs = 1
    sign = 1

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return sympy.log(1 + sympy.exp(x))


class log_sigmoid(_RealFunction):  # noqa: N801
    """log(sigmoid(x)) = -softplus(-x)."""

    nargs = 1
    sign = -1

    def fdiff(self, argindex=1):
        return sigmoid(-self.args[0])

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return -sympy.log(1 + sympy.exp(-x))


class sech2(_RealFunction):  # noqa: N801
    """1/cosh(x)**2, the derivative of tanh: 1 - tanh(x)**2 without its cancellation."""

    nargs = 1
    sign = 1

    def fdiff(self, argindex=1):
        return -2 * sech2(self.args[0]) * tanh(self.args[0])

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return 4 / (sympy.exp(x) + sympy.exp(-x)) ** 2


class tanh(_RealFunction):  # noqa: N801 - printed as np.tanh
    """tanh(x), whose derivative is the exact sech2(x) rather than 1 - tanh(x)**2."""

    nargs = 1

    def fdiff(self, argindex=1):
        # 1 - out**2 on the slides; sech2 keeps its digits where tanh(x) rounds to +-1
        return sech2(self.args[0])

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return (sympy.exp(x) - sympy.exp(-x)) / (sympy.exp(x) + sympy.exp(-x))


SPECIAL = {f.__name__: f for f in (sigmoid, softplus, log_sigmoid, sech2, tanh)}

# ---------------------------------------------------------------- gates with kinks, kept whole
#
# The table writes relu, leaky_relu, maximum, minimum and where as Piecewise formulas. Composed
# into one fused formula, Piecewise is a trap: SymPy folds a Piecewise inside another one's
# condition (wrongly, for some branches), recurses deeply on nested ones, and differentiating k
# of them multiplies branches (compile time grows like 4**k). Inside fused formulas these gates
# are the opaque functions below instead. SymPy cannot look inside them, so it never rewrites a
# condition; their derivatives are comparisons (steps) printed as the NumPy comparisons the
# unfused gates' backward code reads, with each kink's subgradient exactly as the table has it.


class _Comparison(sympy.Function):
    """1 where `a <op> b` holds, else 0: the derivative of a gate at one side of its kink.

    Printed as the NumPy comparison `(a > b)`, a boolean: see `numeric_masks` for where a
    boolean is not a number.
    """

    nargs = 2
    op = ""

    @classmethod
    def eval(cls, a, b):
        if _numbers(a, b):
            return sympy.S.One if cls.holds(float(a), float(b)) else sympy.S.Zero

    def fdiff(self, argindex=1):
        return sympy.S.Zero  # a step is flat on both sides of its kink

    def _eval_is_real(self):
        return True

    def _eval_is_nonnegative(self):
        return True

    def _eval_power(self, exponent):
        if exponent.is_positive:  # 0**e = 0 and 1**e = 1
            return self

    def _numpycode(self, printer):
        a, b = (printer._print(x) for x in self.args)
        return f"({a} {self.op} {b})"


class greater(_Comparison):  # noqa: N801 - named after the NumPy comparison it prints as
    op, holds = ">", operator.gt


class greater_equal(_Comparison):  # noqa: N801
    op, holds = ">=", operator.ge


class less(_Comparison):  # noqa: N801
    op, holds = "<", operator.lt


class less_equal(_Comparison):  # noqa: N801
    op, holds = "<=", operator.le


class logical_not(sympy.Function):  # noqa: N801
    """1 where a mask is false: where's derivative in its third argument."""

    nargs = 1

    @classmethod
    def eval(cls, mask):
        if mask in (0, 1):
            return 1 - mask

    def fdiff(self, argindex=1):
        return sympy.S.Zero

    def _eval_is_real(self):
        return True

    def _eval_is_nonnegative(self):
        return True

    def _eval_power(self, exponent):
        if exponent.is_positive:
            return self

    def _numpycode(self, printer):
        return f"{printer._module_format('numpy.logical_not')}({printer._print(self.args[0])})"


def _real(args):
    return all(a.is_real for a in args) or None


def _numbers(*args) -> bool:
    """Whether every argument is a finite number, so that a gate of them is folded to one."""
    return all(a.is_Number and a.is_finite for a in args)


class relu(sympy.Function):  # noqa: N801
    """max(x, 0); relu'(0) = 0, as in the table."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        if _numbers(x):
            return x if x > 0 else sympy.S.Zero

    def fdiff(self, argindex=1):
        return greater(self.args[0], 0)

    def _eval_is_real(self):
        return _real(self.args)

    def _eval_is_nonnegative(self):
        return _real(self.args)

    def _numpycode(self, printer):
        return f"{printer._module_format('numpy.maximum')}({printer._print(self.args[0])}, 0)"


class leaky_relu(sympy.Function):  # noqa: N801 - the generated module's `leaky_relu`
    """x where x > 0, else slope*x; its derivative at 0 is the slope, as in the table."""

    nargs = 2

    @classmethod
    def eval(cls, x, slope):
        if _numbers(x, slope):
            return x if x > 0 else slope * x

    def fdiff(self, argindex=1):
        x, slope = self.args
        if argindex == 1:
            return where(greater(x, 0), 1, slope)
        return where(greater(x, 0), 0, x)

    def _eval_is_real(self):
        return _real(self.args)


class maximum(sympy.Function):  # noqa: N801
    """The larger of a and b; on a tie the first argument takes the whole gradient."""

    nargs = 2

    @classmethod
    def eval(cls, a, b):
        if _numbers(a, b):
            return a if a >= b else b

    def fdiff(self, argindex=1):
        a, b = self.args
        return greater_equal(a, b) if argindex == 1 else less(a, b)

    def _eval_is_real(self):
        return _real(self.args)

    def _numpycode(self, printer):
        a, b = (printer._print(x) for x in self.args)
        return f"{printer._module_format('numpy.maximum')}({a}, {b})"


class minimum(sympy.Function):  # noqa: N801
    """The smaller of a and b; on a tie the first argument takes the whole gradient."""

    nargs = 2

    @classmethod
    def eval(cls, a, b):
        if _numbers(a, b):
            return a if a <= b else b

    def fdiff(self, argindex=1):
        a, b = self.args
        return less_equal(a, b) if argindex == 1 else greater(a, b)

    def _eval_is_real(self):
        return _real(self.args)

    def _numpycode(self, printer):
        a, b = (printer._print(x) for x in self.args)
        return f"{printer._module_format('numpy.minimum')}({a}, {b})"


class where(sympy.Function):  # noqa: N801
    """a where the mask holds, else b; no gradient flows into the mask."""

    nargs = 3

    @classmethod
    def eval(cls, mask, a, b):
        if mask in (0, 1):  # a comparison of two numbers
            return a if mask == 1 else b

    def fdiff(self, argindex=1):
        mask = self.args[0]
        return {1: sympy.S.Zero, 2: mask, 3: logical_not(mask)}[argindex]

    def _eval_is_real(self):
        return _real(self.args[1:])

    def _numpycode(self, printer):
        m, a, b = (printer._print(x) for x in self.args)
        return f"{printer._module_format('numpy.where')}({m}, {a}, {b})"


class cancelled(sympy.Function):  # noqa: N801
    """0 with the shape (and the NaN or inf) of a value that cancelled out of a fused formula.

    x - x is 0 to SymPy, but the gate still has x's shape, and NaN where x is not finite, as the
    unfused gates compute it. Printed `0.0 * x`, which has both.
    """

    nargs = 1

    def fdiff(self, argindex=1):
        return sympy.S.Zero

    def _eval_is_real(self):
        return _real(self.args)

    def _numpycode(self, printer):
        return f"0.0 * {printer.parenthesize(self.args[0], PRECEDENCE['Mul'])}"


def is_boolean(e: sympy.Expr, booleans=frozenset()) -> bool:
    """Whether `e` prints as a NumPy boolean: a comparison, a mask, one of `booleans` (symbols
    standing for booleans), or a product of them."""
    if isinstance(e, (_Comparison, logical_not)) or e in MASKS or e in booleans:
        return True
    return e.is_Mul and all(is_boolean(f, booleans) for f in e.args)


def numeric_masks(expr: sympy.Expr, booleans=frozenset()) -> sympy.Expr:
    """`expr` with every comparison or mask where NumPy computes with it as a number.

    A NumPy boolean is a number only next to one: `dout * (x > 0)` is right, but `(x > 0) +
    (y > 0)` is a logical or (True, not 2) and `-(x > 0)` raises. So a sum of two or more
    booleans gets `1.0 *` on each, and a product with a minus sign the coefficient -1.0.
    `booleans`: symbols that stand for booleans too (shared steps).
    """
    if not expr.args or isinstance(expr, (_Comparison, logical_not)):
        return expr
    args = [numeric_masks(a, booleans) for a in expr.args]
    if expr.is_Add and sum(is_boolean(a, booleans) for a in args) > 1:
        args = [sympy.Float(1.0) * a if is_boolean(a, booleans) else a for a in args]
    elif expr.is_Mul and args[0] == -1 and any(is_boolean(a, booleans) for a in args[1:]):
        args[0] = sympy.Float(-1.0)
    elif expr.is_Pow and is_boolean(args[0], booleans):
        args[0] = sympy.Float(1.0) * args[0]
    # unchanged: compared by identity, since SymPy before 1.13 calls Float(-1.0) and -1 equal
    if all(new is old for new, old in zip(args, expr.args)):
        return expr
    return expr.func(*args, evaluate=False) if expr.is_Mul else expr.func(*args)


helper('''\
def sigmoid(x):
    """1/(1+exp(-x)) for any x, over one exp(-|x|), which never overflows.

    e <= 1, so max(e, x >= 0) is 1 where x >= 0 and e = exp(x) elsewhere: exp(min(x, 0)).
    """
    e = np.exp(-np.abs(x))
    return np.maximum(e, x >= 0) / (1.0 + e)
''')

helper('''\
def sigmoid_pair(x):
    """sigmoid(x) and sigmoid(-x) for any x, over one exp(-|x|), which never overflows.

    e <= 1, so max(e, x >= 0) is exp(min(x, 0)) and max(e, x < 0) is exp(min(-x, 0)).
    """
    e = np.exp(-np.abs(x))
    denom = 1.0 + e
    return np.maximum(e, x >= 0) / denom, np.maximum(e, x < 0) / denom
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
def leaky_relu(x, slope):
    """x where x > 0, else slope * x."""
    return np.where(x > 0, x, slope * x)
''')

helper('''\
def log_softmax(x, axis=-1):
    """log(softmax(x)) over axis, exact for any x.

    With m the largest entry, log_softmax = (x - m) - log1p(sum of the other exp(x - m)): no
    exp overflows, and a tiny remainder is not lost by adding it to 1 first.
    """
    top = x.max(axis=axis, keepdims=True)
    shifted = x - np.where(np.isfinite(top), top, 0.0)
    rest = np.exp(shifted)
    if rest.ndim == 2 and axis in (1, -1):  # rows of scores: each row's first max, directly
        rest[np.arange(len(rest)), x.argmax(axis=1)] = 0.0
    else:
        np.put_along_axis(rest, x.argmax(axis=axis, keepdims=True), 0.0, axis=axis)
    return shifted - np.log1p(rest.sum(axis=axis, keepdims=True))
''')

helper('''\
def logsumexp(x, axis=-1, keepdims=False):
    """log(sum(exp(x))) over axis, exact for any x: the largest entry minus its log_softmax."""
    top = np.max(x, axis=axis, keepdims=True)
    out = top - np.max(log_softmax(x, axis), axis=axis, keepdims=True)
    return out if keepdims else np.squeeze(out, axis=axis)
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

helper('''\
def scatter_add(dout, shape, index):
    """Zeros of `shape` with dout added at `index`: the backward of x[index]. An index with
    integer arrays may repeat an entry: np.add.at adds once per occurrence, so a repeated index
    receives the sum of its gradients. Ints, slices and None never repeat: one write does."""
    dx = np.zeros(shape, dtype=np.result_type(dout))
    if any(isinstance(i, np.ndarray) for i in (index if isinstance(index, tuple) else (index,))):
        np.add.at(dx, index, dout)
    else:
        dx[index] = dout
    return dx
''')

helper('''\
def add_along_axis(dout, idx, shape, axis):
    """Zeros of `shape` with dout added where np.take_along_axis(x, idx, axis) read; repeated
    indices add up (np.add.at)."""
    dx = np.zeros(shape, dtype=np.result_type(dout))
    idx, dout = np.broadcast_arrays(idx, dout)
    where = list(np.indices(idx.shape, sparse=True))
    where[axis] = idx
    np.add.at(dx, tuple(where), dout)
    return dx
''')

# helpers that call other helpers
HELPER_NEEDS = {
    "logsumexp": ("log_softmax",),
    "softmax_cross_entropy_grad": ("log_softmax",),
}


# ---------------------------------------------------------------- the helpers in the array API
# Twins of the helpers above in the array API standard, for `emit.array_api`: each takes its
# namespace from its arguments; a one-hot mask of argmax stands where NumPy writes in place
# (put_along_axis, .flat), and nothing is written in place.

API_HELPERS: dict[str, str] = {}  # helper name -> standard source, named as in HELPERS


def api_helper(source: str) -> str:
    """Register the array API twin of a helper (or a function twins share), under its name."""
    name = source.split("def ", 1)[1].split("(", 1)[0]
    API_HELPERS[name] = source
    return name


api_helper('''\
def sigmoid(x):
    """1/(1+exp(-x)) for any x: exp is only taken of -|x| and min(x, 0), so it never overflows."""
    xp = array_namespace(x)
    return xp.exp(xp.minimum(x, 0.0)) / (1.0 + xp.exp(-xp.abs(x)))
''')

api_helper('''\
def softplus(x):
    """log(1+exp(x)) for any x, exact also where exp(x) is tiny: max(x, 0) + log1p(exp(-|x|))."""
    return array_namespace(x).logaddexp(0.0, x)
''')

api_helper('''\
def log_sigmoid(x):
    """log(sigmoid(x)) = -softplus(-x) for any x, without overflow or log(0)."""
    return -array_namespace(x).logaddexp(0.0, -x)
''')

api_helper('''\
def sech2(x):
    """1/cosh(x)**2 = 1 - tanh(x)**2, exact for any x (no overflow, no cancellation)."""
    xp = array_namespace(x)
    e = xp.exp(-2.0 * xp.abs(x))
    return 4.0 * e / (1.0 + e) ** 2
''')

api_helper('''\
def leaky_relu(x, slope):
    """x where x > 0, else slope * x."""
    return array_namespace(x).where(x > 0, x, slope * x)
''')

api_helper('''\
def first_max(x, axis):
    """True at the first largest entry along axis (of all entries: axis None), else False."""
    xp = array_namespace(x)
    if axis is None:
        flat = xp.reshape(x, (-1,))
        hot = xp.arange(flat.shape[0]) == xp.argmax(flat)
        return xp.reshape(hot, x.shape)
    axis = axis % x.ndim
    place = tuple(-1 if i == axis else 1 for i in range(x.ndim))
    return xp.reshape(xp.arange(x.shape[axis]), place) == xp.argmax(x, axis=axis, keepdims=True)
''')

api_helper('''\
def log_softmax(x, axis=-1):
    """log(softmax(x)) over axis, exact for any x.

    With m the largest entry, log_softmax = (x - m) - log1p(sum of the other exp(x - m)): no
    exp overflows, and a tiny remainder is not lost by adding it to 1 first.
    """
    xp = array_namespace(x)
    top = xp.max(x, axis=axis, keepdims=True)
    shifted = x - xp.where(xp.isfinite(top), top, 0.0)
    rest = xp.where(first_max(x, axis), 0.0, xp.exp(shifted))
    return shifted - xp.log1p(xp.sum(rest, axis=axis, keepdims=True))
''')

api_helper('''\
def logsumexp(x, axis=-1, keepdims=False):
    """log(sum(exp(x))) over axis, exact for any x: the largest entry minus its log_softmax."""
    xp = array_namespace(x)
    top = xp.max(x, axis=axis, keepdims=True)
    out = top - xp.max(log_softmax(x, axis), axis=axis, keepdims=True)
    return out if keepdims else xp.squeeze(out, axis=axis)
''')

api_helper('''\
def softmax_cross_entropy_grad(x, y, axis=-1):
    """d/dx softmax_cross_entropy = softmax(x) * sum(y) - y, exact where y is one-hot.

    At the labelled entry softmax - 1 would cancel; it is computed as expm1(log_softmax) instead.
    """
    xp = array_namespace(x, y)
    logp = log_softmax(x, axis)
    mass = xp.sum(y, axis=axis, keepdims=True)
    return xp.where(y == mass, mass * xp.expm1(logp), xp.exp(logp) * mass - y)
''')

api_helper('''\
def route_to_max(dout, x, axis, keepdims):
    """The max gate's backward: dout goes to the first largest entry along axis, 0 elsewhere."""
    xp = array_namespace(dout, x)
    if axis is None:  # dout has one entry (kept axes or not)
        dout = xp.reshape(dout, (1,) * x.ndim)
    elif not keepdims:
        dout = xp.expand_dims(dout, axis=axis)
    return xp.where(first_max(x, axis), dout, 0.0)
''')

API_HELPER_NEEDS = {
    **HELPER_NEEDS,
    "log_softmax": ("first_max",),
    "logsumexp": ("log_softmax", "first_max"),
    "softmax_cross_entropy_grad": ("log_softmax", "first_max"),
    "route_to_max": ("first_max",),
}
