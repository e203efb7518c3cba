"""The function object: the user's handle on a compiled graph, and the pipeline in one place.

Stage: surface. Imports every stage before it; nothing imports it but `__init__`.

`compile_graph` is the whole compiler, in order: shapes -> backward -> schedule -> print -> load.
A `Function` keeps one compiled module per input signature (shapes and dtypes), so code is
specialised to how it is called, and converts arguments and results at the boundary.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import numbers
import os
import secrets
import stat
import types
from dataclasses import dataclass

import networkx as nx
import numpy as np

from . import __version__, dtypes, numba_backend, render, text
from .autodiff import backward, gate_local_gradients
from .codegen import emit_module, emit_values_module, load_module
from .errors import GraphcError, InputError
from .fusion import fuse
from .graph import normalize, validate
from .lower import lower
from .scalar import Fallbacks, straight_line
from .schedule import Program, sanitize, schedule
from .shapes import infer_shapes
from .trace import Value, build_graph, trace


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
    """
    with gc_paused():
        compiled = _compile(g, shapes, wrt, readable, dtype, input_dtypes)
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


# The keyword options of render, svg and render_steps: an input of the same name goes by position
DRAWING_OPTIONS = ("digits", "show_local", "theme")


class Function:
    """A differentiable function compiled to NumPy: call it, take its gradient, read its code.

    >>> @function
    ... def f(x, y, z):
    ...     return (x + y) * z
    >>> f.value_and_grad(x=-2.0, y=5.0, z=-4.0)
    (-12.0, {'x': -4.0, 'y': -4.0, 'z': 3.0})
    """

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
        self._value = self._numpy_value  # Python floats get their own (_take_floats_straight)

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

    def __call__(self, /, *args, **kwargs):
        return self._value(*args, **kwargs)

    def _numpy_value(self, /, *args, **kwargs):
        values = self._bind(args, kwargs)
        compiled = self._specialised(values)
        out, _ = compiled.module.forward(*compiled.prepared(values))
        return _result(out, values, compiled.dtype)

    def value_and_grad(self, /, *args, **kwargs):
        """The value and a dict of gradients, one per input, each shaped like its input.

        For a non-scalar output this is the gradient of the sum of its entries.
        """
        values = self._bind(args, kwargs)
        compiled = self._specialised(values)
        if "value_and_grad" in vars(self):  # the first call with Python floats made an entry
            return self.value_and_grad(*args, **kwargs)
        return self._gradients(compiled, values)

    def _numpy_value_and_grad(self, /, *args, **kwargs):
        values = self._bind(args, kwargs)
        return self._gradients(self._specialised(values), values)

    def _gradients(self, compiled: Compiled, values: list):
        out, grads = compiled.module.value_and_grad(*compiled.prepared(values))
        given = dict(zip(self.inputs, values))
        return _result(out, values, compiled.dtype), {
            k: _gradient(g, given[k]) for k, g in zip(self.gradient_names, grads)
        }

    def _take_floats_straight(self, source: str) -> None:
        """Once called with Python floats: from now on such calls run the module's statements
        on Python floats, straight through (`graphc.scalar`), with no NumPy call per gate;
        other calls, and inputs where NumPy gives inf or NaN, still run the NumPy module.

        The entries are instance attributes shadowing `value_and_grad` (and `_value`, which
        `__call__` calls): a call costs what a hand-written function costs, not a method's
        argument handling besides."""
        numpy = Fallbacks(
            lambda args, kwargs: tuple(self._named(args, kwargs).values()),
            self._numpy_value,
            self._numpy_value_and_grad,
        )
        with gc_paused():  # compiling 100k statements makes many long-lived objects
            code = straight_line(source, self.__name__, self.gradient_names, numpy)
        if code is None:
            return
        code.value_and_grad.__doc__ = Function.value_and_grad.__doc__
        self.value_and_grad = code.value_and_grad

        def first_value(*args, **kwargs):
            self._value = code.value  # compiled now: f(...) with floats may never be called
            return self._value(*args, **kwargs)

        self._value = first_value

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
        write_atomic(path, self.source)
        return os.fspath(path)

    # ------------------------------------------------------------ pictures

    def _panel(self, inputs: dict, digits: int, show_local: bool, reveal=None, title=None):
        graph = self._graph
        local = None
        if not inputs:
            scene = render.build_scene(
                graph, output_name=graph.nodes[graph.graph["output"]].get("hint", "out")
            )
            compiled = None
        else:
            compiled = self.compiled_for(**inputs)
            program = compiled.program
            out_shape = program.graph.nodes[program.output]["shape"]
            seed = 1.0 if out_shape == () else np.ones(out_shape)
            with np.errstate(all="ignore"):  # an overflow is drawn on its wire, not warned about
                values = compiled.values(self._bind((), inputs), seed)
            scene = render.build_scene(
                graph, values, program.graph.graph["wires"], program.seed,
                program.names.get(program.output, "out"), digits,
            )  # fmt: skip
        if show_local:
            local = render.local_texts(graph, gate_local_gradients)
        return render.Panel(scene, title, local, reveal)

    def _drawn(self, args, inputs, caller: str) -> dict:
        """The inputs to draw with, by name ({} for the structure alone)."""
        if not args and not inputs:
            return {}
        return self._named(args, inputs, DRAWING_OPTIONS, caller)

    def render(
        self, /, *args, digits: int = 2, show_local: bool = False, theme: str = "light", **inputs
    ):
        """The circuit as a graphviz.Digraph; with inputs, values and gradients on every wire.

        Inputs go by position or by name, as for a call; an input named like an option
        (`digits`, `show_local`, `theme`) goes by position.

        >>> f.render(x=-2.0, y=5.0, z=-4.0)   # f.render() draws the structure alone
        """
        panel = self._panel(self._drawn(args, inputs, "render()"), digits, show_local)
        return render.picture([panel], theme, digits)

    def svg(
        self, /, *args, digits: int = 2, show_local: bool = False, theme: str = "light", **inputs
    ) -> str:
        """`render(...)` as SVG text."""
        self._drawn(args, inputs, "svg()")  # name the method in an error about its options
        picture = self.render(*args, digits=digits, show_local=show_local, theme=theme, **inputs)
        return render.svg_text(picture)

    def render_steps(
        self, /, *args, digits: int = 2, show_local: bool = False, theme: str = "light", **inputs
    ) -> list[str]:
        """SVG frames for a slide build-up: forward values first, then one gate's gradients more
        per frame, in backward order; the last frame is the full picture (gates + 1 frames).
        """
        named = self._drawn(args, inputs, "render_steps()")
        if not named:
            raise InputError(
                "render_steps needs input values: the frames reveal values and gradients"
            )
        frames = []
        gates = sum(1 for _, op in self._graph.nodes(data="op") if op not in ("input", "const"))
        for reveal in range(-1, gates + 1):
            if reveal == 0:
                continue  # the output wire's gradient comes with the first gate's frame
            panel = self._panel(
                named, digits, show_local, reveal=None if reveal == gates else reveal
            )
            frames.append(render.svg_text(render.picture([panel], theme, digits)))
        return frames

    def _repr_svg_(self) -> str:
        """Jupyter shows the circuit's structure."""
        return self.svg()


