"""The backward pass: the chain rule as graph nodes, walked in reverse topological order.

Stage: passes (graph -> graph). Imports the `ir` only.

Gradients are data: every step of backprop is a node added to a copy of the (shaped) forward
graph, so it can be printed, drawn and differentiated again. Per gate: upstream gradient times
local gradient (elementwise gates: an "expr" node whose formula is `dout * local`, with the local
gradient derived once per gate kind by SymPy), or the gate's vector-Jacobian rule (tensor gates).
A gradient whose shape was broadcast is summed back by a `sum_to` step of its own; gradients add
where a value fans out. Only nodes on a path from a requested input to the output get gradients.
"""

from __future__ import annotations

import functools
import math
from collections import Counter

import networkx as nx
import numpy as np
import sympy

from ..ir.errors import GraphcError, ShapeError
from ..ir.graph import add_node, args_of, copy_graph, user_order
from ..ir.ops import (
    ARGS,
    DOUT,
    ELEMENTWISE,
    MASK,
    MASKS,
    OUT,
    TEXTBOOK,
    formula_gradients,
    gate_of,
    local_gradients,
    textbook_gradients,
)
from ..ir.shapes import node_shape
from ..ir.special import cancelled, folds_badly, is_boolean, is_plain_float, numeric_masks

VIEW_OPS = ("broadcast_to", "transpose", "reshape")


class Builder:
    """What a vector-Jacobian rule may do: add shaped gradient nodes and read shapes/params."""

    def __init__(self, g: nx.DiGraph):
        self.g = g

    def shape(self, n: int) -> tuple[int, ...]:
        return self.g._node[n]["shape"]

    def params(self, n: int) -> dict:
        return self.g._node[n].get("params", {})

    def op_of(self, n: int) -> str:
        return self.g._node[n]["op"]

    def op(self, name: str, args, **params) -> int:
        attrs = {"params": params} if params else {}
        args = list(args)
        n = add_node(self.g, name, args, role="grad", **attrs)
        self.g._node[n]["shape"] = node_shape(self.g, n, args)
        return n

    def const(self, value) -> int:
        return add_node(self.g, "const", value=value, shape=np.shape(value), role="grad")

    def count(self, n: int, axes: tuple[int, ...]) -> int:
        """The number of entries of n over `axes` (mean's divisor), a constant that remembers
        which sizes it multiplies, so that code can read them from the arguments."""
        shape = self.shape(n)
        value = math.prod(shape[a] for a in axes)
        return add_node(self.g, "const", value=value, shape=(), role="grad", count=(n, axes))

    def swap(self, n: int) -> int:
        """The last two axes swapped (X.T for a matrix)."""
        nd = len(self.shape(n))
        data = self.g._node[n]
        if nd == 2 and data["op"] == "transpose" and data.get("params", {}).get("axes") is None:
            return args_of(self.g, n)[0]  # (X.T).T is X
        axes = None if nd == 2 else tuple(range(nd - 2)) + (nd - 1, nd - 2)
        return self.op("transpose", [n], axes=axes)

    def column(self, n: int) -> int:
        """A vector as a column, so that broadcasting forms an outer product."""
        return self.op("reshape", [n], shape=self.shape(n) + (1,))

    def arguments(self, formula: sympy.Expr, operands: dict[sympy.Symbol, int], fold=True):
        """The argument nodes of an "expr" node computing `formula`, and how operands fill it:
        (symbol, "const", value) for a folded scalar constant, else (symbol, slot, is mask)."""
        used = _free_symbols(formula)
        args: list[int] = []
        pattern = []
        for sym, node in operands.items():
            if sym not in used:
                continue
            data = self.g._node[node]
            value = data["value"] if data["op"] == "const" else None
            if fold and value is not None and np.ndim(value) == 0 and np.isfinite(value):
                # a SymPy number: 2 and 2.0 are one key to the cache of `_rewritten`, but
                # Integer(2) and Float(2.0) are two; only finite: SymPy folds NaN unlike IEEE
                pattern.append((sym, "const", sympy.sympify(value)))
                continue
            if node not in args:
                args.append(node)
            pattern.append((sym, args.index(node), is_mask(self.g, node)))
        return args, tuple(pattern)

    def expr(self, formula: sympy.Expr, operands: dict[sympy.Symbol, int], **attrs) -> int:
        """An elementwise "expr" node computing `formula`, whose symbols stand for `operands`.

        Scalar constants are folded into the formula; the same node used twice becomes one
        argument. The formula is rewritten over a0, a1, ... (m0, m1, ... for masks).
        """
        if formula.is_Symbol and formula in operands:  # one value as it is (add's dout)
            node = operands[formula]
            if self.g._node[node]["op"] != "const" and not is_mask(self.g, node):
                return node  # what the rewriting below would find: the identity, no node
        args, pattern = self.arguments(formula, operands)
        folded, bad = _folded(formula, pattern)
        if bad:  # d(x/0)/dx = 1/0: SymPy's zoo is no IEEE number
            args, pattern = self.arguments(formula, operands, fold=False)
            folded = _rewritten(formula, pattern)  # NumPy computes it, with its inf and NaN
        formula = folded
        if formula.is_Symbol and formula in ARGS:  # the identity: no node needed
            return args[ARGS.index(formula)]
        n = add_node(self.g, "expr", args, formula=formula, role="grad", **attrs)
        self.g._node[n]["shape"] = node_shape(self.g, n, args)
        return n


