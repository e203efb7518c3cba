"""Front-end: tracing Python functions, symbolic expressions and SymPy into a graph.

Stage: front. Imports `params` and the `ir` (`ops`, `graph`, `text`, `errors`).

A `Value` is an immutable expression node (op, arguments, parameters). Calling a user's function
on input Values records every operation it performs; `build_graph` then walks the resulting
expression iteratively (no recursion, so 50,000-gate chains are fine) into a networkx DAG. The
local variable names of the traced function are kept as name hints for the generated code.
"""

from __future__ import annotations

import inspect
import itertools
import numbers
import sys

import networkx as nx
import numpy as np
import sympy
from sympy.core.function import AppliedUndef

from ..ir import text
from ..ir.errors import InputError, TraceError
from ..ir.graph import add_node, new_graph
from ..ir.ops import MASK, GateCall, GateName, gate_of, user_gate
from ..ir.ops import sigmoid as sympy_sigmoid
from . import params

_input_order = itertools.count()  # orders symbols by creation, so gc.symbols("x y z") keeps x, y, z

BRANCH_HINT = (
    "tracing records operations on placeholders and sees no numbers, so Python cannot branch on "
    "a traced value (if/while/and/or/bool). Write the choice as a gate instead: "
    "gc.maximum(a, b), gc.minimum(a, b), gc.relu(x) or gc.where(x > 0, a, b)"
)


class Value:
    """A traced value: the result of a gate applied to other Values, an input or a constant."""

    __slots__ = ("op", "args", "params", "const", "name", "order")
    __array_priority__ = 1000

    def __init__(self, op, args=(), params=None, const=None, name=None):
        self.op, self.args, self.params = op, tuple(args), params or {}
        self.const, self.name = const, name
        self.order = next(_input_order) if op == "input" else None

    def __repr__(self) -> str:
        if self.op == "input":
            return f"<graphc input {self.name}>"
        if self.op == "const":
            return f"<graphc const {self.const!r}>"
        return f"<graphc value {self.op}({', '.join(_shown_arg(a) for a in self.args)})>"

    # arithmetic: each operator is one gate
    def __add__(self, other):
        return apply("add", self, other)

    def __radd__(self, other):
        return apply("add", other, self)

    def __sub__(self, other):
        return apply("sub", self, other)

    def __rsub__(self, other):
        return apply("sub", other, self)

    def __mul__(self, other):
        return apply("mul", self, other)

    def __rmul__(self, other):
        return apply("mul", other, self)

    def __truediv__(self, other):
        return apply("div", self, other)

    def __rtruediv__(self, other):
        return apply("div", other, self)

    def __pow__(self, other):
        return apply("pow", self, other)

    def __rpow__(self, other):
        return apply("pow", other, self)

    def __matmul__(self, other):
        return apply("matmul", self, other)

    def __rmatmul__(self, other):
        return apply("matmul", other, self)

    def __neg__(self):
        return apply("neg", self)

    def __pos__(self):
        return self

    def __abs__(self):
        return apply("abs", self)

    # comparisons give masks for `where`; no gradient flows through a mask
    def __lt__(self, other):
        return apply("lt", self, other)

    def __le__(self, other):
        return apply("le", self, other)

    def __gt__(self, other):
        return apply("gt", self, other)

    def __ge__(self, other):
        return apply("ge", self, other)

    __hash__ = object.__hash__

    # array-like conveniences
    @property
    def T(self):  # noqa: N802 - NumPy's spelling
        return apply("transpose", self, axes=None)

    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], tuple) else shape
        return apply("reshape", self, shape=params.shape(shape))

    def sum(self, axis=None, keepdims=False):
        return apply("sum", self, **params.reduction(axis, keepdims, "sum"))

    def mean(self, axis=None, keepdims=False):
        return apply("mean", self, **params.reduction(axis, keepdims, "mean"))

    def max(self, axis=None, keepdims=False):
        return apply("max", self, **params.max_reduction(axis, keepdims))

    # what tracing cannot do, said clearly
    def __bool__(self):
        raise TraceError(BRANCH_HINT)

    def __float__(self):
        raise TraceError("float() of a traced value: " + BRANCH_HINT)

    def __int__(self):
        raise TraceError("int() of a traced value: " + BRANCH_HINT)

    __index__ = __int__

    def __iter__(self):
        raise TraceError(
            "cannot iterate over a traced value: its length is not known while tracing; "
            "use gc.sum / gc.mean / gc.max over an axis, or matmul"
        )

    def __len__(self):
        raise TraceError("len() of a traced value: shapes are not known while tracing")

    def __getitem__(self, key):
        return index(self, key)

    def __setitem__(self, key, value):
        raise TraceError(
            "assignment x[...] = v into a traced value is not supported (a traced value is never "
            "changed in place); build the new value instead: gc.where(mask, v, x) to replace "
            "entries, or gc.concatenate / gc.stack to join pieces"
        )

    @property
    def shape(self):
        """The sizes of this value, read by the generated code from its arguments (`x.shape[0]`):
        `x.shape[k]` is a size to give `gc.arange`; its number is not known while tracing."""
        return Shape(self)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """Let `np.exp(x)` and friends work on traced values by mapping them to gates."""
        op = _UFUNCS.get(ufunc.__name__)
        if method != "__call__" or op is None or kwargs:
            known = ", ".join(f"np.{u}" for u in sorted(_UFUNCS))
            raise TraceError(
                f"np.{ufunc.__name__} cannot be traced (method {method!r}); use a graphc gate "
                f"such as gc.exp, or one of: {known}"
            )
        return apply(op, *inputs)


