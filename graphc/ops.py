"""The gate table: every gate graphc knows, one row each, and their derived local gradients.

Stage: vocabulary, read by every other stage. Imports only `errors`, `special` and `tensor`.

An elementwise gate is declared by its SymPy formula; its local gradients come from `sympy.diff`,
once per gate kind, written in terms of the gate's own output where that is simpler and no less
accurate (exp -> `out`, tanh -> `1 - out**2`, sigmoid -> `out*sigmoid(-a)`). A tensor gate
(matmul, reductions, broadcasting, transpose, reshape) declares a shape rule, a NumPy spelling and
a vector-Jacobian rule that adds gradient nodes through a small builder (see `autodiff.py`), so
no Jacobian is ever formed.
"""

from __future__ import annotations

import contextlib
import functools
import keyword
from collections.abc import Callable
from dataclasses import dataclass, field

import sympy

from . import special
from .errors import GateError
from .special import ARGS, DOUT, MASKS, OUT, log_sigmoid, numeric_masks, sigmoid, softplus  # noqa: F401
from .special import tanh as exact_tanh
from .tensor import ROWS as TENSOR_ROWS
from .tensor import broadcast_shape, sum_to_axes  # noqa: F401 - part of the table's interface

ELEMENTWISE, MASK, TENSOR = "elementwise", "mask", "tensor"


@dataclass(frozen=True)
class Gate:
    """One row of the table: everything graphc knows about a gate, in one place."""

    name: str
    arity: int
    kind: str
    symbol: str  # what the drawing writes in the gate's circle
    formula: Callable | None = None  # elementwise and mask gates: SymPy formula of the arguments
    numpy: str | None = None  # forward spelling when the printed formula would read worse
    nondiff: tuple[int, ...] = ()  # argument positions no gradient flows into (masks)
    helpers: tuple[str, ...] = ()  # functions the generated module defines when the gate is used
    composed: Callable | None = None  # its formula inside fused formulas, if not `formula`
    shape: Callable | None = None  # tensor gates: (arg shapes, params) -> output shape
    spell: Callable | None = None  # tensor gates: (arg strings, arg shapes, params) -> code
    vjp: Callable | None = None  # tensor gates: (builder, node, args, dout) -> gradient per arg
    params: tuple[str, ...] = ()  # names of static parameters stored on the node
    builtin: bool = True
    doc: str = field(default="", compare=False)

    def __hash__(self) -> int:  # the caches of derived gradients and templates key on gates
        return hash((self.name, self.arity, self.kind))

    def symbols(self) -> tuple[sympy.Symbol, ...]:
        """The SymPy symbols standing for this gate's arguments (masks are not real numbers)."""
        return tuple(MASKS[i] if i in self.nondiff else ARGS[i] for i in range(self.arity))

    def expr(self) -> sympy.Expr:
        """The gate's formula applied to its argument symbols."""
        return self.formula(*self.symbols())

    def composed_expr(self) -> sympy.Expr:
        """The formula fusion composes: a gate with a kink is one opaque SymPy function there
        (see `special.relu`), so SymPy never rewrites a Piecewise inside another."""
        return (self.composed or self.formula)(*self.symbols())


# ---------------------------------------------------------------- derived local gradients


def _singular(expr: sympy.Expr) -> int:
    """How many factors divide by something built from the arguments (0/0 risks at zeros)."""
    return sum(
        1
        for p in sympy.preorder_traversal(expr)
        if isinstance(p, sympy.Pow) and p.exp.is_negative and p.base.free_symbols & set(ARGS)
    )


SIMPLIFY_OPS = 30  # the largest derivative (in operations) `lecture_form` simplifies
_UNDEFINED = (sympy.zoo, sympy.nan)  # simplify may write a 0/0 limit this way: never printed


def _complex_powers(expr: sympy.Expr) -> int:
    """How many powers have a fractional exponent of a base that may be negative (NaN in NumPy,
    complex to SymPy, which may move an Abs out of one: |a|**p -> |a**p|)."""
    return sum(
        1
        for p in sympy.preorder_traversal(expr)
        if isinstance(p, sympy.Pow) and not p.exp.is_integer and not p.base.is_nonnegative
    )


