"""The compiler, top to bottom: trace -> fuse -> shapes -> backward -> schedule -> emit -> load.

Stage: top. Sequences the wings, each call one stage:

    graph = trace(fn)                      front.trace      a Python function -> graph of gates
    graph = fuse(graph, rules, level)      passes.fusion    (when asked) gates -> fused gates
    graph = lower(graph)                   passes.lower     (readable=False) exact gates, shared
    graph = pair_sigmoids(graph)           passes.lower     sigmoid(-x) beside each sigmoid
    graph = cache_log_softmax(graph)       passes.lower     log_softmax(x) beside each CE
    sizes = probe_sizes(shapes)            ir.shapes        (generic=True) sizes as classes, probed
    graph = infer_shapes(graph, shapes)    ir.shapes        the shape of every value
    graph = backward(graph, wrt)           passes.autodiff  the chain rule, as graph nodes
    program = schedule(graph)              passes.schedule  statements, in order, named
    source = emit_module(program, ...)     emit.codegen     readable NumPy forward/backward
    module = load_module(source, name)     emit.codegen     (on first use) the code that runs

`Function` (function.py) is the user's handle on this: it traces once, fuses when asked, and
keeps one `Compiled` per size pattern (ranks, dtypes, which sizes are 1 and which are equal),
whose module reads every size from its arguments. Nothing here draws, parses arguments or
writes files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import math
import types
from dataclasses import dataclass

import networkx as nx
import numpy as np

from . import __version__
from .emit import array_api, numba_backend
from .emit.codegen import emit_module, emit_values_module, load_module
from .emit.sizes import leftover
from .ir import dtypes
from .ir.errors import ShapeError
from .ir.graph import copy_graph
from .ir.shapes import Sizes, infer_shapes, probe_sizes
from .passes.autodiff import backward
from .passes.gradient import check_shapes
from .passes.lower import cache_log_softmax, lower, pair_sigmoids
from .passes.schedule import Program, sanitize, schedule


@dataclass
class Compiled:
    """One specialisation: the program, its generated source and the module (loaded on first
    use: a call with Python floats may never need it, see `graphc.scalar`)."""

    program: Program
    source: str
    name: str
    _module: types.ModuleType | None = None
    _values: types.ModuleType | None = None
    kinds: dict | None = None  # the nodes' dtypes, where Python floats meet float32 arrays
    dtype: np.dtype | None = None  # the value's dtype, as NumPy gives it (None: a Python float)
    converted: tuple[tuple[int, np.dtype], ...] = ()  # inputs the module takes in another dtype
    sizes: Sizes | None = None  # the probes the module was compiled at (None: exact shapes)
    probed: Program | None = None  # the program at the probe sizes, which `values` prints

    def prepared(self, values: list) -> list:
        """The inputs as the module takes them: a Python number as a NumPy number of the dtype
        it is computed in (float64, or float32 next to float32 arrays: `dtypes.signature`),
        so that division by zero and overflow follow NumPy; float16 as float32 for numba,
        which has no float16."""
        if not self.converted:
            return values
        values = list(values)
        for i, dtype in self.converted:
            v = values[i]
            values[i] = v.astype(dtype) if isinstance(v, np.ndarray) else dtype.type(v)
        return values

    @property
    def module(self) -> types.ModuleType:
        if self._module is None:
            self._module = load_module(self.source, self.name)
        return self._module

    def values(self, inputs: list, dout) -> dict[int, object]:
        """Every value forward and backward compute, by node id (compiled on first use)."""
        if self._values is None:
            source = emit_values_module(self.probed or self.program, self.kinds, self.sizes)
            self._values = load_module(source, "values")
        return self._values.all_values(*self.prepared(inputs), dout)

    def shape_of(self, n: int, inputs: list) -> tuple[int, ...]:
        """Node n's shape for these inputs (`program` has the shapes of the first call)."""
        if self.probed is None:
            return self.program.graph.nodes[n]["shape"]
        g = self.probed.graph
        read: dict[int, int] = {}
        for i, v in zip(self.probed.inputs, inputs):
            read.update(zip(g.nodes[i]["shape"], np.shape(v)))
        return tuple(read.get(d, d) for d in g.nodes[n]["shape"])

    def ones(self, inputs: list):
        """The upstream gradient of ones for these inputs (1.0 for a scalar output)."""
        shape = self.shape_of(self.program.output, inputs)
        return 1.0 if shape == () else np.ones(shape)