class Shape:
    """A traced value's shape: `x.shape[k]` is a `Size`; its length is not known while tracing
    (one module serves every size)."""

    __slots__ = ("value",)

    def __init__(self, value: Value):
        self.value = value

    def __getitem__(self, axis):
        if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, numbers.Integral):
            raise TraceError(f"x.shape takes one axis, an int; got {axis!r}")
        return Size(self.value, int(axis))

    def __len__(self):
        raise TraceError("len(x.shape) of a traced value: its rank is not known while tracing")

    def __iter__(self):
        raise TraceError(
            "cannot unpack x.shape of a traced value: read one size as x.shape[0], e.g. "
            "gc.arange(x.shape[0])"
        )


class Size:
    """`x.shape[axis]` of a traced value: a size the generated code reads (`x.shape[0]`), never a
    number baked in. Use it as `gc.arange(x.shape[0])` in an index."""

    __slots__ = ("value", "axis")

    def __init__(self, value: Value, axis: int):
        self.value, self.axis = value, axis

    def __repr__(self) -> str:
        return f"<graphc size {_shown_arg(self.value)}.shape[{self.axis}]>"

    def _number(self, *_):
        raise TraceError(
            f"{self!r} is not known while tracing (the generated code works for every size); "
            "use it as gc.arange(x.shape[0]) to index with every row, e.g. "
            "scores[gc.arange(scores.shape[0]), y], and gc.mean to divide by it"
        )

    __index__ = __int__ = __float__ = __bool__ = _number
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = _number


class Arange:
    """`gc.arange(n)`: every index 0..n-1 of an axis, as the first index of `a[gc.arange(N), y]`
    (one entry per row); `n` is a size `x.shape[k]` or an int."""

    __slots__ = ("size",)

    def __init__(self, size):
        if not isinstance(size, Size) and (
            isinstance(size, (bool, np.bool_)) or not isinstance(size, numbers.Integral)
        ):
            raise TraceError(f"gc.arange takes a size, x.shape[0], or an int; got {size!r}")
        self.size = size

    def __repr__(self) -> str:
        return f"gc.arange({self.size!r})"

    def _no(self, *_):
        raise TraceError(
            "gc.arange(...) only indexes: write a[gc.arange(N), y] to pick a[i, y[i]] per row"
        )

    __add__ = __radd__ = __sub__ = __mul__ = __rmul__ = __array__ = _no


