"""The gate table: every gate graphc knows, one row each, and their derived local gradients.

Stage: vocabulary, read by every other stage. Imports nothing from graphc but `errors`.

An elementwise gate is declared by its SymPy formula; its local gradients come from `sympy.diff`,
once per gate kind, written in terms of the gate's own output where that is simpler and no less
accurate (exp -> `out`, tanh -> `1 - out**2`, sigmoid -> `out*sigmoid(-a)`). A tensor gate
(matmul, reductions, broadcasting, transpose, reshape) declares a shape rule, a NumPy spelling and
a vector-Jacobian rule that adds gradient nodes through a small builder (see `autodiff.py`), so
no Jacobian is ever formed.
"""

from __future__ import annotations

import functools
import keyword
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import sympy

from .errors import GateError, ShapeError

ELEMENTWISE, MASK, TENSOR = "elementwise", "mask", "tensor"

OUT = sympy.Symbol("out", real=True)  # a gate's own output, used by lecture-form gradients
DOUT = sympy.Symbol("dout", real=True)  # the upstream gradient, in gradient formulas
ARGS = sympy.symbols("a0:8", real=True)  # positional arguments of elementwise formulas
MASKS = sympy.symbols("m0:8")  # boolean (mask) arguments such as the condition of `where`


class sigmoid(sympy.Function):  # noqa: N801 - printed as the generated module's `sigmoid`
    """The logistic function 1/(1+exp(-x)), a SymPy function whose derivative stays exact."""

    nargs = 1

    def fdiff(self, argindex=1):
        # sigma'(x) = sigma(x) * sigma(-x): equal to s*(1-s) but exact where 1-s rounds to 0
        (x,) = self.args
        return sigmoid(x) * sigmoid(-x)

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return 1 / (1 + sympy.exp(-x))


SIGMOID_HELPER = '''\
def sigmoid(x):
    """1/(1+exp(-x)) for any x: exp is only taken of -|x|, so it never overflows."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0, e) / (1.0 + e)
'''

ROUTE_MAX_HELPER = '''\
def route_to_max(dout, x, axis, keepdims):
    """The max gate's backward: dout goes to the first largest entry along axis, 0 elsewhere."""
    dx = np.zeros(np.shape(x), dtype=np.result_type(x, dout))
    if axis is None:
        dx.flat[np.argmax(x)] = dout
        return dx
    where = np.expand_dims(np.argmax(x, axis=axis), axis)
    np.put_along_axis(dx, where, dout if keepdims else np.expand_dims(dout, axis), axis)
    return dx
'''


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
    helper: str | None = None  # a function the generated module defines when the gate is used
    shape: Callable | None = None  # tensor gates: (arg shapes, params) -> output shape
    spell: Callable | None = None  # tensor gates: (arg strings, arg shapes, params) -> code
    vjp: Callable | None = None  # tensor gates: (builder, node, args, dout) -> gradient per arg
    params: tuple[str, ...] = ()  # names of static parameters stored on the node
    builtin: bool = True
    doc: str = field(default="", compare=False)

    def symbols(self) -> tuple[sympy.Symbol, ...]:
        """The SymPy symbols standing for this gate's arguments (masks are not real numbers)."""
        return tuple(MASKS[i] if i in self.nondiff else ARGS[i] for i in range(self.arity))

    def expr(self) -> sympy.Expr:
        """The gate's formula applied to its argument symbols."""
        return self.formula(*self.symbols())


# ---------------------------------------------------------------- derived local gradients


def _singular(expr: sympy.Expr) -> int:
    """How many factors divide by something built from the arguments (0/0 risks at zeros)."""
    return sum(
        1
        for p in sympy.preorder_traversal(expr)
        if isinstance(p, sympy.Pow) and p.exp.is_negative and p.base.free_symbols & set(ARGS)
    )


