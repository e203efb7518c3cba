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
"""

from __future__ import annotations

import functools

import networkx as nx
import sympy
from sympy.codegen.cfunctions import log1p

from ..ir.graph import add_node, args_of, copy_graph, topo_order
from ..ir.ops import ARGS, GATES, OUT, local_gradients
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
    """A copy of `g` with each lowerable gate computed over a shared e = exp(-|x|) node."""
    h = copy_graph(g)
    for n in topo_order(g):
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
