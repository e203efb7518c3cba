"""Lecture notation: each gate's local gradients written as the backprop lecture writes them.

Stage: draw (graph + local gradient formulas -> text). Imports the `ir` only. `local_texts`
names a gate's arguments by the values on its wires (an input's name, a named local such as
`q`), or, for a value with no name, by a placeholder that names no value of the circuit; and
prints each formula in the lecture's notation: powers as superscripts (x², −1/x²), e^x for the
exponential, 1 − tanh² and (1 − σ)σ for tanh and the sigmoid, [z ≥ w] for the routing of a max,
dout·Wᵀ for a matrix product. This is display text only: the generated code keeps its own, more
accurate forms (sech2, out * sigmoid(-x)).
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import sympy
from sympy.printing.str import StrPrinter

from ..ir import special
from ..ir.graph import args_of
from ..ir.ops import TENSOR, gate_of
from ..ir.special import ARGS, MASKS, OUT

PLACEHOLDERS = ("u", "v", "s", "t", "p", "r", "a", "b", "c", "k", "m", "n")
SUPERSCRIPTS = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
MINUS = "−"

# Gates whose lecture form is not what the formula printer would write from the derivative:
# the local gradient of each argument, {0} {1} the arguments' names.
LECTURE_FORMS = {
    "exp": ("e^{0}",),
    "tanh": ("1 − tanh²({0})",),
    "sigmoid": ("(1 − σ)σ",),
    "maximum": ("[{0} ≥ {1}]", "[{0} < {1}]"),
    "minimum": ("[{0} ≤ {1}]", "[{0} > {1}]"),
    "relu": ("[{0} > 0]",),
    "matmul": ("dout·{1}ᵀ", "{0}ᵀ·dout"),
}


# The same with numbers in: where the lecture form reads the gate's output ({out})
NUMERIC_FORMS = {
    "tanh": ("1 − {out}²",),
    "sigmoid": ("(1 − {out})·{out}",),
}


class LecturePrinter(StrPrinter):
    """SymPy's string printer with the lecture's spellings: superscript powers, 1/x for
    negative powers, juxtaposed products (2x, x·y), Iverson brackets for indicator pieces."""

    def _print_Pow(self, expr):
        base, exp = expr.as_base_exp()
        b = self._print(base)
        if not (base.is_Symbol or base.is_Function or base.is_Number):
            b = f"({b})"
        if exp == sympy.Rational(1, 2):
            return f"√{b}"
        if exp.is_Integer and exp < 0:
            return f"1/{b}" + (str(-exp).translate(SUPERSCRIPTS) if exp != -1 else "")
        if exp.is_Integer:
            return b + str(exp).translate(SUPERSCRIPTS)
        return f"{b}^{self._print(exp)}"

    def _print_Mul(self, expr):
        number, rest = expr.as_coeff_Mul()
        if number < 0:
            return MINUS + self._print(-expr)
        numer, denom = sympy.fraction(expr)
        if denom != 1:
            top = self._print(numer)
            under = self._print(denom)
            under = under if denom.is_Symbol or denom.is_Pow or denom.is_Function else f"({under})"
            return f"{top}/{under}"
        factors = [rest] if not rest.is_Mul else list(rest.args)
        words = [self._factor(f) for f in factors]
        text = "·".join(words)
        if number != 1:
            text = self._print(number) + ("·" if text[:1].isdigit() else "") + text
        return text

    def _factor(self, f):
        text = self._print(f)
        return f"({text})" if f.is_Add else text

    def _print_Add(self, expr):
        terms = sorted(expr.args, key=lambda t: (t.is_Number, str(t)))
        text = self._print(terms[0])
        for t in terms[1:]:
            printed = self._print(t)
            if printed.startswith(MINUS):
                text += f" {MINUS} {printed[1:]}"
            else:
                text += f" + {printed}"
        return text

    def _print_Piecewise(self, expr):
        (value, condition), *rest = expr.args
        if value == 1 and rest and rest[-1][0] == 0:
            return f"[{self._print(condition)}]"
        if value == 0 and rest and rest[0][0] == 1:
            return f"[{self._print(sympy.Not(condition))}]"
        return super()._print_Piecewise(expr)

    def _print_Relational(self, expr):
        op = {">=": "≥", "<=": "≤", ">": ">", "<": "<", "==": "=", "!=": "≠"}[expr.rel_op]
        return f"{self._print(expr.lhs)} {op} {self._print(expr.rhs)}"

    def _print_Integer(self, expr):
        return str(expr) if expr >= 0 else MINUS + str(-expr)

    def _print_Float(self, expr):
        text = f"{float(expr):g}"
        return text if not text.startswith("-") else MINUS + text[1:]

    def _print_Rational(self, expr):
        return f"{self._print(expr.p)}/{expr.q}"

    def _print_exp(self, expr):
        return f"e^{self._wrapped(expr.args[0])}"

    def _print_Function(self, expr):
        name = {"sigmoid": "σ", "sech2": "sech²"}.get(type(expr).__name__, type(expr).__name__)
        return f"{name}({', '.join(self._print(a) for a in expr.args)})"

    def _wrapped(self, e):
        text = self._print(e)
        return text if e.is_Symbol or e.is_Number else f"({text})"


def lecture(expr: sympy.Expr) -> str:
    """`expr` in the lecture's notation."""
    return LecturePrinter().doprint(expr)


