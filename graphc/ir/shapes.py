"""Shape inference: the shape of every node, given the shapes of the inputs.

Stage: ir (graph -> graph with shapes). Imports `ops`, `graph` and `errors`.

Code is generated for the shapes of a call, so the backward pass knows where broadcasting
happened and which axes to sum back, and a shape error is reported at the gate that causes it,
naming both shapes, before any NumPy runs.

Sizes, though, are not baked in. A call's *size pattern* is what the code depends on: the ranks,
which dimensions are 0 or 1, and which dimensions are equal to each other. The compiler works on
*probe* shapes, where each class of equal dimensions is an unmistakable number (`probe_sizes`),
and the printer writes each such number as a read of an argument's shape (`emit.sizes`), so one
module serves every call of the pattern: batches of 64, 64, ..., 37 compile once.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np

from .graph import args_of, copy_graph, topo_order
from .ops import TENSOR, broadcast_shape, gate_of


def node_shape(g: nx.DiGraph, n: int, args: list[int] | None = None) -> tuple[int, ...]:
    """The shape of node `n` from its arguments' shapes (which must already be known); `args`
    are n's arguments, where the caller has them at hand."""
    data = g._node[n]
    op = data["op"]
    if op == "const":
        return tuple(np.shape(data["value"]))
    gate = gate_of(op)
    shapes = [g._node[a]["shape"] for a in (args_of(g, n) if args is None else args)]
    if gate.kind == TENSOR:
        return tuple(gate.shape(shapes, data.get("params", {})))
    if all(s == shapes[0] for s in shapes):  # no broadcasting: the common case, kept cheap
        return shapes[0]
    return broadcast_shape(data.get("gate", op), shapes)


def infer_shapes(g: nx.DiGraph, input_shapes: dict[str, tuple[int, ...]]) -> nx.DiGraph:
    """A copy of `g` whose nodes carry `shape`; ShapeError at the first gate that cannot work."""
    h = copy_graph(g)
    for n in topo_order(h):
        data = h._node[n]
        data["shape"] = (
            tuple(input_shapes[data["name"]]) if data["op"] == "input" else node_shape(h, n)
        )
    return h


# ---------------------------------------------------------------- size patterns and probes

PROBE_SHIFT = 24  # a probe size is real << PROBE_SHIFT | tag: ordered as the real sizes are
PROBE_LIMIT = 2**53  # every probe stays an exact float64 (SymPy prints it as an integer)
FIXED_SIZES = (
    0,
    1,
)  # sizes that are part of the pattern: broadcasting and emptiness depend on them


@dataclass(frozen=True)
class Sizes:
    """The sizes of one call as classes: `probe[name]` is the input's probe shape, `real` maps each
    probe size to the call's size, `letters` to the letter the module's docstring calls it."""

    probe: dict[str, tuple[int, ...]]
    real: dict[int, int]
    letters: dict[int, str]

    def of(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """A probe shape as the shape of the call the probes were made from."""
        return tuple(self.real.get(d, d) for d in shape)


LETTERS = "NDCHKMPQRSTUVWXYZ"  # the docstring's names for sizes, in order of first appearance


def size_pattern(shapes) -> tuple:
    """What a module depends on besides dtypes: each shape with its sizes replaced by the
    class of equal sizes they belong to (0 and 1 kept as they are). Shapes (5, 4), (4,) and
    (7, 4), (4,) share a pattern; (4, 4), (4,) does not."""
    classes: dict[int, int] = {}
    return tuple(
        tuple(d if d in FIXED_SIZES else ~classes.setdefault(d, len(classes)) for d in shape)
        for shape in shapes
    )


def probe_sizes(shapes: dict[str, tuple[int, ...]]) -> Sizes | None:
    """Probe shapes for a call's input shapes; None where no size can vary (all scalars, or a
    size too large to probe, which then stays specialised)."""
    real: dict[int, int] = {}
    probe_of: dict[int, int] = {}
    for shape in shapes.values():
        for d in shape:
            if d in FIXED_SIZES or d in probe_of:
                continue
            probe = (d << PROBE_SHIFT) | (len(probe_of) + 2)
            if probe >= PROBE_LIMIT or len(probe_of) + 2 >= 1 << PROBE_SHIFT:
                return None
            probe_of[d] = probe
            real[probe] = d
    if not real:
        return None
    probe = {k: tuple(probe_of.get(d, d) for d in s) for k, s in shapes.items()}
    letters = {}
    for p in real:  # in order of first appearance
        letters[p] = LETTERS[len(letters)] if len(letters) < len(LETTERS) else f"n{len(letters)}"
    return Sizes(probe, real, letters)


def real_size(d: int) -> int:
    """The call's size for a probe size (for heuristics that weigh sizes, not for code)."""
    return d >> PROBE_SHIFT if d >= 1 << PROBE_SHIFT else d