@functools.lru_cache(maxsize=4096)
def _free_symbols(formula: sympy.Expr) -> frozenset:
    return frozenset(formula.free_symbols)


CONSTANT = sympy.Symbol("_constant", real=True)  # a folded constant's place in a `_folded` template


def _folded(formula: sympy.Expr, pattern: tuple) -> tuple[sympy.Expr, bool]:
    """`_rewritten(formula, pattern)`, with SymPy's work once per pattern, not per constant, and
    whether it `folds_badly`.

    Where one constant is folded in, the formula is rewritten once with `CONSTANT` in its place
    (cached), and each value is set into that template by `_set_constant`; values SymPy may
    treat specially (whole and half numbers, 0) and other templates are rewritten as they are.
    """
    folded = [i for i, (_, slot, _) in enumerate(pattern) if slot == "const"]
    if len(folded) != 1 or not is_plain_float(pattern[folded[0]][2]):
        out = _rewritten(formula, pattern)
        return out, _folds_badly(out)
    at = folded[0]
    sym, _, value = pattern[at]
    template = _rewritten(formula, pattern[:at] + ((sym, "const", CONSTANT),) + pattern[at + 1 :])
    out = _set_constant(template, value)
    if out is None:
        out = _rewritten(formula, pattern)
        return out, _folds_badly(out)
    # a finite float64 that is not 0 (`is_plain_float`), set in unevaluated, adds no infinity and
    # no number beyond float64's range: the template says
    return out, _folds_badly(template)


_folds_badly = functools.lru_cache(maxsize=4096)(folds_badly)  # SymPy traversals, once a formula


def _set_constant(template: sympy.Expr, value: sympy.Float) -> sympy.Expr | None:
    """`template.xreplace({CONSTANT: value})` where that is a number put first in a sum or
    product (`dout * 0.37` of u*x_t in a recurrence), built without SymPy's evaluation; None
    where evaluation could do more: combine the value with another number, distribute it over
    a sum (0.3*(x + y)), or reach inside a function or power."""
    if not (template.is_Add or template.is_Mul) or CONSTANT not in template.args:
        return None
    rest = [a for a in template.args if a != CONSTANT]
    if any(a.is_number or a.has(CONSTANT) for a in rest):  # numbers, sqrt(2), pi, ...
        return None
    if template.is_Mul and len(rest) == 1 and rest[0].is_Add:
        return None
    return template.func._from_args((value, *rest))  # a number leads the canonical order


@functools.lru_cache(maxsize=4096)
def _rewritten(formula: sympy.Expr, pattern: tuple) -> sympy.Expr:
    """`formula` with each symbol replaced by a constant's value or its argument slot's symbol.

    An argument a constant cancels (dout * 0.0 is 0 to SymPy) stays as `cancelled(a)`, 0.0 * a:
    the step keeps its shape, and IEEE's NaN where a is not finite.
    """
    swap = {}
    for sym, slot, extra in pattern:
        if slot == "const":
            swap[sym] = sympy.sympify(extra)
        else:
            swap[sym] = MASKS[slot] if extra else ARGS[slot]
    out = formula.xreplace(swap)
    lost = {swap[sym] for sym, slot, _ in pattern if slot != "const"} - out.free_symbols
    if not lost or not isinstance(out, sympy.Expr):  # a condition (a shared mask) broadcasts
        return out
    return sympy.Add(out, *(cancelled(s) for s in sorted(lost, key=str)))


def is_mask(g: nx.DiGraph, n: int) -> bool:
    gate = gate_of(g._node[n]["op"])
    return gate is not None and gate.kind == MASK


def gate_local_gradients(g: nx.DiGraph, n: int):
    """The local gradient formulas of node n's gate, one per argument (None: no gradient)."""
    data = g._node[n]
    if "local" in data:  # a lowered gate: its gradient over the shared intermediate
        return data["local"]
    if g.graph.get("style") == "textbook" and data["op"] in TEXTBOOK:
        return TEXTBOOK[data["op"]].local  # the lecture's formula (see ir.ops.TEXTBOOK)
    if data["op"] == "expr":
        if g.graph.get("style") == "textbook" and data.get("role") is None:
            return textbook_gradients(data["formula"], len(args_of(g, n)))  # fused gates inside
        return formula_gradients(data["formula"], len(args_of(g, n)))
    return local_gradients(gate_of(data["op"]))