def index(x: Value, key) -> Value:
    """`x[key]` on a traced value: a `getitem` gate for basic indexing (ints, slices, None,
    ...), a `pick` gate for `a[gc.arange(N), y]` (one entry per row, `np.arange(N)` too)."""
    key = key if isinstance(key, tuple) else (key,)
    if any(isinstance(k, Value) and _is_mask(k.op) for k in key):
        raise TraceError(_MASK_INDEX)
    arrays = [i for i, k in enumerate(key) if _is_array_index(k)]
    if not arrays:
        return apply("getitem", x, index=tuple(_basic_entry(k) for k in key))
    if len(key) == 2 and arrays == [0, 1] and _is_all_rows(key[0]):
        return apply("pick", x, _index_array(key[1]))
    raise TraceError(
        f"graphc indexes traced arrays with ints, slices, None and ..., and gathers one entry "
        f"per row as a[gc.arange(N), y]; the index {_shown_key(key)} is neither. Use "
        "gc.take_along_axis(a, idx, axis) for other gathers"
    )


def _shown_key(key) -> str:
    return "[" + ", ".join(type(k).__name__ if not isinstance(k, (int, slice)) else repr(k)
                           for k in key) + "]"  # fmt: skip


def _is_array_index(k) -> bool:
    if isinstance(k, (Value, Arange)):
        return True
    return isinstance(k, (list, np.ndarray)) and not isinstance(k, np.generic)


def _is_all_rows(k) -> bool:
    """gc.arange(N), or a constant np.arange(N): read as every row (np.arange(a.shape[0]))."""
    if isinstance(k, Arange):
        return True
    if isinstance(k, (list, np.ndarray)):
        arr = np.asarray(k)
        return arr.ndim == 1 and arr.dtype.kind in "iu" and np.array_equal(arr, np.arange(len(arr)))
    return False


def _index_array(k) -> Value:
    if isinstance(k, Value):
        return k
    arr = np.asarray(k)
    if arr.dtype.kind == "b":
        raise TraceError(_MASK_INDEX)
    if arr.dtype.kind not in "iu":
        raise TraceError(f"an index array must hold integers, got dtype {arr.dtype}")
    return Value("const", const=arr)


_MASK_INDEX = (
    "boolean-mask indexing x[mask] is not supported (its shape depends on the values); keep "
    "the shape and choose entries with gc.where(mask, x, 0.0), then gc.sum"
)


def _basic_entry(k):
    if k is None or k is Ellipsis:
        return None if k is None else "..."
    if isinstance(k, (bool, np.bool_)):
        raise TraceError(_MASK_INDEX)
    if isinstance(k, numbers.Integral):
        return int(k)
    if isinstance(k, slice):
        bounds = (k.start, k.stop, k.step)
        if any(isinstance(b, Size) for b in bounds):
            raise TraceError(
                "a slice bound x.shape[k] is not known while tracing; write the bound relative "
                "to the end instead, e.g. x[:-1] or x[1:]"
            )
        if any(b is not None and (isinstance(b, bool) or not isinstance(b, numbers.Integral))
               for b in bounds):  # fmt: skip
            raise TraceError(f"slice bounds must be ints or None, got {k!r}")
        if k.step == 0:
            raise TraceError("a slice step cannot be zero")
        return tuple(None if b is None else int(b) for b in bounds)
    if isinstance(k, Size):
        raise TraceError(
            f"{k!r} is not known while tracing; index with ints, slices or gc.arange(N)"
        )
    raise TraceError(f"cannot index a traced value with {type(k).__name__} {k!r:.40}")


_UFUNCS = {
    "add": "add", "subtract": "sub", "multiply": "mul", "true_divide": "div", "divide": "div",
    "negative": "neg", "power": "pow", "exp": "exp", "log": "log", "sqrt": "sqrt",
    "absolute": "abs", "tanh": "tanh", "maximum": "maximum", "minimum": "minimum",
    "matmul": "matmul", "less": "lt", "less_equal": "le", "greater": "gt", "greater_equal": "ge",
}  # fmt: skip


