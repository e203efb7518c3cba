"""The expression parser: text such as "(x + y) * z" into a graph, by a whitelist over `ast`.

Stage: front (the command line's way in). Imports `trace`, `gates` and the `ir`.

The text is read by `ast.parse(..., mode="eval")` and never run: no `eval`, `exec`, compiled
code, `sympify` or `parse_expr`. Each syntax node is checked against a short whitelist before
anything is built from it, and anything else is refused with a `ParseError` saying what is not
allowed and what is:

- names become inputs, in the order they first appear in the text ("w0*x0 + w1*x1" has inputs
  w0, x0, w1, x1); a name may not start with an underscore or be a gate's name;
- int and float literals, with unary minus;
- the operators + - * / ** @, unary - and +, parentheses;
- calls of the gates by name: exp, log, sqrt, abs, tanh, sigmoid, softplus, log_sigmoid, relu,
  maximum, minimum, matmul, transpose, where(a < b, x, y) (a comparison < <= > >= is allowed only
  as where's first argument), sum / mean / max with keywords axis=<int> and keepdims=<True|False>,
  and max(a, b, ...) / min(a, b, ...) for the elementwise maximum and minimum.

The text is at most `MAX_LENGTH` characters and `MAX_DEPTH` operations deep, and the walk over
the syntax tree uses an explicit stack, so long or deeply nested input is refused quickly with a
message, never with a RecursionError or MemoryError.
"""

from __future__ import annotations

import ast
import keyword
import math

import networkx as nx

from ..ir.errors import GraphcError
from . import gates
from .trace import Value, apply, build_graph

MAX_LENGTH = 10_000  # characters
MAX_DEPTH = 500  # nested operations (a sum of 500 terms is 500 deep)

ALLOWED = (
    "Allowed: input names, int and float numbers, + - * / ** @, unary minus, parentheses and "
    "calls of the gates exp, log, sqrt, abs, tanh, sigmoid, softplus, log_sigmoid, relu, maximum, "
    "minimum, max, min, matmul, transpose, where(a < b, x, y), sum/mean/max(x, axis=0, "
    "keepdims=True)"
)


class ParseError(GraphcError, ValueError):
    """An expression string the parser refuses: bad syntax or a construct outside the whitelist."""


# name -> (how to build it from the argument Values and keyword params, the arities it takes,
#          the keyword arguments it accepts)
def _unary(op):
    return lambda args, kw: apply(op, *args)


def _chain(op):
    def build(args, kw):
        out = args[0]
        for a in args[1:]:
            out = apply(op, out, a)
        return out

    return build


def _max(args, kw):
    return gates.max(args[0], **kw) if len(args) == 1 else _chain("maximum")(args, kw)


GATES = {
    **{
        op: (_unary(op), (1,), ())
        for op in ("exp", "log", "sqrt", "abs", "tanh", "sigmoid", "softplus", "log_sigmoid")
    },
    "relu": (_unary("relu"), (1,), ()),
    "maximum": (_chain("maximum"), (2,), ()),
    "minimum": (_chain("minimum"), (2,), ()),
    "matmul": (_chain("matmul"), (2,), ()),
    "transpose": (lambda args, kw: gates.transpose(args[0]), (1,), ()),
    "where": (lambda args, kw: gates.where(*args), (3,), ()),
    "sum": (lambda args, kw: gates.sum(args[0], **kw), (1,), ("axis", "keepdims")),
    "mean": (lambda args, kw: gates.mean(args[0], **kw), (1,), ("axis", "keepdims")),
    "max": (_max, None, ("axis", "keepdims")),  # max(x, axis=..) reduces; max(a, b, ..) is maximum
    "min": (_chain("minimum"), None, ()),
}