def _reachable(g: nx.DiGraph, sources, output) -> set[int]:
    """Nodes on some path from `sources` to `output` (iterative searches, no recursion)."""
    forward: set[int] = set()
    stack = list(sources)
    while stack:
        n = stack.pop()
        if n not in forward:
            forward.add(n)
            stack.extend(g.successors(n))
    behind: set[int] = set()  # the output and its ancestors
    stack = [output]
    while stack:
        n = stack.pop()
        if n not in behind:
            behind.add(n)
            stack.extend(g.predecessors(n))
    return forward & behind


def backward(g: nx.DiGraph, wrt: list[int] | None = None, zeros: bool = True) -> nx.DiGraph:
    """A copy of the shaped graph `g` with gradient nodes for the inputs `wrt` (default: all).

    The result's `graph["seed"]` is the upstream-gradient node (`dout`), `graph["grads"]` maps
    each requested input to the node returned as its gradient, and `graph["gradient_of"]` maps
    every forward node a gradient reached to its (summed) gradient node, and `graph["wires"]`
    maps each wire (gate, argument) to the gradient flowing back along it and, where that
    argument was broadcast, the gradient before the summation that undoes it. Each node the
    sweep makes records, as `swept`, the gate whose step made it.
    """
    h = copy_graph(g)
    b = Builder(h)
    output = h.graph["output"]
    wrt = list(h.graph["inputs"] if wrt is None else wrt)
    need = _reachable(h, wrt, output)
    seed = add_node(h, "input", name="dout", role="seed", shape=h._node[output]["shape"])
    grad: dict[int, int] = {output: seed} if output in need else {}

    wires: dict[tuple[int, int], tuple[int, int | None]] = {}

    def accumulate(a: int, c: int, via: int) -> None:
        before = None
        if b.shape(c) != b.shape(a):  # undo broadcasting, as a visible step of its own
            h._node[c].setdefault("grad_for", a)
            before, c = c, b.op("sum_to", [c], shape=b.shape(a))
            h._node[c]["unbroadcast"] = a
        wires[(via, a)] = (c, before)
        if a not in grad:
            grad[a] = c
            h._node[c].setdefault("grad_of", a)
            return
        if h._node[c].get("grad_of") is None and h.out_degree(c) == 0:
            h._node[c]["inline"] = True  # printed inside the sum: `da = da + <contribution>`
        grad[a] = b.op("add", [grad[a], c])
        h._node[grad[a]].update(grad_of=a, comment="fork: gradients add")

    for n in reversed(user_order(g)):  # backward: the exact reverse of the order written
        data = h._node[n]
        if n not in grad or data["op"] in ("input", "const"):
            continue
        args = args_of(h, n)
        gate = gate_of(data["op"])
        if gate.kind == MASK:
            continue
        dn = grad[n]
        start = h.graph["next_id"]
        if gate.kind == ELEMENTWISE:
            contributions = _elementwise_vjp(b, n, args, dn, need)
        else:
            contributions = gate.vjp(b, n, args, dn)
            for c in contributions:
                if c is not None and "comment" not in h._node[c]:
                    h._node[c]["comment"] = f"{data['op']} backward"
        for a, c in zip(args, contributions):
            if c is not None and a in need:
                accumulate(a, c, n)
        for c in range(start, h.graph["next_id"]):  # what this gate's step of the sweep made
            h._node[c]["swept"] = n

    returned = Counter(grad.get(i) for i in wrt)  # a gradient node returned for 2+ inputs
    grads = {}
    for i in wrt:
        if grad.get(i) is None and not zeros and g._node[i]["shape"]:
            # `zeros=False` (the compiler's probe sizes): a zero gradient is a constant array of
            # the call's own shape, which no probe can stand for; the caller specialises instead
            raise ShapeError(f"the gradient of {g._node[i]['name']!r} is a constant zero array")
        grads[i] = _final_gradient(b, i, grad.get(i), seed, shared=returned[grad.get(i)] > 1)
    h.graph.update(seed=seed, grads=grads, gradient_of=dict(grad), wires=wires)
    return h


