"""The backward pass as a graph of its own: gradients as the outputs of a forward graph.

Stage: passes (graph with gradients -> graph). Imports the `ir` only.

`backward` adds gradient nodes to the forward graph; `gradient_graph` takes those that the
requested gradients depend on, with the forward values they read, and makes them an ordinary
graph of the same inputs: the seed `dout` becomes the constant 1 (ones shaped like the output,
for the gradient of its sum), each gradient node an ordinary gate (`dout * local` as an "expr"
node, the additions at forks, the unbroadcast sums), named `d<value>` as the generated code
names it. Such a graph is compiled, fused, drawn and differentiated like any other, so second
derivatives (and third, ...) come from the same backward pass.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import sympy

from ..ir.errors import ShapeError
from ..ir.graph import add_node, args_of, new_graph, topo_order
from ..ir.ops import ARGS, gate_of

# the attributes a gradient graph's node keeps: what a traced graph's nodes carry
KEPT = ("name", "value", "params", "formula", "hint", "gate", "copy")


def gradient_graph(h: nx.DiGraph, wrt: list[int], name: str) -> nx.DiGraph:
    """A graph of `h`'s inputs whose output is the gradient of input `wrt[0]` (with several,
    `graph["outputs"]` lists them all), from `h`, a shaped graph that went through `backward`.

    The result is specialised to `h`'s shapes (`graph["shapes"]`): where the forward graph
    broadcast, its gradient sums over the axes those shapes give.
    """
    grads = h.graph["grads"]
    seed = h.graph["seed"]
    output = h.graph["output"]
    roots = [grads[i] for i in wrt]
    live = set(roots) | set(h.graph["inputs"])
    stack = list(roots)
    while stack:
        for a in h.predecessors(stack.pop()):
            if a not in live:
                live.add(a)
                stack.append(a)
    g = new_graph(name)
    new: dict[int, int] = {}
    for i in h.graph["inputs"]:
        new[i] = add_node(g, "input", name=h.nodes[i]["name"])
    g.graph["inputs"] = [new[i] for i in h.graph["inputs"]]
    shape = h.nodes[output]["shape"]
    for n in topo_order(h):
        if n not in live or n in new or n == seed:
            continue
        data = h.nodes[n]
        attrs = {k: data[k] for k in KEPT if k in data}
        target = data.get("grad_of", data.get("grad_for"))
        if "hint" not in attrs and target is not None:
            attrs["hint"] = "d" + _name(h, target)
        if data["op"] == "expr" and "gate" not in attrs:
            attrs["gate"] = _label(h, data)
        args = args_of(h, n)
        if data["op"] == "expr" and seed in args and not shape:  # dout * local, with dout = 1
            attrs["formula"], args = _seeded(data["formula"], args, seed)
        if data["op"] == "expr" and not args:  # a constant: 1 passed through
            new[n] = add_node(g, "const", value=float(attrs["formula"]), hint=attrs.get("hint"))
            continue
        if seed in args and seed not in new:  # the gradient of the output itself (of its sum)
            new[seed] = add_node(g, "const", value=np.ones(shape) if shape else 1.0, hint="dout")
        new[n] = add_node(g, data["op"], [new[a] for a in args], **attrs)
    if seed in roots and seed not in new:  # f = x: the gradient is the seed itself
        new[seed] = add_node(g, "const", value=np.ones(shape) if shape else 1.0, hint="dout")
    g.graph["output"] = new[roots[0]]
    g.graph["outputs"] = [new[r] for r in roots]
    g.graph["shapes"] = {h.nodes[i]["name"]: h.nodes[i]["shape"] for i in h.graph["inputs"]}
    return g


def _seeded(formula: sympy.Expr, args: list[int], seed: int):
    """An "expr" node's formula with the scalar seed written in as 1, over its other arguments."""
    j = args.index(seed)
    rest = [a for a in args if a != seed]
    swap = {ARGS[j]: sympy.S.One}
    swap.update({ARGS[k]: ARGS[rest.index(a)] for k, a in enumerate(args) if a != seed})
    return formula.xreplace(swap), rest


def _name(h: nx.DiGraph, n: int) -> str:
    data = h.nodes[n]
    if data["op"] == "input":
        return data["name"]
    return data.get("hint") or ("out" if n == h.graph["output"] else data["op"])


def _label(h: nx.DiGraph, data: dict) -> str:
    """A gradient step's gate symbol: the gate it goes back through, with a prime (`*'`)."""
    gate = data.get("grad_gate")
    if gate is None:
        return "d"
    fwd = h.nodes[gate]
    row = gate_of(fwd["op"])
    return f"{fwd.get('gate') or (row.symbol if row is not None else fwd['op'])}'"


def check_shapes(g: nx.DiGraph, shapes: dict) -> None:
    """A gradient graph is specialised to the shapes it was built for (see `gradient_graph`)."""
    built = g.graph.get("shapes")
    if built is None:
        return
    given = {k: tuple(v) for k, v in shapes.items()}
    if given != {k: tuple(v) for k, v in built.items()}:
        raise ShapeError(
            f"{g.graph['name']} is a gradient built for inputs shaped {built}; got {given}. "
            "Make it again for these shapes: f.gradient(name, **example_inputs)"
        )
