"""Forward mode: the tangent of every value, as graph nodes beside the values themselves.

Stage: passes (shaped graph -> graph with tangents -> `Program`). Imports the `ir` and
`passes.autodiff` (its `Builder` and the gates' local gradients).

Reverse mode walks the graph backward once per output; forward mode walks it forward once per
input direction: each value `v` gets a tangent `v_t`, the derivative of `v` along the direction
the inputs' tangents give. Per gate: the sum over arguments of local gradient times argument
tangent (elementwise gates: one "expr" node, with the same local gradients, exact for fused
gates, that the backward pass multiplies by `dout`), or the gate's linear map applied to the
tangents (tensor gates, `TANGENT_RULES`: matmul is `x_t @ y + x @ y_t`, sum is sum of the
tangent). An argument without a tangent contributes nothing, so an input without a tangent costs
nothing: only values that depend on a tangent get one.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import sympy

from ..ir.errors import GateError
from ..ir.graph import add_node, args_of, copy_graph, topo_order
from ..ir.ops import ARGS, ELEMENTWISE, MASK, MASKS, OUT, cancelled, gate_of
from . import autodiff
from .schedule import Program, sanitize

# the tangent symbols in a tangent formula: t0 is argument 0's tangent, ...
TANGENTS = tuple(sympy.Symbol(f"t{i}", real=True) for i in range(len(ARGS)))


class TangentBuilder(autodiff.Builder):
    """The backward pass's builder, marking what it adds as tangent steps of one gate."""

    def __init__(self, g: nx.DiGraph):
        super().__init__(g)
        self.gate: int | None = None  # the forward node whose tangent is being built

    def _mark(self, n: int) -> int:
        if self.g.nodes[n].get("role") == "grad":  # made now, not a value passed through
            self.g.nodes[n].update(role="tangent", tangent_for=self.gate)
        return n

    def op(self, name: str, args, **params) -> int:
        return self._mark(super().op(name, args, **params))

    def const(self, value) -> int:
        return self._mark(super().const(value))

    def expr(self, formula, operands, **attrs) -> int:
        return self._mark(super().expr(formula, operands, **attrs))


def tangents(g: nx.DiGraph, wrt: list[int], outputs: list[int] | None = None) -> nx.DiGraph:
    """A copy of the shaped graph `g` with a tangent input `<name>_t` for each input in `wrt`
    and a tangent node for every value that depends on one.

    The result's `graph["tangents"]` maps each input in `wrt` to its tangent input,
    `graph["outputs"]` lists the outputs (default: the output) and `graph["tangent_of"]` maps
    every value with a tangent to its tangent node.
    """
    h = copy_graph(g)
    b = TangentBuilder(h)
    outputs = list(g.graph.get("outputs") or [g.graph["output"]]) if outputs is None else outputs
    tangent: dict[int, int] = {}
    for i in wrt:
        data = h.nodes[i]
        tangent[i] = add_node(
            h, "input", name=f"{data['name']}_t", role="tangent_input", shape=data["shape"]
        )
    for n in topo_order(g):
        data = h.nodes[n]
        if data["op"] in ("input", "const"):
            continue
        args = args_of(h, n)
        ts = [tangent.get(a) for a in args]
        gate = gate_of(data["op"])
        if gate.kind == MASK or all(t is None for t in ts):
            continue  # a comparison is flat; a value no tangent reaches has none
        b.gate = n
        if gate.kind == ELEMENTWISE:
            t = _elementwise_tangent(b, n, args, ts)
        else:
            rule = TANGENT_RULES.get(gate.name)
            if rule is None:
                raise GateError(
                    f"gate {gate.name!r} has no tangent rule; forward mode cannot go through it "
                    "(differentiate the forward function instead)"
                )
            t = rule(b, n, args, ts)
        if t is None:
            continue
        if b.shape(t) != b.shape(n):  # a scalar's tangent spread over the broadcast value
            t = b.op("broadcast_to", [t], shape=b.shape(n), expand=_leading(b, t, n))
        if h.nodes[t].get("tangent_for") == n:  # made for this gate (add passes x_t through)
            h.nodes[t]["tangent_of"] = n
        tangent[n] = t
    h.graph.update(
        tangents={i: tangent[i] for i in wrt},
        outputs=outputs,
        tangent_of={n: t for n, t in tangent.items() if n not in wrt},
    )
    return h


def _leading(b, t: int, n: int) -> tuple[int, ...]:
    return tuple(range(len(b.shape(n)) - len(b.shape(t))))