def _elementwise_vjp(b: Builder, n: int, args: list[int], dn: int, need: set[int]):
    """dout * local gradient for each argument that needs a gradient (None for the others).

    An argument used twice (x*x) gets one contribution with the local gradients summed (2*x).
    Subexpressions the contributions share (a fused gate's sigmoid(-z), say) are computed once,
    in a step of their own, found by SymPy's canonical common-subexpression elimination.
    """
    locals_ = gate_local_gradients(b.g, n)
    operands = {DOUT: dn, OUT: n}
    operands.update({(MASKS[j] if is_mask(b.g, x) else ARGS[j]): x for j, x in enumerate(args)})
    wanted = tuple(
        i for i, a in enumerate(args) if locals_[i] is not None and a in need and a not in args[:i]
    )
    first = tuple(args.index(a) for a in args)  # which arguments are one node (x*x)
    shared, formulas = _vjp_formulas(locals_, first, wanted)
    if len(formulas) > 1:
        definitions: dict[sympy.Symbol, sympy.Expr] = {}
        for sym, formula in shared:
            definitions[sym] = formula = _within_slots(b, n, formula, definitions, operands)
            operands[sym] = b.expr(formula, operands)
            b.g._node[operands[sym]].update(shared_by=n)
        formulas = [_within_slots(b, n, f, definitions, operands) for f in formulas]
    out: list[int | None] = [None] * len(args)
    for i, formula in zip(wanted, formulas):
        if formula == 0:  # x - x: no gradient flows here
            continue
        c = b.expr(formula, operands)
        if c != dn:
            b.g._node[c].update(grad_gate=n, grad_arg=i)
        out[i] = c
    return out


@functools.lru_cache(maxsize=4096)
def _vjp_formulas(locals_: tuple, first: tuple[int, ...], wanted: tuple[int, ...]):
    """The shared steps and the `dout * local` formula of each wanted argument of a gate whose
    local gradients are `locals_` and whose argument i is the node of argument `first[i]`
    (SymPy work once per gate kind and argument pattern, not per node)."""
    formulas = [
        numeric_masks(
            DOUT
            * sympy.Add(
                *(locals_[j] for j in range(len(first)) if first[j] == i and locals_[j] is not None)
            )
        )
        for i in wanted
    ]
    if len(formulas) > 1:
        shared, formulas = _common_subexpressions(formulas)
        return tuple(shared), tuple(formulas)
    return (), tuple(formulas)


def _within_slots(b: Builder, n: int, formula, definitions: dict, operands: dict):
    """`formula` with shared steps written back in until it reads no more values than an "expr"
    node has argument slots (a0 ... a7)."""
    if len(set(operands.values())) <= len(ARGS):  # too few values to fill more slots
        return formula
    while len(b.arguments(formula, operands)[0]) > len(ARGS):
        inlined = [s for s in definitions if s in formula.free_symbols]
        if not inlined:
            gate = b.g._node[n].get("gate", b.g._node[n]["op"])
            raise GraphcError(
                f"gate {gate!r}: a gradient step would read more than {len(ARGS)} values; "
                "give the gate fewer arguments"
            )
        formula = formula.xreplace({inlined[-1]: definitions[inlined[-1]]})
    return formula


@functools.cache
def _cse(formulas: tuple[sympy.Expr, ...]):
    names = sympy.numbered_symbols("shared", real=True)
    return sympy.cse(list(formulas), symbols=names, order="canonical")


def _common_subexpressions(formulas: list[sympy.Expr]):
    """Shared non-trivial subexpressions worth a step (more than a product of two names)."""
    replacements, reduced = _cse(tuple(formulas))
    constants = {}  # a shared constant (sigmoid(2.0)) stays written where it is used
    booleans: set[sympy.Symbol] = set()  # shared steps: NumPy booleans, like the masks
    shared = []
    for sym, formula in replacements:
        formula = numeric_masks(formula.xreplace(constants), frozenset(booleans))
        if not formula.free_symbols:
            constants[sym] = formula
            continue
        if is_boolean(formula, booleans):
            booleans.add(sym)
        shared.append((sym, formula))
    return shared, [numeric_masks(f.xreplace(constants), frozenset(booleans)) for f in reduced]


def _final_gradient(b: Builder, i: int, node: int | None, seed: int, shared: bool) -> int:
    """The node returned as input i's gradient: its own, fresh, with the input's shape.

    An alias of another value's gradient is copied only where the caller could otherwise see
    one array twice: the seed (the caller's `dout`), a view, or a node returned for 2+ inputs.
    """
    g = b.g
    shape = g._node[i]["shape"]
    if node is None:  # no path from this input to the output: the gradient is zero
        return b.const(np.zeros(shape) if shape else 0.0)
    own = g._node[node].get("grad_of") == i and node != seed
    if own and g._node[node]["op"] not in VIEW_OPS:
        return node
    # an alias of another value's gradient (e.g. the add gate distributes dout) or a view
    copy = bool(shape) and (node == seed or shared or g._node[node]["op"] in VIEW_OPS)
    alias = add_node(g, "expr", [node], formula=ARGS[0], role="grad", grad_of=i, copy=copy)
    g._node[alias]["shape"] = shape
    return alias