def value_names(g: nx.DiGraph) -> dict[int, str]:
    """The names the circuit gives its values: inputs by name, locals by their hints."""
    names = {}
    for n, data in g.nodes(data=True):
        name = data.get("name") if data["op"] == "input" else data.get("hint")
        if name:
            names[n] = name
    return names


def _const(g: nx.DiGraph, n: int):
    data = g.nodes[n]
    if data["op"] != "const" or np.ndim(data["value"]) != 0:
        return None
    c = float(data["value"])
    return sympy.Integer(int(c)) if c.is_integer() else sympy.Float(c)


def _slots(g: nx.DiGraph, n: int, names: dict, free: list) -> list[str]:
    """What each argument of gate `n` is called: its value's name, or a free placeholder."""
    args = args_of(g, n)
    spare = iter(free)
    called: dict[int, str] = {}
    for a in args:
        if a not in called and _const(g, a) is None:
            called[a] = names.get(a) or next(spare, "·")
    return [called.get(a) or _number(_const(g, a)) for a in args]


def gate_locals(g: nx.DiGraph, n: int, local_gradients, slots: list[str], out: str = "out"):
    """Gate `n`'s local gradients as [(argument position, text)], its arguments called `slots`
    and its own output `out` (position None: one text for a tensor gate's arguments)."""
    op = g.nodes[n]["op"]
    args = args_of(g, n)
    forms = NUMERIC_FORMS.get(op) if out != "out" else None
    forms = forms or LECTURE_FORMS.get(op)
    if forms is not None:
        return [
            (i, form.format(*slots, out=out))
            for i, form in enumerate(forms)
            if i < len(args) and _const(g, args[i]) is None
        ]
    if gate_of(op).kind == TENSOR:
        return [(None, gate_of(op).doc)]
    return _derived(g, n, args, slots, local_gradients(g, n))


def local_texts(g: nx.DiGraph, local_gradients) -> dict[str, str]:
    """Each gate's local gradients, one line per argument ("∂/∂q = z"), by drawn node key."""
    names = value_names(g)
    free = [p for p in PLACEHOLDERS if p not in set(names.values())]
    texts = {}
    for n in g.nodes:
        if g.nodes[n]["op"] in ("input", "const"):
            continue
        slots = _slots(g, n, names, free)
        lines = [
            text if i is None else f"∂/∂{slots[i]} = {text}"
            for i, text in gate_locals(g, n, local_gradients, slots)
        ]
        texts[f"n{n}"] = "\n".join(dict.fromkeys(lines))  # x*x: one line for both reads
    return texts


def computations(g: nx.DiGraph, local_gradients, values: dict, upstream: dict, number) -> dict:
    """For each gate input (gate, argument position), the backward step as the lecture writes
    it, up to its result: "1.00 × (−1/1.37²)" (`number` writes a value; `upstream`: gate ->
    its gradient node). Gates reading arrays write the local gradient by name ("dout·Wᵀ")."""
    names = value_names(g)
    free = [p for p in PLACEHOLDERS if p not in set(names.values())]
    found = {}
    for n in g.nodes:
        if g.nodes[n]["op"] in ("input", "const") or upstream.get(n) not in values:
            continue
        args = args_of(g, n)
        up = values[upstream[n]]
        scalar = all(np.ndim(values.get(a, 0.0)) == 0 for a in [n, *args]) and np.ndim(up) == 0
        if scalar and n in values:
            slots = [
                _wrapped(number(values[a])) if a in values else _number(_const(g, a)) for a in args
            ]
            out = _wrapped(number(values[n]))
        else:
            slots, out = _slots(g, n, names, free), "out"
        for i, text in gate_locals(g, n, local_gradients, slots, out):
            if i is None:
                continue
            simple = text.startswith("(") and text.endswith(")") or _is_number(text)
            found[(n, i)] = f"{number(up)} × {text if simple else f'({text})'}" if scalar else text
    return found


def _is_number(text: str) -> bool:
    try:
        float(text.replace(MINUS, "-"))
    except ValueError:
        return False
    return True


def _wrapped(text: str) -> str:
    return f"({text})" if text.startswith(("-", MINUS)) else text


def _number(c) -> str:
    return f"{float(c):g}"


def _derived(g, n, args, slots, gradients) -> list[tuple[int, str]]:
    """An elementwise gate's derived local gradients, [(argument position, text)], the gate's
    own output written out as its formula of the arguments."""
    data = g.nodes[n]
    formula = data["formula"] if data["op"] == "expr" else gate_of(data["op"]).expr()
    symbols = {}
    for j, a in enumerate(args):
        value = _const(g, a)
        symbols[ARGS[j]] = value if value is not None else sympy.Symbol(slots[j], real=True)
        symbols[MASKS[j]] = symbols[ARGS[j]]
    lines = []
    for i, d in enumerate(gradients):
        if d is None or _const(g, args[i]) is not None:
            continue
        written = d.xreplace({OUT: formula}).xreplace(symbols)
        written = written.replace(special.sech2, lambda x: 1 - special.tanh(x) ** 2)
        lines.append((i, lecture(written)))
    return lines
