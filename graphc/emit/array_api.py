"""The array API backend: a scheduled program printed over the namespace of its inputs.

Stage: emit (`Program` -> standard source). Imports the `ir`, `passes` and `codegen`.

`backend="array_api"` prints the same statements as the NumPy module, in the Python array API
standard: the module imports no NumPy, and each function takes its namespace from its arguments
(`xp = array_namespace(x, W)`, from array-api-compat), so one module runs on NumPy,
array_api_strict, Dask, PyTorch, JAX and CuPy arrays. Every gate row has its standard spelling
beside its NumPy one (`array_api`, `spell_api`; the helpers' twins are `special.API_HELPERS`).
What differs from the NumPy module, and why:

- a mask routes a gradient by `xp.where(mask, g, 0.0)`: the standard has no booleans as numbers;
- the max gate's backward is a one-hot mask of `argmax`, not `put_along_axis` in place;
- nothing is written in place, there is no `out=`, and no shortcut of `shortcuts.py` is taken
  (np.vdot, in-place masks and the transposed product are NumPy's, and a 0-d seed is not an
  array of the inputs' library): backward is seeded with `xp.ones_like(out)`;
- constants are made inside the functions, of the inputs' namespace (`xp.asarray(..., dtype=)`),
  and a number computed from constants alone is folded here, by NumPy, so that no `float()`
  is ever taken of an array (on Dask that would compute).
"""

from __future__ import annotations

import functools
import math
import textwrap

import networkx as nx
import numpy as np
import sympy

from ..ir import text
from ..ir.errors import GateError
from ..ir.ops import TENSOR, gate_of
from ..ir.special import API_HELPER_NEEDS, API_HELPERS, HELPERS, MASKS, is_boolean, where
from ..passes.schedule import Program
from ..passes.shortcuts import Shortcuts
from .codegen import Emitter, Printer, formula_template, helpers_used

BACKEND = "array_api"
NS = "xp"

# NumPy's names for the standard's functions, where they differ
RENAMED = {
    "arccos": "acos", "arccosh": "acosh", "arcsin": "asin", "arcsinh": "asinh",
    "arctan": "atan", "arctan2": "atan2", "arctanh": "atanh", "power": "pow",
    "mod": "remainder", "absolute": "abs", "amax": "max", "amin": "min", "conjugate": "conj",
}  # fmt: skip
# What the standard (2023.12) defines that the printer may write: elementwise functions,
# constants and the functions of the gates' spellings
STANDARD = frozenset({
    "abs", "acos", "acosh", "add", "asin", "asinh", "atan", "atan2", "atanh", "ceil", "clip",
    "conj", "copysign", "cos", "cosh", "divide", "equal", "exp", "expm1", "floor",
    "floor_divide", "greater", "greater_equal", "hypot", "isfinite", "isinf", "isnan", "less",
    "less_equal", "log", "log1p", "log2", "log10", "logaddexp", "logical_and", "logical_not",
    "logical_or", "logical_xor", "maximum", "minimum", "multiply", "negative", "not_equal",
    "positive", "pow", "remainder", "round", "sign", "signbit", "sin", "sinh", "square", "sqrt",
    "subtract", "tan", "tanh", "trunc", "e", "inf", "nan", "pi", "where", "sum", "mean", "max",
    "reshape", "broadcast_to", "permute_dims", "expand_dims", "squeeze", "asarray", "zeros",
    "ones_like", "astype", "float64",
})  # fmt: skip