def _elementwise_tangent(b: TangentBuilder, n: int, args: list[int], ts: list) -> int | None:
    """sum_i local_i * t_i over the arguments with a tangent: one "expr" node where it fits
    the argument slots, else one term per argument, added."""
    locals_ = autodiff.gate_local_gradients(b.g, n)
    operands = {OUT: n}
    operands.update(
        {(MASKS[j] if autodiff.is_mask(b.g, a) else ARGS[j]): a for j, a in enumerate(args)}
    )
    terms = []
    for j, t in enumerate(ts):
        if t is None or locals_[j] is None:
            continue
        operands[TANGENTS[j]] = t
        terms.append(locals_[j] * TANGENTS[j])
    formula = sympy.Add(*terms)
    if formula == 0:
        return None
    if len(b.arguments(formula, operands)[0]) <= len(ARGS):
        return b.expr(formula, operands)
    total = None
    for term in terms:  # a gate of many arguments: one step per argument's term
        if term == 0:
            continue
        node = b.expr(term, operands)
        total = node if total is None else b.op("add", [total, node])
    return total


# ---------------------------------------------------------------- tensor gates' tangent rules
# Each rule gets the builder, the gate's node, its argument nodes and their tangents (None: no
# tangent) and returns the gate's tangent node (None: none). Linear gates apply themselves to the
# tangent; the others are their derivative's linear map, with the accurate formulas of their
# vector-Jacobian rules.


def _added(b, *nodes) -> int | None:
    nodes = [x for x in nodes if x is not None]
    total = nodes[0] if nodes else None
    for x in nodes[1:]:
        total = b.op("add", [total, x])
    return total


def _linear(b, n, args, ts):
    """A linear gate of one argument: the gate itself, applied to the tangent."""
    return b.op(b.op_of(n), [ts[0]], **b.params(n))


def _tangent_matmul(b, n, args, ts):
    # (x @ y)_t = x_t @ y + x @ y_t
    (x, y), (tx, ty) = args, ts
    return _added(
        b,
        None if tx is None else b.op("matmul", [tx, y]),
        None if ty is None else b.op("matmul", [x, ty]),
    )


def _tangent_affine(b, n, args, ts):
    # (x @ W + c)_t = x_t @ W + x @ W_t + c_t
    (x, w, _), (tx, tw, tc) = args, ts
    return _added(
        b,
        None if tx is None else b.op("matmul", [tx, w]),
        None if tw is None else b.op("matmul", [x, tw]),
        tc,
    )


def _tangent_route(b, n, args, ts):
    # route_to_max(dout, x) is linear in dout and flat in x (the place of the max)
    if ts[0] is None:
        return None
    return b.op("route_to_max", [ts[0], args[1]], **b.params(n))


def _tangent_gather(b, n, args, ts):
    # a gather (and its scatter-add) is linear in the array and flat in the integer indices
    if ts[0] is None:
        return None
    return b.op(b.op_of(n), [ts[0], args[1]], **b.params(n))


def _tangent_joined(b, n, args, ts):
    # concatenate and stack are linear: the tangents joined, 0 for an argument without one
    joined = [t if t is not None else b.expr(cancelled(ARGS[0]), {ARGS[0]: a}) for a, t in
              zip(args, ts)]  # fmt: skip
    return b.op(b.op_of(n), joined, **b.params(n))


def _reduced(b, n, x, formula, operands):
    """sum over the gate's axis of an elementwise `formula`, kept like the gate's output."""
    p = b.params(n)
    terms = b.expr(formula, operands)
    return b.op("sum", [terms], axis=p.get("axis"), keepdims=p.get("keepdims", False))


def _tangent_max(b, n, args, ts):
    # max_t = the tangent at the (first) largest entry: route_to_max(1, x) is that entry's mask
    p = b.params(n)
    axis = p["axis"]
    if isinstance(axis, tuple):
        axis = axis[0] if len(axis) == 1 else None
    ones = b.const(np.ones(b.shape(n)) if b.shape(n) else 1.0)
    mask = b.op("route_to_max", [ones, args[0]], axis=axis, keepdims=p["keepdims"])
    return _reduced(b, n, args[0], ARGS[0] * TANGENTS[0], {ARGS[0]: mask, TANGENTS[0]: ts[0]})


def _tangent_sum_squares(b, n, args, ts):
    # sum(x**2)_t = sum(2 * x * x_t)
    x = args[0]
    return _reduced(b, n, x, 2 * ARGS[0] * TANGENTS[0], {ARGS[0]: x, TANGENTS[0]: ts[0]})


