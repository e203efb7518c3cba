"""Lowering: exact gates spelled over a shared intermediate that the backward pass reuses.

Stage: passes (graph -> graph), run by the compiler after fusion and before differentiation.
Imports `graph`, `ops` and `special`.

sigmoid, softplus and log_sigmoid are exact for every x only if they exponentiate -|x|, and so
are their derivatives. A careful hand-written implementation computes e = exp(-|x|) once in
forward, caches it, and writes the gradient in terms of it (sigmoid: dx = dout * e/(1+e)**2).
Each row below says how a gate's value reads in terms of e; its local gradient is derived by
SymPy from the gate's exact derivative (sigma(x)*sigma(-x), ...), with every sigmoid rewritten
over the same e on each side of 0 and simplified: never written by hand. The gate's node keeps
its id and its gate name, so drawings and reports still speak of "sigmoid".

The readable module keeps the lecture's gradient of sigmoid, dx = dout * s * sigmoid(-x), and
(`pair_sigmoids`) computes sigmoid(-x) in forward beside s, from the same exp(-|x|), caching
both: `s, s_neg = sigmoid_pair(x)`, one statement for the gate. Backward then takes no exp (it
took exp(-|x|) twice more for `sigmoid(-x)`).

The fused softmax cross-entropy likewise (`cache_log_softmax`): forward computes
`log_probs = log_softmax(x)` once, as its own statement, the loss is `-sum(y * log_probs)`, and
backward reads the cached log_probs for both gradients (it ran log_softmax twice more, with
its max, argmax and exp, which cost more than the arithmetic at a small batch).
"""

from __future__ import annotations

import functools

import networkx as nx
import sympy
from sympy.codegen.cfunctions import log1p

from ..ir.graph import add_node, args_of, copy_graph, topo_order
from ..ir.ops import ARGS, GATES, OUT, formula_gradients, local_gradients
from ..ir.special import sigmoid

X, E = ARGS[0], ARGS[1]
SHARED = sympy.exp(-sympy.Abs(X))  # e = exp(-|x|): at most 1, so nothing overflows

LOWERINGS: dict[str, sympy.Expr] = {
    # 1/(1+e) or e/(1+e): exp(min(x, 0)) is 1 or e, without np.where's unpredictable branches
    "sigmoid": sympy.exp(sympy.Min(X, 0)) / (1 + E),
    "softplus": sympy.Max(X, 0) + log1p(E),  # max(x, 0) + log(1 + exp(-|x|))
    "log_sigmoid": sympy.Min(X, 0) - log1p(E),  # min(x, 0) - log(1 + exp(-|x|))
}


def _one_side(derivative: sympy.Expr, side: int) -> sympy.Expr:
    """The derivative for x = side*p (p > 0), with sigmoid(+-p) written over e = exp(-p)."""
    p = sympy.Symbol("p", positive=True)
    e = sympy.Symbol("e", positive=True)
    expr = derivative.xreplace({X: side * p})
    swap = {}
    for s in expr.atoms(sigmoid):
        if s.args[0] == p:
            swap[s] = 1 / (1 + e)
        elif s.args[0] == -p:
            swap[s] = e / (1 + e)
        else:
            raise ValueError(f"cannot lower {s}")
    return sympy.simplify(expr.xreplace(swap)).xreplace({e: E})


@functools.cache
def lowered_gradient(name: str) -> sympy.Expr:
    """d(gate)/dx over x (a0) and e (a1), derived from the gate's exact derivative."""
    gate = GATES[name]
    derivative = local_gradients(gate)[0].xreplace({OUT: gate.expr()})
    above, below = _one_side(derivative, 1), _one_side(derivative, -1)
    if sympy.simplify(above - below) == 0:
        return above
    (n_above, d_above), (n_below, d_below) = sympy.fraction(above), sympy.fraction(below)
    if d_above == d_below:  # np.where(x >= 0, 1, e) / (1 + e), as written by hand
        return sympy.Piecewise((n_above, X >= 0), (n_below, True)) / d_above
    return sympy.Piecewise((above, X >= 0), (below, True))