_BINARY = {
    ast.Add: "add",
    ast.Sub: "sub",
    ast.Mult: "mul",
    ast.Div: "div",
    ast.Pow: "pow",
    ast.MatMult: "matmul",
}
_COMPARE = {ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt", ast.GtE: "ge"}

# what a refused node is called in the message
_REFUSED = {
    ast.Attribute: "attribute access (a.b)",
    ast.Subscript: "subscripts (a[i])",
    ast.Slice: "slices",
    ast.Lambda: "lambda",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "generator expressions",
    ast.JoinedStr: "f-strings",
    ast.FormattedValue: "f-strings",
    ast.Starred: "starred arguments (*a)",
    ast.BoolOp: "and/or",
    ast.IfExp: "conditional expressions (a if c else b)",
    ast.NamedExpr: "assignment expressions (:=)",
    ast.List: "lists",
    ast.Tuple: "tuples",
    ast.Dict: "dicts",
    ast.Set: "sets",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.Compare: "comparisons outside the first argument of where(...)",
}
_REFUSED_OPS = {
    ast.Mod: "%",
    ast.FloorDiv: "//",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.BitAnd: "&",
    ast.Not: "not",
    ast.Invert: "~",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
}


def parse(text: str, name: str = "f") -> nx.DiGraph:
    """The graph of an expression string; its inputs are its names in order of first appearance.

    Wrap it in a `Function` to compile it:

    >>> f = gc.Function(parse("(x + y) * z"))
    >>> f.value_and_grad(x=-2.0, y=5.0, z=-4.0)
    (-12.0, {'x': -4.0, 'y': -4.0, 'z': 3.0})
    """
    tree = _syntax_tree(text)
    inputs: dict[str, Value] = {}
    output = _Builder(inputs).build(tree.body)
    return build_graph(name, list(inputs.values()), output)


def _fail(what: str, node: ast.AST | None = None) -> ParseError:
    where = f" at column {node.col_offset + 1}" if hasattr(node, "col_offset") else ""
    return ParseError(f"not allowed in a graphc expression: {what}{where}. {ALLOWED}")


def _syntax_tree(text) -> ast.Expression:
    if not isinstance(text, str):
        raise ParseError(f"an expression must be a string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ParseError(
            f"the expression is {len(text)} characters long; the limit is {MAX_LENGTH}. "
            "Write long functions in a file and pass FILE.py:NAME"
        )
    text = text.strip()
    if not text:
        raise ParseError("the expression is empty; write one such as '(x + y) * z'")
    try:
        return ast.parse(text, mode="eval")
    except SyntaxError as e:
        at = f" at column {e.offset}" if e.offset else ""
        raise ParseError(f"the expression is not valid syntax{at}: {e.msg}") from None
    except (RecursionError, MemoryError):  # CPython's parser guards its own depth this way
        raise ParseError(_too_deep()) from None
    except ValueError as e:  # e.g. null bytes, or an int literal too long to read
        raise ParseError(f"the expression cannot be read: {e}") from None


def _too_deep() -> str:
    return (
        f"the expression is nested more than {MAX_DEPTH} operations deep; "
        "split it into named steps in a Python function and pass FILE.py:NAME"
    )


def _has_input(node: ast.AST) -> bool:
    """Whether a subtree reads any input name (a gate's name in a call does not count)."""
    called = {id(n.func) for n in ast.walk(node) if isinstance(n, ast.Call)}
    return any(isinstance(n, ast.Name) and id(n) not in called for n in ast.walk(node))


class _Builder:
    """Checks and converts a syntax tree bottom-up with an explicit stack (no recursion)."""

    def __init__(self, inputs: dict[str, Value]):
        self.inputs = inputs

    def build(self, root: ast.AST) -> Value:
        # entries: (node, depth, as_float, mask_ok, children built?)
        stack = [(root, 0, False, False, False)]
        done: list = []  # built Values (and masks) of finished nodes, in post-order
        while stack:
            node, depth, as_float, mask_ok, ready = stack.pop()
            if depth > MAX_DEPTH:
                raise ParseError(_too_deep())
            if ready:
                n = len(self._children(node))
                args = done[len(done) - n :] if n else []
                del done[len(done) - n :]
                done.append(self._combine(node, args, as_float))
                continue
            self._check(node, mask_ok)
            kids = self._children(node)
            # a power of constants is computed in floats: 10**10**10 must overflow, not hang
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
                as_float = as_float or not _has_input(node.left)
            stack.append((node, depth, as_float, mask_ok, True))
            where_call = isinstance(node, ast.Call) and node.func.id == "where"
            for i, kid in reversed(list(enumerate(kids))):
                stack.append((kid, depth + 1, as_float, where_call and i == 0, False))
        (out,) = done
        return out

    @staticmethod
    def _children(node: ast.AST) -> list[ast.AST]:
        if isinstance(node, ast.BinOp):
            return [node.left, node.right]
        if isinstance(node, ast.UnaryOp):
            return [] if _is_number(node.operand) else [node.operand]
        if isinstance(node, ast.Call):
            return list(node.args)
        if isinstance(node, ast.Compare):
            return [node.left, node.comparators[0]]
        return []

    def _check(self, node: ast.AST, mask_ok: bool) -> None:
        """Refuse anything outside the whitelist, before building from it."""
        if isinstance(node, ast.Name):
            _check_name(node)
        elif isinstance(node, ast.Constant):
            _number(node, False)
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, (ast.USub, ast.UAdd)):
                raise _fail(f"the operator {_op(node.op)!r}", node)
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _BINARY:
                raise _fail(f"the operator {_op(node.op)!r}", node)
        elif isinstance(node, ast.Call):
            _check_call(node)
        elif isinstance(node, ast.Compare) and mask_ok:
            if len(node.ops) != 1:
                raise _fail("a chained comparison (a < b < c)", node)
            if type(node.ops[0]) not in _COMPARE:
                raise _fail(f"the comparison {_op(node.ops[0])!r}", node)
        else:
            raise _fail(_REFUSED.get(type(node), f"the syntax {type(node).__name__}"), node)

    def _combine(self, node: ast.AST, args: list, as_float: bool):
        if isinstance(node, ast.Name):
            if node.id not in self.inputs:
                self.inputs[node.id] = Value("input", name=node.id)
            return self.inputs[node.id]
        if isinstance(node, ast.Constant):
            return _number(node, as_float)
        if isinstance(node, ast.UnaryOp):
            if not args:  # -2 is the number -2, as in Python
                value = _number(node.operand, as_float)
                return -value if isinstance(node.op, ast.USub) else value
            return apply("neg", args[0]) if isinstance(node.op, ast.USub) else args[0]
        if isinstance(node, ast.BinOp):
            return apply(_BINARY[type(node.op)], *args)
        if isinstance(node, ast.Compare):
            return apply(_COMPARE[type(node.ops[0])], *args)
        build, _, _ = GATES[node.func.id]
        return build(args, {k.arg: _keyword(node.func.id, k) for k in node.keywords})