def _shown_arg(v) -> str:
    """An argument as a traced value's repr names it: an input by its name, a constant by its
    value, a gate by its name (its own arguments elided)."""
    if not isinstance(v, Value):
        return repr(v)
    if v.op == "input":
        return str(v.name)
    if v.op == "const":
        return f"{v.const:g}" if isinstance(v.const, (int, float)) else "const"
    return f"{v.op}(...)"


def lift(x) -> Value:
    """A Value for `x`: Values pass through; real numbers and arrays become constants."""
    if isinstance(x, Value):
        return x
    if isinstance(x, (Size, Arange)):
        x._number() if isinstance(x, Size) else x._no()
    if isinstance(x, (bool, np.bool_)):
        raise TraceError(f"a boolean constant {x!r} in an expression; use 1.0/0.0 or a comparison")
    if isinstance(x, numbers.Real):
        return Value("const", const=x)
    if isinstance(x, (np.ndarray, np.generic, list, tuple)):
        arr = np.array(x)  # a copy: later changes to the caller's array do not change the graph
        if arr.dtype.kind in "iuf":
            return Value("const", const=arr if arr.ndim else arr.item())
    if isinstance(x, (complex, numbers.Complex)):
        raise TraceError(
            f"complex constant {x!r}: graphc differentiates real-valued functions only"
        )
    raise TraceError(
        f"cannot use {type(x).__name__} {x!r:.60} in a graphc expression; use numbers, "
        "NumPy arrays of real numbers, or other traced values"
    )


def apply(op: str, *args, **params) -> Value:
    """The Value of gate `op` applied to `args` (numbers and arrays become constants); `op` is
    a gate's name, or a user gate's `GateName` (a plain name means the gate defined now)."""
    gate = gate_of(op)
    if gate is None and user_gate(op) is not None:
        gate = user_gate(op)
        op = GateName(gate)
    if gate is None:
        raise TraceError(f"unknown gate {op!r}; define new gates with gc.gate")
    values = [lift(a) for a in args]
    for i, v in enumerate(values):
        is_mask = _is_mask(v.op)
        if is_mask and i not in gate.nondiff:
            raise TraceError(
                f"gate {op!r} got a comparison mask as argument {i + 1}; masks only select, as the "
                "first argument of gc.where(mask, a, b)"
            )
        if i in gate.nondiff and not is_mask:
            raise TraceError(f"gate {op!r} needs a comparison such as x > 0 as argument {i + 1}")
        if i in gate.indices and not _is_index(v):
            raise TraceError(
                f"gate {op!r} takes integer indices as argument {i + 1}: an input (its labels, "
                "say) or an integer array, not a value computed by gates (which is a float)"
            )
    return Value(op, values, params)


def _is_index(v: Value) -> bool:
    """An input (kept an integer array, see `ir.graph.index_inputs`) or an integer constant."""
    return v.op == "input" or v.op == "const" and np.asarray(v.const).dtype.kind in "iu"


def _is_mask(op: str) -> bool:
    gate = gate_of(op)
    return gate is not None and gate.kind == MASK


# ---------------------------------------------------------------- inputs and graphs


def check_name(name, what: str = "input name") -> str:
    """An input name must be a Python identifier in NFKC form, as `text.name` says (keywords
    are allowed and renamed in code)."""
    return text.name(name, what, InputError)


def symbols(names: str):
    """Inputs for building expressions directly: `x, y, z = gc.symbols("x y z")`."""
    if not isinstance(names, str):
        raise InputError(f"gc.symbols takes a string of names such as 'x y z', got {names!r}")
    parts = names.replace(",", " ").split()
    if not parts:
        raise InputError("gc.symbols needs at least one name, e.g. gc.symbols('x y')")
    if len(set(parts)) != len(parts):
        raise InputError(f"gc.symbols: a name repeats in {names!r}")
    values = tuple(Value("input", name=check_name(p)) for p in parts)
    return values[0] if len(values) == 1 else values