def _tangent_logsumexp(b, n, args, ts):
    # logsumexp(x)_t = sum(softmax(x) * x_t), softmax(x) = exp(x - out)
    (x,) = args
    p = b.params(n)
    axis = autodiff_axis(b, n, x)
    out = _kept(b, n, b.shape(x), axis, p["keepdims"])
    formula = sympy.exp(ARGS[0] - ARGS[1]) * TANGENTS[0]
    return _reduced(b, n, x, formula, {ARGS[0]: x, ARGS[1]: out, TANGENTS[0]: ts[0]})


def _tangent_log_softmax(b, n, args, ts):
    # log_softmax(x)_t = x_t - sum(softmax * x_t), softmax = exp(out)
    weighted = b.expr(sympy.exp(OUT) * TANGENTS[0], {OUT: n, TANGENTS[0]: ts[0]})
    total = b.op("sum", [weighted], axis=b.params(n)["axis"], keepdims=True)
    return b.expr(TANGENTS[0] - ARGS[0], {TANGENTS[0]: ts[0], ARGS[0]: total})


def _tangent_cross_entropy(b, n, args, ts):
    # CE(x, y)_t = sum((softmax(x) * sum(y) - y) * x_t) - sum(log_softmax(x) * y_t)
    (x, y), (tx, ty) = args, ts
    axis = b.params(n)["axis"]
    parts = []
    if tx is not None:
        dx = b.op("softmax_cross_entropy_grad", [x, y], axis=axis)
        parts.append(b.op("sum", [b.op("mul", [dx, tx])], axis=axis, keepdims=False))
    if ty is not None:
        logp = b.op("log_softmax", [x], axis=axis)
        picked = b.op("sum", [b.op("mul", [logp, ty])], axis=axis, keepdims=False)
        parts.append(b.expr(-ARGS[0], {ARGS[0]: picked}))
    return _added(b, *parts)


def _tangent_cross_entropy_grad(b, n, args, ts):
    # dCE/dx = softmax(x) * sum(y) - y, so its tangent is
    # sum(y) * softmax * (x_t - sum(softmax * x_t)) + softmax * sum(y_t) - y_t
    (x, y), (tx, ty) = args, ts
    axis = b.params(n)["axis"]
    logp = b.op("log_softmax", [x], axis=axis)  # softmax = exp(log_softmax): exact, no overflow
    parts = []
    if tx is not None:
        weighted = b.expr(sympy.exp(ARGS[0]) * TANGENTS[0], {ARGS[0]: logp, TANGENTS[0]: tx})
        total = b.op("sum", [weighted], axis=axis, keepdims=True)
        labels = b.op("sum", [y], axis=axis, keepdims=True)
        formula = ARGS[2] * sympy.exp(ARGS[0]) * (TANGENTS[0] - ARGS[1])
        parts.append(
            b.expr(formula, {ARGS[0]: logp, ARGS[1]: total, ARGS[2]: labels, TANGENTS[0]: tx})
        )
    if ty is not None:
        spread = b.op("sum", [ty], axis=axis, keepdims=True)
        formula = sympy.exp(ARGS[0]) * ARGS[1] - TANGENTS[0]
        parts.append(b.expr(formula, {ARGS[0]: logp, ARGS[1]: spread, TANGENTS[0]: ty}))
    return _added(b, *parts)


def autodiff_axis(b, n, x) -> int:
    axis = b.params(n)["axis"]
    return axis % len(b.shape(x)) if isinstance(axis, int) else axis[0] % len(b.shape(x))


def _kept(b, n, shape, axis, keepdims):
    if keepdims:
        return n
    return b.op("reshape", [n], shape=tuple(1 if i == axis else k for i, k in enumerate(shape)))


TANGENT_RULES = {
    "matmul": _tangent_matmul,
    "transpose": _linear,
    "reshape": _linear,
    "sum": _linear,
    "mean": _linear,
    "max": _tangent_max,
    "broadcast_to": _linear,
    "sum_to": _linear,
    "route_to_max": _tangent_route,
    "logsumexp": _tangent_logsumexp,
    "log_softmax": _tangent_log_softmax,
    "softmax_cross_entropy": _tangent_cross_entropy,
    "softmax_cross_entropy_grad": _tangent_cross_entropy_grad,
    "affine": _tangent_affine,
    "sum_squares": _tangent_sum_squares,
    "getitem": _linear,
    "index_add": _linear,
    "pick": _tangent_gather,
    "pick_add": _tangent_gather,
    "take_along_axis": _tangent_gather,
    "add_along_axis": _tangent_gather,
    "concatenate": _tangent_joined,
    "stack": _tangent_joined,
}