def _op(op: ast.AST) -> str:
    return _REFUSED_OPS.get(type(op), type(op).__name__)


def _is_number(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) in (int, float)


def _number(node: ast.Constant, as_float: bool):
    v = node.value
    if type(v) not in (int, float):
        kind = {str: "strings", bytes: "bytes", bool: "True/False", complex: "complex numbers"}
        raise _fail(kind.get(type(v), repr(v)), node)
    if isinstance(v, int) and (as_float or abs(v) > 2**53):
        try:
            v = float(v)
        except OverflowError:
            v = math.inf
    if not math.isfinite(v):
        raise ParseError("a number in the expression is too large for a float (over 1.8e308)")
    return v


def _check_name(node: ast.Name) -> None:
    if node.id.startswith("_"):
        raise _fail(f"the name {node.id!r} (names starting with an underscore)", node)
    if node.id in GATES:
        raise _fail(f"{node.id!r} as an input name (it is a gate: call it, {node.id}(...))", node)
    if keyword.iskeyword(node.id) or not node.id.isidentifier():
        raise _fail(f"the name {node.id!r}", node)


def _check_call(node: ast.Call) -> None:
    if not isinstance(node.func, ast.Name):
        raise _fail("calling anything but a gate by its name (e.g. a.b() or f(x)(y))", node)
    gate = node.func.id
    if gate not in GATES:
        raise _fail(f"the unknown function {gate!r}", node)
    for a in node.args:
        if isinstance(a, ast.Starred):
            raise _fail("starred arguments (*a)", a)
    if any(k.arg is None for k in node.keywords):
        raise _fail("**keyword arguments", node)
    _, arities, keywords = GATES[gate]
    n = len(node.args)
    if arities is not None and n not in arities:
        raise ParseError(f"{gate}(...) takes {arities[0]} argument(s), got {n}")
    if gate == "min" and n < 2:
        raise ParseError(
            "min(...) takes two or more arguments; for a minimum over an axis, -max(-x)"
        )
    if gate == "max" and n == 0:
        raise ParseError("max(...) takes one argument and axis=, or two or more arguments")
    if gate == "max" and n > 1:
        keywords = ()
    for k in node.keywords:
        if k.arg not in keywords:
            accepted = ", ".join(keywords) or "none"
            raise ParseError(
                f"the keyword argument {k.arg!r} is not allowed for {gate}(...); it accepts: "
                f"{accepted}"
            )


def _keyword(gate: str, k: ast.keyword):
    """The value of axis= (an int, or a tuple of ints for sum and mean) or keepdims= (a bool)."""
    v = k.value
    if k.arg == "keepdims":
        if isinstance(v, ast.Constant) and type(v.value) is bool:
            return v.value
        raise ParseError(f"{gate}(..., keepdims=...) takes True or False")
    items = v.elts if isinstance(v, ast.Tuple) and gate != "max" else [v]
    axes = [_int(a) for a in items]
    if None in axes or not axes:
        form = "an int" if gate == "max" else "an int or a tuple of ints"
        raise ParseError(f"{gate}(..., axis=...) takes {form}, e.g. axis=0 or axis=-1")
    return tuple(axes) if isinstance(v, ast.Tuple) else axes[0]


def _int(node: ast.AST) -> int | None:
    sign = 1
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        sign, node = -1, node.operand
    if isinstance(node, ast.Constant) and type(node.value) is int and node.value < 2**31:
        return sign * node.value
    return None
