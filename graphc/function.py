"""The function object: the user's handle on the compiler.

Stage: top. Imports the wings and `compiler`; nothing imports it but the rest of the top.

`compiler.compile_graph` is the whole compiler, top to bottom (see compiler.py). A `Function`
keeps one compiled module per size pattern (ranks, dtypes, which sizes are 1 and which sizes are
equal: `ir.shapes.size_pattern`), whose code reads every size from its arguments, so a loop over
batches of 64, ..., 64, 37 compiles once; it converts arguments and results at the boundary.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable

import graphviz
import networkx as nx
import numpy as np

from . import entries, modes
from .compiler import Compiled, compile_graph, gc_paused
from .display import Code
from .draw import explore as explorer
from .draw import modes as draw_modes
from .draw import notebook, render
from .emit import array_api, numba_backend
from .emit.scalar import Fallbacks, straight_line
from .files import write_atomic, write_picture
from .front.trace import Value, build_graph, sympy_graph, trace
from .ir import dtypes, text
from .ir.errors import GraphcError, InputError
from .ir.graph import index_inputs, normalize, validate
from .ir.ops import STYLES
from .ir.shapes import size_pattern
from .passes.fusion import fuse

VALUE_AND_GRAD_DOC = """The value and a dict of gradients, one per input, each shaped like it.

