"""Scheduling: which nodes become statements, in what order, under which names.

Stage: passes (graph with gradients -> `Program`). Imports the `ir` only.

Dead nodes are dropped; cheap views and scalar constants are written inside the statement that
uses them; every other node is one statement. Names carry meaning: inputs keep the user's names,
intermediates take the traced function's local names (else their gate's name), gradients are
`d<name>`, and a gradient that is only summed into gets the same name back (`dx = dx + ...`).
The forward cache holds exactly the forward values the backward statements read.
"""

from __future__ import annotations

import builtins
import keyword
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from ..ir import text
from ..ir.graph import args_of, user_order
from ..ir.special import HELPERS

# Every fixed name a generated module uses for itself, by module. A user's name (an input, a hint)
# that is one of these gets a trailing underscore in code (`np` -> `np_`), so no user name can
# ever stand for a generated one. A printer that introduces a name of its own lists it here, or
# makes it unique among the program's names (`fresh`: numba's loop index and arrays, the values
# module's temporaries, the float path's `_np_exp`).
OWN_NAMES = {
    "module": ("np", "forward", "backward", "value_and_grad", "cache", *HELPERS),
    "values": ("all_values", "values"),  # codegen.emit_values_module
    "floats": (  # scalar.py's entries and their namespace
        "_args", "_kwargs", "_result", "_checked", "_positional", "_numpy_value",
        "_numpy_value_and_grad", "_absent", "_twice", "_otherwise", "_more", "_unknown",
    ),
    "numba": ("numba", "_elements", "_summed"),  # numba_backend's module
}  # fmt: skip

RESERVED = (
    set(keyword.kwlist)
    | set(keyword.softkwlist)
    | set(dir(builtins))
    | {name for names in OWN_NAMES.values() for name in names}
)


@dataclass
class Program:
    """A scheduled graph: ordered statements (node ids) with names, ready to print."""

    graph: nx.DiGraph
    forward: list[int]
    backward: list[int]
    names: dict[int, str]
    inline: set[int]
    cache: list[int]
    constants: list[int] = field(default_factory=list)
    order: list[int] = field(default_factory=list)  # every live node, in topological order

    @property
    def inputs(self) -> list[int]:
        return self.graph.graph["inputs"]

    @property
    def output(self) -> int:
        return self.graph.graph["output"]

    @property
    def seed(self) -> int:
        return self.graph.graph["seed"]

    @property
    def grads(self) -> list[int]:
        return list(self.graph.graph["grads"].values())


def _live(g: nx.DiGraph) -> set[int]:
    """Nodes the output or a returned gradient depends on (dead-code elimination)."""
    roots = [g.graph["output"], *g.graph["grads"].values()]
    live = set(roots)
    stack = list(roots)
    while stack:
        for a in g.predecessors(stack.pop()):
            if a not in live:
                live.add(a)
                stack.append(a)
    return live


def _inlined(g: nx.DiGraph, n: int, consumers: int) -> bool:
    data = g._node[n]
    op = data["op"]
    if op == "const":
        return np.ndim(data["value"]) == 0 or not np.any(data["value"])
    if op == "transpose" and len(data["shape"]) <= 2:
        return True  # x.T is a view: write it where it is used
    if data.get("role") != "grad" or consumers != 1:
        return False
    return bool(data.get("inline")) or ("grad_of" not in data and "grad_for" not in data)


def sanitize(name: str) -> str:
    """A usable variable name: a keyword, a builtin or a name in OWN_NAMES gets a trailing `_`.

    `name` must be one `text.name` lets through; anything else is refused here too, so no
    text but a plain identifier ever becomes a variable.
    """
    text.name(name, "a variable name")
    while name in RESERVED:
        name += "_"
    return name


def fresh(preferred: str, taken: set[str]) -> str:
    """`preferred`, or `preferred_2`, `preferred_3`, ...: the first not in `taken` (added to it)
    and not reserved. For the names a printer makes up besides the program's own."""
    k, name = 2, preferred
    while name in taken or name in RESERVED:
        name, k = f"{preferred}_{k}", k + 1
    taken.add(name)
    return name


# Forward arithmetic a fused module writes as one expression (`expressions=True`)
ARITHMETIC = ("add", "sub", "mul", "neg")