class ApiPrinter(Printer):
    """codegen's printer in the standard: `xp.` names, booleans never used as numbers."""

    ns = NS

    def _module_format(self, fqn, register=True):
        if not fqn.startswith("numpy."):
            return super()._module_format(fqn, register)
        name = RENAMED.get(fqn[len("numpy.") :], fqn[len("numpy.") :])
        if name not in STANDARD:
            raise GateError(
                f"NumPy's {fqn[len('numpy.') :]} has no spelling in the array API standard, so "
                "backend='array_api' cannot compute this gate; use backend='numpy' for it"
            )
        return f"{NS}.{name}"

    def _print_number(self, expr: sympy.Expr) -> str:
        """A number SymPy left as an expression (log_sigmoid(0) where fusion folded x - x):
        its value now, as the NumPy helpers compute it, so that no helper is called on a
        Python number (the standard's namespace comes from arrays) and no float() is taken."""
        try:
            value = float(expr)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            with np.errstate(all="ignore"):
                value = float(sympy.lambdify([], expr, modules=[_numpy_helpers(), "numpy"])())
        return api_literal(value)

    def _print_Mul(self, expr):
        masks = [m for m in map(_mask_of, expr.args) if m is not None]
        choice = next((f for f in expr.args if _numbers_only(f)), None)
        if not masks and choice is not None and len(expr.args) > 1:  # a choice of products
            rest = sympy.Mul(*(f for f in expr.args if f is not choice))
            return self._print(sympy.Piecewise(*((rest * v, c) for v, c in choice.args)))
        if not masks:
            return super()._print_Mul(expr)
        rest = sympy.Mul(*(f for f in expr.args if _mask_of(f) is None))
        cond = self._condition(masks)
        if rest.free_symbols:  # the standard has no boolean times a number: a choice instead
            return f"{NS}.where({cond}, {self._print(rest)}, 0.0)"
        return self._as_number(cond, rest)

    def _print_Add(self, expr, order=None):
        masks = [m for m in map(_mask_of, expr.args) if m is not None]
        if not masks:
            return super()._print_Add(expr, order)
        rest = sympy.Add(*(t for t in expr.args if _mask_of(t) is None))
        terms = [self._as_number(self._print(m), 1) for m in masks]
        return " + ".join([self._print(rest), *terms] if rest != 0 else terms)

    def _condition(self, masks) -> str:
        text = self._print(masks[0])
        for m in masks[1:]:
            text = f"{NS}.logical_and({text}, {self._print(m)})"
        return text

    def _as_number(self, cond: str, factor) -> str:
        """A mask as a number (times `factor`), with no array to take the dtype from: float64
        (NumPy would give the dtype of the array it meets)."""
        number = f"{NS}.astype({cond}, {NS}.float64)"
        return number if factor == 1 else f"{self._print(factor)} * {number}"

    def _print_Piecewise(self, expr):
        mask = _mask_of(expr)
        if mask is not None:  # an indicator standing alone: as a number
            return self._as_number(self._print(mask), 1)
        pieces = list(expr.args)
        if pieces[-1].cond == sympy.true:
            default, pieces = pieces[-1].expr, pieces[:-1]
        else:
            default = sympy.nan
        text = self._print(default)
        if all(p.expr.is_number for p in expr.args):  # numbers only: `where` needs an array
            text = f"{text} + {self._as_number(self._print(pieces[-1].cond), sympy.Float(0.0))}"
        for value, cond in reversed(pieces):
            text = f"{NS}.where({self._print(cond)}, {self._print(value)}, {text})"
        return text


def _numbers_only(f) -> bool:
    """Whether `f` is a Piecewise choosing between numbers alone (a mask is not one)."""
    is_choice = isinstance(f, sympy.Piecewise) and all(p.expr.is_number for p in f.args)
    return is_choice and _mask_of(f) is None


class MaskSlot(sympy.Symbol):
    """The slot of a mask argument in a template (`__0__`, as an argument's): still a boolean."""


def _mask_of(f):
    """The condition where factor `f` is 1 (0 elsewhere), if it is such a mask; else None."""
    if is_boolean(f) or isinstance(f, MaskSlot):
        return f
    if isinstance(f, sympy.Piecewise) and len(f.args) == 2 and f.args[1].cond == sympy.true:
        (a, cond), (b, _) = f.args
    elif isinstance(f, where):
        cond, a, b = f.args
    else:
        return None
    if (a, b) == (sympy.S.One, sympy.S.Zero):
        return cond
    if (a, b) == (sympy.S.Zero, sympy.S.One):
        return cond.negated if cond.is_Relational else sympy.Not(cond)
    return None