For a non-scalar output this is the gradient of the sum of its entries."""

# The keyword options of render, svg and render_steps: an input of the same name goes by position
DRAWING_OPTIONS = (
    "digits", "sig", "show_local", "theme", "background", "direction", "fit", "mode", "tangents",
)  # fmt: skip
BACKENDS = (*numba_backend.BACKENDS, array_api.BACKEND)


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
        style: str = "accurate",
    ):
        if style not in STYLES:
            raise InputError(
                f"unknown style {style!r}; choose 'accurate' (the default: exact for any input), "
                "'textbook' (the lecture's formulas, e.g. sigmoid' = (1 - s) * s) or 'layer' "
                "(CS231n's <name>_forward / <name>_backward and a gate class)"
            )
        if style != "accurate" and backend != "numpy":
            raise InputError(f"style={style!r} prints NumPy code; it needs backend='numpy'")
        self.style = style
        if backend not in BACKENDS:
            raise InputError(
                f"unknown backend {backend!r}; choose 'numpy' (the default, readable NumPy "
                "code), 'numba' (one compiled loop for elementwise functions) or 'array_api' "
                "(the array API standard: Dask, PyTorch, JAX, CuPy arrays)"
            )
        if backend == "numba":
            numba_backend.check_supported(graph, graph.graph["name"])
        if backend == array_api.BACKEND:
            _check_array_api(graph.graph["name"])
        self.backend = backend  # "numba": one compiled loop; "array_api": the inputs' library
        self._graph = nx.freeze(graph)
        # the graph as written, before fusion: NumPy's dtypes are those of this expression
        self._origin = self._graph if origin is None else origin
        self.inputs: tuple[str, ...] = tuple(graph.nodes[i]["name"] for i in graph.graph["inputs"])
        self.__name__ = graph.graph["name"]
        # inputs that index (`y` of scores[gc.arange(N), y]) stay integers and get no gradient
        self.index_inputs: tuple[str, ...] = index_inputs(graph)
        if wrt is not None and set(wrt) & set(self.index_inputs):
            raise InputError(
                f"{self.__name__}: {sorted(set(wrt) & set(self.index_inputs))} index and get no "
                "gradient; leave them out of wrt()"
            )
        if wrt is None and self.index_inputs:
            wrt = tuple(k for k in self.inputs if k not in self.index_inputs)
        self._wrt = wrt
        self._positions = tuple(self.inputs.index(k) for k in self.gradient_names)  # in inputs
        self.readable = readable  # False: faster code where it must differ from the lecture's
        self._compiled: dict[tuple, Compiled] = {}  # by signature: each call's shapes, dtypes
        self._patterns: dict[tuple, Compiled] = {}  # the generic ones, by size pattern
        self._last: tuple | None = None
        self._calls: dict[tuple, list] = {}  # calls bound before, for `_known`
        if backend == array_api.BACKEND:
            self._dispatch(self._array_value, self._array_value_and_grad)
        else:
            self._dispatch(self._numpy_value, self._numpy_value_and_grad)

    def __repr__(self) -> str:
        return f"<graphc.Function {self.summary()}>"

    def summary(self) -> str:
        """One line: the signature, the gates, the backend (what the notebook shows over the
        circuit), e.g. `neuron(w0, x0, w1, x1, w2): 8 gates`."""
        gates = sum(1 for _, op in self._graph.nodes(data="op") if op not in ("input", "const"))
        backend = f", backend={self.backend!r}" if self.backend != "numpy" else ""
        inputs = ", ".join(self.inputs)
        return f"{self.__name__}({inputs}): {gates} gate{'' if gates == 1 else 's'}{backend}"

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
            "style": self.style,
        }

    def __setstate__(self, state: dict) -> None:
        Function.__init__(
            self,
            state["graph"],
            state["wrt"],
            state["readable"],
            state["backend"],
            style=state.get("style", "accurate"),
        )
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
        named = self._named(args, kwargs).items()
        if not self.index_inputs:
            return [_convert(k, v) for k, v in named]
        return [_index(k, v) if k in self.index_inputs else _convert(k, v) for k, v in named]

    def fused(
        self,
        rules=None,
        level: str = "patterns",
        readable: bool | None = None,
        backend: str | None = None,
        style: str | None = None,
    ) -> Function:
        """A new function with gates fused (see `graphc.fuse`); this one is unchanged.

        `readable`, `backend` and `style` (default: as this function) choose the generated code.

        >>> neuron.fused().graph   # exp, add and div became one sigmoid gate
        >>> neuron.fused(backend="numba")   # one compiled loop (needs numba)
        """
        readable = self.readable if readable is None else readable
        backend = self.backend if backend is None else backend
        style = self.style if style is None else style
        with gc_paused():  # fusing a large graph allocates many long-lived objects
            fused = fuse(self._graph, rules, level)
        return Function(fused, self._wrt, readable, backend, self._origin, style)

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
        return Function(self._graph, names, self.readable, self.backend, self._origin, self.style)

    @property
    def gradient_names(self) -> tuple[str, ...]:
        """The inputs whose gradients `value_and_grad` returns."""
        return self.inputs if self._wrt is None else self._wrt

    def _specialised(self, values: list) -> Compiled:
        if self.backend == array_api.BACKEND:
            return self._specialised_arrays(values)
        key = tuple(map(_signature, values))
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = self._for_pattern(key, values)
            floats = values and all(k == ((), "py") for k in key)
            if self.backend == "numpy" and self.style == "accurate" and floats:
                self._take_floats_straight(compiled.source)
        self._last = key
        return compiled

    def _for_pattern(self, key: tuple, values: list) -> Compiled:
        """The module of this call's size pattern: compiled on the pattern's first call."""
        pattern = (size_pattern(shape for shape, _ in key), tuple(dtype for _, dtype in key))
        compiled = self._patterns.get(pattern)
        if compiled is None:
            compiled = self._compile_for(values)
            if compiled.sizes is not None:  # generic: every call of the pattern runs it
                self._patterns[pattern] = compiled
        return compiled

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
                self._graph,
                shapes,
                self._wrt,
                self.readable,
                seed,
                self.backend,
                runtime,
                generic=True,
                style=self.style,
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

    # ------------------------------------------------------------ the array API backend
    #
    # Arguments pass through as they are (a Dask array stays lazy, a tensor stays on its
    # device); the module takes its namespace from them, and is compiled once per list of
    # shapes (any library, any float dtype: the source does not depend on them).

    def _specialised_arrays(self, values: list) -> Compiled:
        key = tuple((tuple(np.shape(v)), "array") for v in values)
        if key not in self._compiled:
            shapes = {k: shape for k, (shape, _) in zip(self.inputs, key)}
            try:
                self._compiled[key] = compile_graph(
                    self._graph, shapes, self._wrt, self.readable, backend=self.backend
                )
            except GraphcError as e:
                raise type(e)(f"{self.__name__}: {e}") from None
        self._last = key
        return self._compiled[key]

    def _arrays(self, args, kwargs) -> list:
        """The inputs in signature order, each an array of real floats of a library the array
        API covers; InputError saying what to pass otherwise."""
        values = list(self._named(args, kwargs).values())
        arrays = [v for v in values if not _is_number(v)]
        for k, v in zip(self.inputs, values):
            if not _is_number(v):
                _check_array(self.__name__, k, v)
        _check_one_library(self.__name__, dict(zip(self.inputs, values)))
        if len(arrays) < len(values):  # a Python number: a 0-d array like the first array
            if not arrays:
                raise InputError(
                    f"{self.__name__}: backend='array_api' takes its array library from the "
                    "inputs, and all are Python numbers; pass at least one as an array"
                )
            from array_api_compat import array_namespace, device

            xp, like = array_namespace(arrays[0]), arrays[0]
            values = [
                xp.asarray(float(v), dtype=like.dtype, device=device(like)) if _is_number(v) else v
                for v in values
            ]
        return values

    def _array_value(self, /, *args, **kwargs):
        """The value, in the inputs' own library (a Dask array: not computed yet)."""
        values = self._arrays(args, kwargs)
        return self._specialised_arrays(values).module.forward(*values)[0]

    def _array_value_and_grad(self, /, *args, **kwargs):
        values = self._arrays(args, kwargs)
        out, grads = self._specialised_arrays(values).module.value_and_grad(*values)
        return out, dict(zip(self.gradient_names, grads))

    _array_value_and_grad.__doc__ = VALUE_AND_GRAD_DOC

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
        values, known = self._known(args, kwargs)
        if known is None:
            values = self._bind(args, kwargs)
            compiled = self._specialised(values)
            self._remember(args, kwargs, values, compiled)
        else:
            compiled = known[0]
        out, _ = compiled.module.forward(*compiled.prepared(values))
        return _result(out, values, compiled.dtype)

    def _numpy_value_and_grad(self, /, *args, **kwargs):
        values, known = self._known(args, kwargs)
        if known is not None:
            return self._gradients(known[0], values, known)
        entry = self.value_and_grad
        values = self._bind(args, kwargs)
        compiled = self._specialised(values)
        if self.value_and_grad is not entry:  # this call made the float path: it answers now
            return self.value_and_grad(*args, **kwargs)
        self._remember(args, kwargs, values, compiled)
        return self._gradients(compiled, values)

    _numpy_value_and_grad.__doc__ = VALUE_AND_GRAD_DOC

    # A call like one before it (every input by keyword or every one by position, each a float
    # array or a Python float of the same shapes and dtypes) needs none of `_bind`'s checks or
    # conversions, which would pass its inputs through unchanged: `_known` finds its module from
    # one key of types, shapes and dtypes. What the module returns is typed by that key too, so
    # the first such call also notes which results `_result` and `_gradient` had to convert
    # (a Python float's gradient, say); later calls convert only those. Measured at N=8 on the
    # 2-layer net, the checks and conversions cost 20-40 us a call, more than a third of what
    # the module's own arithmetic costs at that size.

    def _known(self, args, kwargs) -> tuple[list, list | None]:
        """The inputs in signature order and [module, its key, what to convert] if a call of
        this kind was bound before and passed them through unchanged; else (_, None)."""
        if kwargs:
            if args or len(kwargs) != len(self.inputs):
                return [], None
            try:
                values = [kwargs[k] for k in self.inputs]
            except KeyError:
                return [], None
        elif len(args) == len(self.inputs):
            values = list(args)
        else:
            return [], None
        key = _call_key(values)
        known = self._calls.get(key) if key is not None else None
        if known is None:
            return values, None
        self._last = known[1]
        return values, known

    def _remember(self, args, kwargs, values: list, compiled: Compiled) -> None:
        """After a call bound in full: let `_known` answer its like, if binding changed nothing."""
        if args and kwargs:
            return  # mixed: `_known` binds only all by name or all by position
        given = [kwargs[k] for k in self.inputs] if kwargs else list(args)
        key = _call_key(given)
        if key is not None and all(v is g for v, g in zip(values, given)):
            self._calls[key] = [compiled, self._last, None]

    def _gradients(self, compiled: Compiled, values: list, known: list | None = None):
        out, grads = compiled.module.value_and_grad(*compiled.prepared(values))
        names = self.gradient_names
        if known is not None and known[2] is not None:  # a call like one before: see `_known`
            value_as_is, convert = known[2]
            gradients = dict(zip(names, grads))
            for k, i in convert:
                gradients[k] = _gradient(gradients[k], values[i])
            return (out if value_as_is else _result(out, values, compiled.dtype)), gradients
        value = _result(out, values, compiled.dtype)
        gradients = {k: _gradient(g, values[i]) for k, g, i in zip(names, grads, self._positions)}
        if known is not None:
            convert = tuple(
                (k, i) for k, g, i in zip(names, grads, self._positions) if gradients[k] is not g
            )
            known[2] = (value is out, convert)
            self._enter(compiled, values, known)
        return value, gradients

    def _enter(self, compiled: Compiled, values: list, known: list) -> None:
        """Make `value_and_grad` a generated entry for calls like this one (`entries`), once:
        other calls, and those after the float path took over, keep the path above."""
        if self.value_and_grad != self._numpy_value_and_grad or not entries.can_enter(self.inputs):
            return
        value_as_is, convert = known[2]
        converted = {k for k, _ in convert}
        key, call = known[1], _call_key(values)
        if call is None:  # (a known call has a key: `_remember` kept it by one)
            return

        def mark():
            self._last = key

        self._dispatch(
            self.__call__,
            entries.entry(
                self.__name__,
                self.inputs,
                call,
                compiled.module.value_and_grad,
                compiled.converted,
                tuple((k, i, k in converted) for k, i in zip(self.gradient_names, self._positions)),
                None if value_as_is else lambda out, vs: _result(out, vs, compiled.dtype),
                _gradient,
                mark,
                self._numpy_value_and_grad,
            ),
        )
        self.value_and_grad.__doc__ = VALUE_AND_GRAD_DOC

    def _take_floats_straight(self, source: str) -> None:
        """Once called with Python floats: make the float path the entry (see Dispatch above);
        other calls, and inputs where NumPy gives inf or NaN, still run the NumPy module."""
        numpy = Fallbacks(
            lambda args, kwargs: tuple(self._named(args, kwargs).values()),
            self._numpy_value,
            self._numpy_value_and_grad,
        )
        with gc_paused():  # compiling 100k statements makes many long-lived objects
            code = straight_line(source, self.__name__, self.inputs, self.gradient_names, numpy)
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
    def source(self) -> Code:
        """The generated module for the most recent call's size pattern (all-scalar before any
        call); it reads every size from its arguments (see the module's docstring). A `str`,
        which a notebook shows highlighted."""
        if self._last is None:
            try:
                self._module_for([0.0] * len(self.inputs))
            except GraphcError as e:
                raise InputError(
                    f"{e}. The code is generated for the shapes of a call: call "
                    f"{self.__name__}(...) with example inputs first, or use "
                    f"{self.__name__}.source_for(...)"
                ) from None
        last = self._last
        assert last is not None  # set by the call above
        if last not in self._compiled:  # a copy: compiled again for the same shapes
            self._module_for([_example(k) for k in last])
        return Code(self._compiled[last].source)

    def compiled_for(self, /, *args, **kwargs) -> Compiled:
        """The compiled specialisation for these inputs: program, source, module, values."""
        return self._specialised(self._bind(args, kwargs))

    def source_for(self, /, *args, style: str | None = None, **kwargs) -> Code:
        """The generated module for the size pattern of these example inputs, in this function's
        style or `style` (an input named `style` goes by position); a `str`, shown highlighted
        in a notebook.

        >>> batchnorm.source_for(x, gamma, beta, style="layer")   # batchnorm_forward, ...
        """
        if style is not None and style != self.style:
            other = Function(self._graph, self._wrt, self.readable, "numpy", self._origin, style)
            return other.source_for(*args, **kwargs)
        return Code(self._specialised(self._bind(args, kwargs)).source)

    def save_source(self, path) -> str:
        """Write `source` to `path` atomically (a temporary file renamed into place)."""
        return write_atomic(path, self.source)

    # ------------------------------------------------------------ forward mode, second order

    def jvp(self, inputs: dict, tangents: dict) -> tuple:
        """Forward mode: the value and its derivative along `tangents` (a direction per input,
        by name; inputs without one hold still), from one pass of the tangent code.

        >>> neuron.jvp(at, tangents={"w0": 1.0})   # (value, d value / d w0)
        """
        values = self._bind((), dict(inputs))
        named = dict(zip(self.inputs, values))
        given = modes.tangent_values(dict(tangents), self.inputs, named, f"{self.__name__}.jvp")
        compiled = self._jvp_for(self._graph, values, tuple(given), "jvp")
        out, out_t = compiled.module.jvp(*values, *given.values())
        passed = [*values, *given.values()]  # f = x returns x's own array: give back a copy
        out, out_t = (np.copy(a) if any(a is p for p in passed) else a for a in (out, out_t))
        return _result(out, values, None), _result(out_t, values, None)

    def _jvp_for(self, graph, values: list, along: tuple[str, ...], kind: str):
        """The tangent module of `graph` for these inputs' shapes and tangents (cached)."""
        cache = self.__dict__.setdefault("_jvps", {})
        key = (kind, tuple(map(_signature, values)), along)
        if key not in cache:
            shapes = {k: np.shape(v) for k, v in zip(self.inputs, values)}
            if kind == "hvp":
                name = f"{self.__name__}_gradient"
                graph = modes.gradient_of(self._graph, shapes, along, name)
            try:
                cache[key] = modes.compile_jvp(graph, shapes, along)
            except GraphcError as e:
                raise type(e)(f"{self.__name__}: {e}") from None
        self.__dict__["_last_jvp"] = key
        return cache[key]

    @property
    def jvp_source(self) -> str:
        """The tangent module of the most recent `jvp` call (before any: every input a scalar
        with a tangent)."""
        key = self.__dict__.get("_last_jvp")
        if key is None or key[0] != "jvp":
            return self._jvp_for(self._graph, [0.0] * len(self.inputs), self.inputs, "jvp").source
        return self.__dict__["_jvps"][key].source

    def hvp(self, inputs: dict, v: dict) -> dict:
        """The Hessian-vector product H v, shaped like `v`: forward mode along `v` over graphc's
        own backward graph (the jvp of the gradient), for the inputs `v` names (the others
        are held fixed).

        >>> loss.hvp(inputs, v={"W1": V1, "W2": V2})   # {"W1": (H v)_W1, "W2": (H v)_W2}
        """
        values = self._bind((), dict(inputs))
        named = dict(zip(self.inputs, values))
        given = modes.tangent_values(dict(v), self.inputs, named, f"{self.__name__}.hvp")
        compiled = self._jvp_for(None, values, tuple(given), "hvp")
        _, tangents = compiled.module.jvp(*values, *given.values())
        tangents = (tangents,) if len(given) == 1 else tangents  # one gradient: one tangent
        return {k: _gradient(t, named[k]) for k, t in zip(given, tangents)}

    def gradient(self, name: str, /, *args, **inputs) -> Function:
        """The gradient d out / d `name` as a Function of the same inputs, whose graph is the
        backward pass: drawn, compiled, fused and differentiated again like any function.

        Specialised to the shapes of the example inputs, if given (default: every input a
        scalar), since where the forward graph broadcasts its gradient sums over those axes.

        >>> dneuron = neuron.gradient("w0"); dneuron.grad(**at)   # a row of the Hessian
        """
        if name not in self.inputs:
            raise InputError(
                f"gradient() takes an input name of {self.__name__}, one of {list(self.inputs)}; "
                f"got {name!r}"
            )
        values = self._bind(args, inputs) if args or inputs else [0.0] * len(self.inputs)
        shapes = {k: np.shape(v) for k, v in zip(self.inputs, values)}
        title = f"d{self.__name__}_d{name}"
        try:
            graph = modes.gradient_of(self._graph, shapes, (name,), title)
        except GraphcError as e:
            raise type(e)(f"{self.__name__}: {e}") from None
        return Function(graph, readable=self.readable)

    # ------------------------------------------------------------ pictures

    def values_for(self, /, *args, **kwargs) -> tuple[Compiled, dict]:
        """The compiled specialisation for these inputs, and every value its forward and
        backward compute there (by node id, backward seeded with ones): what drawings show."""
        values = self._bind(args, kwargs)
        compiled = self._specialised(values)
        with np.errstate(all="ignore"):  # an overflow is drawn on its wire, not warned about
            return compiled, compiled.values(values, compiled.ones(values))

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
        mode: str = "reverse",
        tangents: dict | None = None,
        **inputs,
    ) -> graphviz.Digraph:
        """The circuit as a graphviz.Digraph; with inputs, values and gradients on every wire.

        Numbers have `digits` decimals, or `sig` significant figures; `theme` "light" or "dark"
        on its own opaque background unless `background` says otherwise ("transparent", any
        colour); `direction` "LR" or "TB"; `fit` "16:9" or "4:3" sizes it for a slide. Inputs go
        by position or by name, as for a call; an input named like an option goes by position.
        `mode="forward"` writes each wire's tangent under it instead of its gradient: the
        derivative along `tangents` (default: 1 for the first input), as `jvp` computes it.

        >>> f.render(x=-2.0, y=5.0, z=-4.0)   # f.render() draws the structure alone
        >>> neuron.render(**at, mode="forward", tangents={"w0": 1.0})
        """
        named = self._drawn(args, inputs, "render()")
        if mode not in ("reverse", "forward"):
            raise InputError(f"render(): mode={mode!r}; choose 'reverse' or 'forward'")
        if mode == "forward":
            if not named:
                raise InputError("render(mode='forward') needs input values: it draws tangents")
            panel = self._forward_panel(named, tangents, digits)[0]
            return notebook.Picture.of(render.picture([panel], theme, digits))
        style = render.Style(digits, sig, theme, background, direction, fit)
        return notebook.Picture.of(render.fitted(self, named, style, show_local))

    def svg(self, /, *args, **options) -> str:
        """`render(...)` as SVG text (the same options)."""
        inputs = {k: v for k, v in options.items() if k not in DRAWING_OPTIONS}
        self._drawn(args, inputs, "svg()")  # name the method in an error about its options
        return render.svg_text(self.render(*args, **options))

    def _forward_panel(self, named: dict, tangents: dict | None, digits: int, title=None):
        """The forward-mode panel at these inputs (by name) and the inputs with a tangent."""
        values = self._bind((), named)
        given = modes.tangent_values(
            {self.inputs[0]: 1.0} if tangents is None else dict(tangents),
            self.inputs,
            dict(zip(self.inputs, values)),
            f"{self.__name__}.render",
        )
        shapes = {k: np.shape(v) for k, v in zip(self.inputs, values)}
        along = tuple(given)
        program, computed = modes.jvp_values(self._graph, shapes, along, [*values, *given.values()])
        return draw_modes.forward_panel(self._graph, program, computed, digits, title), along

    def compare_modes(
        self,
        /,
        *args,
        tangents: dict | None = None,
        digits: int = 2,
        theme: str = "light",
        **inputs,
    ):
        """One circuit in both modes, side by side, for the lecture's slide: reverse mode's
        gradients (one backward pass: d out / d every input) beside forward mode's tangents
        (one pass along `tangents`, default the first input: d every value / d that input),
        with the passes each needs for n inputs and m outputs.

        >>> neuron.compare_modes(**at, tangents={"w0": 1.0})
        """
        named = self._named(args, inputs, ("tangents", "digits", "theme"), "compare_modes()")
        reverse = render.function_panel(
            self, named, digits, False, title="reverse mode: gradients under the wires"
        )
        forward, along = self._forward_panel(
            named,
            tangents,
            digits,
            f"forward mode: tangents along {', '.join(along_of(tangents, self.inputs))}",
        )
        m = int(np.size(self(**named)))
        n = sum(int(np.size(v)) for v in named.values())
        rows = draw_modes.cost_rows(n, m, along)
        return draw_modes.modes_picture(reverse, forward, rows, theme, digits)

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
        picture. The drawing options are those of `render`. A list, which a notebook shows as a
        player (back, play, forward, a slider)."""
        named = self._drawn(args, inputs, "render_steps()", (*DRAWING_OPTIONS, "forward"))
        if not named:
            raise InputError(
                "render_steps needs input values: the frames reveal values and gradients"
            )
        style = render.Style(digits, sig, theme, background, direction, fit)
        steps = render.steps(self, named, style=style, show_local=show_local, forward=forward)
        return notebook.Frames(steps)

    def explore(self, /, *args, quiz=False, fit: str | None = None, **inputs) -> explorer.Page:
        """An interactive page stepping through forward and backward at these inputs: one
        self-contained HTML file (`.save(path)`), shown inline in a notebook. `quiz=True`
        hides every gradient as "?" until clicked; a list of input names hides theirs only.
        `fit` ("16:9", "4:3") draws the circuit as the slides fit it (fused above 30 gates).
        A toggle shows forward mode instead: each wire's tangent for a chosen input (seeded
        d input = 1), gate by gate. An input named `quiz` or `fit` goes by position.

        >>> neuron.explore(w0=2.0, x0=-1.0, w1=-3.0, x1=-2.0, w2=-3.0).save("neuron.html")
        """
        named = self._named(args, inputs, ("quiz", "fit"), "explore()")
        return self._explore((self,), named, None, quiz, fit)

    def _explore(self, functions, inputs: dict, titles, quiz, fit=None) -> explorer.Page:
        """The page for `functions` (this one, or unfused and fused) at `inputs` by name."""
        _check_quiz(quiz, self.inputs)
        if fit is not None and fit not in render.FITS:
            raise InputError(f"explore(fit={fit!r}): use one of {sorted(render.FITS)} or None")
        text = explorer.explore(functions, inputs, titles, quiz, fit, _tangents_of(inputs))
        return explorer.Page(text, write_atomic)

    def save_picture(
        self,
        path,
        /,
        *args,
        dpi: int | None = None,
        digits: int = 2,
        show_local: bool = False,
        theme: str = "light",
        **inputs,
    ) -> str:
        """Write `render(...)` to `path` as SVG, PDF or PNG (by its suffix; .dot or .gv: the
        Graphviz source), atomically; `dpi` sets a PNG's resolution (Graphviz's default: 96).
        Returns the path.

        >>> f.save_picture("circuit.png", x=-2.0, y=5.0, z=-4.0, dpi=200)
        """
        self._drawn(args, inputs, "save_picture()")  # name the method in an error
        picture = self.render(*args, digits=digits, show_local=show_local, theme=theme, **inputs)
        return write_picture(picture, path, dpi=dpi)

    # ------------------------------------------------------------ notebooks

    def _repr_svg_(self) -> str | None:
        """The circuit's structure as SVG (None where `graphviz.set_jupyter_format` chose
        another format, so Jupyter does not add an SVG beside it)."""
        return self.svg() if notebook.jupyter_format() == "svg" else None

    def _repr_html_(self) -> str:
        """The one-line summary over the circuit, scaled to the notebook's width."""
        return notebook.mimebundle(self.render(), self.summary(), include=["text/html"])[
            "text/html"
        ]

    def _repr_mimebundle_(self, include=None, exclude=None, **_) -> dict:
        """The circuit in the graphviz package's Jupyter format (SVG unless
        `graphviz.set_jupyter_format` chose PNG), and the summary over it as HTML."""
        return notebook.mimebundle(self.render(), self.summary(), include, exclude)


