"""Code generation: print a scheduled program as a readable NumPy module, and load it.

Stage: emit (`Program` -> NumPy source -> module). Imports the `ir` and `passes`.

Elementwise formulas are printed by a subclass of SymPy's NumPy printer (one template per
formula, cached, so printing is not SymPy work per node); tensor gates use their table spelling.
Every statement is normalised through Python's own `ast` (spacing and parentheses) and carries a
comment naming its gate and local gradient. The module depends on NumPy alone.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import keyword
import linecache
import math
import re
import textwrap
import types

import numpy as np
import sympy
from sympy.printing.numpy import NumPyPrinter

from ..ir import text
from ..ir.dtypes import PY, compared_in, narrow
from ..ir.graph import EXACT_INT, args_of, topo_order
from ..ir.ops import (
    ARGS,
    MASK,
    MASKS,
    OUT,
    TENSOR,
    TEXTBOOK,
    gate_of,
    textbook_gates,
    textbook_spelling,
)
from ..ir.shapes import Sizes
from ..ir.special import HELPER_NEEDS, HELPERS, folds_badly, is_plain_float, where
from ..ir.tensor import FORWARD_NOTES
from ..passes.schedule import ARITHMETIC, Program, fresh
from ..passes.shortcuts import Shortcuts, shortcuts
from . import sizes as generic

NAMESPACE = "np"  # the array namespace the printed code uses; a backend object may change it


class Printer(NumPyPrinter):
    """SymPy's NumPy printer, writing `np.` and the plain operators a person would write.

    `ns` is the array namespace it writes (`emit.array_api` prints the standard's `xp.`)."""

    ns = NAMESPACE

    def __init__(self):
        super().__init__({"allow_unknown_functions": True, "fully_qualified_modules": True})

    def _module_format(self, fqn, register=True):
        text = super()._module_format(fqn, register)
        return self.ns + text[5:] if text.startswith("numpy.") else text

    def _print_Pow(self, expr, rational=False):
        return self._hprint_Pow(expr, rational=rational, sqrt=self._module_format("numpy.sqrt"))

    def _print_Abs(self, expr):
        return f"{self.ns}.abs({self._print(expr.args[0])})"

    def _print_Max(self, expr):
        return self._nested(f"{self.ns}.maximum", expr.args)

    def _print_Min(self, expr):
        return self._nested(f"{self.ns}.minimum", expr.args)

    def _nested(self, fn: str, args) -> str:
        text = self._print(args[0])
        for a in args[1:]:
            text = f"{fn}({text}, {self._print(a)})"
        return text

    # NumPy 2 removed np.PINF and np.NINF, which SymPy before 1.13 prints for oo and -oo
    def _print_Infinity(self, expr):
        return self._module_format("numpy.inf")

    def _print_NegativeInfinity(self, expr):
        return "-" + self._module_format("numpy.inf")

    def _print(self, expr, **kwargs):
        if isinstance(expr, sympy.Expr) and expr.is_number and not expr.is_Atom:
            return self._print_number(expr)
        return super()._print(expr, **kwargs)

    def _print_number(self, expr: sympy.Expr) -> str:
        """A number SymPy left as an expression (tanh(0) where fusion folded x * 0.0, sqrt(2)):
        a Python float, weak as a constant is (NEP 50: np.tanh(0) would make float32 code
        float64); where SymPy has no float for it, NumPy's value, made a Python float."""
        try:
            value = float(expr)
        except (TypeError, ValueError):  # a helper SymPy cannot evaluate, a complex number
            value = math.nan
        if math.isfinite(value):
            return f"({value!r})" if value < 0 else repr(value)
        return f"float({super()._print(expr)})"  # NumPy's inf or NaN, with its warning

    def _print_Float(self, expr):
        return _float_literal(float(expr), self.ns)

    def _print_Integer(self, expr):
        p = int(expr)
        return str(p) if abs(p) <= EXACT_INT else _float_literal(float(expr), self.ns)

    def _print_Rational(self, expr):
        p, q = int(expr.p), int(expr.q)
        if max(abs(p), q) > EXACT_INT:
            return _float_literal(float(expr), self.ns)  # the nearest float64 (or inf)
        return repr(p / q) if q & (q - 1) == 0 else f"({p}/{q})"  # exact binary fractions as floats

    def _print_Relational(self, expr):
        return f"({self._print(expr.lhs)} {expr.rel_op} {self._print(expr.rhs)})"

    def _print_Not(self, expr):
        return f"{self.ns}.logical_not({self._print(expr.args[0])})"

    def _print_Mul(self, expr):
        choice = next((f for f in expr.args if _number_choice(f) is not None), None)
        if choice is None:
            return super()._print_Mul(expr)
        # dout * np.where(m, 1, 0.1) would be float64 (np.where of Python numbers): the choice
        # between the products keeps dout's dtype, and computes the same numbers
        rest = sympy.Mul(*(f for f in expr.args if f is not choice))
        cond, a, b = _number_choice(choice)
        return self._print(where(cond, rest * a, rest * b))

    def _print_Piecewise(self, expr):
        if len(expr.args) == 2 and expr.args[1].cond == sympy.true:
            (a, cond), (b, _) = expr.args
            one, zero = sympy.S.One, sympy.S.Zero  # the integers (1.0 and 0.0 stay numbers)
            if a is one and b is zero:  # an indicator: multiplying by a mask routes the gradient
                return self._print(cond)
            if a is zero and b is one:
                return self._print(cond.negated if cond.is_Relational else sympy.Not(cond))
            return f"{self.ns}.where({self._print(cond)}, {self._print(a)}, {self._print(b)})"
        return super()._print_Piecewise(expr)


def _number_choice(expr) -> tuple | None:
    """(condition, a, b) of a choice between two nonzero finite numbers (leaky_relu's 1 or
    0.1), a Piecewise or a `where`; None for anything else."""
    if isinstance(expr, where):
        cond, a, b = expr.args
    elif isinstance(expr, sympy.Piecewise) and len(expr.args) == 2:
        (a, cond), (b, otherwise) = expr.args
        if otherwise != sympy.true:
            return None
    else:
        return None
    numbers = all(v.is_number and v.is_finite and v != 0 for v in (a, b))
    return (cond, a, b) if numbers else None


def _float_literal(value: float, ns: str = NAMESPACE) -> str:
    """A float64 as code: its repr, or the namespace's inf and nan."""
    if math.isfinite(value):
        return repr(value)
    return f"{ns}.nan" if math.isnan(value) else f"{'-' if value < 0 else ''}{ns}.inf"


_PRINTER = Printer()
_PLACEHOLDER = re.compile(r"__([0-9]+)__|__out__")


@functools.cache
def formula_template(formula: sympy.Expr, printer: NumPyPrinter = _PRINTER) -> str:
    """`formula` over a0.., m0.., out printed once, with `{0}`, `{1}`, `{out}` slots for names.

    Printed and normalised once per formula (cached), so printing a node is a string format;
    formulas that differ in one number alone (`0.37*a0`, `-0.81*a0`) share one printing.
    """
    number = _lone_number(formula)
    if number is None:
        return printed_template(formula, printer)
    return _with_number(formula, number, printer)


def _lone_number(formula: sympy.Expr) -> sympy.Float | None:
    """The one float among the terms of a sum or the factors of a product, if it is plain."""
    if not (formula.is_Add or formula.is_Mul):
        return None
    numbers = [a for a in formula.args if a.is_Float]
    return numbers[0] if len(numbers) == 1 and is_plain_float(numbers[0]) else None


# (sum or product, sign of the number, other terms) -> (text before and after the number's
# digits, whether SymPy printed a second number so too), or None: SymPy must print each one
_NUMBER_TEMPLATES: dict[tuple, tuple[str, str, bool] | None] = {}


def _with_number(formula: sympy.Expr, number: sympy.Float, printer: NumPyPrinter) -> str:
    """`printed_template(formula)` for a sum or product with one plain float among its terms: SymPy
    writes such a number by its sign and digits alone, so the text printed for one value is
    split around its digits, checked against SymPy's text for a second value, and then filled
    in with the digits of every further value (a split that does not check out is not used)."""
    value = float(number)
    key = (formula.func, value < 0, tuple(None if a is number else a for a in formula.args))
    key = key if printer is _PRINTER else (printer.ns, *key)
    digits = repr(abs(value))
    known = _NUMBER_TEMPLATES.get(key, ())
    if known and known[2]:
        return known[0] + digits + known[1]
    text = printed_template(formula, printer)
    if known == ():  # the first value: split the text around its digits
        found = text.split(digits)
        _NUMBER_TEMPLATES[key] = (found[0], found[1], False) if len(found) == 2 else None
    elif known is not None:  # the second value: the split must give SymPy's text
        _NUMBER_TEMPLATES[key] = (
            (*known[:2], True) if text == known[0] + digits + known[1] else None
        )
    return text


def printed_template(formula: sympy.Expr, printer: NumPyPrinter = _PRINTER) -> str:
    """`formula_template` by a SymPy printer (`Printer` unless told) and Python's `ast`."""
    swap = {s: sympy.Symbol(f"__{i}__") for i, s in enumerate(ARGS)}
    swap.update({s: sympy.Symbol(f"__{i}__") for i, s in enumerate(MASKS)})
    swap[OUT] = sympy.Symbol("__out__")
    text = normalise(printer.doprint(formula.xreplace(swap)))
    return _PLACEHOLDER.sub(lambda m: "{" + (m.group(1) or "out") + "}", text)


@functools.cache
def gate_template(gate) -> str:
    """`formula_template` of a gate row's own formula (built and printed once per gate)."""
    return formula_template(gate.expr())


def literal(value) -> str:
    """A Python/NumPy literal for a constant."""
    arr = np.asarray(value)
    if arr.ndim == 0:
        v = arr.item()
        if isinstance(v, float) and not math.isfinite(v):
            return f"{NAMESPACE}.nan" if math.isnan(v) else f"{'-' if v < 0 else ''}{NAMESPACE}.inf"
        return f"({v!r})" if v < 0 else repr(v)
    # an array keeps its dtype: it is strong in NumPy's promotion (float32 stays float32)
    dtype = "" if arr.dtype == np.float64 else f", dtype={NAMESPACE}.{arr.dtype.type.__name__}"
    if arr.size and not any(arr.strides) and not arr.flat[0]:  # one zero, broadcast: no scan
        return f"{NAMESPACE}.zeros({arr.shape}{dtype})"
    if not arr.any():
        return f"{NAMESPACE}.zeros({arr.shape}{dtype})"
    # floats print as Python literals, but for nan and inf, which are NumPy's names
    entries = _NOT_FINITE_ENTRY.sub(NAMESPACE + r".\1", repr(arr.tolist()))
    return f"{NAMESPACE}.array({entries}{dtype})"


_NOT_FINITE_ENTRY = re.compile(r"\b(nan|inf)\b")
_ATOM = re.compile(r"[^\W\d]\w*|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")  # a name or a number
_ATOMS = re.compile(f"({_ATOM.pattern})")  # splits code around its atoms, keeping them
_HOLE = re.compile(r"_α([0-9]+)_")


def normalise(code: str) -> str:
    """Python's own spacing and minimal parentheses for an expression.

    Names and numbers are atoms to `ast`, so the round trip is made once per shape of code:
    `x + (dy * 2.5)` and `u + (dv * -0.5)` are both `_α0_ + (_α1_ * _α2_)` with the atoms
    written back. Code with text `ast` would write otherwise (strings, a number it would
    respell, an integer before an attribute) goes through `ast` as it is.
    """
    atoms: list[str] = []
    parts = _ATOMS.split(code)  # text, atom, text, ..., text
    for i in range(1, len(parts), 2):
        if not keyword.iskeyword(parts[i]):
            atoms.append(parts[i])
            parts[i] = f"_α{len(atoms) - 1}_"
    shape = "".join(parts)
    if "'" in code or '"' in code or "_α" in code or not all(map(_written_as_is, atoms)):
        return _unparsed(code)
    out = _unparsed(shape)
    if any(f"_α{i}_." in out for i, a in enumerate(atoms) if a.isdigit()):
        return _unparsed(code)  # `ast` writes `1 .real`
    return _filled(out).format(*atoms)


@functools.lru_cache(maxsize=4096)
def _filled(shape: str) -> str:
    """A normalised shape of code as a format string whose slots are its holes, in order."""
    escaped = shape.replace("{", "{{").replace("}", "}}")
    return _HOLE.sub(lambda m: "{" + m[1] + "}", escaped)


def _written_as_is(atom: str) -> bool:
    """Whether `ast` writes this name or number back as it is."""
    if not atom[0].isdigit() and atom[0] != ".":
        return True
    return repr(float(atom)) == atom if not atom.isdigit() else str(int(atom)) == atom


@functools.lru_cache(maxsize=4096)
def _unparsed(code: str) -> str:
    return ast.unparse(ast.parse(code, mode="eval"))


class Emitter:
    """Prints the statements of one program (in NumPy; `emit.array_api` subclasses it)."""

    printer: NumPyPrinter = _PRINTER

    def __init__(
        self,
        program: Program,
        plan: Shortcuts | None = None,
        kinds: dict | None = None,
        sizes: Sizes | None = None,
    ):
        self.p = program
        self.sizes = sizes  # probe sizes (see emit.sizes), where the code reads sizes
        self.g = program.graph
        self.nodes = self.g._node  # node id -> attributes: networkx's dict, no view per look-up
        self.plan = plan or Shortcuts()  # how emit_module saves passes (see shortcuts.py)
        self.kinds = kinds  # dtypes of the nodes (see dtypes.py), where Python floats meet float32
        self.nested = False  # whether the code being built has an inlined sub-expression
        self.pairs = False  # whether `s, s_neg = sigmoid_pair(x)` is one statement (lower.py)
        self._args: dict[int, list[int]] = {}
        self._locals: dict[int, tuple] = {}
        self._constant: dict[int, bool] = {}

    def args(self, n: int) -> list[int]:
        """The argument nodes of n (read from the graph once per node)."""
        found = self._args.get(n)
        if found is None:
            found = self._args[n] = args_of(self.g, n)
        return found

    def ref(self, n: int) -> str:
        """How statement code refers to node n: its name, or its inlined expression."""
        if n in self.plan.scalars:  # NumPy broadcasts the scalar itself
            return self.ref(self.plan.scalars[n])
        if n in self.p.inline:
            data = self.nodes[n]
            if "count" in data and self.sizes is not None:  # mean's divisor, over several axes
                of, axes = data["count"]
                code = generic.count_code(self.nodes[of]["shape"], axes, self.sizes)
                if code is not None:
                    return code
            if data["op"] == "const" and np.ndim(data["value"]) == 0 and data["value"] >= 0:
                return self.literal(data["value"])
            self.nested = True
            return self.literal(data["value"]) if data["op"] == "const" else f"({self.expr(n)})"
        return self.p.names[n]

    def constant_only(self, n: int) -> bool:
        """Whether node n is a number computed from scalar constants alone (`10.0 ** 400.0`, as
        parsed from text): no input, no array, no mask (a mask stays a boolean)."""
        known = self._constant.get(n)
        if known is not None:  # every statement asks this of its arguments too
            return known
        stack = [n]
        while stack:
            m = stack[-1]
            data = self.nodes[m]
            if data["op"] == "const":
                self._constant[m] = np.ndim(data["value"]) == 0
            elif data["op"] == "input" or "role" in data or data["shape"] != ():
                self._constant[m] = False
            else:
                missing = [a for a in self.args(m) if a not in self._constant]
                if missing:
                    stack.extend(missing)
                    continue
                is_mask = gate_of(data["op"]).kind == MASK
                self._constant[m] = not is_mask and all(self._constant[a] for a in self.args(m))
            stack.pop()
        return self._constant[n]

    def expr(self, n: int) -> str:
        data = self.nodes[n]
        if self.plan.rereads:
            refs = [self.ref(self.plan.rereads.get((n, a), a)) for a in self.args(n)]
        else:
            refs = [self.ref(a) for a in self.args(n)]
        if refs and self.constant_only(n):
            return self.constant_code(n, data, refs)
        if self.kinds is not None:
            refs = self.converted(n, refs)
        return self.gate_code(n, data, refs)

    def converted(self, n: int, refs: list[str]) -> list[str]:
        """A Python float (computed in float64) as NumPy converts it for a float32 gate:
        `x * np.float32(y2)`, so float32 code stays float32 (NEP 50's weak scalars)."""
        kind = compared_in(self.g, self.kinds, n)
        if not narrow(kind):
            return refs
        weak = [self.kinds.get(a) == PY for a in self.args(n)]
        name = kind.type.__name__
        return [f"{NAMESPACE}.{name}({r})" if w else r for r, w in zip(refs, weak)]

    def gate_code(self, n: int, data: dict, refs: list[str]) -> str:
        op = data["op"]
        if n in self.plan.transposed:
            x, dh = (self.ref(a) for a in self.plan.transposed[n])
            code = f"({dh}.T @ {x}).T"
        elif op == "expr":
            code = self.template(data["formula"]).format(*refs)
        else:
            shapes = [self.nodes[a]["shape"] for a in self.args(n)]
            code = self.spelling(gate_of(op), refs, shapes, data.get("params", {}))
        if data.get("copy"):
            code = self.copied(code)
        return code

    # ---- how this printer spells things: the hooks `emit.array_api` spells in the standard

    def template(self, formula: sympy.Expr) -> str:
        if self.g.graph.get("style") == "textbook":
            formula = textbook_spelling(formula)  # sigmoid(u) as 1 / (1 + np.exp(-u)), ...
        return formula_template(formula)

    def spelling(self, gate, refs: list[str], shapes: list, params: dict) -> str:
        """A gate row's code: its tensor spelling, its NumPy spelling or its printed formula."""
        if gate.kind == TENSOR:
            return gate.spell(refs, shapes, params)
        textbook = TEXTBOOK.get(gate.name)
        if textbook and textbook.numpy and self.g.graph.get("style") == "textbook":
            return textbook.numpy.format(*refs)  # the lecture's spelling
        return gate.numpy.format(*refs) if gate.numpy else gate_template(gate).format(*refs)

    def literal(self, value) -> str:
        return literal(value)

    def copied(self, code: str) -> str:
        return f"{NAMESPACE}.copy({code})"

    def constant_code(self, n: int, data: dict, refs: list[str]) -> str:
        """A number computed from scalar constants alone (see `constant_only`)."""
        # Python would raise on 10.0 ** 400.0: NumPy's float64 gives inf and its warning,
        # and the result stays a Python number (weak, as a constant is: NEP 50)
        refs[0] = f"{NAMESPACE}.float64({refs[0]})"
        return f"float({self.gate_code(n, data, refs)})"

    def statement(self, n: int) -> str:
        if n in self.plan.dots:
            return self.dot_statement(n)
        if self.pairs and "pair" in self.nodes[n]:
            return self.pair_statement(n)
        self.nested = False
        code = self.expr(n)
        if n in self.plan.summed_transposed:  # added into the product's array, then turned back
            prev, m = self.plan.summed_transposed[n]
            x, dh = (self.ref(a) for a in self.plan.transposed[m])
            code = f"({dh}.T @ {x} + {self.ref(prev)}.T).T"
        if self.nested:  # drop the parentheses an inlined expression did not need
            code = normalise(code)
        code = f"{self.p.names[n]} = {code}"
        comment = text.line(self.shortcut_notes(n, self.comment(n)))  # one line: text is data
        if n in self.plan.masked:
            return self.masked_statement(n, comment)
        return f"{code}  # {comment}" if comment else code

    def pair_statement(self, n: int) -> str:
        """sigmoid(x) and the sigmoid(-x) its gradient reads, in one statement (`pair_sigmoids`)."""
        data = self.nodes[n]
        refs = [self.ref(a) for a in self.args(n)[:-1]]
        self.nested = False
        x = printed_template(data["formula"].args[0], self.printer).format(*refs)
        x = normalise(x) if self.nested else x
        s, s_neg = self.p.names[n], self.p.names[data["pair"]]
        minus = f"-{x}" if x.isidentifier() else f"-({x})"
        gate = data.get("gate", "sigmoid")
        comment = text.line(f"{gate}: {s_neg} = sigmoid({minus}) too, for backward; no overflow")
        return f"{s}, {s_neg} = sigmoid_pair({x})  # {comment}"

    def shortcut_notes(self, n: int, comment: str) -> str:
        """The statement's comment, with what the shortcuts changed in it (see shortcuts.py)."""
        if not (self.plan.scalars or self.plan.rereads or self.plan.transposed):
            return comment
        spread = [a for a in self.args(n) if a in self.plan.scalars]
        if spread:
            note = self.comment(spread[0])  # a fused gate's spread has no comment of its own
            comment = f"{comment}; {note}: the scalar broadcasts" if note else comment
        for (step, _), out in self.plan.rereads.items():
            if step == n:
                comment += f", read as {self.p.names[out]} > 0: the same mask"
        inlined = [a for a in self.args(n) if a in self.p.inline]
        tall = [m for m in (n, *inlined) if m in self.plan.transposed]
        if tall:
            x, dh = (self.ref(a) for a in self.plan.transposed[tall[0]])
            comment += f", transposed: BLAS is faster at the wide {dh}.T @ {x}"
        return comment

    def masked_statement(self, n: int, comment: str) -> str:
        """g * mask in g's own array (nothing reads g again): two lines, as the lecture does."""
        target, mask = self.plan.masked[n]
        name, source = self.p.names[n], self.p.names[target]
        args = args_of(self.g, n)
        swap = {}
        for i, a in enumerate(args):
            swap[ARGS[i]] = swap[MASKS[i]] = sympy.Symbol(
                self.ref(self.plan.rereads.get((n, a), a))
            )
        code = normalise(self.printer.doprint(mask.xreplace(swap)))
        gate = self.nodes[self.nodes[n]["grad_gate"]] if "grad_gate" in self.nodes[n] else {}
        about = text.line(
            f"{gate.get('gate', gate.get('op', 'mask'))} backward in {source}'s array"
        )
        lines = [f"{name} = {source}  # {about}: nothing reads {source} again"]
        lines = [] if name == source else lines
        return "\n    ".join([*lines, f"{name} *= {code}  # {comment}"])

    def dot_statement(self, n: int) -> str:
        """A full sum of x * y as np.vdot(x, y): one pass, no temporary of the product."""
        x, y = (self.ref(a) for a in self.plan.dots[n])
        code = f"{self.p.names[n]} = {NAMESPACE}.vdot({x}, {y})"
        return f"{code}  # mul and sum: {x} * {y} summed in one pass, no temporary"

    def name_of(self, n: int) -> str:
        """A node's name, or the code of a value that has none (a constant, an inlined view)."""
        if n in self.p.names:
            return self.p.names[n]
        data = self.nodes[n]
        return self.literal(data["value"]) if data["op"] == "const" else normalise(self.expr(n))

    def in_expression(self, n: int) -> bool:
        """Whether n is arithmetic written into its reader's statement (`schedule`)."""
        return n in self.p.inline and self.nodes[n]["op"] in ARITHMETIC

    def expression_gates(self, n: int) -> int:
        """How many gates statement n writes into its expression besides its own."""
        inner = [a for a in self.args(n) if self.in_expression(a)]
        return sum(1 + self.expression_gates(a) for a in inner)

    def gate_tree(self, n: int) -> str:
        """The gates an arithmetic statement computes, as calls; a chain `a + b + c`, which
        Python evaluates from the left, is one `add(a, b, c)`."""
        op = self.nodes[n]["op"]
        parts = []
        for i, a in enumerate(self.args(n)):
            inner = self.in_expression(a)
            if inner and i == 0 and self.nodes[a]["op"] == op and op in ("add", "mul"):
                parts.append(self.gate_tree(a)[len(op) + 1 : -1])  # add(add(a, b), c)
            else:
                parts.append(self.gate_tree(a) if inner else self.name_of(a))
        return f"{op}({', '.join(parts)})"

    def comment(self, n: int) -> str:
        data = self.nodes[n]
        op = data["op"]
        if data.get("role") not in ("grad", "seed"):
            if "local" in data and "pair" not in data:  # a lowered gate (see lower.py)
                return f"{data['gate']}: exact for any input, over e <= 1"
            if op == "expr" and data.get("hint") == "e":
                return f"{data['gate'].split(':')[0]}: e = exp(-|x|) <= 1, shared with backward"
            if op == "expr":
                return f"{data.get('gate', 'fused')}: " + self.local_text(
                    data["formula"], n, self.args(n)
                )
            if self.constant_only(n):
                return f"{op} of constants, as NumPy's float64 computes it"
            if "cached_for" in data:  # see passes.lower.cache_log_softmax
                return f"{data['gate']}: {op}, cached for backward"
            inner = self.expression_gates(n)
            if inner:  # a fused module's expression: add(mul(w0, x0), w2)
                tree = self.gate_tree(n)
                return tree if len(tree) <= 60 else f"{op}: {inner + 1} gates in one expression"
            return FORWARD_NOTES.get(op, op)
        if "shared_by" in data:
            by = self.nodes[data["shared_by"]]
            return f"{by.get('gate', by['op'])}: shared by the gradients below"
        if "unbroadcast" in data:
            a = data["unbroadcast"]
            shape = self.nodes[self.args(n)[0]]["shape"]
            return f"unbroadcast: {self.name_of(a)} was broadcast to {shape}"
        if "grad_gate" in data:
            fwd = data["grad_gate"]
            fwd_op = self.nodes[fwd].get("gate", self.nodes[fwd]["op"])
            fwd_args = self.args(fwd)
            if "grad_note" in self.nodes[fwd]:  # the lecture's form of a paired or lowered gradient
                names = [self.name_of(a) for a in fwd_args]
                note = self.nodes[fwd]["grad_note"].format(*names, out=self.name_of(fwd))
                return f"{fwd_op}: local gradient {note}"
            i = data["grad_arg"]
            same = tuple(j for j, a in enumerate(fwd_args) if a == fwd_args[i])
            if fwd not in self._locals:
                self._locals[fwd] = _locals(self.g, fwd)
            local = _summed(self._locals[fwd], same)
            note = self.local_text(local, fwd, fwd_args)
            if len(note) > 40:  # a long formula is already the statement itself
                arg = self.name_of(fwd_args[i])
                return f"{fwd_op}: upstream gradient times d{self.name_of(fwd)}/d{arg}"
            return f"{fwd_op}: local gradient {note}"
        if data.get("copy") is not None and op == "expr":
            source = self.args(n)[0]
            via = self.nodes[source].get("grad_of")
            if source == self.p.seed or via is None:
                return "the output's gradient, passed through (local gradient 1)"
            gate = self.nodes[via].get("gate", self.nodes[via]["op"])  # a fused one's name
            return f"{gate}: local gradient 1, the gradient passes through"
        comment = data.get("comment", "")
        if op == "add" and comment.startswith("fork"):
            parts = [self.comment(a) for a in self.args(n)[1:] if a in self.p.inline]
            return "; ".join([comment, *filter(None, parts)])
        return comment

    def local_text(self, formula: sympy.Expr, node: int, args: list[int]) -> str:
        """A formula over the gate's arguments, printed with the names of the values involved."""
        plain = len(set(args)) == len(args) and all(self.nodes[a]["op"] != "const" for a in args)
        if not plain and formula in ARGS:  # one argument alone (mul's d/da0 is a1): no SymPy
            data = self.nodes[args[ARGS.index(formula)]]
            if data["op"] == "const" and is_plain_float(data["value"]):
                return repr(float(data["value"]))  # as SymPy prints it, sign and digits
        if plain:  # the cached template, filled in with names
            names = [self.name_of(a) for a in args]
            return self.template(formula).replace("{out}", self.name_of(node)).format(*names)
        for fold in (True, False):  # constants are folded unless that makes 1/0 of them
            swap = {OUT: sympy.Symbol(self.name_of(node))}
            for j, a in enumerate(args):
                data = self.nodes[a]
                if fold and data["op"] == "const" and np.ndim(data["value"]) == 0:
                    value = sympy.sympify(data["value"])
                else:
                    value = sympy.Symbol(self.name_of(a), real=True)
                swap[ARGS[j]] = swap[MASKS[j]] = value
            text = formula.xreplace(swap)
            if not folds_badly(text):
                break
        return normalise(self.printer.doprint(text))


def _locals(g, fwd: int):
    from ..passes.autodiff import gate_local_gradients

    return gate_local_gradients(g, fwd)


@functools.cache
def _summed(grads: tuple, positions: tuple[int, ...]) -> sympy.Expr:
    """The local gradient of an argument filling `positions` (x*x: d/da0 + d/da1 = 2*x)."""
    return sympy.Add(*(grads[j] for j in positions))


@functools.cache
def _functions_in(formula: sympy.Expr) -> frozenset[str]:
    return frozenset(type(a).__name__ for a in formula.atoms(sympy.Function))


@functools.cache
def _gate_functions(gate) -> frozenset[str]:
    """The helpers a gate row's statements call: its own, and the functions of its formula."""
    found = frozenset(gate.helpers)
    return found | _functions_in(gate.expr()) if gate.formula is not None else found


def module_head(program: Program, first: str, about: str, pairs: bool = False) -> list[str]:
    """A generated NumPy module's first blocks: its docstring (`first` line, then `about`
    wrapped), the import, the program's constants, and the helpers its statements call."""
    names, g = program.names, program.graph
    header = [
        '"""' + first,
        "",
        *textwrap.wrap(text.quoted(about), 96),
        '"""',
        "",
        "import numpy as np",
    ]
    if program.constants:
        header.append("")
        header += [f"{names[n]} = {literal(g.nodes[n]['value'])}" for n in program.constants]
    return ["\n".join(header), *(h.rstrip() for h in helpers_used(program, pairs))]


def helpers_used(program: Program, pairs: bool = False) -> list[str]:
    """Sources of the helper functions the printed statements call, in definition order
    (`pairs`: sigmoid and sigmoid(-x) printed as one `sigmoid_pair` statement)."""
    g = program.graph
    textbook = g.graph.get("style") == "textbook"
    names: set[str] = set()
    spelled = textbook_spelling if textbook else (lambda formula: formula)
    ops: set[str] = set()  # the ops whose gates were looked at
    local: dict[int, tuple] = {}  # the local gradients of each gate a gradient step is of
    nodes = g._node  # networkx's dict: this is a pass over every statement
    for n in [*program.forward, *program.backward, *program.inline]:
        data = nodes[n]
        op = data["op"]
        if pairs and ("pair" in data or "pair_of" in data):
            names.add("sigmoid_pair")
        elif op == "expr":
            names |= _functions_in(spelled(data["formula"]))
        if op not in ops:  # what a built-in gate calls depends on its op alone
            if type(op) is str:  # not a user gate's `GateName`: two may share one name
                ops.add(op)
            gate = gate_of(op)
            lecture = textbook and op in TEXTBOOK and TEXTBOOK[op].numpy
            if gate is not None and not lecture:  # the lecture's spelling calls NumPy alone
                names |= _gate_functions(gate)
        if "grad_gate" in data:  # a gradient formula may call what its gate's derivative calls
            fwd = data["grad_gate"]
            if fwd not in local:
                local[fwd] = _locals(g, fwd)
            names |= _functions_in(spelled(local[fwd][data["grad_arg"]]))
    names.update(need for name in list(names) for need in HELPER_NEEDS.get(name, ()))
    return [source for name, source in HELPERS.items() if name in names]


def emit_module(
    program: Program,
    title: str,
    version: str,
    dtype: str = "float64",
    kinds: dict | None = None,
    sizes: Sizes | None = None,
    layer: str | None = None,
) -> str:
    """The full source of the generated module for `program`; `dtype` is the output's type,
    `kinds` the nodes' dtypes where Python floats meet float32 arrays (`dtypes.node_kinds`).
    With `sizes`, the program's shapes are probes (`ir.shapes.probe_sizes`) and the module reads
    every size from its arguments (`emit.sizes`): it works for every size of the pattern.
    With `layer` (a name), the module is a CS231n layer: `<layer>_forward(...) -> (out, cache)`,
    `<layer>_backward(dout, cache)` and a class `<Layer>Gate` with `forward` and `backward`."""
    plan = shortcuts(program, dtype)
    program = dataclasses.replace(program, cache=plan.cache)
    e = Emitter(program, plan, kinds, sizes)
    e.pairs = True
    g = program.graph
    names = program.names
    out, seed = program.output, program.seed
    forward = [
        e.statement(n)
        for n in program.forward
        if n not in plan.skipped and "pair_of" not in g.nodes[n]  # written with its sigmoid
    ]
    forward.append(f"return {e.name_of(out)}, ")  # the cache follows, once it is known
    backward = [e.statement(n) for n in plan.backward]
    if sizes is not None:
        forward, backward, program = _sizes_read(program, plan, sizes, forward, backward)
    params = ", ".join(names[i] for i in program.inputs)
    first = f"Forward and backward of {text.quoted(title)}, generated by graphc {version}."
    blocks = module_head(program, first, _about(program, sizes), pairs=True)
    cache = ", ".join(names[n] for n in program.cache)
    cache_tuple = f"({cache},)" if len(program.cache) == 1 else f"({cache})"
    forward[-1] += cache_tuple
    taken = set(names.values())
    entry = {k: fresh(f"{layer}_{k}", taken) if layer else k for k in ("forward", "backward")}
    lines = [f"def {entry['forward']}({params}):", *(f"    {line}" for line in forward)]
    blocks.append("\n".join(lines))
    lines = [f"def {entry['backward']}({names[seed]}, cache):"]
    if program.cache:
        lines.append(f"    {cache_tuple if len(program.cache) == 1 else cache} = cache")
    lines += [f"    {line}" for line in backward]
    grads = [e.name_of(n) for n in program.grads]
    if len(grads) == 1:
        lines.append(f"    return ({grads[0]},)")
    else:
        lines.append(f"    return {', '.join(grads) or '()'}")
    result = names[out] if g.nodes[out]["op"] not in ("input", "const") else "out"
    # dout = 1 as a NumPy number of out's dtype: it broadcasts, and 1/0 in backward gives inf
    if plan.scalar_seed:  # a 0-d one where it leaves every gradient right (see shortcuts.py)
        one = f"np.{dtype}(1.0)"
    else:
        one = f"np.ones_like({result})"
    blocks.append("\n".join(lines))
    if layer:
        blocks.append(_gate_class(layer, params, names[seed], entry, taken))
    blocks.append(
        f"def value_and_grad({params}):\n"
        f"    {result}, cache = {entry['forward']}({params})\n"
        f"    return {result}, {entry['backward']}({one}, cache)"
    )
    if layer:  # the names graphc itself calls
        blocks.append(f"forward, backward = {entry['forward']}, {entry['backward']}")
    return "\n\n\n".join(blocks) + "\n"


def _gate_class(layer: str, params: str, seed: str, entry: dict, taken: set) -> str:
    """The lecture's gate API: an object whose forward keeps the cache its backward reads."""
    camel = "".join(part[:1].upper() + part[1:] for part in layer.split("_") if part)
    name = fresh(f"{camel}Gate", taken)
    return "\n".join(
        [
            f"class {name}:",
            f'    """{text.quoted(layer)} as a gate: forward keeps the cache backward reads."""',
            "",
            f"    def forward(self, {params}):",
            f"        out, self.cache = {entry['forward']}({params})",
            "        return out",
            "",
            f"    def backward(self, {seed}):",
            f"        return {entry['backward']}({seed}, self.cache)",
        ]
    )


def _about(program: Program, sizes: Sizes | None) -> str:
    """The module docstring's paragraph: what the module works for, and what it returns."""
    g, names = program.graph, program.names
    returned = ", ".join(g.nodes[i]["name"] for i in g.graph["grads"])
    tail = f"backward returns the gradients of {returned or 'nothing'}. Depends on NumPy alone."
    if g.graph.get("style") == "textbook":
        ops = dict.fromkeys(
            op
            for n in program.forward
            for op in (
                textbook_gates(g.nodes[n]["formula"])  # the gates inside a fused one
                if g.nodes[n]["op"] == "expr"
                else [g.nodes[n]["op"]]
            )
        )
        losses = [TEXTBOOK[op].loses for op in ops if op in TEXTBOOK]
        tail += " The lecture's formulas, where they lose accuracy: " if losses else ""
        tail += "; ".join(losses) + ("." if losses else "")
    if sizes is None:
        shapes = ", ".join(f"{names[i]}: {g.nodes[i]['shape']}" for i in program.inputs)
        return (
            f"Specialised to inputs shaped {shapes or '(none)'}; any inputs that broadcast the "
            f"same way work too. {tail}"
        )

    def lettered(shape):
        parts = [sizes.letters.get(d, str(d)) for d in shape]
        return f"({parts[0]},)" if len(parts) == 1 else f"({', '.join(parts)})"

    shapes = ", ".join(f"{names[i]}: {lettered(g.nodes[i]['shape'])}" for i in program.inputs)
    letters = list(sizes.letters.values())
    listed = letters[0] if len(letters) == 1 else f"{', '.join(letters[:-1])} and {letters[-1]}"
    traced = ", ".join(f"{sizes.letters[p]}={r}" for p, r in sizes.real.items())
    return (
        f"Works for inputs shaped {shapes}, for any {listed} (generated at {traced}; sizes of 1 "
        f"stay 1): every size is read from the arguments. {tail}"
    )


def _sizes_read(program: Program, plan, sizes: Sizes, forward: list[str], backward: list[str]):
    """forward's and backward's statements with every probe size read from a value in scope
    (see emit.sizes); the cache carries an input where backward needs a size nothing else has.
    Only values of their full shape are read: not a 0-d seed standing for ones (shortcuts.py)."""
    g, names = program.graph, program.names
    shape = {n: g.nodes[n]["shape"] for n in g.graph["inputs"]}
    scope = generic.Scope([(names[i], shape[i]) for i in program.inputs], sizes)
    forward = [scope.rewrite(line) for line in forward]
    cache = list(program.cache)
    whole = [n for n in cache if n not in plan.scalars]
    seed = [] if plan.scalar_seed else [program.seed]
    values = [(names[n], g.nodes[n]["shape"]) for n in [*seed, *whole]]
    for d in sorted(generic.needed(backward, generic.Scope(values, sizes), sizes)):
        carrier = next((i for i in program.inputs if d in shape[i]), None)
        if carrier is not None and carrier not in cache:
            cache.append(carrier)
            values.append((names[carrier], shape[carrier]))
    scope = generic.Scope(values, sizes)
    backward = [scope.rewrite(line) for line in backward]
    return forward, backward, dataclasses.replace(program, cache=cache)


def emit_values_module(
    program: Program, kinds: dict | None = None, sizes: Sizes | None = None
) -> str:
    """A module whose `all_values(inputs..., dout)` runs the statements of `emit_module`'s
    forward and backward and returns every value they compute, by node id.

    Drawings and stability checks read values from here, so what they show is what the
    generated code computes. Here nothing but constants is inlined: a gradient summed into
    `dx = dx + dout * y` gets a statement of its own, computing the same numbers.
    """
    names = dict(program.names)
    taken = set(names.values())
    inline = {n for n in program.inline if program.graph.nodes[n]["op"] == "const"}
    for n in sorted(program.inline - inline):
        names[n] = fresh(f"_v{n}", taken)
    statements = set(program.forward) | set(program.backward) | (program.inline - inline)
    order = [n for n in topo_order(program.graph) if n in statements]
    helpers = helpers_used(program)
    program = dataclasses.replace(program, names=names, inline=inline)
    e = Emitter(program, kinds=kinds, sizes=sizes)
    g = program.graph
    params = ", ".join(names[i] for i in program.inputs)
    seed = names[program.seed]
    scope = None
    if sizes is not None:  # the inputs and dout are in scope throughout
        reads = [*program.inputs, program.seed]
        scope = generic.Scope([(names[n], g.nodes[n]["shape"]) for n in reads], sizes)
    lines = ["import numpy as np", ""]
    lines += [f"{names[n]} = {literal(g.nodes[n]['value'])}" for n in program.constants]
    blocks = ["\n".join(lines), *(h.rstrip() for h in helpers)]
    body = [f"def all_values({params}{', ' if params else ''}{seed}):", "    values = {}"]
    body += [f"    values[{n}] = {names[n]}" for n in [*program.inputs, program.seed]]
    for n in order:
        line = e.statement(n)
        body.append(f"    {line if scope is None else scope.rewrite(line)}")
        body.append(f"    values[{n}] = {names[n]}")
    body.append("    return values")
    blocks.append("\n".join(body))
    return "\n\n\n".join(blocks) + "\n"


def load_module(source: str, name: str) -> types.ModuleType:
    """Compile generated source into a module object, with tracebacks that show its lines."""
    filename = f"<graphc:{name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType(f"graphc_generated_{name}")
    module.__file__ = filename
    exec(compile(source, filename, "exec"), module.__dict__)  # our own generated code only
    return module
