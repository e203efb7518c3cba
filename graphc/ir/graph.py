"""The graph: a networkx DAG of gates, its validation and its deterministic order.

Stage: ir, the graph every pass reads and writes. Imports `ops`, `text` and `errors` only.

A graph is a `networkx.DiGraph` whose nodes are consecutive integers in creation order. Every node
has an `op` attribute: "input", "const" or a gate name from the table. An input has a `name`; a
constant a `value`; a tensor gate its static `params` (axis, shape, ...). The edge u -> v has
`pos`, the tuple of argument positions of v that u fills (x*x has one edge with pos (0, 1)).
`g.graph` holds `inputs` (input nodes in signature order), `output` and `name`.
"""

from __future__ import annotations

import heapq
import math
import numbers
import warnings

import networkx as nx
import numpy as np
import sympy
from sympy.core.function import AppliedUndef

from . import text
from .errors import GraphError
from .ops import (
    ARGS,
    GATES,
    MASK,
    MASKS,
    RESERVED_OPS,
    TENSOR,
    USER_GATES,
    GateName,
    gate_of,
    user_gate,
)
from .tensor import checked_params


def new_graph(name: str) -> nx.DiGraph:
    """An empty graph for a function called `name`."""
    return nx.DiGraph(name=name, inputs=[], output=None, next_id=0)


def add_node(g: nx.DiGraph, op: str, args=(), **attrs) -> int:
    """Add a node computing `op` of the argument nodes `args`; return its id."""
    if op == "const" and "value" in attrs:
        attrs["value"] = constant(attrs["value"])
    n = g.graph["next_id"]
    g.graph["next_id"] = n + 1
    positions: dict[int, tuple[int, ...]] = {}
    for pos, a in enumerate(args):
        positions[a] = positions.get(a, ()) + (pos,)
    succ = g._succ
    if (
        type(g) is not nx.DiGraph
        or hasattr(g, "frozen")
        or n in succ
        or not succ.keys() >= positions.keys()
    ):
        g.add_node(n, op=op, **attrs)  # networkx's own checks: a frozen graph, a node not there
        for a, pos in positions.items():  # one edge per argument node, in order of first use
            g.add_edge(a, n, pos=pos)
        return n
    # what g.add_node and g.add_edge do, on networkx's dicts (every pass adds nodes by the 100k)
    g._node[n] = {"op": op, **attrs}
    succ[n] = {}
    into = g._pred[n] = {}
    for a, pos in positions.items():  # one edge per argument node, in order of first use
        succ[a][n] = into[a] = {"pos": pos}
    if _clear_cache is not None:
        _clear_cache(g)  # networkx >= 3.3 caches results per graph; the dicts' views are live
    return n


_clear_cache = getattr(nx, "_clear_cache", None)  # absent before networkx 3.3


EXACT_INT = 2**53  # the largest whole numbers float64 holds exactly, all of them below


def constant(value):
    """A constant's value as graphc keeps it: a Python int below 2**53 in magnitude (printed as
    written: `x ** 2`), a Python float, or a NumPy array.

    A NumPy scalar becomes the Python number it holds. A larger int (2**70, a SymPy integer) or
    a fraction is the nearest float64, as NumPy converts a Python int for a float array; a number
    beyond float64's range (10**400) is inf, with NumPy's `RuntimeWarning: overflow encountered
    in cast`. So every constant that reaches the passes and the generated code is a float64.
    """
    if isinstance(value, np.generic):
        value = value.item()
    if type(value) is float or isinstance(value, (bool, np.ndarray)):
        return value
    if isinstance(value, numbers.Integral):
        value = int(value)
        if -EXACT_INT <= value <= EXACT_INT:
            return value
        try:
            return float(value)  # correctly rounded
        except OverflowError:
            return _overflow(value > 0, int(value.bit_length() * math.log10(2)))
    if isinstance(value, numbers.Real) and not isinstance(value, float):
        try:
            number = float(value)  # a Fraction, a SymPy Rational or Float
        except OverflowError:  # Python's Fraction raises where SymPy's Rational gives inf
            number = math.inf if value > 0 else -math.inf
        if math.isinf(number) and sympy.sympify(value).is_finite:
            return _overflow(number > 0, int(sympy.log(abs(sympy.sympify(value)), 10)))
        return number
    return value


def _overflow(positive: bool, digits: int) -> float:
    sign = "" if positive else "-"
    warnings.warn(
        f"overflow encountered in cast: a constant of about {sign}1e{digits} is beyond "
        f"float64's range and is {sign}inf",
        RuntimeWarning,
        stacklevel=4,
    )
    return math.inf if positive else -math.inf


