"""Shape inference: the shape of every node, given the shapes of the inputs.

Stage: ir (graph -> graph with shapes). Imports `ops`, `graph` and `errors`.

Code is generated for the shapes of a call (the function object caches one module per signature),
so the backward pass knows where broadcasting happened and which axes to sum back, and a shape
error is reported at the gate that causes it, naming both shapes, before any NumPy runs.
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from .graph import args_of, copy_graph, topo_order
from .ops import TENSOR, broadcast_shape, gate_of


def node_shape(g: nx.DiGraph, n: int, args: list[int] | None = None) -> tuple[int, ...]:
    """The shape of node `n` from its arguments' shapes (which must already be known); `args`
    are n's arguments, where the caller has them at hand."""
    data = g.nodes[n]
    op = data["op"]
    if op == "const":
        return tuple(np.shape(data["value"]))
    gate = gate_of(op)
    shapes = [g.nodes[a]["shape"] for a in (args_of(g, n) if args is None else args)]
    if gate.kind == TENSOR:
        return tuple(gate.shape(shapes, data.get("params", {})))
    if all(s == shapes[0] for s in shapes):  # no broadcasting: the common case, kept cheap
        return shapes[0]
    return broadcast_shape(data.get("gate", op), shapes)


def infer_shapes(g: nx.DiGraph, input_shapes: dict[str, tuple[int, ...]]) -> nx.DiGraph:
    """A copy of `g` whose nodes carry `shape`; ShapeError at the first gate that cannot work."""
    h = copy_graph(g)
    for n in topo_order(h):
        data = h.nodes[n]
        data["shape"] = (
            tuple(input_shapes[data["name"]]) if data["op"] == "input" else node_shape(h, n)
        )
    return h