class _CommentPrinter(ApiPrinter):
    """The printer of comments: a mask reads as its condition (`relu: local gradient x > 0`)."""

    def _as_number(self, cond: str, factor) -> str:
        return cond if factor == 1 else f"{self._print(factor)} * ({cond})"


_API_PRINTER = ApiPrinter()
_COMMENT_PRINTER = _CommentPrinter()


@functools.cache
@functools.cache
def _numpy_helpers() -> dict:
    """graphc's NumPy helpers (sigmoid, log_sigmoid, ...) as functions, for folding numbers."""
    namespace: dict = {"np": np}
    for source in HELPERS.values():
        exec(source, namespace)  # graphc's own helper definitions, as every module has them
    return {k: v for k, v in namespace.items() if k in HELPERS}


def api_template(formula: sympy.Expr, printer: ApiPrinter = _API_PRINTER) -> str:
    """codegen's `formula_template` in the standard: a mask's slot stays a boolean, so that
    the printer never uses it as a number."""
    swap = {m: MaskSlot(f"__{i}__") for i, m in enumerate(MASKS)}
    return formula_template(formula.xreplace(swap), printer)


def api_literal(value) -> str:
    """A constant in the standard: a Python number, or an array of the inputs' namespace."""
    arr = np.asarray(value)
    if arr.ndim == 0:
        v = float(arr)
        if not math.isfinite(v):
            return f"{NS}.nan" if math.isnan(v) else f"{'-' if v < 0 else ''}{NS}.inf"
        return f"({v!r})" if v < 0 else repr(v)
    dtype = f"dtype={NS}.{arr.dtype.type.__name__}"
    if not arr.any():
        return f"{NS}.zeros({arr.shape}, {dtype})"
    entries = repr(arr.tolist())
    for name in ("nan", "inf"):
        entries = entries.replace(name, f"{NS}.{name}")
    return f"{NS}.asarray({entries}, {dtype})"


class ApiEmitter(Emitter):
    """codegen's Emitter, spelling every statement in the standard (see the hooks there)."""

    printer = _API_PRINTER

    def template(self, formula: sympy.Expr) -> str:
        return api_template(formula, self.printer)

    def local_text(self, formula: sympy.Expr, node: int, args: list[int]) -> str:
        statements, self.printer = self.printer, _COMMENT_PRINTER
        try:
            return super().local_text(formula, node, args)
        finally:
            self.printer = statements

    def spelling(self, gate, refs: list[str], shapes: list, params: dict) -> str:
        if gate.kind == TENSOR:
            if gate.spell_api is None:
                raise GateError(
                    f"gate {gate.name!r} has no array API spelling in its row; "
                    "use backend='numpy' for it"
                )
            return gate.spell_api(refs, shapes, params)
        if gate.array_api:
            return gate.array_api.format(*refs)
        return api_template(gate.expr()).format(*refs)

    def literal(self, value) -> str:
        return api_literal(value)

    def copied(self, code: str) -> str:
        return f"{NS}.asarray({code}, copy=True)"

    def constant_code(self, n: int, data: dict, refs: list[str]) -> str:
        """A number from constants alone, folded now as NumPy's float64 computes it: no
        array is made of it, and no `float()` taken of one."""
        numpy = Emitter(self.p, self.plan)
        names = {self.p.names[c]: self.g.nodes[c]["value"] for c in self.p.constants}
        namespace = {"np": np, **names}
        for source in HELPERS.values():
            exec(source, namespace)  # graphc's own helper sources
        with np.errstate(all="ignore"):
            value = eval(numpy.expr(n), namespace)  # graphc's own NumPy code of constants
        return api_literal(value)