def args_of(g: nx.DiGraph, n: int) -> list[int]:
    """The argument nodes of `n`, in argument order."""
    preds = g._pred[n]  # networkx's own adjacency dict: no view objects on this hot path
    if len(preds) == 1:  # the common case: one argument, or one value used in every slot
        for a, edge in preds.items():
            pos = edge.get("pos")
            return [a] * len(pos if type(pos) is tuple else _positions(g, n, pos))
    slots: dict[int, int] = {}
    for a, edge in preds.items():
        pos = edge.get("pos")
        for p in pos if type(pos) is tuple else _positions(g, n, pos):  # a tuple, as add_node
            slots[p] = a
    if len(slots) == 2:  # the next most common case: a binary gate
        return [slots[0], slots[1]]
    return [slots[p] for p in range(len(slots))]


def topo_order(g: nx.DiGraph) -> list[int]:
    """Topological order, ties broken by node id: the same graph always gives the same order.

    The order of `nx.lexicographical_topological_sort(g, key=int)` (Kahn's algorithm, the
    smallest ready node first), on graphc's integer node ids and networkx's own adjacency dicts:
    every pass sorts a graph of every gate, so this is kept to a heap of plain integers.
    """
    waiting = {n: len(preds) for n, preds in g._pred.items()}
    ready = [n for n, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order = []
    succ = g._succ
    while ready:
        n = heapq.heappop(ready)
        order.append(n)
        for s in succ[n]:
            waiting[s] -= 1
            if waiting[s] == 0:
                heapq.heappush(ready, s)
    if len(order) != len(waiting):
        raise GraphError("the graph has a cycle; a computation graph must be acyclic")
    return order


def user_order(g: nx.DiGraph) -> list[int]:
    """Topological order in the order the user wrote the statements: by node id (the order of
    tracing), a node that fusion made taking the place of the last statement it replaced (its
    `at`, see `passes.rewrite.replace`), ties broken by id. `topo_order` where nothing was fused.
    """
    place = {n: data["at"] for n, data in g._node.items() if "at" in data}
    if not place:
        return topo_order(g)
    waiting = {n: len(preds) for n, preds in g._pred.items()}
    ready = [(place.get(n, n), n) for n, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order = []
    succ = g._succ
    while ready:
        _, n = heapq.heappop(ready)
        order.append(n)
        for s in succ[n]:
            waiting[s] -= 1
            if waiting[s] == 0:
                heapq.heappush(ready, (place.get(s, s), s))
    if len(order) != len(waiting):
        raise GraphError("the graph has a cycle; a computation graph must be acyclic")
    return order


def copy_graph(g: nx.DiGraph) -> nx.DiGraph:
    """An unfrozen copy of `g`, as `g.copy()` makes it (graph, node and edge attribute dicts copied
    one level deep, nodes and edges in the same order), built on networkx's adjacency dicts
    directly: the passes copy graphs of every gate."""
    h = nx.DiGraph()
    h.graph.update(g.graph)
    succ: dict = {n: {} for n in g._node}
    pred: dict = {n: {} for n in g._node}
    for u, nbrs in g._succ.items():
        out = succ[u]
        for v, data in nbrs.items():
            out[v] = pred[v][u] = data.copy()
    h._node = {n: data.copy() for n, data in g._node.items()}
    h._adj = succ  # networkx sets _succ with it
    h._pred = pred
    return h


def arity(g: nx.DiGraph, n: int) -> int:
    op = g.nodes[n]["op"]
    return 0 if op in RESERVED_OPS else _gate(op).arity


def _gate(op):
    """The gate of a node's op: its own (`ops.GateName`), a built-in one, or, for a user gate's
    name written as text, the gate `gc.gate` defined under that name (None if none)."""
    return gate_of(op) or user_gate(op)


def normalize(g: nx.DiGraph) -> nx.DiGraph:
    """A validated copy of a graph built or loaded by hand, relabelled to graphc's conventions.

    Nodes become consecutive integers in deterministic topological order and edge positions
    become tuples, so the passes can rely on both. Only the attributes graphc reads are copied
    (`KEPT`), each checked by `validate`: anything else on a node (a `comment`, a `symbol`, a
    pass's bookkeeping) stays behind, so nothing unchecked from a file reaches the compiler.
    """
    validate(g)
    order = list(nx.lexicographical_topological_sort(g, key=_label_key))
    label = {n: i for i, n in enumerate(order)}
    h = new_graph(g.graph.get("name", "f"))
    for n in order:
        data = g.nodes[n]
        h.add_node(label[n], **{k: data[k] for k in KEPT[_kind(data["op"])] if k in data})
        if gate_of(data["op"]) is None and user_gate(data["op"]) is not None:
            h.nodes[label[n]]["op"] = GateName(user_gate(data["op"]))  # the gate, from now
        if data["op"] == "const":
            h.nodes[label[n]]["value"] = constant(data["value"])
        params = _params(g, n)
        if params is not None:  # a copy, in the form the rules read (tuples, not lists)
            h.nodes[label[n]]["params"] = params
        if data["op"] == "expr":  # a0, m0, ... made by hand become graphc's own symbols
            formula = data["formula"]
            h.nodes[label[n]]["formula"] = formula.xreplace(
                {s: _SYMBOLS[s.name] for s in formula.free_symbols}
            )
    for u, v, pos in g.edges(data="pos"):
        h.add_edge(label[u], label[v], pos=_positions(g, v, pos))
    h.graph.update(inputs=[label[i] for i in g.graph["inputs"]], output=label[g.graph["output"]])
    h.graph["next_id"] = len(order)
    return h


# The node attributes graphc reads, by kind of node; `normalize` copies these alone
KEPT = {
    "input": ("op", "name"),
    "const": ("op", "value", "hint"),
    "gate": ("op", "hint", "gate"),  # `params` (tensor gates) and `formula` (expr) are read apart
}


def _kind(op: str) -> str:
    return op if op in RESERVED_OPS else "gate"


_SYMBOLS = {s.name: s for s in ARGS + MASKS}


def _label_key(n) -> tuple:
    """Integer labels in numeric order (graphc's own graphs keep their order, so a graph saved
    and loaded back computes bit for bit the same), then any others by their text."""
    if isinstance(n, numbers.Integral) and not isinstance(n, bool):
        return (0, int(n), "")
    return (1, 0, str(n))


def validate(g: nx.DiGraph) -> nx.DiGraph:
    """Check that `g` is a graph graphc can compile; raise GraphError saying what is wrong.

    Each field is checked for its type before it is used, so a malformed graph is a GraphError
    naming the node (or edge) and the field, never another exception. Checks: the graph's
    `name`, `inputs` and `output`; every node's `op` a known gate (or input, const), an input's
    `name` and any node's `hint` names by `text.name`'s rule, a `gate` label text, a const's
    `value` real numbers; every edge's `pos`; a DAG; every gate with its arity and argument
    positions 0..n-1, tensor gates with their params, masks (comparisons) only where a mask is
    needed. Returns `g` for chaining.
    """
    if not isinstance(g, nx.DiGraph) or g.is_multigraph():
        raise GraphError(f"expected a networkx.DiGraph, got {type(g).__name__}")
    if "name" in g.graph:
        text.name(g.graph["name"], "the graph's 'name' (g.graph['name'])")
    for n, data in g.nodes(data=True):
        _check_fields(n, data)
    for u, v, pos in g.edges(data="pos", default=None):
        _checked_positions(u, v, pos)
    if not nx.is_directed_acyclic_graph(g):
        cycle = " -> ".join(repr(u) for u, _ in nx.find_cycle(g))
        raise GraphError(
            f"the graph has a cycle through nodes {cycle}; a computation graph must be acyclic"
        )
    for n, data in g.nodes(data=True):
        op = data["op"]
        positions = sorted(p for _, _, pos in g.in_edges(n, data="pos") for p in pos_tuple(pos))
        want = _expr_arity(g, n, positions) if op == "expr" else arity(g, n)
        if want == -1:  # a gate of any number of arguments (concatenate, stack): one or more
            want = max(len(positions), 1)
        if positions != list(range(want)):
            raise GraphError(
                f"node {n!r} ({op}) takes {want} argument(s) but its incoming edges fill positions "
                f"{positions}; give each argument edge a 'pos' attribute, one edge per argument"
            )
        _params(g, n)
    for n in g:
        _check_masks(g, n)
    _check_ends(g)
    return g


def _check_fields(n, data: dict) -> None:
    """A node's own fields, each of the right type (see `validate`)."""
    op = data.get("op")
    if op is None:
        raise GraphError(
            f"node {n!r} has no 'op' attribute; give every node op='input', 'const' or a gate name"
        )
    if not isinstance(op, str):
        raise GraphError(
            f"node {n!r}: its 'op' must be a string, 'input', 'const' or a gate name, got "
            f"{type(op).__name__} {text.shown(op)}"
        )
    if op not in RESERVED_OPS and _gate(op) is None:
        known = ", ".join(sorted({*GATES, *USER_GATES}))
        raise GraphError(f"node {n!r} has unknown op {text.shown(op)}; known gates: {known}")
    if op == "input":
        text.name(data.get("name"), f"input node {n!r}: its 'name'")
    if "hint" in data:
        text.name(data["hint"], f"node {n!r} ({op}): its 'hint' (a variable name)")
    if "gate" in data and not isinstance(data["gate"], str):
        raise GraphError(
            f"node {n!r} ({op}): its 'gate' (the gate's label) must be a string, got "
            f"{type(data['gate']).__name__} {text.shown(data['gate'])}"
        )
    if op == "const":
        if "value" not in data:
            raise GraphError(f"const node {n!r} has no 'value' attribute")
        value = data["value"]
        try:  # a real number of any size is a float64 to graphc (10**400 is inf, see `constant`)
            kind = (
                "f"
                if _real_number(value) and not isinstance(value, bool)
                else np.asarray(value).dtype.kind
            )
        except (ValueError, TypeError, OverflowError):  # a ragged list, say
            kind = None
        if kind is None or kind not in "iuf":  # booleans are masks' business, as in tracing
            raise GraphError(
                f"const node {n!r} holds {text.shown(data['value'])} in its 'value'; constants "
                "must be real numbers: a number (not a bool), or a list of them with one shape "
                "(not ragged)"
            )


def _checked_positions(u, v, pos) -> tuple[int, ...]:
    """An edge's `pos`: an argument position (an int >= 0) or a list of them, else GraphError."""
    if pos is None:
        raise GraphError(
            f"the edge {u!r} -> {v!r} has no 'pos' attribute (the argument position it fills)"
        )
    positions = pos_tuple(pos)
    if positions is None or not positions:
        raise GraphError(
            f"the edge {u!r} -> {v!r}: its 'pos' must be an argument position (an int >= 0) or "
            f"a list of them, got {type(pos).__name__} {text.shown(pos)}"
        )
    return positions


def pos_tuple(pos) -> tuple[int, ...] | None:
    """An edge's `pos` as a tuple of non-negative ints, or None if it is not one or a list of
    them (booleans, floats, text and nested lists are not)."""
    if _is_position(pos):
        return (int(pos),)
    if isinstance(pos, (list, tuple)) and all(_is_position(p) for p in pos):
        return tuple(int(p) for p in pos)
    return None


def _is_position(p) -> bool:
    return isinstance(p, numbers.Integral) and not isinstance(p, (bool, np.bool_)) and p >= 0


def _check_ends(g: nx.DiGraph) -> None:
    """The graph's `inputs` (input nodes in signature order) and `output`."""
    inputs, output = g.graph.get("inputs"), g.graph.get("output")
    if not isinstance(inputs, (list, tuple)) or not all(_is_node(g, i) for i in inputs):
        raise GraphError(
            "g.graph['inputs'] must list the graph's input nodes in signature order, got "
            f"{text.shown(inputs)}"
        )
    if any(g.nodes[i]["op"] != "input" for i in inputs):
        raise GraphError("g.graph['inputs'] must list the graph's input nodes in signature order")
    if len(set(inputs)) != len(inputs) or set(inputs) != {
        n for n, op in g.nodes(data="op") if op == "input"
    }:
        raise GraphError("g.graph['inputs'] must list every input node exactly once")
    names = [g.nodes[i]["name"] for i in inputs]
    if len(set(names)) != len(names):
        raise GraphError(f"input names must be distinct, got {names}")
    if not _is_node(g, output):
        raise GraphError(
            "g.graph['output'] must name the node whose value the function returns, got "
            f"{text.shown(output)}"
        )
    if _is_mask(g, output):
        raise GraphError(
            f"the output, node {output!r} ({g.nodes[output]['op']}), is a comparison mask, not a "
            "number; return a number, e.g. a 'where' node that selects between two values"
        )


def _is_node(g: nx.DiGraph, n) -> bool:
    try:
        return n in g
    except TypeError:  # unhashable: a list, a dict
        return False


def _real_number(value) -> bool:
    """A Python or SymPy real number of any size (10**400 is inf to graphc, see `constant`)."""
    return isinstance(value, numbers.Real) and not isinstance(value, complex)


def _params(g: nx.DiGraph, n) -> dict | None:
    """A tensor gate's params, checked and read (None for other nodes)."""
    op = g.nodes[n]["op"]
    gate = _gate(op)
    if gate is None or gate.kind != TENSOR:
        return None
    try:
        return checked_params(op, gate.params, g.nodes[n].get("params", {}))
    except GraphError as e:
        raise GraphError(f"node {n!r} ({op}): {e}") from None


def _is_mask(g: nx.DiGraph, n) -> bool:
    gate = _gate(g.nodes[n].get("op"))
    return gate is not None and gate.kind == MASK


def _expr_arity(g: nx.DiGraph, n, positions: list[int]) -> int:
    """An "expr" node (a fused gate) takes as many arguments as its edges give; its formula
    must be a SymPy expression over those arguments' symbols (a0, a1, ..., m0, ... for masks)."""
    want = len(positions)
    formula = g.nodes[n].get("formula")
    if isinstance(formula, str):
        raise GraphError(
            f"node {n!r} (expr) holds its formula as text ({formula!r}); graphc does not parse "
            "formulas from files: save the graph before elementwise fusion and fuse it after "
            "loading"
        )
    if not isinstance(formula, sympy.Expr):
        raise GraphError(
            f"node {n!r} (expr) needs a 'formula', a SymPy expression over its arguments "
            f"a0, a1, ... (m0, m1, ... for masks), got {formula!r}; build it with sympy"
        )
    unknown = sorted({str(f.func) for f in formula.atoms(AppliedUndef)})
    if unknown:  # printed, its name would be code: only functions graphc knows are printed
        raise GraphError(
            f"node {n!r} (expr): its formula calls {unknown}, which are no functions graphc "
            "knows; build formulas from SymPy's functions and graphc's gates"
        )
    allowed = {s.name for s in ARGS[:want] + MASKS[:want]}
    stray = sorted(s.name for s in formula.free_symbols if s.name not in allowed)
    if stray:
        raise GraphError(
            f"node {n!r} (expr): its formula {formula} uses {stray}, but the node has {want} "
            "argument(s); use a<i> or m<i> for the argument at position i"
        )
    return want


def _mask_positions(g: nx.DiGraph, n) -> set[int]:
    """The argument positions of node n that take a mask (where's condition, an expr's m<i>)."""
    data = g.nodes[n]
    if data["op"] == "expr":
        used = {s.name for s in data["formula"].free_symbols}
        return {i for i, m in enumerate(MASKS) if m.name in used}
    return set(_gate(data["op"]).nondiff)


def _check_masks(g: nx.DiGraph, n) -> None:
    """Masks only select: a comparison may fill, and must fill, the positions that take a mask
    (the condition of 'where'); everywhere else arguments are numbers."""
    op = g.nodes[n]["op"]
    if op in RESERVED_OPS:
        return
    nondiff = _mask_positions(g, n)
    for a, _, pos in g.in_edges(n, data="pos"):
        for p in _positions(g, n, pos):
            if _is_mask(g, a) and p not in nondiff:
                raise GraphError(
                    f"node {a!r} ({g.nodes[a]['op']}) is a comparison mask but fills argument "
                    f"position {p} of node {n!r} ({op}), which takes a number; masks only select, "
                    "as the condition (position 0) of a 'where' node"
                )
            if p in nondiff and not _is_mask(g, a):
                raise GraphError(
                    f"node {n!r} ({op}) needs a comparison mask (an lt, le, gt or ge node) at "
                    f"argument position {p}, got node {a!r} ({g.nodes[a].get('op')}); compare two "
                    "values with one of those gates and pass its result"
                )


def _positions(g, n, pos):
    if type(pos) is tuple:
        return pos
    positions = None if pos is None else pos_tuple(pos)
    if not positions:
        raise GraphError(
            f"an edge into node {n!r} has no 'pos' attribute (the argument position it fills), "
            f"or one that is not an int >= 0 or a list of them: {text.shown(pos)}"
        )
    return positions


def index_inputs(g: nx.DiGraph) -> tuple[str, ...]:
    """The names of the inputs that index (the integer `y` of `scores[gc.arange(N), y]`): they
    stay integers and get no gradient. GraphError where one is also used as a number."""
    found = []
    for i in g.graph.get("inputs", ()):
        uses = set()
        for _, s, pos in g.out_edges(i, data="pos"):
            gate = _gate(g.nodes[s]["op"])
            indices = getattr(gate, "indices", ())
            uses.update(p in indices for p in _positions(g, s, pos))
        if True in uses and False in uses:
            name = g.nodes[i]["name"]
            raise GraphError(
                f"input {name!r} is used both as an index and as a number; an index takes "
                f"integers and gets no gradient: pass the number as another input"
            )
        if True in uses:
            found.append(g.nodes[i]["name"])
    return tuple(found)
