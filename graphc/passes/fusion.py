"""Fusion: the rule rows, automatic elementwise fusion, and `fuse`, the pass that runs them.

Stage: passes (graph -> graph). Imports `rewrite` and the `ir`.

"At what level of hierarchy to break an expression is up to us": `fuse` makes that a choice.
`level="patterns"` rewrites the named spellings below into single, numerically safe gates
(sigmoid, tanh, softplus, ...) and cleans up the algebra; `level="elementwise"` then also
collapses every connected region of elementwise gates whose inner values nobody else reads into
one gate whose formula is the composition, its local gradients derived from that formula by
SymPy. Fusion runs before differentiation, so the fused gate's clean gradient is what the
backward pass emits.
"""

from __future__ import annotations

import collections
import math

import networkx as nx
import numpy as np
import sympy

from ..ir.errors import GraphcError
from ..ir.graph import add_node, args_of, copy_graph, topo_order
from ..ir.ops import ARGS, ELEMENTWISE, MASK, MASKS, gate_of
from ..ir.special import cancelled, folds_badly
from .rewrite import OneOf, Rule, register_table, remove_dead, replace, rewrite

LEVELS = ("none", "patterns", "elementwise")

# ---------------------------------------------------------------- algebraic clean-ups


_NUMPY_OPS = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
              "pow": np.power}  # fmt: skip


def folded(op: str, a, b):
    """`op` of two scalar constants as NumPy's float64 computes it (an int where both are ints
    and the result is a whole number float64 holds exactly), or NaN where that is no finite
    number: then nothing folds, and the generated code computes it, with NumPy's warning."""
    with np.errstate(all="ignore"):
        value = float(_NUMPY_OPS[op](np.float64(a), np.float64(b)))
    if not math.isfinite(value):
        return math.nan
    exact = type(a) is int and type(b) is int and value.is_integer() and abs(value) <= 2**53
    return int(value) if exact and op != "div" else value


def _fold(op):
    """Constant folding of a scalar gate, when the result is a finite number."""
    return Rule(
        f"fold_{op}",
        (op, "#a", "#b"),
        lambda b: folded(op, b["#a"], b["#b"]),
        f"{op} of two constants -> their value",
        when=lambda b: math.isfinite(folded(op, b["#a"], b["#b"])),
    )


CLEANUPS = [
    Rule("double_negation", ("neg", ("neg", "x")), "x", "-(-x) -> x"),
    Rule("neg_const", ("neg", "#a"), lambda b: -b["#a"], "-(a) -> its value"),
    Rule("mul_minus_one", ("mul", -1, "x"), ("neg", "x"), "-1*x -> -x"),
    Rule("mul_one", ("mul", 1, "x"), "x", "1*x -> x"),
    Rule("add_zero", ("add", 0, "x"), "x", "0+x -> x"),
    Rule("sub_zero", ("sub", "x", 0), "x", "x-0 -> x"),
    Rule("zero_sub", ("sub", 0, "x"), ("neg", "x"), "0-x -> -x"),
    Rule("div_one", ("div", "x", 1), "x", "x/1 -> x"),
    Rule("pow_one", ("pow", "x", 1), "x", "x**1 -> x"),
    *(_fold(op) for op in ("add", "sub", "mul", "div", "pow")),
    Rule(
        "add_chain",
        ("add", ("add", "x", "#a"), "#b"),
        lambda b: ("add", "x", folded("add", b["#a"], b["#b"])),
        "(x+a)+b -> x+(a+b)",
        when=lambda b: math.isfinite(folded("add", b["#a"], b["#b"])),
    ),
    Rule(
        "mul_chain",
        ("mul", ("mul", "x", "#a"), "#b"),
        lambda b: ("mul", "x", folded("mul", b["#a"], b["#b"])),
        "(x*a)*b -> x*(a*b)",
        when=lambda b: math.isfinite(folded("mul", b["#a"], b["#b"])),
    ),
]

# ---------------------------------------------------------------- numerically safe gates