def compile_graph(
    g: nx.DiGraph,
    shapes: dict[str, tuple[int, ...]],
    wrt: tuple[str, ...] | None = None,
    readable: bool = True,
    dtype: str = "float64",
    backend: str = "numpy",
    input_dtypes: dict[str, np.dtype | None] | None = None,
    generic: bool = False,
    style: str = "accurate",
) -> Compiled:
    """Trace-independent compiler: graph + input shapes -> generated NumPy module.

    `wrt` names the inputs whose gradients `backward` returns (default: all, in order).
    `readable=False` trades the lecture's one-statement-per-gate form for speed where they
    differ: sigmoid-like gates then cache exp(-|x|) for backward instead of recomputing it.
    `dtype` is the output's NumPy type, for the `dout = 1` that `value_and_grad` passes;
    `input_dtypes` the inputs' dtypes by name (None: a Python float, computed in float64), where
    a Python float meets float32 (or float16) arrays: the module converts it there, as NumPy does.
    `backend="numba"` (elementwise programs): the module runs one numba loop per call instead
    (see `numba_backend`); the program, for drawings and values, is still the NumPy one.
    `generic=True`: the module reads every size from its arguments and works for every call of
    the same size pattern (`ir.shapes.size_pattern`); `Compiled.sizes` is then set. Where the
    code cannot (a reshape to a fixed shape), it is specialised to `shapes`, as without.
    `style` (`ir.ops.STYLES`): "accurate", "textbook" (the lecture's formulas where they differ,
    `ir.ops.TEXTBOOK`) or "layer" (CS231n's `<name>_forward`/`<name>_backward` and a gate class).
    `backend="array_api"`: the module is the same program in the array API standard, over the
    namespace of its inputs (see `array_api`); drawings and values still run the NumPy one.
    """
    check_shapes(g, shapes)  # a gradient graph works at the shapes it was built for
    with gc_paused():
        options = (wrt, readable, dtype, input_dtypes, style)
        compiled: Compiled | None
        if backend == array_api.BACKEND:  # specialised to `shapes`: its sizes are not yet read
            compiled = _compile(g, shapes, *options)
            source = array_api.emit_api_module(compiled.program, _title(g), __version__)
            compiled = dataclasses.replace(compiled, source=source)
        else:
            compiled = _generic(g, shapes, *options) if generic else None
            if compiled is None:
                compiled = _compile(g, shapes, *options)
        if backend == "numba":
            kernel = _compile(g, dict.fromkeys(shapes, ()), wrt, False, dtype).program
            scalars = frozenset(k for k, shape in shapes.items() if math.prod(shape) == 1)
            source = numba_backend.emit_kernel_module(kernel, _title(g), __version__, scalars)
            module = numba_backend.load_kernel_module(source, sanitize(g.graph["name"]))
            compiled = dataclasses.replace(compiled, source=source, _module=module)
        return compiled


@contextlib.contextmanager
def gc_paused():
    """Compiling allocates many long-lived objects; Python's cyclic collector would rescan them
    all again and again (a cost that grows with the graph), so it waits until we are done."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _generic(g, shapes, wrt, readable, dtype, input_dtypes, style) -> Compiled | None:
    """The program compiled at probe sizes, printed reading every size from the arguments;
    None where some size cannot be read so (the caller then specialises to exact shapes)."""
    sizes = probe_sizes(shapes)
    if sizes is None:
        return None
    written = {abs(float(v)) for _, v in g.nodes(data="value") if v is not None and np.ndim(v) == 0}
    if written & set(map(float, sizes.real)):
        return None  # a number the user wrote that is a probe: it would be read as a size
    reach = nx.ancestors(g, g.graph["output"]) | {g.graph["output"]}
    wanted = [g.nodes[i]["name"] for i in g.graph["inputs"]] if wrt is None else wrt
    named = {g.nodes[i]["name"]: i for i in g.graph["inputs"]}
    if any(named[k] not in reach for k in wanted):
        return None  # its zero gradient is a constant array of the call's shape
    try:
        compiled = _compile(g, sizes.probe, wrt, readable, dtype, input_dtypes, style, sizes)
    except ShapeError:  # a size the user wrote (reshape to (5, 4)) meets a probe
        return None
    if leftover(compiled.source, sizes, written):
        return None
    return dataclasses.replace(
        compiled, program=_at_call(compiled.program, sizes), probed=compiled.program
    )


def _at_call(program: Program, sizes: Sizes) -> Program:
    """The program with the first call's shapes (for drawings, checks, readers of the graph)."""
    g = copy_graph(program.graph)
    for _, data in g.nodes(data=True):
        if "shape" in data:
            data["shape"] = sizes.of(data["shape"])
        if "shape" in data.get("params", {}):  # broadcast_to, sum_to, reshape
            data["params"] = {**data["params"], "shape": sizes.of(data["params"]["shape"])}
        if "count" in data:
            data["value"] = math.prod(
                sizes.of(g.nodes[data["count"][0]]["shape"])[a] for a in data["count"][1]
            )
    return dataclasses.replace(program, graph=g)


def _compile(
    g, shapes, wrt, readable, dtype, input_dtypes=None, style="accurate", sizes=None
) -> Compiled:
    if not readable:
        g = lower(g)
    if style != "textbook":  # the textbook's sigmoid' is (1 - s) * s, over s alone
        g = pair_sigmoids(g)  # a fused gate sigmoid(...) too, which `lower` leaves
    g = cache_log_softmax(g)  # forward's log_softmax, which the cross-entropy's backward reads
    shaped = infer_shapes(g, shapes)
    shaped.graph["style"] = style  # the backward pass and the printer read it
    node_of = {g.nodes[i]["name"]: i for i in g.graph["inputs"]}
    with_grads = backward(shaped, None if wrt is None else [node_of[k] for k in wrt], sizes is None)
    program = schedule(with_grads, expressions=readable and g.graph.get("fused", False))
    kinds = None
    weak = input_dtypes and None in input_dtypes.values()  # a Python float, computed in float64
    if weak and dtypes.may_narrow(program.graph, [*input_dtypes.values(), dtype]):
        given = dtypes.by_node(program.graph, input_dtypes)
        kinds = dtypes.node_kinds(program.graph, {**given, program.seed: np.dtype(dtype)})
        if not any(dtypes.narrow(k) for k in kinds.values()):
            kinds = None  # nothing to convert it for
    name = sanitize(g.graph["name"])
    layer = name if style == "layer" else None
    source = emit_module(program, _title(g), __version__, dtype, kinds, sizes, layer)
    return Compiled(program, source, sanitize(g.graph["name"]), kinds=kinds, sizes=sizes)


def _title(g: nx.DiGraph) -> str:
    return f"{g.graph['name']}({', '.join(g.nodes[i]['name'] for i in g.graph['inputs'])})"
