"""The compiler, top to bottom: trace -> fuse -> shapes -> backward -> schedule -> emit -> load.

Stage: top. Sequences the wings, each call one stage:

    graph = trace(fn)                      front.trace      a Python function -> graph of gates
    graph = fuse(graph, rules, level)      passes.fusion    (when asked) gates -> fused gates
    graph = lower(graph)                   passes.lower     (readable=False) exact gates, shared
    graph = infer_shapes(graph, shapes)    ir.shapes        the shape of every value
    graph = backward(graph, wrt)           passes.autodiff  the chain rule, as graph nodes
    program = schedule(graph)              passes.schedule  statements, in order, named
    source = emit_module(program, ...)     emit.codegen     readable NumPy forward/backward
    module = load_module(source, name)     emit.codegen     (on first use) the code that runs

`Function` (function.py) is the user's handle on this: it traces once, fuses when asked, and
keeps one `Compiled` per input signature. Nothing here draws, parses arguments or writes files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import types
from dataclasses import dataclass

import networkx as nx
import numpy as np

from . import __version__
from .emit import array_api, numba_backend
from .emit.codegen import emit_module, emit_values_module, load_module
from .ir import dtypes
from .ir.shapes import infer_shapes
from .passes.autodiff import backward
from .passes.lower import lower
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
            self._values = load_module(emit_values_module(self.program, self.kinds), "values")
        return self._values.all_values(*self.prepared(inputs), dout)


def compile_graph(
    g: nx.DiGraph,
    shapes: dict[str, tuple[int, ...]],
    wrt: tuple[str, ...] | None = None,
    readable: bool = True,
    dtype: str = "float64",
    backend: str = "numpy",
    input_dtypes: dict[str, np.dtype | None] | None = None,
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
    `backend="array_api"`: the module is the same program in the array API standard, over the
    namespace of its inputs (see `array_api`); drawings and values still run the NumPy one.
    """
    with gc_paused():
        compiled = _compile(g, shapes, wrt, readable, dtype, input_dtypes)
        if backend == array_api.BACKEND:
            source = array_api.emit_api_module(compiled.program, _title(g), __version__)
            compiled = dataclasses.replace(compiled, source=source)
        if backend == "numba":
            kernel = _compile(g, dict.fromkeys(shapes, ()), wrt, False, dtype).program
            scalars = frozenset(k for k, shape in shapes.items() if np.prod(shape) == 1)
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


def _compile(g, shapes, wrt, readable, dtype, input_dtypes=None) -> Compiled:
    shaped = infer_shapes(g if readable else lower(g), shapes)
    node_of = {g.nodes[i]["name"]: i for i in g.graph["inputs"]}
    with_grads = backward(shaped, None if wrt is None else [node_of[k] for k in wrt])
    program = schedule(with_grads)
    kinds = None
    if input_dtypes and None in input_dtypes.values():  # a Python float, computed in float64
        given = dtypes.by_node(program.graph, input_dtypes)
        kinds = dtypes.node_kinds(program.graph, {**given, program.seed: np.dtype(dtype)})
        if not any(dtypes.narrow(k) for k in kinds.values()):
            kinds = None  # nothing to convert it for
    source = emit_module(program, _title(g), __version__, dtype, kinds)
    return Compiled(program, source, sanitize(g.graph["name"]), kinds=kinds)


def _title(g: nx.DiGraph) -> str:
    return f"{g.graph['name']}({', '.join(g.nodes[i]['name'] for i in g.graph['inputs'])})"