def build_graph(name: str, inputs: list[Value], output, hints: dict[int, str] | None = None):
    """The networkx DAG of `output` over `inputs` (in signature order), built without recursion."""
    text.name(name, "the function's name", InputError)
    output = lift(output)
    hints = hints or {}
    g = new_graph(name)
    node_of: dict[int, int] = {}
    for v in inputs:
        node_of[id(v)] = add_node(g, "input", name=v.name)
    g.graph["inputs"] = [node_of[id(v)] for v in inputs]
    stack = [(output, False)]
    while stack:
        v, ready = stack.pop()
        if id(v) in node_of:
            continue
        if v.op == "input":
            raise TraceError(
                f"the expression uses input {v.name!r}, which is not among the function's inputs "
                f"{[i.name for i in inputs]}; add it to the inputs"
            )
        if not ready:
            stack.append((v, True))
            stack.extend((a, False) for a in reversed(v.args) if id(a) not in node_of)
            continue
        attrs = {"params": dict(v.params)} if v.params else {}
        if v.op == "const":
            attrs["value"] = v.const
        if id(v) in hints:
            attrs["hint"] = hints[id(v)]
        node_of[id(v)] = add_node(g, v.op, [node_of[id(a)] for a in v.args], **attrs)
    g.graph["output"] = node_of[id(output)]
    if _is_mask(g.nodes[g.graph["output"]]["op"]):
        raise TraceError(
            "the function returns a comparison mask; return a number, e.g. gc.where(mask, 1.0, 0.0)"
        )
    return g