def emit_api_module(program: Program, title: str, version: str) -> str:
    """The full source of the array API module for `program` (see the module docstring)."""
    plan = Shortcuts(cache=list(program.cache), backward=list(program.backward))
    e = ApiEmitter(program, plan)
    g = program.graph
    names = program.names
    params = ", ".join(names[i] for i in program.inputs)
    shapes = ", ".join(f"{names[i]}: {g.nodes[i]['shape']}" for i in program.inputs)
    out, seed = program.output, program.seed
    returned = ", ".join(g.nodes[i]["name"] for i in g.graph["grads"])
    about = (
        f"Specialised to inputs shaped {shapes or '(none)'}; any inputs that broadcast the same "
        f"way work too. backward returns the gradients of {returned or 'nothing'}. Written in "
        "the Python array API standard: it runs on the arrays of any library the standard "
        "covers (NumPy, array_api_strict, Dask, PyTorch, JAX, CuPy), in their own namespace "
        "`xp`. Depends on array-api-compat alone."
    )
    header = [
        f'"""Forward and backward of {text.quoted(title)}, generated by graphc {version}.',
        "",
        *textwrap.wrap(text.quoted(about), 96),
        '"""',
        "",
        "from array_api_compat import array_namespace",
    ]
    blocks = ["\n".join(header), *(h.rstrip() for h in api_helpers_used(program))]
    constants = [f"    {names[n]} = {api_literal(g.nodes[n]['value'])}" for n in program.constants]
    cache = ", ".join(names[n] for n in program.cache)
    cache_tuple = f"({cache},)" if len(program.cache) == 1 else f"({cache})"
    lines = [f"def forward({params}):", f"    {NS} = array_namespace({params})", *constants]
    lines += [f"    {e.statement(n)}" for n in program.forward]
    lines.append(f"    return {e.name_of(out)}, {cache_tuple}")
    blocks.append("\n".join(lines))
    lines = [f"def backward({names[seed]}, cache):"]
    if program.cache:
        lines.append(f"    {cache_tuple if len(program.cache) == 1 else cache} = cache")
    lines += [f"    {NS} = array_namespace({names[seed]}, *cache)", *constants]
    lines += [f"    {e.statement(n)}" for n in plan.backward]
    grads = [e.name_of(n) for n in program.grads]
    if len(grads) == 1:
        lines.append(f"    return ({grads[0]},)")
    else:
        lines.append(f"    return {', '.join(grads) or '()'}")
    blocks.append("\n".join(lines))
    result = names[out] if g.nodes[out]["op"] not in ("input", "const") else "out"
    seed_like = result
    if not set(g.graph["inputs"]) & (nx.ancestors(g, out) | {out}):
        seed_like = f"{NS}.asarray({result})"  # a value of constants alone: a Python number
    blocks.append(
        f"def value_and_grad({params}):\n"
        f"    {result}, cache = forward({params})\n"
        f"    {NS} = array_namespace({params})\n"
        f"    return {result}, backward({NS}.ones_like({seed_like}), cache)"
    )
    return "\n\n\n".join(blocks) + "\n"


def gate_helpers(op) -> tuple[str, ...]:
    gate = gate_of(op) if op not in ("input", "const") else None
    return gate.helpers if gate is not None else ()


def api_helpers_used(program: Program) -> list[str]:
    """The standard twins of the helpers the NumPy module would define, and what they call."""
    names = {source.split("def ", 1)[1].split("(", 1)[0] for source in helpers_used(program)}
    names.update(need for name in list(names) for need in API_HELPER_NEEDS.get(name, ()))
    missing = sorted(names - set(API_HELPERS))
    gates = sorted(
        {op for _, op in program.graph.nodes(data="op") if set(gate_helpers(op)) & set(missing)}
    )
    if gates:
        raise GateError(
            f"gate(s) {gates} need the helper(s) {missing}, which add into an array in place "
            "(np.add.at); the array API standard has no such scatter-add, so the gradient of "
            "indexing and gathering needs backend='numpy'"
        )
    if missing:
        raise GateError(
            f"the helper(s) {missing} have no array API twin; use backend='numpy' for this function"
        )
    return [source for name, source in API_HELPERS.items() if name in names]
