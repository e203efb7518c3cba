"""The gate table: every gate graphc knows, one row each, and their derived local gradients.

Stage: ir, the vocabulary read by every wing. Imports only `errors`, `special`, `tensor`, `text`.

An elementwise gate is declared by its SymPy formula; its local gradients come from `sympy.diff`,
once per gate kind, written in terms of the gate's own output where that is simpler and no less
accurate (exp -> `out`, tanh -> `1 - out**2`, sigmoid -> `out*sigmoid(-a)`). A tensor gate
(matmul, reductions, broadcasting, transpose, reshape) declares a shape rule, a NumPy spelling and
a vector-Jacobian rule that adds gradient nodes through a small builder (see `autodiff.py`), so
no Jacobian is ever formed.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import keyword
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import sympy
from mpmath.libmp import prec_to_dps
from sympy.printing.numpy import NumPyPrinter

from . import special, text
from .errors import GateError
from .special import (  # noqa: F401 - names the other stages read from the table
    ARGS,
    DOUT,
    HELPERS,
    MASKS,
    OUT,
    cancelled,
    log_sigmoid,
    numeric_masks,
    sigmoid,
    softplus,
)
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
    array_api: str | None = None  # the same in the array API standard (`xp.`), beside it
    nondiff: tuple[int, ...] = ()  # argument positions no gradient flows into (masks)
    indices: tuple[int, ...] = ()  # positions of integer index arrays (no gradient flows in)
    helpers: tuple[str, ...] = ()  # functions the generated module defines when the gate is used
    composed: Callable | None = None  # its formula inside fused formulas, if not `formula`
    shape: Callable | None = None  # tensor gates: (arg shapes, params) -> output shape
    spell: Callable | None = None  # tensor gates: (arg strings, arg shapes, params) -> code
    spell_api: Callable | None = None  # the same in the array API standard (`xp.`)
    vjp: Callable | None = None  # tensor gates: (builder, node, args, dout) -> gradient per arg
    params: tuple[str, ...] = ()  # names of static parameters stored on the node
    builtin: bool = True
    doc: str = field(default="", compare=False)

    def __hash__(self) -> int:  # the caches of derived gradients and templates key on gates:
        # equal gates compute the same (a gate defined again under its name is another gate)
        return hash((self.name, self.arity, self.kind, self.formula))

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
        d = derivative(formula, a)
        if d.has(sympy.Derivative, sympy.Subs):
            left = sorted({type(x.expr).__name__ for x in d.atoms(sympy.Derivative)})
            raise GateError(
                f"gate {gate.name!r}: SymPy cannot differentiate {formula} with respect to its "
                f"argument {i} (it left {d}, a derivative of {', '.join(left) or 'a function'}); "
                "write the formula with functions SymPy knows (exp, log, sqrt, tanh, Abs, "
                "Piecewise, ...)"
            )
        local = lecture_form(d, formula)
        grads.append(local if gate.builtin else numeric_steps(local))
    return tuple(grads)


class _flat_floor(sympy.Function):  # noqa: N801 - floor while differentiating
    def fdiff(self, argindex=1):
        return sympy.S.Zero  # flat between its jumps


class _flat_ceiling(_flat_floor):  # noqa: N801
    pass


def derivative(formula: sympy.Expr, s: sympy.Symbol) -> sympy.Expr:
    """d(formula)/ds, with a step's derivative 0: away from its jump that is the derivative, and
    at the jump it is graphc's choice (as relu'(0) = 0). Steps: Heaviside and sign (SymPy's
    DiracDelta becomes 0), floor and ceiling, and frac and Mod, written with floor."""
    if formula.has(sympy.floor, sympy.ceiling, sympy.frac, sympy.Mod):
        with_floor = formula.replace(
            lambda e: isinstance(e, (sympy.frac, sympy.Mod)), lambda e: e.rewrite(sympy.floor)
        )
        flat = with_floor.replace(sympy.floor, _flat_floor).replace(sympy.ceiling, _flat_ceiling)
        d = sympy.diff(flat, s).replace(_flat_ceiling, sympy.ceiling)
        d = d.replace(_flat_floor, sympy.floor)
    else:
        d = sympy.diff(formula, s)
    deltas = d.atoms(sympy.DiracDelta)
    return d.xreplace(dict.fromkeys(deltas, sympy.S.Zero)) if deltas else d


def numeric_steps(expr: sympy.Expr) -> sympy.Expr:
    """`expr` with its steps written to print as numbers, for formulas users write: codegen
    prints an indicator (a Piecewise of 1 and 0; Heaviside(x, 0) and Heaviside(x, 1) are ones)
    as a NumPy boolean, which is a number only next to one ((x > 0) - (y > 0) raises), so the
    numbers of every Piecewise become floats: np.where(x > 0, 1.0, 0.0)."""

    def is_indicator_step(e) -> bool:
        return isinstance(e, sympy.Heaviside) and len(e.args) == 2 and e.args[1] in (0, 1)

    def floats(p: sympy.Piecewise) -> sympy.Piecewise:
        return sympy.Piecewise(*((sympy.Float(v) if v.is_Number else v, c) for v, c in p.args))

    expr = expr.replace(is_indicator_step, lambda e: e.rewrite(sympy.Piecewise))
    return expr.replace(lambda e: isinstance(e, sympy.Piecewise), floats)


@functools.cache
def formula_gradients(formula: sympy.Expr, arity: int) -> tuple[sympy.Expr | None, ...]:
    """Local gradients of an "expr" node's formula, like `local_gradients` for a gate row."""
    symbols = [MASKS[i] if MASKS[i] in formula.free_symbols else ARGS[i] for i in range(arity)]
    return tuple(
        None
        if s in MASKS
        else numeric_masks(numeric_steps(lecture_form(derivative(formula, s), formula)))
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
    _ew("abs", 1, sympy.Abs, "|x|", numpy="np.abs({0})", array_api="xp.abs({0})"),
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
        array_api="xp.maximum({0}, 0.0)",
        composed=special.relu,
    ),
    # leaky_relu(x, a) = max(a*x, x) for 0 < a < 1; its gradient at 0 is a
    _ew(
        "leaky_relu",
        2,
        lambda a, s: sympy.Piecewise((a, a > 0), (s * a, True)),
        "lrelu",
        numpy="np.where({0} > 0, {0}, {1} * {0})",
        array_api="xp.where({0} > 0, {0}, {1} * {0})",
        composed=special.leaky_relu,
    ),
    # on a tie the first argument takes the whole gradient
    _ew(
        "maximum",
        2,
        lambda a, b: sympy.Piecewise((a, a >= b), (b, True)),
        "max",
        numpy="np.maximum({0}, {1})",
        array_api="xp.maximum({0}, {1})",
        composed=special.maximum,
    ),
    _ew(
        "minimum",
        2,
        lambda a, b: sympy.Piecewise((a, a <= b), (b, True)),
        "min",
        numpy="np.minimum({0}, {1})",
        array_api="xp.minimum({0}, {1})",
        composed=special.minimum,
    ),
    _ew(
        "where",
        3,
        lambda m, a, b: sympy.Piecewise((a, m), (b, True)),
        "where",
        numpy="np.where({0}, {1}, {2})",
        array_api="xp.where({0}, {1}, {2})",
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


# ---------------------------------------------------------------- the lecture's spellings
# style="textbook": where the lecture writes a gate otherwise than graphc's accurate row, its
# local gradients (over a0.. and out), its forward's NumPy spelling (None: as accurate), and
# where that form loses accuracy (said by the module's docstring and by `gc.lint`).


@dataclass(frozen=True)
class Textbook:
    local: tuple
    numpy: str | None
    loses: str


STYLES = ("accurate", "textbook", "layer")
TEXTBOOK: dict[str, Textbook] = {
    "sigmoid": Textbook(
        ((1 - OUT) * OUT,),
        "1 / (1 + np.exp(-{0}))",
        "sigmoid' = (1 - s) * s rounds to 0 beyond x = 37, where s rounds to 1 (the true value "
        "at 40 is 4.2e-18; the accurate style computes s * sigmoid(-x))",
    ),
    "tanh": Textbook(
        (1 - OUT**2,),
        None,
        "tanh' = 1 - t**2 rounds to 0 beyond |x| = 19, where t rounds to 1 (the true value at "
        "20 is 1.7e-17; the accurate style computes sech2(x) = 1 / cosh(x)**2)",
    ),
    "softplus": Textbook(
        (1 / (1 + sympy.exp(-ARGS[0])),),
        "np.log(1 + np.exp({0}))",
        "softplus = log(1 + exp(x)) is inf beyond x = 709, where exp overflows, and 0 below "
        "x = -37, where 1 + exp(x) rounds to 1 (the accurate style stays exact)",
    ),
}


class _textbook_sigmoid(sympy.Function):  # noqa: N801 - stands for sigmoid while differentiating
    def fdiff(self, argindex=1):
        return (1 - self) * self  # the lecture's (1 - s) * s


class _textbook_tanh(sympy.Function):  # noqa: N801
    def fdiff(self, argindex=1):
        return 1 - self**2  # the lecture's 1 - t**2


class _textbook_softplus(sympy.Function):  # noqa: N801
    def fdiff(self, argindex=1):
        return _textbook_sigmoid(self.args[0])


_TO_TEXTBOOK = {
    sigmoid: _textbook_sigmoid,
    exact_tanh: _textbook_tanh,
    softplus: _textbook_softplus,
}
_FROM_TEXTBOOK = {v: k for k, v in _TO_TEXTBOOK.items()}


def textbook_gradients(formula: sympy.Expr, arity: int) -> tuple[sympy.Expr | None, ...]:
    """`formula_gradients` with the lecture's derivatives of the gates inside a fused formula:
    sigmoid' = (1 - s) * s, tanh' = 1 - t**2, softplus' = sigmoid (style="textbook")."""
    lecture = formula.replace(
        lambda e: type(e) in _TO_TEXTBOOK, lambda e: _TO_TEXTBOOK[type(e)](*e.args)
    )
    locals_ = formula_gradients(lecture, arity)
    back = lambda e: _FROM_TEXTBOOK[type(e)](*e.args)  # noqa: E731
    return tuple(
        None if d is None else d.replace(lambda e: type(e) in _FROM_TEXTBOOK, back) for d in locals_
    )


class _Spelled(sympy.Function):
    """A gate inside a fused formula, printed as the lecture writes it out (style="textbook")."""

    spelling = ""
    precedence = 40  # sympy's PRECEDENCE["Add"]: parenthesised as a product's factor

    def _numpycode(self, printer):
        arg = printer._print(self.args[0])
        if not (self.args[0].is_Symbol or self.args[0].is_Number):
            arg = f"({arg})"
        return self.spelling.format(ns=getattr(printer, "ns", "np"), x=arg)


class lecture_sigmoid(_Spelled):  # noqa: N801
    spelling = "1 / (1 + {ns}.exp(-{x}))"


class lecture_softplus(_Spelled):  # noqa: N801
    precedence = 1000  # a call: never parenthesised
    spelling = "{ns}.log(1 + {ns}.exp({x}))"


def textbook_spelling(formula: sympy.Expr) -> sympy.Expr:
    """A formula with the gates the lecture writes out spelled as it writes them:
    sigmoid(u) as 1 / (1 + exp(-u)), softplus(u) as log(1 + exp(u)) (style="textbook")."""
    return formula.replace(sigmoid, lecture_sigmoid).replace(softplus, lecture_softplus)


def textbook_gates(formula: sympy.Expr) -> list[str]:
    """The gates of TEXTBOOK inside a fused formula, in a fixed order."""
    found = {type(e) for e in formula.atoms(sympy.Function)}
    return [
        name
        for name, f in (("sigmoid", sigmoid), ("tanh", exact_tanh), ("softplus", softplus))
        if f in found
    ]


RESERVED_OPS = ("input", "const")


# ---------------------------------------------------------------- gates users define
#
# A traced node refers to the gate itself, not to a row found by name later: the `op` of a node
# of a user's gate is a `GateName`, the gate's name that also holds the gate. So a Function keeps
# the formula it was traced with when `gc.gate` defines the name again (a notebook cell run once
# more), in every call style and in every copy; only what is traced afterwards sees the new one.


class GateName(str):
    """A user gate's name as a node's `op`: equal to the name (graphs print, compare and save as
    before), and holding the gate the node was traced with (`.gate`)."""

    def __new__(cls, gate: Gate):
        name = super().__new__(cls, gate.name)
        name.gate = gate
        return name

    def __reduce__(self):
        return GateName, (self.gate,)


def gate_of(op: str) -> Gate | None:
    """The gate a node's `op` names (a user gate's own, see `GateName`); None for "input",
    "const" and names of no gate."""
    return op.gate if isinstance(op, GateName) else GATES.get(op)


USER_GATES: dict[str, Gate] = {}  # the latest gate `gc.gate` defined under each name


def user_gate(name: str) -> Gate | None:
    """The gate `gc.gate` last defined under `name`: for a name written in text (a graph built
    by hand or loaded from a file), which means the gate of that name when it is read."""
    return USER_GATES.get(name) if isinstance(name, str) else None


@dataclass(frozen=True)
class Formula:
    """A user gate's formula: its SymPy expression over a0, a1, ..., called like the function it
    was made from. An expression pickles and compares by value; the user's lambda does neither."""

    expr: sympy.Expr

    def __call__(self, *args) -> sympy.Expr:
        return self.expr.xreplace(dict(zip(ARGS, map(sympy.sympify, args))))


def define_gate(name: str, formula: Callable, symbol: str | None = None) -> Gate:
    """A user's elementwise gate, its local gradients derived by SymPy, registered under `name`.

    Refused with a GateError: a name that is not a name by `text.name`'s rule (an identifier in
    NFKC form), is a keyword or is a built-in gate's; a symbol that is not text (`symbol`, what
    drawings write in the gate's circle, the name unless given, is drawn as it is); a formula
    that fails on symbols, is no real SymPy expression of its arguments, that SymPy cannot
    differentiate, or whose value or local gradients use a function the generated NumPy code
    cannot compute (NumPy has no spelling for it). Steps (Heaviside, sign, floor, ...) are fine:
    their derivative is 0, see `derivative`.
    """
    text.name(name, "gate name", GateError)
    if keyword.iskeyword(name):
        raise GateError(f"gate name {name!r} is a Python keyword; choose another name")
    if symbol is not None and not isinstance(symbol, str):
        raise GateError(
            f"gate {name!r}: the symbol must be a string (the text drawn in the gate), got "
            f"{type(symbol).__name__}"
        )
    if name in RESERVED_OPS or name in GATES:
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
    if expr.has(sympy.I):
        raise GateError(
            f"gate {name!r}: the formula {expr} is complex (it uses I); graphc differentiates "
            "real-valued functions only"
        )
    expr = numeric_steps(expr)
    # an argument the formula does not use still gives the value its shape (and NaN), as in NumPy
    expr += sympy.Add(*(cancelled(a) for a in ARGS[:arity] if a not in expr.free_symbols))
    gate = _ew(name, arity, Formula(expr), symbol or name, builtin=False)
    grads = local_gradients(gate)  # derived now, so that the definition is what fails
    _check_spelled(name, expr, "its value")
    for i, local in enumerate(grads):
        _check_spelled(name, local, f"its local gradient in argument {i}, {local},")
    USER_GATES[name] = gate
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


def _check_spelled(name: str, expr: sympy.Expr, what: str) -> None:
    """GateError naming the SymPy function in `expr` that generated NumPy code cannot compute."""
    if _spelled(expr):
        return
    parts = list(sympy.postorder_traversal(expr))  # the innermost first, functions before
    culprit = next(
        (p for p in parts if isinstance(p, sympy.Function) and not _spelled(p)),
        next((p for p in parts if isinstance(p, sympy.Expr) and not _spelled(p)), expr),
    )
    raise GateError(
        f"gate {name!r}: {what} uses SymPy's {type(culprit).__name__} ({culprit}), "
        "which NumPy has no spelling for, so the generated module could not compute it; write "
        "the formula with functions NumPy has (exp, log, sqrt, sin, arctan, Abs, Max, "
        "Piecewise, Heaviside, ...)"
    )


# what the NumPy printer may write that the generated module can run: names of NumPy (`np` or
# `numpy`), graphc's helpers, and functools.reduce, which codegen's printer writes as nested
# np.maximum / np.minimum calls instead
_RUNNABLE = frozenset({"numpy", "np", "functools", "abs", *HELPERS})


def _spelled(expr: sympy.Basic) -> bool:
    """Whether SymPy's NumPy printer writes `expr` as code that uses only NumPy and graphc's
    helpers (codegen's printer is that printer, writing a few functions its own way)."""
    if not isinstance(expr, sympy.Basic) or expr.is_Atom:
        return not expr.has(sympy.zoo) if isinstance(expr, sympy.Basic) else True
    printer = NumPyPrinter({"allow_unknown_functions": True, "fully_qualified_modules": True})
    try:
        tree = ast.parse(printer.doprint(expr), mode="eval")
    except Exception:  # no print method (an Integral, say), or no Python
        return False
    if set(printer.module_imports) - {"numpy", "functools"}:  # math.erf, scipy.special, ...
        return False
    names = _RUNNABLE | {s.name for s in expr.free_symbols}
    for node in ast.walk(tree):
        if isinstance(node, ast.IfExp):  # Python's `a if c else b` takes no arrays
            return False
        if isinstance(node, ast.Name) and node.id not in names:
            return False
        if isinstance(node, ast.Attribute) and _dotted(node)[0] in ("numpy", "np"):
            try:
                functools.reduce(getattr, _dotted(node)[1:], np)
            except AttributeError:
                return False
    return True


def _dotted(node: ast.AST) -> list[str]:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return [node.id if isinstance(node, ast.Name) else "", *reversed(parts)]


class GateCall(sympy.Function):
    """A user gate applied to SymPy expressions, what calling a `gc.gate` gate on them returns:
    SymPy differentiates, evaluates and prints it through the gate's formula, and
    `gc.from_sympy` turns it back into the gate. Each gate has its own subclass (`gate_call`)."""

    gate: Gate

    @classmethod
    def eval(cls, *args):
        if all(a.is_Number for a in args):  # numbers: the formula's value
            return cls.gate.formula(*args)

    def formula(self) -> sympy.Expr:
        """The gate's formula of these arguments."""
        return self.gate.formula(*self.args)

    def fdiff(self, argindex=1):  # the gate's derivative: a step's is 0, as in its gradients
        d = derivative(self.gate.expr(), ARGS[argindex - 1])
        return d.xreplace(dict(zip(ARGS, self.args)))

    def _eval_is_real(self):
        return self.formula().is_real

    def _eval_evalf(self, prec):
        return self.formula().evalf(prec_to_dps(prec))

    def _eval_expand_func(self, **hints):
        return self.formula()

    def _numpycode(self, printer):  # NumPy, math and mpmath code: the formula's (lambdify)
        return printer._print(self.formula())

    _pythoncode = _mpmathcode = _numpycode

    def __reduce__(self):
        return _gate_call_of, (self.gate, self.args)


@functools.cache
def gate_call(gate: Gate) -> type[GateCall]:
    """The SymPy function class of a user gate, named as the gate (one class per gate)."""
    return type(gate.name, (GateCall,), {"gate": gate, "nargs": gate.arity, "__module__": __name__})


def _gate_call_of(gate: Gate, args: tuple) -> GateCall:
    return gate_call(gate)(*args)


# ---------------------------------------------------------------- gates on numbers and arrays


def evaluate(gate: Gate, values, params: dict):
    """The gate of numbers and arrays, computed now as NumPy computes it: what `gc.exp(1.0)` is.

    Tensor gates and gates with a NumPy spelling run that spelling from the table; the others
    their formula as SymPy's NumPy printer writes it (a 0-d result is a NumPy number, as a
    ufunc's is). Lists become arrays; Python numbers alone become NumPy numbers, so 1/0 in a
    formula is inf with NumPy's warning, not ZeroDivisionError.
    """
    values = [
        v if isinstance(v, (numbers.Number, np.ndarray, np.generic)) else np.asarray(v)
        for v in values
    ]
    if all(isinstance(v, numbers.Number) and not isinstance(v, np.generic) for v in values):
        values = [np.asarray(v)[()] for v in values]
    if gate.kind == TENSOR or gate.numpy:
        names = [f"_a{i}" for i in range(len(values))]
        if gate.kind == TENSOR:
            code = gate.spell(names, [np.shape(v) for v in values], params)
        else:
            code = gate.numpy.format(*names)
        return eval(code, {**_numpy_namespace(), **dict(zip(names, values))})  # the table's
    out = _numpy_function(gate)(*values)
    return out[()] if isinstance(out, np.ndarray) and out.ndim == 0 else out


@functools.cache
def _numpy_namespace() -> dict:
    """NumPy as `np`, and graphc's helpers (sigmoid, ...), as the generated module has them."""
    namespace = {"np": np}
    for source in HELPERS.values():
        exec(source, namespace)  # graphc's own helper sources
    return namespace


class _ElementwisePrinter(NumPyPrinter):
    """Max and Min elementwise, nested (SymPy before 1.13 prints Max as `amax` of a tuple: no
    elementwise maximum of arrays)."""

    def _print_Max(self, expr):
        return functools.reduce(
            lambda a, b: f"numpy.maximum({a}, {b})", map(self._print, expr.args)
        )

    def _print_Min(self, expr):
        return functools.reduce(
            lambda a, b: f"numpy.minimum({a}, {b})", map(self._print, expr.args)
        )


@functools.cache
def _numpy_function(gate: Gate):
    return sympy.lambdify(
        gate.symbols(),
        gate.expr(),
        modules=[_numpy_namespace(), "numpy"],
        printer=_ElementwisePrinter(  # the settings lambdify gives its own printer
            {
                "fully_qualified_modules": False,
                "inline": True,
                "allow_unknown_functions": True,
                "user_functions": {k: k for k in _numpy_namespace()},
            }
        ),
    )