def write_atomic(path, data: str | bytes) -> None:
    """Write text or bytes to path via a temporary file in the same folder, renamed into place,
    so no half-written file is ever seen and a failure leaves an existing file as it was.

    The file gets the permissions any new file gets (0666 minus the umask), or keeps those of
    the file it replaces.
    """
    path = os.fspath(path)
    fd, tmp = _new_file_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _new_file_beside(path: str) -> tuple[int, str]:
    """A new, empty temporary file in path's folder. Created with mode 0666 as `open` does, so
    the umask applies (tempfile's files are 0600, private to their owner)."""
    folder = os.path.dirname(os.path.abspath(path))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".graphc-{secrets.token_hex(8)}.tmp")
        with contextlib.suppress(FileExistsError):  # a name already taken: draw another
            return os.open(tmp, flags, 0o666), tmp
    raise FileExistsError(f"no free temporary file name in {folder!r}")


def write_picture(picture, path) -> str:
    """Write a drawing to `path` in the format its suffix names (.svg, .pdf, .png), atomically.

    `picture` is a graphviz Digraph, or SVG text (for .svg only). A failure leaves any existing
    file at `path` as it was.
    """
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower().lstrip(".")
    if suffix not in ("svg", "pdf", "png"):
        raise GraphcError(f"cannot write a picture to {path!r}: use a .svg, .pdf or .png file name")
    if isinstance(picture, str):
        if suffix != "svg":
            raise GraphcError(f"only SVG text is at hand for {path!r}; write it to a .svg file")
        data = picture.encode("utf-8")
    else:
        data = render.pipe(picture, suffix)
    write_atomic(path, data)
    return path


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