def _in_expression(g: nx.DiGraph, n: int, live: set[int]) -> bool:
    """Whether forward step n is arithmetic read once, by more arithmetic, and by nothing else:
    a step of `w0 * x0 + w1 * x1 + w2` that no gradient reads and the user did not name."""
    data = g.nodes[n]
    if data["op"] not in ARITHMETIC or "hint" in data or data.get("role") in ("grad", "seed"):
        return False
    users = [c for c in g.successors(n) if c in live]
    if len(users) != 1:
        return False
    user = g.nodes[users[0]]
    return user["op"] in ARITHMETIC and user.get("role") not in ("grad", "seed")


def schedule(g: nx.DiGraph, expressions: bool = False) -> Program:
    """Order, inline and name the statements of a graph that went through `backward`.

    `expressions=True` (fused modules): forward arithmetic read once by more arithmetic is
    written into its reader, so `w0 * x0 + w1 * x1 + w2` is one statement, as in DESIGN.md's
    fused neuron, and NumPy reuses its temporaries; each gate still has one statement otherwise.
    """
    live = _live(g)
    order = [n for n in user_order(g) if n in live]  # as written, fused gates in their place
    args = {n: args_of(g, n) for n in order}  # read once: every step below looks at arguments
    out = g.graph["output"]
    inline = {
        n
        for n in order
        if g._node[n]["op"] != "input"
        and n != out
        and (
            _inlined(g, n, sum(c in live for c in g._succ[n]))
            or (expressions and _in_expression(g, n, live))
        )
    }
    is_grad = {n: g._node[n].get("role") in ("grad", "seed") for n in order}
    constants = [n for n in order if g._node[n]["op"] == "const" and n not in inline]
    statements = [
        n for n in order if n not in inline and g._node[n]["op"] not in ("input", "const")
    ]
    forward = [n for n in statements if not is_grad[n]]
    backward = sorted((n for n in statements if is_grad[n]), key=int)

    # which statement reads each value, looking through inlined expressions
    readers: dict[int, set[int]] = {n: set() for n in order}
    for s in statements:
        stack = list(args[s])
        while stack:
            a = stack.pop()
            readers[a].add(s)
            if a in inline:
                stack.extend(args[a])

    names: dict[int, str] = {}
    holder: dict[str, int] = {}
    suffix: dict[str, int] = {}  # the next number to try per base name: naming stays linear

    def give(n: int, preferred: str, may_take_over: bool = False) -> None:
        base = sanitize(preferred)
        current = holder.get(base)
        reusable = (
            current is not None
            and may_take_over
            and is_grad.get(current, False)
            and readers[current] == {n}
            and current not in g.graph["grads"].values()
        )
        name = base
        if name in holder and not reusable:
            k = suffix.get(base, 2)
            while name in holder or name in RESERVED:
                name = f"{base}{k}" if base.endswith("_") else f"{base}_{k}"
                k += 1
            suffix[base] = k
        names[n] = name
        holder[name] = n

    for i in g.graph["inputs"]:
        give(i, g._node[i]["name"])
    for k, n in enumerate(constants, start=1):
        give(n, f"C{k}")
    for n in forward:
        data = g._node[n]
        give(n, data.get("hint") or ("out" if n == out else data["op"]))
    named_output = out in names and g._node[out]["op"] != "input"
    give(g.graph["seed"], "d" + names[out] if named_output else "dout")
    for n in backward:
        data = g._node[n]
        target = data.get("grad_of", data.get("grad_for"))
        if "same_name_as" in data and data["same_name_as"] in names:
            give(n, names[data["same_name_as"]], may_take_over=True)
        elif target is None:
            give(n, "shared" if "shared_by" in data else "t", may_take_over=True)
        else:
            give(n, "d" + names.get(target, g._node[target]["op"]), may_take_over=True)

    in_backward = set(backward)
    cache = [
        n
        for n in [*g.graph["inputs"], *forward]
        if n not in inline and not readers.get(n, set()).isdisjoint(in_backward)
    ]  # the named values backward statements read, looking through inlined expressions
    return Program(g, forward, backward, names, inline, cache, constants, order)