def lecture_form(derivative: sympy.Expr, formula: sympy.Expr) -> sympy.Expr:
    """The simplest accurate spelling of a derivative, with `out` for the gate's value if it helps.

    Candidates are the derivative as `sympy.diff` gives it, power-simplified and simplified, each
    also with the formula replaced by `out`. A candidate that divides by the arguments loses to one
    that does not (`b*a**(b-1)` beats `b*out/a`, which is NaN at a=0); one with SymPy's complex
    infinity in a branch (`simplify` of |x|**(2x)), or with more fractional powers of possibly
    negative bases than the derivative (|x|**p -> |x**p|), always loses; then fewer operations win;
    on a tie the form in terms of `out` wins, as on the lecture slides. `sympy.simplify` takes
    time steeply growing with size, so a large derivative (of a big fused gate) is not simplified.
    """
    plain = [derivative, sympy.powsimp(derivative)]
    if sympy.count_ops(derivative) <= SIMPLIFY_OPS:
        # where SymPy itself fails (logcombine of log(|log(x**2 + 1/2)|) raises KeyError: zoo),
        # the other candidates stand
        with contextlib.suppress(KeyError, TypeError, ValueError):
            plain.append(sympy.simplify(derivative))
    candidates = []
    for c in plain:
        candidates.append((c, 1))
        if not formula.is_Symbol:
            with_out = c.subs(formula, OUT)
            if with_out.has(OUT):
                candidates.append((with_out, 0))
    powers = _complex_powers(derivative)
    scored = [
        (
            c.has(*_UNDEFINED) or _complex_powers(c) > powers,
            _singular(c),
            sympy.count_ops(c),
            no_out,
            len(str(c)),
            str(c),
            c,
        )
        for c, no_out in candidates
    ]
    return min(scored, key=lambda s: s[:6])[-1]


@functools.cache
def local_gradients(gate: Gate) -> tuple[sympy.Expr | None, ...]:
    """d(gate)/d(argument i) for each argument, in lecture form; None where no gradient flows.

    Derived once per gate kind (cached), never per node.
    """
    formula = gate.expr()
    grads = []
    for i, a in enumerate(gate.symbols()):
        if i in gate.nondiff:
            grads.append(None)
            continue
        d = sympy.diff(formula, a)
        if d.has(sympy.Derivative, sympy.Subs):
            raise GateError(
                f"gate {gate.name!r}: SymPy cannot differentiate {formula} with respect to its "
                f"argument {i} (it left {d}); write the formula with functions SymPy knows "
                "(exp, log, sqrt, tanh, Abs, Piecewise, ...)"
            )
        grads.append(lecture_form(d, formula))
    return tuple(grads)


@functools.cache
def formula_gradients(formula: sympy.Expr, arity: int) -> tuple[sympy.Expr | None, ...]:
    """Local gradients of an "expr" node's formula, like `local_gradients` for a gate row."""
    symbols = [MASKS[i] if MASKS[i] in formula.free_symbols else ARGS[i] for i in range(arity)]
    return tuple(
        None if s in MASKS else numeric_masks(lecture_form(sympy.diff(formula, s), formula))
        for s in symbols
    )


# ---------------------------------------------------------------- the table


def _ew(name, arity, formula, symbol, **kw) -> Gate:
    return Gate(name, arity, ELEMENTWISE, symbol, formula=formula, **kw)


def _mask(name, formula, symbol) -> Gate:
    return Gate(name, 2, MASK, symbol, formula=formula)