def along_of(tangents: dict | None, inputs: tuple[str, ...]) -> list[str]:
    """The inputs a forward-mode picture has tangents for (default: the first)."""
    return [inputs[0]] if tangents is None else [k for k in inputs if k in tangents]


def _check_array_api(name: str) -> None:
    """GraphcError saying what to install unless array-api-compat is there."""
    try:
        import array_api_compat  # noqa: F401 - the generated module's one dependency
    except ImportError:
        raise GraphcError(
            f"{name}: backend='array_api' needs array-api-compat, which is not installed; "
            "install it with pip install 'graphc[arrays]' (or pip install array-api-compat), "
            "or use backend='numpy'"
        ) from None


def _is_number(v) -> bool:
    """A Python real (not a bool): what the array API backend takes as a 0-d array."""
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.generic))


def _check_one_library(fn: str, named: dict) -> None:
    """InputError unless every array input is of one library (one namespace)."""
    from array_api_compat import array_namespace

    spaces: dict[str, str] = {}
    for k, v in named.items():
        if not _is_number(v):
            spaces.setdefault(array_namespace(v).__name__, k)
    if len(spaces) > 1:
        listed = ", ".join(f"{k!r} of {space}" for space, k in spaces.items())
        raise InputError(
            f"{fn}: the inputs are arrays of different libraries ({listed}); convert them to "
            "one, e.g. dask.array.from_array(W) for a NumPy weight next to Dask data"
        )