# What each tensor gate's tangent is, in the comments' words
TANGENT_DOCS = {
    "matmul": "(x @ y)_t = x_t @ y + x @ y_t",
    "transpose": "linear: the tangent transposed",
    "reshape": "linear: the tangent reshaped",
    "sum": "linear: the tangent summed",
    "mean": "linear: the tangent averaged",
    "max": "the tangent at the largest entry",
    "broadcast_to": "linear: the tangent broadcast",
    "sum_to": "linear: the tangent summed back",
    "route_to_max": "linear in dout: the tangent routed to the max",
    "logsumexp": "sum(softmax(x) * x_t)",
    "log_softmax": "x_t - sum(softmax(x) * x_t)",
    "softmax_cross_entropy": "sum(dCE/dx * x_t) - sum(log_softmax(x) * y_t)",
    "softmax_cross_entropy_grad": "sum(y) * softmax * (x_t - sum(softmax * x_t)) + ...",
    "affine": "x_t @ W + x @ W_t + b_t",
    "sum_squares": "sum(2 * x * x_t)",
    "getitem": "linear: the tangent indexed",
    "index_add": "linear: the tangent added into zeros at the index",
    "pick": "linear: the tangent picked at the same entries",
    "pick_add": "linear: the tangent added at the same entries",
    "take_along_axis": "linear: the tangent taken at the same entries",
    "add_along_axis": "linear: the tangent added at the same entries",
    "concatenate": "linear: the tangents concatenated",
    "stack": "linear: the tangents stacked",
}


# ---------------------------------------------------------------- scheduling the tangent code


def _inlined(data: dict, consumers: int) -> bool:
    """Written where it is used: scalar constants, 2-D transposes, a tangent rule's one-use
    temporaries (matmul's two products, summed in one statement)."""
    if data["op"] == "const":
        return np.ndim(data["value"]) == 0 or not np.any(data["value"])
    if data["op"] == "transpose" and len(data["shape"]) <= 2:
        return True
    return data.get("role") == "tangent" and "tangent_of" not in data and consumers == 1


def schedule_tangents(h: nx.DiGraph) -> Program:
    """Order and name the statements of a graph that went through `tangents`: each value's
    statement followed by its tangent's, `<name>_t` for the tangent of `<name>`."""
    tangent_of = h.graph["tangent_of"]
    roots = [*h.graph["outputs"], *(tangent_of[o] for o in h.graph["outputs"] if o in tangent_of)]
    live = set(roots)
    stack = list(roots)
    while stack:
        for a in h.predecessors(stack.pop()):
            if a not in live:
                live.add(a)
                stack.append(a)
    topo = [n for n in topo_order(h) if n in live]
    at = {n: k for k, n in enumerate(topo)}
    place = {}
    for k, n in enumerate(topo):  # a tangent step is printed right after its gate
        gate = h.nodes[n].get("tangent_for")
        place[n] = (k, 0) if gate is None else (at[gate], 1 + k)
    order = sorted(topo, key=place.__getitem__)
    outputs = set(roots)
    consumers = {n: sum(c in live for c in h.successors(n)) for n in order}
    inline = {
        n
        for n in order
        if h.nodes[n]["op"] != "input" and n not in outputs and _inlined(h.nodes[n], consumers[n])
    }
    constants = [n for n in order if h.nodes[n]["op"] == "const" and n not in inline]
    statements = [
        n for n in order if n not in inline and h.nodes[n]["op"] not in ("input", "const")
    ]

    names: dict[int, str] = {}
    taken: set[str] = set()

    def give(n: int, preferred: str) -> None:
        base = name = sanitize(preferred)
        k = 2
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        names[n] = name
        taken.add(name)

    inputs = [*h.graph["inputs"], *h.graph["tangents"].values()]
    for i in inputs:
        give(i, h.nodes[i]["name"])
    for k, n in enumerate(constants, start=1):
        give(n, f"C{k}")
    out = h.graph["output"]
    for n in statements:
        data = h.nodes[n]
        if data.get("role") == "tangent" and "tangent_of" in data:
            give(n, names.get(data["tangent_of"], data["op"]) + "_t")
        elif data.get("role") == "tangent":  # a tangent rule's own step: named by its gate
            give(n, data["op"])
        else:
            give(n, data.get("hint") or ("out" if n == out else data["op"]))
    h.graph["inputs"] = inputs
    return Program(h, statements, [], names, inline, [], constants, order)