TABLE: tuple[Gate, ...] = (
    _ew("add", 2, lambda a, b: a + b, "+"),
    _ew("sub", 2, lambda a, b: a - b, "-"),
    _ew("mul", 2, lambda a, b: a * b, "*"),
    _ew("div", 2, lambda a, b: a / b, "/"),
    _ew("neg", 1, lambda a: -a, "*-1"),
    _ew("pow", 2, lambda a, b: a**b, "**"),
    _ew("exp", 1, sympy.exp, "exp"),
    _ew("log", 1, sympy.log, "log"),
    _ew("sqrt", 1, sympy.sqrt, "sqrt"),
    _ew("abs", 1, sympy.Abs, "|x|", numpy="np.abs({0})"),
    _ew("tanh", 1, exact_tanh, "tanh"),
    _ew("sigmoid", 1, sigmoid, "σ"),
    _ew("softplus", 1, softplus, "softplus"),
    _ew("log_sigmoid", 1, log_sigmoid, "logσ"),
    # relu'(0) = 0: the subgradient graphc chooses at the kink
    _ew(
        "relu",
        1,
        lambda a: sympy.Piecewise((a, a > 0), (0, True)),
        "relu",
        numpy="np.maximum({0}, 0)",
        composed=special.relu,
    ),
    # leaky_relu(x, a) = max(a*x, x) for 0 < a < 1; its gradient at 0 is a
    _ew(
        "leaky_relu",
        2,
        lambda a, s: sympy.Piecewise((a, a > 0), (s * a, True)),
        "lrelu",
        numpy="np.where({0} > 0, {0}, {1} * {0})",
        composed=special.leaky_relu,
    ),
    # on a tie the first argument takes the whole gradient
    _ew(
        "maximum",
        2,
        lambda a, b: sympy.Piecewise((a, a >= b), (b, True)),
        "max",
        numpy="np.maximum({0}, {1})",
        composed=special.maximum,
    ),
    _ew(
        "minimum",
        2,
        lambda a, b: sympy.Piecewise((a, a <= b), (b, True)),
        "min",
        numpy="np.minimum({0}, {1})",
        composed=special.minimum,
    ),
    _ew(
        "where",
        3,
        lambda m, a, b: sympy.Piecewise((a, m), (b, True)),
        "where",
        numpy="np.where({0}, {1}, {2})",
        nondiff=(0,),
        composed=special.where,
    ),
    _mask("lt", lambda a, b: a < b, "<"),
    _mask("le", lambda a, b: a <= b, "<="),
    _mask("gt", lambda a, b: a > b, ">"),
    _mask("ge", lambda a, b: a >= b, ">="),
    *(Gate(kind=TENSOR, **row) for row in TENSOR_ROWS),
)

# A node with op "expr" is an elementwise gate whose SymPy formula lives on the node (attribute
# `formula`, over a0, a1, ... for its arguments in order): gradient steps and fused gates.
EXPR = Gate("expr", -1, ELEMENTWISE, "f")

GATES: dict[str, Gate] = {g.name: g for g in TABLE + (EXPR,)}
RESERVED_OPS = ("input", "const")


def lookup(op: str) -> Gate:
    """The gate named `op`; GateError naming the known gates if there is none."""
    try:
        return GATES[op]
    except KeyError:
        known = ", ".join(sorted(GATES))
        raise GateError(
            f"unknown gate {op!r}; known gates: {known} (define new ones with gc.gate)"
        ) from None


def define_gate(name: str, formula: Callable, symbol: str | None = None) -> Gate:
    """Add a user's elementwise gate to the table; its local gradients are derived by SymPy."""
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise GateError(f"gate name {name!r} is not a Python identifier; use letters, digits and _")
    if name in RESERVED_OPS or (name in GATES and GATES[name].builtin):
        raise GateError(f"gate name {name!r} is taken by a built-in gate; choose another name")
    arity = _arity_of(formula, name)
    try:
        expr = formula(*ARGS[:arity])
        expr = sympy.sympify(expr) if isinstance(expr, (int, float)) else expr
    except Exception as e:  # the user's formula failed on symbols: report it as theirs
        raise GateError(f"gate {name!r}: the formula failed on SymPy symbols: {e}") from None
    if not isinstance(expr, sympy.Expr):
        raise GateError(
            f"gate {name!r}: the formula must return a SymPy expression, "
            f"got {type(expr).__name__}; "
            "build it with sympy functions such as sympy.exp"
        )
    stray = expr.free_symbols - set(ARGS[:arity])
    if stray:
        raise GateError(
            f"gate {name!r}: the formula uses symbols {sorted(map(str, stray))} that are not its "
            "arguments; every symbol must be a parameter of the formula"
        )
    gate = _ew(name, arity, formula, symbol or name, builtin=False)
    local_gradients(gate)  # derive now, so a formula SymPy cannot differentiate fails here
    GATES[name] = gate
    return gate


def _arity_of(formula: Callable, name: str) -> int:
    import inspect

    try:
        params = inspect.signature(formula).parameters.values()
    except (TypeError, ValueError):
        raise GateError(f"gate {name!r}: the formula must be a function of SymPy symbols") from None
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params) or not params:
        raise GateError(f"gate {name!r}: the formula needs a fixed number (1 to 8) of arguments")
    n = len(params)
    if n > len(ARGS):
        raise GateError(f"gate {name!r}: at most {len(ARGS)} arguments, got {n}")
    return n