_EXP_NEG = ("exp", ("neg", "x"))
_EXP_2X = ("exp", ("mul", 2, "x"))
# -2x as people write it: -(2*x), -2*x (traced as mul(-2, x)), 2*-x and -x*2
_EXP_NEG_2X = ("exp", OneOf(("neg", ("mul", 2, "x")), ("mul", -2, "x"), ("mul", 2, ("neg", "x"))))


def _same_axis(*names: str, keepdims: bool | None = None):
    """A condition: the bound reductions work over the same single axis (and keepdims as given)."""

    def check(b):
        params = [b[n] for n in names]
        axes = {p.get("axis") for p in params}
        if len(axes) != 1 or not isinstance(next(iter(axes)), int):
            return False
        return keepdims is None or all(p.get("keepdims", keepdims) == keepdims for p in params)

    return check


def _axis_of(name: str):
    return lambda b: {"axis": b[name]["axis"]}


STABILIZE = [
    Rule("sigmoid", ("div", 1, ("add", 1, _EXP_NEG)), ("sigmoid", "x"),
         "1/(1+exp(-x)) -> sigmoid(x)"),
    Rule("sigmoid", ("div", ("exp", "x"), ("add", 1, ("exp", "x"))), ("sigmoid", "x"),
         "exp(x)/(1+exp(x)) -> sigmoid(x)"),
    Rule("sigmoid", ("div", 1, ("add", 1, ("div", 1, ("exp", "x")))), ("sigmoid", "x"),
         "1/(1+1/exp(x)) -> sigmoid(x)"),
    Rule("sigmoid", ("pow", ("add", 1, _EXP_NEG), -1), ("sigmoid", "x"),
         "(1+exp(-x))**-1 -> sigmoid(x)"),
    Rule("sigmoid", ("div", 1, ("add", 1, ("exp", ("mul", "#a", "x")))),
         lambda b: ("sigmoid", ("mul", -b["#a"], "x")),
         "1/(1+exp(a*x)) -> sigmoid(-a*x), a a number (-2*x is traced as mul(-2, x))"),
    Rule("tanh", ("div", ("sub", ("exp", "x"), _EXP_NEG), ("add", ("exp", "x"), _EXP_NEG)),
         ("tanh", "x"), "(exp(x)-exp(-x))/(exp(x)+exp(-x)) -> tanh(x)"),
    Rule("tanh", ("div", ("sub", _EXP_2X, 1), ("add", _EXP_2X, 1)), ("tanh", "x"),
         "(exp(2x)-1)/(exp(2x)+1) -> tanh(x)"),
    Rule("tanh", ("div", ("sub", 1, _EXP_NEG_2X), ("add", 1, _EXP_NEG_2X)), ("tanh", "x"),
         "(1-exp(-2x))/(1+exp(-2x)) -> tanh(x)"),
    Rule("tanh", ("sub", ("mul", 2, ("sigmoid", ("mul", 2, "x"))), 1), ("tanh", "x"),
         "2*sigmoid(2x)-1 -> tanh(x)"),
    Rule("softplus", ("log", ("add", 1, ("exp", "x"))), ("softplus", "x"),
         "log(1+exp(x)) -> softplus(x)"),
    Rule("log_sigmoid", ("log", ("sigmoid", "x")), ("log_sigmoid", "x"),
         "log(sigmoid(x)) -> log_sigmoid(x)"),
    Rule("log_sigmoid", ("neg", ("softplus", ("neg", "x"))), ("log_sigmoid", "x"),
         "-softplus(-x) = -log(1+exp(-x)) -> log_sigmoid(x)"),
    Rule("logsumexp", ("log", ("sum", ("exp", "x"), {"params": "p"})),
         ("logsumexp", "x", {"params": "p"}), "log(sum(exp(x))) -> logsumexp(x)",
         when=_same_axis("p")),
    Rule("logsumexp",
         ("add", ("max", "x", {"params": "m"}),
          ("log", ("sum", ("exp", ("sub", "x", ("max", "x", {"params": "m"}))), {"params": "p"}))),
         ("logsumexp", "x", {"params": "p"}),
         "max(x) + log(sum(exp(x - max(x)))) -> logsumexp(x)",
         when=_same_axis("m", "p", keepdims=True)),
    Rule("log_softmax", ("sub", "x", ("logsumexp", "x", {"params": "p"})),
         lambda b: ("log_softmax", "x", _axis_of("p")(b)), "x - logsumexp(x) -> log_softmax(x)",
         when=_same_axis("p", keepdims=True)),
    Rule("log_softmax",
         ("log", ("div", ("exp", "x"), ("sum", ("exp", "x"), {"params": "p"}))),
         lambda b: ("log_softmax", "x", _axis_of("p")(b)),
         "log(exp(x)/sum(exp(x))) -> log_softmax(x)", when=_same_axis("p", keepdims=True)),
    Rule("softmax_cross_entropy",
         ("neg", ("sum", ("mul", "y", ("log_softmax", "x", {"params": "q"})), {"params": "p"})),
         lambda b: ("softmax_cross_entropy", "x", "y", _axis_of("p")(b)),
         "-sum(y*log_softmax(x)) -> softmax_cross_entropy(x, y)",
         when=_same_axis("p", "q", keepdims=False)),
    Rule("softmax_cross_entropy",
         ("sum", ("mul", "y", ("neg", ("log_softmax", "x", {"params": "q"}))), {"params": "p"}),
         lambda b: ("softmax_cross_entropy", "x", "y", _axis_of("p")(b)),
         "sum(y*-log_softmax(x)) -> softmax_cross_entropy(x, y)",
         when=_same_axis("p", "q", keepdims=False)),
    Rule("softmax_cross_entropy",
         ("neg", ("mean", ("sum", ("mul", "y", ("log_softmax", "x", {"params": "q"})),
                           {"params": "p"}), {"params": "r"})),
         lambda b: ("mean", ("softmax_cross_entropy", "x", "y", _axis_of("p")(b)), {"params": "r"}),
         "-mean(sum(y*log_softmax(x))) -> mean(softmax_cross_entropy(x, y))",
         when=_same_axis("p", "q", keepdims=False)),
]  # fmt: skip