def _check_array(fn: str, name: str, v) -> None:
    """InputError unless `v` is an array of real floats that array-api-compat knows."""
    from array_api_compat import array_namespace, is_array_api_obj

    if not is_array_api_obj(v):
        raise InputError(
            f"{fn}: input {name!r} is {type(v).__name__}; backend='array_api' takes arrays "
            "(NumPy, Dask, PyTorch, JAX, CuPy, array_api_strict): pass xp.asarray(value, "
            "dtype=xp.float64) of your library"
        )
    xp = array_namespace(v)
    if not xp.isdtype(v.dtype, "real floating"):
        raise InputError(
            f"{fn}: input {name!r} has dtype {v.dtype}; graphc differentiates real floats: "
            f"pass xp.astype({name}, xp.float64)"
        )
    if any(n is None or n != n for n in v.shape):  # Dask's unknown chunk sizes
        raise InputError(
            f"{fn}: input {name!r} has unknown sizes {v.shape}; the code is specialised to "
            f"the shapes: compute them first ({name}.compute_chunk_sizes() for Dask)"
        )


def _tangents_of(inputs: dict):
    """For the explorer: `forward(f, name)`, every node's tangent (node -> value) in one pass
    of `f`'s tangent code at `inputs`, seeded with d name = 1 (ones for an array input)."""

    def forward(f, name: str) -> dict:
        values = f._bind((), dict(inputs))
        named = dict(zip(f.inputs, values))
        given = modes.tangent_values({name: 1.0}, f.inputs, named, f"{f.__name__}.explore")
        shapes = {k: np.shape(v) for k, v in named.items()}
        program, computed = modes.jvp_values(
            f._graph, shapes, tuple(given), [*values, *given.values()]
        )
        h = program.graph.graph
        tangent_of = {**h["tangent_of"], **h["tangents"]}
        return {n: computed[t] for n, t in tangent_of.items() if t in computed}

    return forward