def trace(fn) -> nx.DiGraph:
    """Trace `fn`: its parameters become inputs; returns the graph with local names as hints."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        raise TraceError(
            f"cannot read the signature of {fn!r}; pass a plain Python function"
        ) from None
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.KEYWORD_ONLY, p.POSITIONAL_ONLY):
            raise TraceError(
                f"parameter {p.name!r} of {fn.__name__}: graphc traces plain parameters "
                "(def f(x, y): ...); *args, **kwargs, keyword-only and positional-only "
                "parameters are not inputs"
            )
    inputs = [Value("input", name=check_name(p.name)) for p in params]
    code = getattr(fn, "__code__", None)
    seen: dict[int, tuple[str, Value]] = {}  # id -> (first local name, the Value kept alive)

    def watch(frame, event, arg):  # the traced function's frame only: note what names bind
        for name, v in frame.f_locals.items():
            if isinstance(v, Value) and v.op != "input" and id(v) not in seen:
                seen[id(v)] = (name, v)
        return watch

    def calls(frame, event, arg):  # asked once per new frame; only fn's own frame is watched
        return watch if frame.f_code is code else None

    previous = sys.gettrace()
    if previous is None:  # under a debugger or coverage tool, keep theirs: names are op names
        sys.settrace(calls)
    try:
        out = fn(*inputs)
    finally:
        if previous is None:
            sys.settrace(None)
    if isinstance(out, (tuple, list)):
        raise TraceError(
            f"{fn.__name__} returns {len(out)} values; a graphc function returns one value"
        )
    hints = {k: name for k, (name, _) in seen.items() if text.is_name(name)}
    name = getattr(fn, "__name__", None)  # a lambda's "<lambda>" is no name: it is then "f"
    return build_graph(name if text.is_name(name) else "f", inputs, out, hints)


# ---------------------------------------------------------------- SymPy in


_SYMPY_FUNCS = {
    sympy.exp: "exp",
    sympy.log: "log",
    sympy.tanh: "tanh",
    sympy.Abs: "abs",
    sympy_sigmoid: "sigmoid",
}


def sympy_graph(expr, name: str = "f"):
    """The graph of a SymPy expression; inputs are its free symbols in alphabetical order.

    Subtraction and division are recovered from SymPy's sums of negated terms and products with
    negative powers, so `x - y/z` becomes a sub gate and a div gate, as a person would draw it.
    """
    if not isinstance(expr, sympy.Expr):
        raise InputError(f"gc.from_sympy takes a SymPy expression, got {type(expr).__name__}")
    text.name(name, "gc.from_sympy(name=...)", InputError)
    syms = sorted(expr.free_symbols, key=lambda s: s.name)
    inputs = [Value("input", name=_sympy_name(s)) for s in syms]
    value_of: dict = dict(zip(syms, inputs))
    stack = [expr]
    while stack:
        e = stack[-1]
        if e in value_of:
            stack.pop()
            continue
        kids = _sympy_children(e)
        missing = [k for k in kids if k not in value_of]
        if missing:
            stack.extend(missing)
            continue
        stack.pop()
        value_of[e] = _sympy_combine(e, [value_of[k] for k in kids])
    return build_graph(name, inputs, value_of[expr])


def _sympy_name(s) -> str:
    return check_name(s.name, "SymPy symbol")


def _negative_power(f) -> bool:
    return f.is_Pow and f.exp.is_Number and f.exp.is_negative


def _sympy_children(e) -> list:
    """The sub-expressions whose Values `e` is built from (re-signed and inverted as drawn)."""
    if e.is_Number or e.is_NumberSymbol or e.is_Symbol:
        return []
    if e.is_Add:
        pos = [t for t in e.args if not t.could_extract_minus_sign()]
        return pos + [-t for t in e.args if t.could_extract_minus_sign()]
    if e.is_Mul:
        if e.could_extract_minus_sign():
            return [-e]
        num = [f for f in e.args if not _negative_power(f)]
        return num + [1 / f for f in e.args if _negative_power(f)]
    if e.is_Pow and e.exp.is_Number and e.exp.is_negative:
        return [1 / e]
    if e.is_Pow and e.exp == sympy.Rational(1, 2):
        return [e.base]
    return list(e.args)


def _sympy_combine(e, kids: list):
    if e.is_Number or e.is_NumberSymbol:
        if not e.is_real:
            raise InputError(f"gc.from_sympy: {e} is not a real number")
        return lift(e if e.is_Number else float(e))  # a float64 (or inf): see `graph.constant`
    if e.is_Add:
        n_pos = sum(1 for t in e.args if not t.could_extract_minus_sign())
        out = kids[0] if n_pos else apply("neg", kids[0])
        for i, v in enumerate(kids[1:], start=1):
            out = apply("add" if i < n_pos else "sub", out, v)
        return out
    if e.is_Mul:
        if e.could_extract_minus_sign():
            return apply("neg", kids[0])
        n_num = sum(1 for f in e.args if not _negative_power(f))
        out = kids[0] if n_num else lift(1)
        for v in kids[1:n_num]:
            out = apply("mul", out, v)
        for v in kids[n_num:]:
            out = apply("div", out, v)
        return out
    if e.is_Pow:
        if e.exp.is_Number and e.exp.is_negative:
            return apply("div", 1, kids[0])
        if e.exp == sympy.Rational(1, 2):
            return apply("sqrt", kids[0])
        return apply("pow", *kids)
    if isinstance(e, (sympy.Max, sympy.Min)):
        op = "maximum" if isinstance(e, sympy.Max) else "minimum"
        out = kids[0]
        for v in kids[1:]:
            out = apply(op, out, v)
        return out
    if e.func in _SYMPY_FUNCS and len(kids) == 1:
        return apply(_SYMPY_FUNCS[e.func], kids[0])
    if isinstance(e, GateCall):  # a gc.gate gate called on SymPy expressions
        return apply(GateName(e.gate), *kids)
    name = e.func.__name__
    gate = user_gate(name) if isinstance(e, AppliedUndef) else None
    if gate is not None and len(kids) == gate.arity:  # sympy.Function(name): the gate defined now
        return apply(GateName(gate), *kids)
    supported = "+, -, *, /, **, exp, log, sqrt, tanh, Abs, Max, Min, sigmoid, user gates, numbers"
    raise InputError(f"gc.from_sympy cannot convert {name} ({e}); supported: {supported}")