# ---------------------------------------------------------------- neural-network building blocks

# Fusion never changes a gradient, not even the subgradient chosen at a kink. relu'(0) = 0, so
# only the spellings whose gradient at 0 is also 0 become relu: maximum(0, x) (a tie goes to the
# first argument, 0), where(x>0, x, 0) and where(x<=0, 0, x) (the mask picks the 0 branch at 0).
# The spellings whose gradient at 0 is 1 become maximum(x, 0), which keeps it: where(x>=0, x, 0),
# where(x<0, 0, x). maximum(x, 0) itself stays as it is, and so does max(x, a*x) (gradient 1 at 0,
# where leaky_relu's is a).
NEURAL = [
    Rule("relu", ("maximum", 0, "x"), ("relu", "x"), "max(0, x) -> relu(x)"),
    Rule("relu", ("where", ("gt", "x", 0), "x", 0), ("relu", "x"), "where(x>0, x, 0) -> relu(x)"),
    Rule("relu", ("where", ("le", "x", 0), 0, "x"), ("relu", "x"), "where(x<=0, 0, x) -> relu(x)"),
    Rule("relu_as_maximum", ("where", ("ge", "x", 0), "x", 0), ("maximum", "x", 0),
         "where(x>=0, x, 0) -> max(x, 0): gradient 1 at 0 kept"),
    Rule("relu_as_maximum", ("where", ("lt", "x", 0), 0, "x"), ("maximum", "x", 0),
         "where(x<0, 0, x) -> max(x, 0): gradient 1 at 0 kept"),
    Rule("leaky_relu", ("maximum", ("mul", "#a", "x"), "x"), ("leaky_relu", "x", "#a"),
         "max(a*x, x), 0<a<1 -> leaky_relu(x, a)", when=lambda b: 0 < b["#a"] < 1),
    Rule("affine", ("add", ("matmul", "x", "W"), "b"), ("affine", "x", "W", "b"),
         "x @ W + b -> affine(x, W, b)"),
    Rule("sum_squares", ("sum", ("mul", "x", "x"), {"params": "p"}),
         ("sum_squares", "x", {"params": "p"}), "sum(x*x) -> sum_squares(x)"),
    Rule("sum_squares", ("sum", ("pow", "x", 2), {"params": "p"}),
         ("sum_squares", "x", {"params": "p"}), "sum(x**2) -> sum_squares(x)"),
]  # fmt: skip