def lower(g: nx.DiGraph) -> nx.DiGraph:
    """A copy of `g` with each lowerable gate computed over a shared e = exp(-|x|) node; a fused
    gate sigmoid(z) (`level="elementwise"`) is first split into z and a sigmoid gate of it."""
    h = _split_sigmoids(copy_graph(g))
    for n in topo_order(h):
        name = h.nodes[n]["op"]
        if name not in LOWERINGS:
            continue
        (x,) = args_of(h, n)
        e = add_node(h, "expr", [x], formula=SHARED, hint="e", gate=f"{name}: exp(-|x|)")
        h.nodes[n].update(
            op="expr",
            gate=name,
            formula=LOWERINGS[name],
            local=(lowered_gradient(name), None),  # no gradient flows into e: it is in dx
        )
        h.add_edge(e, n, pos=(1,))
    return h


def _split_sigmoids(h: nx.DiGraph) -> nx.DiGraph:
    """`h` with each fused gate sigmoid(z) computed as a step z and a sigmoid gate reading it
    (in place): the gate is then lowered as any sigmoid, and computes exp(-|z|) once."""
    for n in topo_order(h):
        data = h.nodes[n]
        formula = data.get("formula")
        if data["op"] != "expr" or not isinstance(formula, sigmoid) or "local" in data:
            continue
        if formula.args[0] in ARGS:
            continue  # sigmoid of one argument already
        args = args_of(h, n)
        gate = data.get("gate", "fused")
        at = data.get("at", n)  # written where the gate is (`ir.graph.user_order`)
        z = add_node(
            h, "expr", args, formula=formula.args[0], gate=gate.removesuffix("_sigmoid"), at=at
        )
        for a in set(args):
            h.remove_edge(a, n)
        h.add_edge(z, n, pos=(0,))
        data.update(op="sigmoid", gate="sigmoid")
        del data["formula"]
    return h


def pair_sigmoids(g: nx.DiGraph) -> nx.DiGraph:
    """A copy of `g` where each sigmoid s = sigmoid(x) (a gate, or a fused gate whose formula is
    sigmoid(...)) has a step s_neg = sigmoid(-x) beside it (`pair_of`), which the NumPy printer
    writes in s's own statement (`s, s_neg = sigmoid_pair(x)`); s's local gradients read it:
    s * s_neg (times dx/da for a fused gate), the lecture's s * sigmoid(-x)."""
    h = copy_graph(g)
    out = h.graph.get("output")
    for n in topo_order(g):
        data = h.nodes[n]
        args = args_of(h, n)
        if data["op"] == "sigmoid":
            formula = sigmoid(X)
            local = (OUT * ARGS[1], None)  # no gradient flows into s_neg
        elif data["op"] == "expr" and isinstance(data["formula"], sigmoid) and "local" not in data:
            formula = data["formula"]
            if len(args) >= len(ARGS):
                continue  # no slot left for s_neg
            neg = {sigmoid(-formula.args[0]): ARGS[len(args)]}
            grads = formula_gradients(formula, len(args))
            local = (*(None if d is None else d.xreplace(neg) for d in grads), None)
            if any(d is not None and d.has(sigmoid) for d in local):
                continue  # a gradient reads more than s and s_neg
        else:
            continue
        name = data.get("hint") or ("out" if n == out else "sigmoid")
        neg_formula = formula.func(-formula.args[0])
        step = add_node(h, "expr", args, formula=neg_formula, hint=f"{name}_neg", gate="sigmoid",
                        pair_of=n, at=data.get("at", n))  # fmt: skip
        data.update(op="expr", gate=data.get("gate", "sigmoid"), formula=formula, pair=step,
                    local=local)  # fmt: skip
        if len(args) == 1:  # the lecture's form, for the comment (a fused gate's is its own)
            data["grad_note"] = "{out} * sigmoid(-{0})"  # exact where 1 - out rounds to 0
        h.add_edge(step, n, pos=(len(args),))
    return h


def cache_log_softmax(g: nx.DiGraph) -> nx.DiGraph:
    """A copy of `g` where each softmax_cross_entropy(x, y) reads a step log_probs =
    log_softmax(x) beside it, as a third argument (no gradient flows into it): the gate is
    then spelled -sum(y * log_probs), and its backward reads log_probs instead of computing
    log_softmax(x) again (`ir.tensor._vjp_cross_entropy`)."""
    h = copy_graph(g)
    for n in topo_order(g):
        data = h.nodes[n]
        args = args_of(h, n)
        if data["op"] != "softmax_cross_entropy" or len(args) != 2:
            continue
        step = add_node(h, "log_softmax", args[:1], params=dict(data["params"]),
                        hint="log_probs", gate="softmax_cross_entropy", cached_for=n,
                        at=data.get("at", n))  # fmt: skip
        h.add_edge(step, n, pos=(2,))
    return h
