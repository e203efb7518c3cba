"""The function object: the user's handle on the compiler.

Stage: top. Imports the wings and `compiler`; nothing imports it but the rest of the top.

`compiler.compile_graph` is the whole compiler, top to bottom (see compiler.py). A `Function`
keeps one compiled module per input signature (shapes and dtypes), so code is specialised to how
it is called, and converts arguments and results at the boundary.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable

import networkx as nx
import numpy as np

from .compiler import Compiled, compile_graph, gc_paused
from .draw import render
from .emit import numba_backend
from .emit.scalar import Fallbacks, straight_line
from .files import write_atomic
from .front.trace import Value, build_graph, trace
from .ir import dtypes, text
from .ir.errors import GraphcError, InputError
from .ir.graph import normalize, validate
from .passes.fusion import fuse

VALUE_AND_GRAD_DOC = """The value and a dict of gradients, one per input, each shaped like it.

For a non-scalar output this is the gradient of the sum of its entries."""

# The keyword options of render, svg and render_steps: an input of the same name goes by position
DRAWING_OPTIONS = ("digits", "sig", "show_local", "theme", "background", "direction", "fit")


class Function:
    """A differentiable function compiled to NumPy: call it, take its gradient, read its code.

    >>> @function
    ... def f(x, y, z):
    ...     return (x + y) * z
    >>> f.value_and_grad(x=-2.0, y=5.0, z=-4.0)
    (-12.0, {'x': -4.0, 'y': -4.0, 'z': 3.0})

    `f(*inputs)` gives the value and `f.value_and_grad(*inputs)` the value and a dict of
    gradients (see VALUE_AND_GRAD_DOC); both are per-instance slots that `_dispatch` sets (see
    "Dispatch" below).
    """

    __slots__ = ("__dict__", "__weakref__", "__call__", "value_and_grad")

    def __init__(
        self,
        graph: nx.DiGraph,
        wrt: tuple[str, ...] | None = None,
        readable: bool = True,
        backend: str = "numpy",
        origin: nx.DiGraph | None = None,
    ):
        if backend not in numba_backend.BACKENDS:
            raise InputError(
                f"unknown backend {backend!r}; choose 'numpy' (the default, readable NumPy "
                "code) or 'numba' (one compiled loop for elementwise functions)"
            )
        if backend == "numba":
            numba_backend.check_supported(graph, graph.graph["name"])
        self.backend = backend  # "numba": elementwise programs run as one compiled loop
        self._graph = nx.freeze(graph)
        # the graph as written, before fusion: NumPy's dtypes are those of this expression
        self._origin = self._graph if origin is None else origin
        self.inputs: tuple[str, ...] = tuple(graph.nodes[i]["name"] for i in graph.graph["inputs"])
        self.__name__ = graph.graph["name"]
        self._wrt = wrt
        self.readable = readable  # False: faster code where it must differ from the lecture's
        self._compiled: dict[tuple, Compiled] = {}
        self._last: tuple | None = None
        self._dispatch(self._numpy_value, self._numpy_value_and_grad)

    def __repr__(self) -> str:
        gates = sum(1 for _, op in self._graph.nodes(data="op") if op not in ("input", "const"))
        backend = ", backend='numba'" if self.backend == "numba" else ""
        inputs = ", ".join(self.inputs)
        return f"<graphc.Function {self.__name__}({inputs}): {gates} gates{backend}>"

    @property
    def graph(self) -> nx.DiGraph:
        """The computational graph (read-only networkx DiGraph); every node has an `op`."""
        return self._graph

    # ------------------------------------------------------------ copies and pickles

    def __getstate__(self) -> dict:
        """What `copy`, `copy.deepcopy` and `pickle` keep: the graph (with the gates it was
        traced with) and the options. Compiled modules and the Python-float entries are code,
        not data (a module does not pickle): a copy compiles again when first called, to the
        same source."""
        return {
            "graph": self._graph,
            "wrt": self._wrt,
            "readable": self.readable,
            "backend": self.backend,
            "last": self._last,
        }

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["graph"], state["wrt"], state["readable"], state["backend"])
        self._last = state["last"]  # `source` is still the module of the last call's shapes

    # ------------------------------------------------------------ calling

    def _named(self, args, kwargs, options=(), caller: str = "") -> dict:
        """The inputs by name, from positional and keyword arguments; InputError saying what is
        wrong. `options` are the keyword options of `caller` (render's `theme`, say): an input
        of the same name can only be passed by position, since its keyword sets the option."""
        for k in self.inputs[len(args) :]:
            if k in options:
                raise InputError(
                    f"{self.__name__} has an input named {k!r}, which {caller} also takes as an "
                    f"option; pass the inputs by position, in the order {list(self.inputs)}, "
                    f"and {k}= sets the option"
                )
        if len(args) > len(self.inputs):
            raise InputError(
                f"{self.__name__} takes {len(self.inputs)} input(s) {list(self.inputs)}, "
                f"got {len(args)} positional"
            ) from None
        values = dict(zip(self.inputs, args))
        for k, v in kwargs.items():
            if k not in self.inputs:
                raise InputError(
                    f"{self.__name__} got an unexpected input {k!r}; "
                    f"its inputs are {list(self.inputs)}"
                )
            if k in values:
                raise InputError(
                    f"{self.__name__} got input {k!r} twice (positionally and by name)"
                )
            values[k] = v
        missing = [k for k in self.inputs if k not in values]
        if missing:
            raise InputError(
                f"{self.__name__} is missing input(s) {missing}; "
                f"pass every one of {list(self.inputs)}"
            )
        return {k: values[k] for k in self.inputs}

    def _bind(self, args, kwargs) -> list:
        """The inputs in signature order, converted (see `_convert`)."""
        return [_convert(k, v) for k, v in self._named(args, kwargs).items()]

    def fused(
        self,
        rules=None,
        level: str = "patterns",
        readable: bool | None = None,
        backend: str | None = None,
    ) -> Function:
        """A new function with gates fused (see `graphc.fuse`); this one is unchanged.

        `readable` and `backend` (default: as this function) choose the generated code.

        >>> neuron.fused().graph   # exp, add and div became one sigmoid gate
        >>> neuron.fused(backend="numba")   # one compiled loop (needs numba)
        """
        readable = self.readable if readable is None else readable
        backend = self.backend if backend is None else backend
        with gc_paused():  # fusing a large graph allocates many long-lived objects
            fused = fuse(self._graph, rules, level)
        return Function(fused, self._wrt, readable, backend, self._origin)

    def wrt(self, *names: str) -> Function:
        """The same function, differentiated only with respect to `names` (less work in backward).

        >>> loss.wrt("W1", "b1").grad(X=X, W1=W1, b1=b1)   # dX is never computed
        """
        unknown = [k for k in names if k not in self.inputs]
        if unknown or not names:
            raise InputError(
                f"wrt() takes input names of {self.__name__}, one or more of {list(self.inputs)}; "
                f"got {list(names)}"
            )
        names = tuple(dict.fromkeys(names))
        return Function(self._graph, names, self.readable, self.backend, self._origin)

    @property
    def gradient_names(self) -> tuple[str, ...]:
        """The inputs whose gradients `value_and_grad` returns."""
        return self.inputs if self._wrt is None else self._wrt

    def _specialised(self, values: list) -> Compiled:
        key = tuple(map(_signature, values))
        if key not in self._compiled:
            self._compiled[key] = self._compile_for(values)
            if self.backend == "numpy" and values and all(k == ((), "py") for k in key):
                self._take_floats_straight(self._compiled[key].source)
        self._last = key
        return self._compiled[key]

    def _compile_for(self, values: list) -> Compiled:
        """The module for the shapes and dtypes of `values`, and how its value and inputs are
        typed: NumPy's dtypes for the expression as written (see `graphc.dtypes`)."""
        shapes = {k: np.shape(v) for k, v in zip(self.inputs, values)}
        given = {k: _dtype(v) for k, v in zip(self.inputs, values)}
        value_dtype, computed_in, natural = dtypes.signature(self._origin, given)
        # what the module computes in: a Python float stays weak unless converted
        runtime = {**given, **{k: d for k, d in computed_in.items() if d != np.float64}}
        seed = (natural or np.dtype(np.float64)).type.__name__
        try:
            compiled = compile_graph(
                self._graph, shapes, self._wrt, self.readable, seed, self.backend, runtime
            )
        except GraphcError as e:  # report at the call, not from deep inside the compiler
            raise type(e)(f"{self.__name__}: {e}") from None
        converted = [(i, computed_in[k]) for i, k in enumerate(self.inputs) if k in computed_in]
        if self.backend == "numba":  # numba computes float16 values in float32
            half, single = np.dtype(np.float16), np.dtype(np.float32)
            converted = [(i, single if d == half else d) for i, d in converted]
            converted += [(i, single) for i, k in enumerate(self.inputs) if given[k] == half]
        return dataclasses.replace(compiled, dtype=value_dtype, converted=tuple(converted))

    def _module_for(self, values: list):
        return self._specialised(values).module

    # ------------------------------------------------------------ dispatch
    #
    # Which code a call runs is one choice per instance, made by `_dispatch` alone: the two slots
    # `__call__` and `value_and_grad` (declared in `__slots__`, so no method is shadowed) hold
    # the functions calls run. They start as the NumPy path: bind the arguments, pick the module
    # compiled for their shapes and dtypes, run it. The first call with Python floats only also
    # compiles the float path (`emit.scalar`: the module's statements run on floats, straight
    # through) and dispatches to it; that code checks its arguments itself and calls the NumPy
    # path for any call that is not all Python floats, or where NumPy gives inf or NaN. A slot
    # is read as fast as an instance attribute, so a call on floats costs what a hand-written
    # function costs, with no method frame in between.

    def _dispatch(self, value: Callable, value_and_grad: Callable) -> None:
        """Make `value` what `f(...)` runs and `value_and_grad` what `f.value_and_grad` runs."""
        self.__call__ = value
        self.value_and_grad = value_and_grad

    def _numpy_value(self, /, *args, **kwargs):
        """The value, as NumPy computes it."""
        values = self._bind(args, kwargs)
        compiled = self._specialised(values)
        out, _ = compiled.module.forward(*compiled.prepared(values))
        return _result(out, values, compiled.dtype)

    def _numpy_value_and_grad(self, /, *args, **kwargs):
        entry = self.value_and_grad
        values = self._bind(args, kwargs)
        compiled = self._specialised(values)
        if self.value_and_grad is not entry:  # this call made the float path: it answers now
            return self.value_and_grad(*args, **kwargs)
        return self._gradients(compiled, values)

    _numpy_value_and_grad.__doc__ = VALUE_AND_GRAD_DOC

    def _gradients(self, compiled: Compiled, values: list):
        out, grads = compiled.module.value_and_grad(*compiled.prepared(values))
        given = dict(zip(self.inputs, values))
        return _result(out, values, compiled.dtype), {
            k: _gradient(g, given[k]) for k, g in zip(self.gradient_names, grads)
        }

    def _take_floats_straight(self, source: str) -> None:
        """Once called with Python floats: make the float path the entry (see Dispatch above);
        other calls, and inputs where NumPy gives inf or NaN, still run the NumPy module."""
        numpy = Fallbacks(
            lambda args, kwargs: tuple(self._named(args, kwargs).values()),
            self._numpy_value,
            self._numpy_value_and_grad,
        )
        with gc_paused():  # compiling 100k statements makes many long-lived objects
            code = straight_line(source, self.__name__, self.gradient_names, numpy)
        if code is None:
            return
        code.value_and_grad.__doc__ = VALUE_AND_GRAD_DOC

        def first_value(*args, **kwargs):  # compiled now: f(...) with floats may never be called
            self._dispatch(code.value, code.value_and_grad)
            return code.value(*args, **kwargs)

        self._dispatch(first_value, code.value_and_grad)

    def grad(self, /, *args, **kwargs) -> dict:
        """The dict of gradients alone (see `value_and_grad`)."""
        return self.value_and_grad(*args, **kwargs)[1]

    # ------------------------------------------------------------ the generated code

    @property
    def source(self) -> str:
        """The generated module for the most recent call's shapes (all-scalar before any call)."""
        if self._last is None:
            try:
                self._module_for([0.0] * len(self.inputs))
            except GraphcError as e:
                raise InputError(
                    f"{e}. The code is generated for the shapes of a call: call "
                    f"{self.__name__}(...) with example inputs first, or use "
                    f"{self.__name__}.source_for(...)"
                ) from None
        if self._last not in self._compiled:  # a copy: compiled again for the same shapes
            self._module_for([_example(k) for k in self._last])
        return self._compiled[self._last].source

    def compiled_for(self, /, *args, **kwargs) -> Compiled:
        """The compiled specialisation for these inputs: program, source, module, values."""
        self._module_for(self._bind(args, kwargs))
        return self._compiled[self._last]

    def source_for(self, /, *args, **kwargs) -> str:
        """The generated module specialised to the shapes of these example inputs."""
        self._module_for(self._bind(args, kwargs))
        return self._compiled[self._last].source

    def save_source(self, path) -> str:
        """Write `source` to `path` atomically (a temporary file renamed into place)."""
        return write_atomic(path, self.source)

    # ------------------------------------------------------------ pictures

    def values_for(self, /, *args, **kwargs) -> tuple[Compiled, dict]:
        """The compiled specialisation for these inputs, and every value its forward and
        backward compute there (by node id, backward seeded with ones): what drawings show."""
        values = self._bind(args, kwargs)
        compiled = self._specialised(values)
        program = compiled.program
        out_shape = program.graph.nodes[program.output]["shape"]
        seed = 1.0 if out_shape == () else np.ones(out_shape)
        with np.errstate(all="ignore"):  # an overflow is drawn on its wire, not warned about
            return compiled, compiled.values(values, seed)

    def _drawn(self, args, inputs, caller: str, options=DRAWING_OPTIONS) -> dict:
        """The inputs to draw with, by name ({} for the structure alone)."""
        if not args and not inputs:
            return {}
        return self._named(args, inputs, options, caller)

    def render(
        self,
        /,
        *args,
        digits: int = 2,
        sig: int | None = None,
        show_local: bool = False,
        theme: str = "light",
        background: str | None = None,
        direction: str = "LR",
        fit: str | None = None,
        **inputs,
    ):
        """The circuit as a graphviz.Digraph; with inputs, values and gradients on every wire.

        Numbers have `digits` decimals, or `sig` significant figures; `theme` "light" or "dark"
        on its own opaque background unless `background` says otherwise ("transparent", any
        colour); `direction` "LR" or "TB"; `fit` "16:9" or "4:3" sizes it for a slide. Inputs go
        by position or by name, as for a call; an input named like an option goes by position.

        >>> f.render(x=-2.0, y=5.0, z=-4.0)   # f.render() draws the structure alone
        """
        named = self._drawn(args, inputs, "render()")
        style = render.Style(digits, sig, theme, background, direction, fit)
        return render.fitted(self, named, style, show_local)

    def svg(self, /, *args, **options) -> str:
        """`render(...)` as SVG text (the same options)."""
        inputs = {k: v for k, v in options.items() if k not in DRAWING_OPTIONS}
        self._drawn(args, inputs, "svg()")  # name the method in an error about its options
        return render.svg_text(self.render(*args, **options))

    def render_steps(
        self,
        /,
        *args,
        digits: int = 2,
        sig: int | None = None,
        show_local: bool = False,
        theme: str = "light",
        background: str | None = None,
        direction: str = "LR",
        fit: str | None = None,
        forward: bool = False,
        **inputs,
    ) -> list[str]:
        """SVG frames for a slide build-up: the forward values (with `forward`, built up one
        gate per frame first), then the seed (the output's gradient 1 alone), then one frame per
        gate in backward order with that gate's computation written beside it, then the full
        picture. The drawing options are those of `render`."""
        named = self._drawn(args, inputs, "render_steps()", (*DRAWING_OPTIONS, "forward"))
        if not named:
            raise InputError(
                "render_steps needs input values: the frames reveal values and gradients"
            )
        style = render.Style(digits, sig, theme, background, direction, fit)
        return render.steps(self, named, style=style, show_local=show_local, forward=forward)

    def _repr_svg_(self) -> str:
        """Jupyter shows the circuit's structure."""
        return self.svg()


def _signature(v) -> tuple:
    """What a specialisation depends on: the shape and dtype of a converted input ("py" for a
    Python float, which is weak: NEP 50)."""
    if type(v) is np.ndarray:
        return v.shape, v.dtype.str
    return np.shape(v), "py" if type(v) is float else np.asarray(v).dtype.str


def _dtype(v) -> np.dtype | None:
    """A converted input's dtype; None for a Python float (weak)."""
    return None if type(v) is float else np.result_type(v)


def _example(signature: tuple):
    """An input with this `_signature`: a Python float, or zeros of the shape and dtype."""
    shape, dtype = signature
    return 0.0 if dtype == "py" else np.zeros(shape, dtype=np.dtype(dtype))


def _convert(name: str, v):
    """Python reals become Python floats (weak, as NumPy treats them; the module gets them as
    NumPy numbers, see `Compiled.prepared`); NumPy integer scalars become float64 scalars and
    integer arrays float64 arrays; NumPy floats keep their dtype; the rest is refused."""
    if type(v) is np.ndarray and v.dtype.kind == "f":  # the common case, first
        return v
    if isinstance(v, (bool, np.bool_)):
        raise InputError(
            f"input {name!r} is a boolean; graphc differentiates real numbers, pass float({v})"
        )
    if isinstance(v, numbers.Real) and not isinstance(v, np.generic):
        try:
            return float(v)
        except OverflowError:
            raise InputError(f"input {name!r} = {v} is too large for a float") from None
    if isinstance(v, np.floating):  # a NumPy scalar keeps its type (and its dtype) through
        return v
    if isinstance(v, np.integer):  # a scalar stays a scalar: float64, not a 0-d array
        return np.float64(v)
    try:
        arr = np.asarray(v)
    except Exception:
        arr = None
    if arr is None or arr.dtype.kind not in "biufc":
        raise InputError(
            f"input {name!r} is {type(v).__name__}; pass a real number or a NumPy array of them"
        )
    if arr.dtype.kind == "c":
        raise InputError(
            f"input {name!r} is complex; graphc differentiates real-valued functions only"
        )
    if arr.dtype.kind == "b":
        raise InputError(
            f"input {name!r} is a boolean array; pass it as floats, e.g. x.astype(float)"
        )
    if arr.dtype.kind in "iu":
        return arr.astype(np.float64)
    return arr


def _result(out, values, dtype: np.dtype | None):
    """The value as NumPy would give it: of `dtype` (None: a Python float), a scalar for a
    scalar; a Python float where every input was one."""
    if np.ndim(out) == 0:
        if dtype is None or all(type(v) is float for v in values):
            return float(out)
        return dtype.type(out)  # a NumPy scalar, not a 0-d array
    return out if dtype is None or out.dtype == dtype else out.astype(dtype)


def _gradient(g, v):
    if type(v) is float:
        return float(g)
    if isinstance(v, np.generic):
        return v.dtype.type(g)
    arr = np.asarray(g, dtype=v.dtype)
    return arr if arr.shape == v.shape else np.broadcast_to(arr, v.shape).copy()


def function(
    fn=None,
    *,
    inputs=None,
    name: str | None = None,
    readable: bool = True,
    backend: str = "numpy",
):
    """Compile a Python function, or a traced expression, into a `Function`.

    As a decorator, the function's parameters are the inputs:

    >>> @function
    ... def neuron(w, x):
    ...     return sigmoid(w * x)

    On an expression built from `gc.symbols`, the inputs are its symbols in the order they were
    created (or `inputs=[...]`). `readable=False` generates faster code where the lecture's
    one-statement-per-gate form costs time (see `compile_graph`):

    >>> x, y = symbols("x y"); f = function(x * y)

    `backend="numba"` runs a function whose gates are all elementwise as one compiled loop over
    the elements (forward and backward together); it needs numba (`graphc[numba]`).
    """
    if fn is None:
        raise InputError(
            "gc.function needs a Python function or an expression built from gc.symbols"
        )
    if name is not None:  # the module's and the drawing's name: a name, as for inputs
        text.name(name, "gc.function(name=...)", InputError)
    try:
        if isinstance(fn, (Value, numbers.Real)):
            graph = _expression_graph(fn, inputs, name or "f")
        elif callable(fn):
            with gc_paused():
                graph = trace(fn)
            if name is not None:
                graph.graph["name"] = name
        else:
            raise InputError(
                "gc.function takes a Python function or a graphc expression, "
                f"got {type(fn).__name__}"
            )
    except RecursionError:
        raise GraphcError("the expression is too deep to trace") from None
    return Function(graph, readable=readable, backend=backend)


def _expression_graph(expr, inputs, name):
    found, stack, seen = [], [expr], set()
    while stack:
        v = stack.pop()
        if not isinstance(v, Value) or id(v) in seen:
            continue
        seen.add(id(v))
        if v.op == "input":
            found.append(v)
        stack.extend(v.args)
    if inputs is None:
        inputs = sorted(found, key=lambda v: v.order)
    elif not all(isinstance(v, Value) and v.op == "input" for v in inputs):
        raise InputError("inputs=[...] must list symbols made by gc.symbols")
    names = [v.name for v in inputs]
    if len(set(names)) != len(names):
        raise InputError(
            f"two different symbols share a name in {names}; give each input its own name"
        )
    return build_graph(name, list(inputs), expr)


def from_graph(graph: nx.DiGraph) -> Function:
    """A `Function` from a networkx graph built or loaded by hand (validated first)."""
    return Function(normalize(validate(graph)))