DEFAULT_RULES = CLEANUPS + STABILIZE + NEURAL
RULE_NAMES = tuple(dict.fromkeys(r.name for r in DEFAULT_RULES))
register_table(DEFAULT_RULES)


def resolve_rules(rules) -> list[Rule]:
    """Rule rows from a list of rows and/or names (a name selects every row of that name)."""
    if rules is None:
        return list(DEFAULT_RULES)
    out: list[Rule] = []
    for r in rules:
        if isinstance(r, Rule):
            out.append(r)
        elif isinstance(r, str) and r in RULE_NAMES:
            out.extend(x for x in DEFAULT_RULES if x.name == r)
        else:
            raise GraphcError(
                f"unknown fusion rule {r!r}; use a graphc.fusion.Rule or one of: "
                + ", ".join(RULE_NAMES)
            )
    return out


# ---------------------------------------------------------------- automatic elementwise fusion
#
# A region's formula is its gates' formulas composed by substitution. Gates with kinks compose
# as opaque SymPy functions (`Gate.composed_expr`), never as Piecewise, so SymPy cannot fold one
# condition into another, and deriving the fused gate's gradients costs the same per gate
# whatever the nesting. SymPy may still cancel a value (x - x is 0): the formula then keeps it
# as `cancelled(x)`, which has x's shape. Constants are folded in where SymPy keeps them finite.

MAX_LEAVES = len(ARGS) - 2  # the fused gate's gradients also read dout and its output


def _fusible(g: nx.DiGraph, n: int) -> bool:
    gate = gate_of(g.nodes[n]["op"])
    return gate is not None and gate.kind == ELEMENTWISE


def _formula(g: nx.DiGraph, n: int) -> sympy.Expr:
    data = g.nodes[n]
    return data["formula"] if data["op"] == "expr" else gate_of(data["op"]).composed_expr()


def _foldable(g: nx.DiGraph, n: int, fold: bool) -> bool:
    """Whether node n is a scalar constant to write into the formula as a number."""
    data = g.nodes[n]
    return (
        fold
        and data["op"] == "const"
        and np.ndim(data["value"]) == 0
        and math.isfinite(data["value"])  # SymPy folds NaN and inf the way IEEE does not
    )


def constant_gates(g: nx.DiGraph) -> set[int]:
    """Gates computed from constants alone (`10.0 ** 400.0`, parsed from text). They stay gates
    of their own, computed by NumPy: SymPy would fold them with unbounded precision (and take
    forever over 9.0 ** 9.0 ** 9.0 ** 9.0) where float64 overflows to inf, with a warning."""
    found: set[int] = set()
    for n in topo_order(g):
        op = g.nodes[n]["op"]
        args = args_of(g, n)
        if op not in ("input", "const") and all(
            a in found or g.nodes[a]["op"] == "const" for a in args
        ):
            found.add(n)
    return found


def _outside(g: nx.DiGraph, region: set[int], fold: bool = True) -> set[int]:
    """The values a region reads from outside, but for constants folded into its formula."""
    return {
        a for n in region for a in args_of(g, n) if a not in region and not _foldable(g, a, fold)
    }


def _region(
    g: nx.DiGraph, root: int, taken: set[int], max_gates: int, constant: set[int]
) -> list[int]:
    """Elementwise gates feeding `root` whose values only the region itself reads (no gate of
    constants alone: see `constant_gates`), and that the user did not name: `dot = w * x + b`
    stays a statement of its own, under its name, with the unnamed gates below it fused in."""
    region, frontier = {root}, [root]
    while frontier and len(region) < max_gates:
        for a in args_of(g, frontier.pop()):
            if (
                a not in region
                and a not in taken
                and a not in constant
                and _fusible(g, a)
                and a != g.graph["output"]
                and "hint" not in g.nodes[a]  # a value the user named keeps its statement
                and all(s in region for s in g.successors(a))
                and len(_outside(g, region | {a})) <= MAX_LEAVES
            ):
                region.add(a)
                frontier.append(a)
    return [n for n in topo_order(g.subgraph(region))]