def lecture_form(derivative: sympy.Expr, formula: sympy.Expr) -> sympy.Expr:
    """The simplest accurate spelling of a derivative, using `out` for the gate's value if that helps.

    Candidates are the derivative as `sympy.diff` gives it, power-simplified and simplified, each
    also with the formula replaced by `out`. A candidate that divides by the arguments loses to one
    that does not (`b*a**(b-1)` beats `b*out/a`, which is NaN at a=0); then fewer operations win;
    on a tie the form in terms of `out` wins, as on the lecture slides.
    """
    plain = [derivative, sympy.powsimp(derivative), sympy.simplify(derivative)]
    candidates = []
    for c in plain:
        candidates.append((c, 1))
        if not formula.is_Symbol:
            with_out = c.subs(formula, OUT)
            if with_out.has(OUT):
                candidates.append((with_out, 0))
    scored = [(_singular(c), sympy.count_ops(c), no_out, len(str(c)), str(c), c) for c, no_out in candidates]
    return min(scored, key=lambda s: s[:5])[-1]


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


# ---------------------------------------------------------------- shape rules


@functools.cache
def formula_gradients(formula: sympy.Expr, arity: int) -> tuple[sympy.Expr | None, ...]:
    """Local gradients of an "expr" node's formula, like `local_gradients` for a gate row."""
    symbols = [MASKS[i] if MASKS[i] in formula.free_symbols else ARGS[i] for i in range(arity)]
    return tuple(
        None if s in MASKS else lecture_form(sympy.diff(formula, s), formula) for s in symbols
    )