def _check_quiz(quiz, inputs: tuple[str, ...]) -> None:
    if isinstance(quiz, bool):
        return
    names = [quiz] if isinstance(quiz, str) else quiz
    try:
        unknown = [k for k in names if k not in inputs]
    except TypeError:
        unknown = [quiz]
    if unknown or isinstance(quiz, str):
        raise InputError(
            f"explore(quiz=...) takes True, False or a list of input names of the function "
            f"(one or more of {list(inputs)}); got {quiz!r}"
        )


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
    if dtype == "array":  # the array API backend: NumPy arrays will do
        return np.zeros(shape)
    return 0.0 if dtype == "py" else np.zeros(shape, dtype=np.dtype(dtype))


def _index(name: str, v):
    """An index input as it is: an array of integers (NumPy's own, to index with)."""
    arr = np.asarray(v) if not isinstance(v, np.ndarray) else v
    if arr.dtype.kind not in "iu":
        raise InputError(
            f"input {name!r} indexes, so it must hold integers; got dtype {arr.dtype} (pass "
            f"{name}.astype(int) if its values are whole numbers)"
        )
    return arr


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
        return out if type(out) is dtype.type else dtype.type(out)  # a scalar, not a 0-d array
    return out if dtype is None or out.dtype == dtype else out.astype(dtype)


