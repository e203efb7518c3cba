"""Forward mode and second derivatives: the compiler's other sequences.

Stage: top. Sequences the wings, like `compiler`, for what `Function.jvp`, `Function.hvp`,
`Function.gradient` and `gc.hessian` compute:

    jvp:       infer_shapes -> forward.tangents -> forward.schedule_tangents -> emit.jvp
    gradient:  infer_shapes -> autodiff.backward -> gradient.gradient_graph   (a graph again)
    hvp:       the gradient graph of every input, then jvp along v: forward-over-reverse

Nothing here draws, parses arguments or writes files.
"""

from __future__ import annotations

import types
from dataclasses import dataclass

import networkx as nx
import numpy as np

from . import __version__
from .emit.codegen import load_module
from .emit.jvp import emit_jvp_module, emit_jvp_values_module
from .ir.errors import InputError
from .ir.shapes import infer_shapes
from .passes.autodiff import backward
from .passes.forward import schedule_tangents, tangents
from .passes.gradient import check_shapes, gradient_graph
from .passes.schedule import sanitize


@dataclass
class CompiledJvp:
    """One forward-mode specialisation: its source and module."""

    source: str
    module: types.ModuleType
    along: tuple[str, ...]  # the inputs with a tangent, in signature order


def compile_jvp(g: nx.DiGraph, shapes: dict, along: tuple[str, ...]) -> CompiledJvp:
    """The tangent module of graph `g` at input `shapes`, with tangents for the inputs `along`;
    for a graph with several `outputs` (a gradient graph), `jvp` returns all of them."""
    check_shapes(g, shapes)
    shaped = infer_shapes(g, shapes)
    node_of = {shaped.nodes[i]["name"]: i for i in shaped.graph["inputs"]}
    program = schedule_tangents(tangents(shaped, [node_of[k] for k in along]))
    title = f"{g.graph['name']}({', '.join(node_of)})"
    source = emit_jvp_module(program, title, __version__)
    return CompiledJvp(source, load_module(source, sanitize(g.graph["name"]) + "_jvp"), along)


def jvp_values(g: nx.DiGraph, shapes: dict, along: tuple[str, ...], args: list):
    """The graph with tangents and every value and tangent its tangent code computes at `args`
    (the inputs, then the tangents of `along`), by node id: what forward-mode pictures show."""
    check_shapes(g, shapes)
    shaped = infer_shapes(g, shapes)
    node_of = {shaped.nodes[i]["name"]: i for i in shaped.graph["inputs"]}
    program = schedule_tangents(tangents(shaped, [node_of[k] for k in along]))
    module = load_module(emit_jvp_values_module(program), "jvp_values")
    with np.errstate(all="ignore"):  # an overflow is drawn on its wire, not warned about
        return program, module.all_values(*args)


def gradient_of(g: nx.DiGraph, shapes: dict, names: tuple[str, ...], name: str) -> nx.DiGraph:
    """The graph computing the gradients of `names` (its outputs, in that order) of `g` at
    input `shapes`: the backward pass as a forward graph."""
    check_shapes(g, shapes)
    shaped = infer_shapes(g, shapes)
    node_of = {shaped.nodes[i]["name"]: i for i in shaped.graph["inputs"]}
    wrt = [node_of[k] for k in names]
    return gradient_graph(backward(shaped, wrt), wrt, name)


def tangent_values(given: dict, inputs: tuple[str, ...], values: dict, caller: str) -> dict:
    """The tangents by name, checked: inputs of the function, shaped like them, real."""
    unknown = [k for k in given if k not in inputs]
    if unknown:
        raise InputError(
            f"{caller}: {unknown} are not inputs; tangents are given for inputs of {list(inputs)}"
        )
    out = {}
    for k in inputs:
        if k not in given:
            continue
        t = given[k]
        arr = np.asarray(t)
        if arr.dtype.kind not in "iuf":
            raise InputError(f"{caller}: the tangent of {k!r} must be real numbers")
        shape = np.shape(values[k])
        if arr.shape != shape:
            try:
                arr = np.broadcast_to(arr, shape)
            except ValueError:
                raise InputError(
                    f"{caller}: the tangent of {k!r} is shaped {arr.shape}; {k} is {shape}"
                ) from None
        out[k] = float(arr) if shape == () and not isinstance(values[k], np.ndarray) else arr
    return out


def hessian(f, /, *args, **inputs) -> dict:
    """The Hessian of `f`'s value at these inputs, for small inputs: `H[a][b]` is the block of
    second derivatives d2 f / da db, shaped `a.shape + b.shape` (a Python float for scalars).

    Each column is one Hessian-vector product (`f.hvp` along a unit vector), forward mode
    over graphc's own backward graph.

    >>> H = gc.hessian(f, x=1.0, y=2.0)   # H["x"]["y"] = d2f/dxdy
    """
    named = f._named(args, inputs)
    skip = f.index_inputs  # integer labels: no derivatives in them
    values = {k: np.asarray(v, dtype=float) for k, v in named.items() if k not in skip}
    blocks: dict[str, dict] = {a: {} for a in values}
    for b, vb in values.items():
        columns = []
        for index in np.ndindex(vb.shape):
            v = {k: np.zeros(x.shape) for k, x in values.items()}
            v[b][index] = 1.0
            columns.append(
                f.hvp(named, v={k: (float(x) if x.shape == () else x) for k, x in v.items()})
            )
        for a, va in values.items():
            stacked = np.stack([np.asarray(c[a], dtype=float) for c in columns], axis=-1)
            block = stacked.reshape(va.shape + vb.shape)
            blocks[a][b] = float(block) if block.shape == () else block
    return blocks


def jacobian(f, /, *args, **inputs) -> dict:
    """The Jacobian of `f`'s value at these inputs by forward mode, for small inputs: `J[a]` is
    d out / d a, shaped `out.shape + a.shape` (a Python float for scalars), one `f.jvp` per
    input number (one column each).

    >>> J = gc.jacobian(f, x=np.array([1.0, 2.0]), y=0.5)   # J["x"][i, j] = d out_i / d x_j
    """
    named = f._named(args, inputs)
    out = {}
    for a, value in named.items():
        if a in f.index_inputs:  # integer labels: no derivative in them
            continue
        shape = np.shape(value)
        columns = []
        for index in np.ndindex(shape):
            direction = np.zeros(shape)
            direction[index] = 1.0
            t = float(direction) if shape == () else direction
            columns.append(np.asarray(f.jvp(named, {a: t})[1], dtype=float))
        out_shape = columns[0].shape if columns else np.shape(f(**named))
        block = (
            np.stack(columns, axis=-1).reshape(out_shape + shape)
            if columns
            else np.zeros(out_shape + shape)
        )
        out[a] = float(block) if block.shape == () else block
    return out
