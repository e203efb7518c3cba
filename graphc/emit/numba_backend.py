"""The numba backend: a program whose gates are all elementwise, run as one compiled loop.

Stage: emit. Imports `codegen`, `passes.schedule` and the `ir`; numba
itself only when a module is loaded (it is an optional extra: `pip install 'graphc[numba]'`).

The NumPy module stays the default and the readable reference. For an elementwise program the
NumPy module makes one pass over memory per statement; here the same statements, compiled for
scalars (the program scheduled for inputs of shape ()), run once per element inside a single
`@numba.njit` loop, forward and backward together, so every intermediate stays in a register:

    for i in range(out.size):
        add_2 = w0[i] * x0[i] + w1[i] * x1[i] + w2[i]
        e = np.exp(-np.abs(add_2))
        out[i] = (1.0 if add_2 >= 0 else e) / (e + 1)
        dw2[i] = dout[i] * e / (e + 1) ** 2
        ...

Formulas are printed by the NumPy printer of `codegen` (NumPy's functions work on scalars in
numba, with NumPy's NaN and inf rules), except where NumPy's spelling makes an array (`where`,
`copy`). Inputs broadcast as in NumPy: an input of the full shape is read in place, a scalar as
one element with stride 0. The gradient of a one-element input (a scalar parameter) is summed
inside the loop, in blocks for accuracy; that of any other broadcast input is summed back to its
shape by `np.sum` after the loop, as the NumPy module's unbroadcast does.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import numbers
import re
import textwrap
from collections import Counter

import networkx as nx
import numpy as np
import sympy

from ..ir import text
from ..ir.errors import GraphcError
from ..ir.graph import args_of
from ..ir.ops import ARGS, TENSOR, gate_of
from ..ir.special import HELPERS, where
from ..passes.schedule import Program, fresh
from .codegen import Emitter, Printer, literal, load_module, printed_template

BACKENDS = ("numpy", "numba")
X, E = ARGS[0], ARGS[1]

# Helpers spelled for one element: np.where would make an array from scalars, and a select
# replaces sigmoid's exp(min(x, 0)), which is 1 or e = exp(-|x|) bit for bit (NaN too).
SCALAR_HELPERS = {
    "sigmoid": '''\
def sigmoid(x):
    """1/(1+exp(-x)) for any x, with one exp: of -|x|, so it never overflows."""
    e = np.exp(-np.abs(x))
    return (1.0 if x >= 0 else e) / (1.0 + e)
''',
    "leaky_relu": '''\
def leaky_relu(x, slope):
    """x where x > 0, else slope * x."""
    return x if x > 0 else slope * x
''',
}


def available() -> bool:
    """Whether numba is installed (found without importing it)."""
    return importlib.util.find_spec("numba") is not None


def check_supported(g: nx.DiGraph, name: str) -> None:
    """GraphcError saying what to do unless numba is installed and every gate of `g` is
    elementwise with scalar constants (so the program is one loop over the elements)."""
    if not available():
        raise GraphcError(
            f"{name}: backend='numba' needs numba, which is not installed; install it with "
            "pip install 'graphc[numba]' (or pip install numba), or use backend='numpy'"
        )
    for n, data in sorted(g.nodes(data=True)):
        op = data["op"]
        if op == "const" and np.ndim(data["value"]) > 0:
            raise GraphcError(
                f"{name}: backend='numba' runs elementwise programs only, and node {n} is a "
                f"constant array of shape {np.shape(data['value'])}; pass it as an input, or "
                "use backend='numpy'"
            )
        if op not in ("input", "const") and gate_of(op).kind == TENSOR:
            raise GraphcError(
                f"{name}: backend='numba' runs elementwise programs only, and node {n} is the "
                f"tensor gate {op!r} (a reduction, matmul, reshape or transpose); use "
                "backend='numpy' for this function"
            )


# ---------------------------------------------------------------- printing one element


class ScalarPrinter(Printer):
    """The NumPy printer, for statements on one element: a choice is Python's `a if m else b`
    (np.where would make a 0-d array inside the loop), a negative power a float one."""

    def _print(self, expr, **kwargs):
        if isinstance(expr, where):  # its `_numpycode` would print np.where
            m, a, b = (self._print(x) for x in expr.args)
            return f"({a} if {m} else {b})"
        return super()._print(expr, **kwargs)

    def _print_Pow(self, expr, rational=False):
        if expr.exp.is_Integer and expr.exp < -1:  # numba raises on 0.0 ** -2, NumPy gives inf
            expr = sympy.Pow(expr.base, sympy.Float(expr.exp), evaluate=False)
        return super()._print_Pow(expr, rational)

    def _print_Piecewise(self, expr):
        text = super()._print_Piecewise(expr)
        if not text.startswith(("np.where(", "np.select(")):
            return text  # an indicator, printed as its (boolean) condition
        # the first branch whose condition holds; none (SymPy's undefined): NaN, as np.select
        *branches, (value, cond) = expr.args
        text = self._print(value) if cond == sympy.true else f"({self._print(value)} if "
        text += "" if cond == sympy.true else f"{self._print(cond)} else np.nan)"
        for value, cond in reversed(branches):
            text = f"({self._print(value)} if {self._print(cond)} else {text})"
        return text

    def _print_And(self, expr):  # np.logical_and.reduce takes no scalars in numba
        return "(" + " and ".join(self._print(a) for a in expr.args) + ")"

    def _print_Or(self, expr):
        return "(" + " or ".join(self._print(a) for a in expr.args) + ")"


_PRINTER = ScalarPrinter()


@functools.cache
def scalar_template(formula: sympy.Expr) -> str:
    """`formula` printed for one element, with `{0}`, `{1}` slots (see codegen's template)."""
    return printed_template(formula, _PRINTER)


# exp(min(x, 0)) is 1 or e = exp(-|x|), bit for bit (NaN too): a select instead of a second exp
_ONE_OR_E = {sympy.exp(sympy.Min(X, 0)): sympy.Piecewise((1.0, X >= 0), (E, True))}


class KernelEmitter(Emitter):
    """Prints the statements of a scalar program as the body of the loop."""

    def ref(self, n: int) -> str:
        value = self.g.nodes[n].get("value")
        if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
            return literal(float(value))  # numba raises on 0.0 ** -2 (an int power): NumPy, inf
        return super().ref(n)

    def expr(self, n: int) -> str:
        data = self.g.nodes[n]
        refs = [self.ref(a) for a in args_of(self.g, n)]
        if data["op"] == "expr":
            formula = data["formula"]
            if "local" in data:  # a lowered gate: its e is already at hand
                formula = formula.xreplace(_ONE_OR_E)
        else:  # the composed formula spells kinks as NumPy does (np.maximum keeps NaN)
            formula = gate_of(data["op"]).composed_expr()
        return scalar_template(formula).format(*refs)  # `copy` of one element is the element


# ---------------------------------------------------------------- the module


def check_scalar(program: Program) -> None:
    """The program for shape () must be one element's work: every value a scalar."""
    g = program.graph
    for n in [*program.forward, *program.backward, *program.inline, *program.constants]:
        op = g.nodes[n]["op"]
        if g.nodes[n]["shape"] != () or (gate_of(op) is not None and gate_of(op).kind == TENSOR):
            raise GraphcError(
                f"backend='numba' runs elementwise programs only; node {n} ({op}) is not "
                "elementwise: use backend='numpy'"
            )


SUM_NAMES = ("sum", "total", "block")  # d<input>_sum[0] = d<input>_total + d<input>_block
BLOCK = 256  # in-loop sums add blocks of this many elements: error ~ (BLOCK + n / BLOCK) eps


def emit_kernel_module(
    program: Program, title: str, version: str, summed: frozenset[str] = frozenset()
) -> str:
    """The numba module for a program scheduled for scalar inputs: `forward_loop` and
    `backward_loop` (njit), and `forward`, `backward` and `value_and_grad` as in the NumPy
    module, for inputs of any shapes that broadcast together.

    The gradients of the inputs named in `summed`, which must then have one element (scalar
    parameters), are summed inside the loop instead of written out and summed after it.
    """
    check_scalar(program)
    g = program.graph
    names = dict(program.names)
    taken = set(names.values())
    grad_of = g.graph["grads"]  # input node -> gradient node
    out, seed = program.output, program.seed
    # The loop runs over the output's elements: the broadcast of the inputs the output depends
    # on. Any other input is no argument of the loops, and its gradient is 0.
    to_out = nx.ancestors(g, out)
    live = [i for i in program.inputs if i in to_out or i == out]
    inputs = [names[i] for i in live]
    statements = set(program.forward) | set(program.backward)

    # Arrays: inputs and the seed are read at [i]; the output and gradients written at [i].
    index = fresh("i", taken)  # the loop's: `i` unless the program has a variable of that name
    for n in program.inputs:
        names[n] = f"{names[n]}[{index}]"
    seed_array = names[seed]
    names[seed] = f"{seed_array}[{index}]"
    stores = []  # values that are not statements of their own, stored at the end

    shared = {k for k, count in Counter(program.names.values()).items() if count > 1}

    def array_for(n: int, preferred: str) -> str:
        """The array n is written to: its statement writes there, if n's name is its own."""
        if n in statements and n not in stored_in and names[n] not in shared:
            stored_in[n] = names[n]
            names[n] = f"{names[n]}[{index}]"
            return stored_in[n]
        array = fresh(preferred, taken)
        stores.append((array, n))
        return array

    stored_in: dict[int, str] = {}
    out_array = array_for(out, "out")
    grad_arrays, sums = [], []  # sums: (array, running sum, block sum, gradient node)
    for i, n in grad_of.items():
        name = g.nodes[i]["name"]
        if i not in live:
            array = None
        elif name in summed:
            array, total, block = (fresh(f"d{name}_{k}", taken) for k in SUM_NAMES)
            sums.append((array, total, block, n))
        else:
            array = array_for(n, "d" + name)
        grad_arrays.append(array)

    emitter = KernelEmitter(dataclasses.replace(program, names=names))
    store_lines = [f"{a}[{index}] = {emitter.name_of(n)}" for a, n in stores]
    fwd_stores = [s for s, (_, n) in zip(store_lines, stores) if n == out]
    before, after = [], []  # around the loop: in-loop sums start at 0 and are stored at the end
    if sums:
        before = [" = ".join([*(x for _, t, b, _ in sums for x in (t, b)), "0.0"])]
        store_lines += [f"{b} += {emitter.name_of(n)}" for _, _, b, n in sums]
        store_lines.append(f"if {index} % {BLOCK} == {BLOCK - 1}:  # sums of blocks: accurate sums")
        store_lines += [f"    {x}" for _, t, b, _ in sums for x in (f"{t} += {b}", f"{b} = 0.0")]
        after = [f"{a}[0] = {t} + {b}" for a, t, b, _ in sums]

    def loop(name: str, params: list[str], body: list[int], extra: list[str], doc: str) -> str:
        lines = ['@numba.njit(error_model="numpy")', f"def {name}({', '.join(params)}):"]
        lines.append(f'    """{doc}"""')
        lines += [f"    {s}" for s in (before if extra is store_lines else [])]
        lines.append(f"    for {index} in range({out_array}.size):")
        lines += [f"        {emitter.statement(n)}" for n in body]
        lines += [f"        {s}" for s in extra]
        lines += [f"    {s}" for s in (after if extra is store_lines else [])]
        return "\n".join(lines)

    fwd_only = [n for n in program.forward if n == out or n in to_out]  # forward_loop's work
    about = (
        f"One loop over the elements per call, compiled by numba: each element goes through "
        f"the statements of the NumPy module (graphc's readable reference, backend='numpy'), "
        f"with the gates over e = exp(-|x|) as readable=False spells them. Inputs broadcast as "
        f"in NumPy; backward returns the gradients of "
        f"{', '.join(g.nodes[i]['name'] for i in grad_of) or 'nothing'}."
    )
    scalars = [g.nodes[i]["name"] for i in grad_of if g.nodes[i]["name"] in summed]
    if scalars:
        about += f" Specialised to one-element {', '.join(scalars)}: the loop sums their gradients."
    header = [
        f'"""Forward and backward of {text.quoted(title)} as numba loops, generated by graphc '
        f"{version}.",
        "",
        *textwrap.wrap(text.quoted(about), 96),
        '"""',
        "",
        "import numba",
        "import numpy as np",
    ]
    blocks = ["\n".join(header)]
    fwd_loop, bwd_loop = fresh("forward_loop", taken), fresh("backward_loop", taken)
    loops = [
        loop(
            fwd_loop,
            [*inputs, out_array],
            fwd_only,
            fwd_stores,
            f"{out_array}[{index}] for every {index}: the forward statements for one element.",
        ),
        loop(
            bwd_loop,
            [*inputs, seed_array, out_array, *filter(None, grad_arrays)],
            [*program.forward, *program.backward],
            store_lines,
            f"{out_array}[{index}] and the gradients at [{index}]: forward and backward for one "
            "element.",
        ),
    ]
    blocks += [f'@numba.njit(error_model="numpy")\n{h.rstrip()}' for h in _helpers(loops)]
    blocks += loops
    blocks.append(_RUNTIME)
    summed_arrays = [a for a, *_ in sums]
    blocks += _wrappers(
        program,
        live,
        (fwd_loop, bwd_loop),
        out_array,
        grad_arrays,
        summed_arrays,
        seed_array,
        taken,
    )
    return "\n\n\n".join(blocks) + "\n"


def _wrappers(program, live, loops, out_array, grad_arrays, summed, seed_array, taken) -> list[str]:
    """forward, backward and value_and_grad: broadcast, allocate, run a loop, sum back."""
    every = [program.names[i] for i in program.inputs]
    inputs = [program.names[i] for i in live]  # the loops' inputs
    shape, dtype, ones = (fresh(k, taken) for k in ("shape", "dtype", "ones"))
    params = ", ".join(every)
    cache = f"({params},)" if len(every) == 1 else f"({params})"
    written = [a for a in grad_arrays if a is not None]
    full = [out_array, *(a for a in written if a not in summed)]
    arrays = ", ".join(full) + ("," if len(full) == 1 else "")
    allocate = [f"    {arrays} = (np.empty({shape}, {dtype}) for _ in range({len(full)}))"]
    if summed:  # one element each, summed in the loop
        one = ", ".join(summed) + ("," if len(summed) == 1 else "")
        allocate.append(f"    {one} = (np.empty(1, {dtype}) for _ in range({len(summed)}))")

    def elements(names):
        return [f"_elements({x}, {shape})" for x in names]

    def run(loop, reads, writes):
        return _call(f"    {loop}(", [*reads, *(f"{a}.reshape(-1)" for a in writes)], ")", True)

    def returned(d, x):
        if d is None:  # the output does not depend on x
            return f"np.zeros(np.shape({x}), {dtype})"
        return f"{d}.reshape(np.shape({x}))" if d in summed else f"_summed({d}, np.shape({x}))"

    grads = [
        returned(d, program.names[i]) for d, i in zip(grad_arrays, program.graph.graph["grads"])
    ]
    one_element = [
        program.names[i] for d, i in zip(grad_arrays, program.graph.graph["grads"]) if d in summed
    ]
    check = [
        f"    if np.size({x}) != 1:\n"
        f"        raise ValueError('{x} must have one element: its gradient is summed in the loop')"
        for x in one_element
    ]
    shapes = [f"np.shape({x})" for x in inputs]
    forward = [
        f"def forward({params}):",
        _call(f"    {shape} = np.broadcast_shapes(", shapes, ")"),
        _call(f"    {dtype} = np.result_type(", [*inputs, "1.0"], ")"),
        f"    {out_array} = np.empty({shape}, {dtype})",
        run(loops[0], elements(inputs), [out_array]),
        f"    return {out_array}, {cache}",
    ]
    backward = [
        f"def backward({seed_array}, cache):",
        f"    {cache} = cache" if every else "",
        _call(f"    {shape} = np.broadcast_shapes(", [*shapes, f"np.shape({seed_array})"], ")"),
        _call(f"    {dtype} = np.result_type(", [*inputs, seed_array, "1.0"], ")"),
        *check,
        *allocate,
        run(loops[1], elements([*inputs, seed_array]), [out_array, *written]),
        _call("    return (", grads, ")", len(grads) == 1),
    ]
    value_and_grad = [
        f"def value_and_grad({params}):",
        _call(f"    {shape} = np.broadcast_shapes(", shapes, ")"),
        _call(f"    {dtype} = np.result_type(", [*inputs, "1.0"], ")"),
        *check,
        *allocate,
        f"    {ones} = np.broadcast_to(np.ones(1, {dtype}), ({out_array}.size,))  # dout = 1",
        run(loops[1], [*elements(inputs), ones], [out_array, *written]),
        _call(f"    return {out_array}, (", grads, ")", len(grads) == 1),
    ]
    return ["\n".join(x for x in lines if x) for lines in (forward, backward, value_and_grad)]


def _call(opening: str, args: list[str], closing: str, comma: bool = False) -> str:
    """`opening` args `closing` on one line if it fits in 100 columns, else one arg a line;
    `comma`: a trailing comma (a one-element tuple)."""
    line = opening + ", ".join(args) + ("," if comma and len(args) == 1 else "") + closing
    if len(line) <= 100:
        return line
    indent = " " * (len(opening) - len(opening.lstrip()) + 4)
    return "\n".join([opening, *(f"{indent}{a}," for a in args), indent[4:] + closing])


_RUNTIME = '''\
def _elements(x, shape):
    """x's elements in the order of the broadcast shape, as the 1-d array the loops index: read
    in place when x has that shape, one element with stride 0 for a scalar, else a copy."""
    x = np.asarray(x)
    size = int(np.prod(shape))
    if x.shape == shape:
        return x.reshape(-1)
    if x.size == 1:
        return np.broadcast_to(x.reshape(1), (size,))
    return np.broadcast_to(x, shape).reshape(-1)


def _summed(grad, shape):
    """A gradient over the broadcast shape, summed over the axes its input was broadcast along."""
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + k for k, n in enumerate(shape) if n == 1 and grad.shape[lead + k] != 1
    )
    return np.sum(grad, axis=axes).reshape(shape)'''


def _helpers(code: list[str]) -> list[str]:
    """Sources of the helpers the loops call (their one-element spelling where it differs)."""
    text = "\n".join(code)
    return [
        SCALAR_HELPERS.get(name, source)
        for name, source in HELPERS.items()
        if re.search(rf"\b{name}\(", text)
    ]


@functools.lru_cache(maxsize=64)
def load_kernel_module(source: str, name: str):
    """Load a generated numba module; the same source (deterministic) loads once per process,
    so numba compiles each loop once per process and argument types, on its first call."""
    import numba  # noqa: F401 - fails here, clearly, if numba went missing

    return load_module(source, f"numba_{name}")