def _call_key(values: list) -> tuple | None:
    """What binding a call depends on, for `Function._known`: each input a float array (its
    shape and dtype), a Python float or a NumPy float scalar (its type: np.float64, ...); None
    for anything else, which is bound in full."""
    key: list[object] = []
    for v in values:
        t = type(v)
        if t is np.ndarray:
            if v.dtype.kind not in "fiu":  # integers: float64 arrays, or index as they are
                return None  # (binding changes the first: `_remember` never keeps such a key)
            key.append((v.shape, v.dtype))
        elif t is float or t in _FLOAT_SCALARS:  # binding passes NumPy floats through as well
            key.append(t)
        else:
            return None
    return tuple(key)


_FLOAT_SCALARS = frozenset({np.float16, np.float32, np.float64, np.longdouble})


def _gradient(g, v):
    same = type(g) is np.ndarray and type(v) is np.ndarray and g.shape == v.shape
    if same and g.dtype == v.dtype:
        return g  # as the module returned it: the common case, first
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
    style: str = "accurate",
) -> Function:
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

    `style` chooses how the code reads: "accurate" (default: exact for any input), "textbook"
    (the lecture's formulas where they differ: sigmoid' = (1 - s) * s, tanh' = 1 - t**2,
    softplus = log(1 + exp(x)); the docstring says where they lose accuracy) or "layer"
    (`<name>_forward(...) -> (out, cache)`, `<name>_backward(dout, cache)`, `class <Name>Gate`).
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
    return Function(graph, readable=readable, backend=backend, style=style)


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


def from_sympy(expr, name: str = "f") -> Function:
    """A `Function` from a SymPy expression; its inputs are the free symbols, alphabetically.

    >>> import sympy
    >>> x, y = sympy.symbols("x y")
    >>> gc.from_sympy(x**2 + 2*x*y**2 + y**3).grad(x=1.0, y=2.0)["x"]
    10.0
    """
    return Function(sympy_graph(expr, name))