def _compose(g: nx.DiGraph, region: list[int], fold: bool = True):
    """The region's formula over its outside arguments (a0, a1, ... in order of first use) and
    those arguments; None if they are too many for one gate (constants left unfolded).

    Every outside argument stays in the formula, as `cancelled(a)` if SymPy cancelled it.
    """
    if len(_outside(g, set(region), fold)) > MAX_LEAVES:
        return None
    inside = set(region)
    leaves: list[int] = []
    symbols: list[sympy.Symbol] = []
    value: dict[int, sympy.Expr] = {}
    for n in region:  # topological: arguments first
        formula = _formula(g, n)
        swap = {}
        for j, a in enumerate(args_of(g, n)):
            sym = MASKS[j] if MASKS[j] in formula.free_symbols else ARGS[j]
            if a in inside:
                swap[sym] = value[a]
            elif _foldable(g, a, fold):
                swap[sym] = sympy.sympify(g.nodes[a]["value"])
            else:
                if a not in leaves:
                    gate = gate_of(g.nodes[a]["op"])
                    is_mask = gate is not None and gate.kind == MASK
                    symbols.append((MASKS if is_mask else ARGS)[len(leaves)])
                    leaves.append(a)
                swap[sym] = symbols[leaves.index(a)]
        value[n] = formula.xreplace(swap)
    out = value[region[-1]]
    if fold and folds_badly(out):
        return _compose(g, region, fold=False)  # x/0, or 1e200*1e200: NumPy computes them
    lost = [s for s in symbols if s not in out.free_symbols]
    return sympy.Add(out, *(cancelled(s) for s in lost)), leaves


ELEMENTWISE_FUSION = Rule("elementwise", (), (), "a region of elementwise gates -> one fused gate")


def fuse_elementwise(g: nx.DiGraph, max_gates: int = 12) -> nx.DiGraph:
    """A copy of `g` with each region of 2+ elementwise gates collapsed into one "expr" gate.

    The new gate's formula is the composition; its local gradients come from SymPy on that
    formula (see `ops.formula_gradients`). Its name lists the gates it replaced, in order.
    """
    h = copy_graph(g)
    taken: set[int] = set()
    constant = constant_gates(h)
    for root in reversed(topo_order(g)):
        if root not in h or root in taken or not _fusible(h, root):
            continue
        region = _region(h, root, taken, max_gates, constant)
        taken.update(region)
        if len(region) < 2:
            continue
        composed = _compose(h, region)
        if composed is None:
            continue
        formula, leaves = composed
        ops = list(dict.fromkeys(h.nodes[n].get("gate", h.nodes[n]["op"]) for n in region))
        new = add_node(h, "expr", leaves, formula=formula, gate="_".join(ops), fused=len(region))
        replace(h, root, new)
        remove_dead(h, [root])
        h.graph.setdefault("rewrites", []).append((ELEMENTWISE_FUSION, new, tuple(sorted(region))))
    return h


def fuse(g: nx.DiGraph, rules=None, level: str = "patterns") -> nx.DiGraph:
    """Fuse a graph: a new graph, the original unchanged.

    `level` is "none" (a copy), "patterns" (the named rules, default) or "elementwise" (the
    rules, then automatic fusion of elementwise regions). `rules` picks rule rows or names.

    >>> fused = fuse(f.graph, level="elementwise")
    """
    if level not in LEVELS:
        raise GraphcError(f"unknown fusion level {level!r}; use one of {', '.join(LEVELS)}")
    if level == "none":
        return copy_graph(g)  # an unfrozen copy
    h = rewrite(g, resolve_rules(rules))  # a copy: `g` may be frozen
    h = fuse_elementwise(h) if level == "elementwise" else h
    # where fusion changed the gates, the readable module writes arithmetic as expressions
    # (`schedule`); where it changed nothing, the module is the unfused one, statement for statement
    h.graph["fused"] = _gates(h) != _gates(g)
    return h


def _gates(g: nx.DiGraph) -> collections.Counter:
    return collections.Counter(op for _, op in g.nodes(data="op") if op not in ("input", "const"))