def broadcast_shape(gate: str, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    """NumPy broadcasting, with an error that names the gate and the shapes."""
    try:
        return tuple(int(n) for n in __import__("numpy").broadcast_shapes(*shapes))
    except ValueError:
        listed = " and ".join(str(s) for s in shapes)
        raise ShapeError(
            f"gate {gate!r}: shapes {listed} cannot broadcast; make the trailing dimensions equal "
            "or 1 (reshape or transpose one of the arguments)"
        ) from None


def _axes(axis, ndim: int, gate: str) -> tuple[int, ...]:
    """Normalise an `axis` parameter (None, int or tuple) to sorted non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    items = axis if isinstance(axis, tuple) else (axis,)
    out = []
    for a in items:
        if not -ndim <= a < ndim:
            raise ShapeError(
                f"gate {gate!r}: axis {a} is out of range for an input with {ndim} dimensions; "
                f"use an axis from {-ndim} to {ndim - 1}"
            )
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ShapeError(f"gate {gate!r}: axis {axis} repeats an axis; name each axis once")
    return tuple(sorted(out))


def _reduce_shape(gate):
    def rule(shapes, p):
        (s,) = shapes
        axes = _axes(p["axis"], len(s), gate)
        if gate == "max" and any(s[a] == 0 for a in axes):
            raise ShapeError(f"gate 'max': cannot take the max over an empty axis of shape {s}")
        if p["keepdims"]:
            return tuple(1 if i in axes else n for i, n in enumerate(s))
        return tuple(n for i, n in enumerate(s) if i not in axes)

    return rule


def _matmul_shape(shapes, p):
    a, b = shapes
    if not a or not b:
        raise ShapeError(
            f"gate 'matmul': cannot multiply shapes {a} and {b}: matmul needs arrays with at least "
            "one dimension; use * for scalars"
        )
    inner_a = a[-1]
    inner_b = b[0] if len(b) == 1 else b[-2]
    if inner_a != inner_b:
        raise ShapeError(
            f"gate 'matmul': cannot multiply shapes {a} and {b}: the inner dimensions {inner_a} and "
            f"{inner_b} differ; transpose or reshape one side so they match"
        )
    if len(a) == 1 and len(b) == 1:
        return ()
    if len(a) == 1:
        return b[:-2] + b[-1:]
    if len(b) == 1:
        return a[:-1]
    batch = broadcast_shape("matmul", [a[:-2], b[:-2]])
    return batch + (a[-2], b[-1])


def _transpose_shape(shapes, p):
    (s,) = shapes
    axes = p["axes"]
    if axes is None:
        return s[::-1]
    if sorted(a % max(len(s), 1) for a in axes) != list(range(len(s))) or len(axes) != len(s):
        raise ShapeError(
            f"gate 'transpose': axes {axes} are not a permutation of the {len(s)} axes of shape {s}"
        )
    return tuple(s[a] for a in axes)


def _reshape_shape(shapes, p):
    (s,) = shapes
    new = p["shape"]
    size = math.prod(s)
    if list(new).count(-1) > 1:
        raise ShapeError(f"gate 'reshape': shape {new} has more than one -1; give all but one size")
    known = math.prod(n for n in new if n != -1)
    if -1 in new:
        if known == 0 or size % known:
            raise ShapeError(f"gate 'reshape': cannot reshape {s} ({size} elements) into {new}")
        new = tuple(size // known if n == -1 else n for n in new)
    if math.prod(new) != size:
        raise ShapeError(
            f"gate 'reshape': cannot reshape {s} ({size} elements) into {new} "
            f"({math.prod(new)} elements); the sizes must match"
        )
    return tuple(new)


def _broadcast_to_shape(shapes, p):
    return tuple(p["shape"])


def _sum_to_shape(shapes, p):
    return tuple(p["shape"])


def _route_shape(shapes, p):
    return shapes[1]


# ---------------------------------------------------------------- NumPy spellings of tensor gates


def _kw(p, *names) -> str:
    parts = []
    for n in names:
        v = p.get(n)
        if n == "axis" and v is not None:
            parts.append(f", axis={v}")
        if n == "keepdims" and v:
            parts.append(", keepdims=True")
    return "".join(parts)


def _spell_reduce(fn):
    return lambda a, shapes, p: f"np.{fn}({a[0]}{_kw(p, 'axis', 'keepdims')})"


def _spell_transpose(a, shapes, p):
    if p["axes"] is None or len(shapes[0]) <= 2 and tuple(p["axes"]) == (1, 0):
        return f"{a[0]}.T"
    return f"np.transpose({a[0]}, {tuple(p['axes'])})"


def _spell_broadcast_to(a, shapes, p):
    x = a[0]
    if p["expand"] and tuple(p["expand"]) != tuple(range(len(p["expand"]))):
        # new leading axes broadcast by themselves; others must be inserted first
        x = f"np.expand_dims({x}, {p['expand'] if len(p['expand']) > 1 else p['expand'][0]})"
    return f"np.broadcast_to({x}, {tuple(p['shape'])})"


def sum_to_axes(src: tuple[int, ...], dst: tuple[int, ...]) -> tuple[tuple[int, ...], bool]:
    """Axes to sum so that a gradient of shape `src` becomes `dst` (undoing broadcasting).

    Returns the axes and whether the result still needs a reshape to `dst`.
    """
    lead = len(src) - len(dst)
    kept = tuple(lead + i for i, n in enumerate(dst) if n == 1 and src[lead + i] != 1)
    return tuple(range(lead)) + kept, bool(kept)


def _spell_sum_to(a, shapes, p):
    src, dst = shapes[0], tuple(p["shape"])
    axes, kept = sum_to_axes(src, dst)
    axis = axes[0] if len(axes) == 1 else axes
    if not axes:
        return a[0]
    if not kept:
        return f"np.sum({a[0]}, axis={axis})" if dst else f"np.sum({a[0]})"
    if len(src) == len(dst):
        return f"np.sum({a[0]}, axis={axis}, keepdims=True)"
    return f"np.sum({a[0]}, axis={axis}).reshape({dst})"


def _spell_reshape(a, shapes, p):
    return f"np.reshape({a[0]}, {tuple(p['shape'])})"


def _spell_route(a, shapes, p):
    return f"route_to_max({a[0]}, {a[1]}, axis={p['axis']}, keepdims={p['keepdims']})"


# ---------------------------------------------------------------- vector-Jacobian rules
# Each rule gets a builder `b` (b.op(name, args, **params), b.const(value), b.shape(node)), the
# gate's node, its argument nodes and the upstream gradient node; it returns one gradient node
# per argument (None where no gradient flows). Results may have broadcast shapes: the backward
# pass sums them back to each argument's shape as a step of its own.


def _vjp_matmul(b, node, args, dout):
    x, y = args
    sx, sy = b.shape(x), b.shape(y)
    if len(sx) == 1 and len(sy) == 1:  # dot product x . y: dx = dout * y, dy = dout * x
        return b.op("mul", [dout, y]), b.op("mul", [dout, x])
    if len(sx) == 1 and len(sy) == 2:  # x @ W: dx = W @ dout, dW = outer(x, dout)
        return b.op("matmul", [y, dout]), b.op("mul", [b.column(x), dout])
    if len(sx) == 2 and len(sy) == 1:  # W @ x: dW = outer(dout, x), dx = W.T @ dout
        return b.op("mul", [b.column(dout), y]), b.op("matmul", [b.swap(x), dout])
    if len(sx) == 1 or len(sy) == 1:
        raise ShapeError(
            f"gate 'matmul': a vector times a batch of matrices ({sx} @ {sy}) has no gradient "
            "rule yet; reshape the vector into a matrix with one row or column"
        )
    return b.op("matmul", [dout, b.swap(y)]), b.op("matmul", [b.swap(x), dout])


def _vjp_transpose(b, node, args, dout):
    axes = b.params(node)["axes"]
    n = len(b.shape(args[0]))
    if axes is None:
        inverse = None
    else:
        inverse = tuple(sorted(range(n), key=lambda i: axes[i] % n))
    return (b.op("transpose", [dout], axes=inverse),)


def _vjp_reshape(b, node, args, dout):
    return (b.op("reshape", [dout], shape=b.shape(args[0])),)


def _expanded_axes(b, node, args):
    p = b.params(node)
    axes = _axes(p["axis"], len(b.shape(args[0])), b.op_of(node))
    return () if p["keepdims"] else axes


def _vjp_sum(b, node, args, dout):
    expand = _expanded_axes(b, node, args)
    return (b.op("broadcast_to", [dout], shape=b.shape(args[0]), expand=expand),)


def _vjp_mean(b, node, args, dout):
    shape = b.shape(args[0])
    p = b.params(node)
    count = math.prod(shape[a] for a in _axes(p["axis"], len(shape), "mean"))
    scaled = b.op("div", [dout, b.const(count)])
    return (b.op("broadcast_to", [scaled], shape=shape, expand=_expanded_axes(b, node, args)),)


def _vjp_max(b, node, args, dout):
    p = b.params(node)
    axis = p["axis"]
    if isinstance(axis, tuple):
        axis = axis[0] if len(axis) == 1 else None
    return (b.op("route_to_max", [dout, args[0]], axis=axis, keepdims=p["keepdims"]),)


def _vjp_broadcast_to(b, node, args, dout):
    p = b.params(node)
    shape, (arg_shape, expand) = b.shape(node), (b.shape(args[0]), p["expand"])
    dims = iter(arg_shape)
    expanded = tuple(1 if i in expand else next(dims) for i in range(len(shape)))
    summed = b.op("sum_to", [dout], shape=expanded)
    return (b.op("reshape", [summed], shape=arg_shape) if expand else summed,)


def _vjp_sum_to(b, node, args, dout):
    return (b.op("broadcast_to", [dout], shape=b.shape(args[0]), expand=()),)


def _no_vjp(b, node, args, dout):
    raise GateError(
        f"gate {b.op_of(node)!r} is a backward-only step and cannot be differentiated again; "
        "differentiate the forward function instead"
    )


# ---------------------------------------------------------------- the table


def _ew(name, arity, formula, symbol, **kw) -> Gate:
    return Gate(name, arity, ELEMENTWISE, symbol, formula=formula, **kw)


def _mask(name, formula, symbol) -> Gate:
    return Gate(name, 2, MASK, symbol, formula=formula)


def _tensor(name, arity, symbol, shape, spell, vjp, params=(), helper=None) -> Gate:
    return Gate(name, arity, TENSOR, symbol, shape=shape, spell=spell, vjp=vjp, params=params, helper=helper)


TABLE: tuple[Gate, ...] = (
    _ew("add", 2, lambda a, b: a + b, "+"),
    _ew("sub", 2, lambda a, b: a - b, "-"),
    _ew("mul", 2, lambda a, b: a * b, "*"),
    _ew("div", 2, lambda a, b: a / b, "/"),
    _ew("neg", 1, lambda a: -a, "-"),
    _ew("pow", 2, lambda a, b: a**b, "**"),
    _ew("exp", 1, sympy.exp, "exp"),
    _ew("log", 1, sympy.log, "log"),
    _ew("sqrt", 1, sympy.sqrt, "sqrt"),
    _ew("abs", 1, sympy.Abs, "|x|", numpy="np.abs({0})"),
    _ew("tanh", 1, sympy.tanh, "tanh"),
    _ew("sigmoid", 1, sigmoid, "σ", helper=SIGMOID_HELPER),
    # relu'(0) = 0: the subgradient graphc chooses at the kink
    _ew("relu", 1, lambda a: sympy.Piecewise((a, a > 0), (0, True)), "relu", numpy="np.maximum({0}, 0)"),
    # on a tie the first argument takes the whole gradient
    _ew("maximum", 2, lambda a, b: sympy.Piecewise((a, a >= b), (b, True)), "max", numpy="np.maximum({0}, {1})"),
    _ew("minimum", 2, lambda a, b: sympy.Piecewise((a, a <= b), (b, True)), "min", numpy="np.minimum({0}, {1})"),
    _ew("where", 3, lambda m, a, b: sympy.Piecewise((a, m), (b, True)), "where", numpy="np.where({0}, {1}, {2})", nondiff=(0,)),
    _mask("lt", lambda a, b: a < b, "<"),
    _mask("le", lambda a, b: a <= b, "<="),
    _mask("gt", lambda a, b: a > b, ">"),
    _mask("ge", lambda a, b: a >= b, ">="),
    _tensor("matmul", 2, "@", _matmul_shape, lambda a, s, p: f"{a[0]} @ {a[1]}", _vjp_matmul),
    _tensor("transpose", 1, "T", _transpose_shape, _spell_transpose, _vjp_transpose, ("axes",)),
    _tensor("reshape", 1, "reshape", _reshape_shape, _spell_reshape, _vjp_reshape, ("shape",)),
    _tensor("sum", 1, "Σ", _reduce_shape("sum"), _spell_reduce("sum"), _vjp_sum, ("axis", "keepdims")),
    _tensor("mean", 1, "mean", _reduce_shape("mean"), _spell_reduce("mean"), _vjp_mean, ("axis", "keepdims")),
    _tensor("max", 1, "max", _reduce_shape("max"), _spell_reduce("max"), _vjp_max, ("axis", "keepdims")),
    # backward-only steps, made by the vector-Jacobian rules above
    _tensor("broadcast_to", 1, "bcast", _broadcast_to_shape, _spell_broadcast_to, _vjp_broadcast_to, ("shape", "expand")),
    _tensor("sum_to", 1, "Σ→", _sum_to_shape, _spell_sum_to, _vjp_sum_to, ("shape",)),
    _tensor("route_to_max", 2, "route", _route_shape, _spell_route, _no_vjp, ("axis", "keepdims"), ROUTE_MAX_HELPER),
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
        raise GateError(f"unknown gate {op!r}; known gates: {known} (define new ones with gc.gate)") from None


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
            f"gate {name!r}: the formula must return a SymPy expression, got {type(expr).__name__}; "
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
