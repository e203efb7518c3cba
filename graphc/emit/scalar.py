"""The Python-float path: a generated module's statements run on Python floats, straight through.

Stage: emit. Imports `text` (for its title) and `schedule` (the names it keeps to itself).

For a call with Python floats only, NumPy's per-operation overhead (a NumPy scalar per gate,
about 0.5 us per `np.exp`) is most of the time. `straight_line` takes the generated module's
source, the readable reference, and joins its `forward` and `backward` statements into one
function, the way the lecture writes backprop by hand (in essence: the entry also checks that
every input is a float):

    def value_and_grad(x, y, z):
        q = x + y              # forward, as in the module
        out = q * z
        dout = 1.0             # backward, as in the module, seeded with 1
        dq = dout * z
        ...
        return out, {"x": dx, "y": dy, "z": dz}

and runs it with `np` standing for `FLOATS`, Python-float versions of the few NumPy functions
a scalar module calls (`math.exp` for `np.exp`, ...). The statements are the module's own, so
the numbers agree with it to rounding (`math` and NumPy may differ in the last ulp).

The entry takes the inputs by their own names, so Python binds positions and keywords itself:
`value_and_grad(_pos_x=_absent, _pos_y=_absent, /, *_more, x=_absent, y=_absent, **_unknown)`
takes each input by position or by name; a call that gives one twice, leaves one out, or passes
more is handed to the NumPy path as it was made, which says what is wrong. (Where an input's name is
not the module's, as for an input the module renames, the entry is `(*_args, **_kwargs)` and
binds keywords through the NumPy path's `positional`.)

Where NumPy would give inf or NaN, Python raises (`math.exp(1000)`, `1.0 / 0.0`, `math.log(0)`)
or goes complex (`(-8.0) ** 0.5`): the entry then calls the NumPy module instead (`Fallbacks`),
so such inputs get NumPy's values and warnings, as do inputs that are not all Python floats. A
module calling anything `FLOATS` lacks (an array constant, a reduction) gets no straight-line
version. A reduction of a scalar (`np.sum`, `np.mean`, `np.max`, `np.min` in a module of
scalars) is the scalar itself.
"""

from __future__ import annotations

import ast
import linecache
import math
import re
import types
import typing
from dataclasses import dataclass

from ..ir.text import quoted
from ..passes.schedule import OWN_NAMES


def _maximum(a: float, b: float) -> float:
    """np.maximum: NaN wins, as in NumPy (Python's max keeps its first argument)."""
    return a if a >= b or a != a else b


def _minimum(a: float, b: float) -> float:
    return a if a <= b or a != a else b


def _where(cond, a, b):
    return a if cond else b


def _sign(x: float) -> float:
    return x if x != x or x == 0.0 else math.copysign(1.0, x)


def _log(x: float) -> float:
    return math.log(x)  # raises at x <= 0: the NumPy module then gives -inf or NaN


def _logaddexp(a: float, b: float) -> float:
    """np.logaddexp: log(exp(a) + exp(b)) without overflow, as NumPy computes it."""
    if a == b:
        return a + math.log(2.0)
    d = a - b
    return a + math.log1p(math.exp(-d)) if d > 0 else b + math.log1p(math.exp(d))


def _reduced(x: float, axis=None, keepdims=False) -> float:
    """np.sum, np.mean, np.max or np.min of a scalar: the scalar itself (a module of scalars
    reduces nothing else)."""
    return x


def _sigmoid(x: float) -> float:
    e = math.exp(-abs(x))  # the module's max(e, x >= 0) / (1 + e), bit for bit
    return (1.0 if x >= 0.0 else e) / (1.0 + e)


def _sech2(x: float) -> float:
    e = math.exp(-2.0 * abs(x))
    return 4.0 * e / (1.0 + e) ** 2


class _Float64(float):
    """np.float64 on floats, as the module writes it for a value of constants alone
    (`float(np.float64(1e200) * 1e200)`): where its arithmetic overflows, NumPy's gives inf with
    a warning and Python's gives inf silently, so it raises instead and the entry calls NumPy."""

    def _finite(self, result, other):
        if math.isinf(result) and math.isfinite(self) and math.isfinite(other):
            raise OverflowError("overflow in arithmetic of constants")
        return result

    def __add__(self, other):
        return self._finite(float(self) + other, other)

    def __sub__(self, other):
        return self._finite(float(self) - other, other)

    def __mul__(self, other):
        return self._finite(float(self) * other, other)

    def __truediv__(self, other):
        return self._finite(float(self) / other, other)

    __radd__, __rmul__ = __add__, __mul__

    def __rsub__(self, other):
        return self._finite(other - float(self), other)

    def __rtruediv__(self, other):
        return self._finite(other / float(self), other)


# the module's helpers on floats: the same formulas, with Python's branches for np.where
FLOAT_HELPERS = {
    "sigmoid": _sigmoid,
    "sigmoid_pair": lambda x: (_sigmoid(x), _sigmoid(-x)),
    "softplus": lambda x: _logaddexp(0.0, x),
    "log_sigmoid": lambda x: -_logaddexp(0.0, -x),
    "sech2": _sech2,
    "leaky_relu": lambda x, slope: x if x > 0 else slope * x,
    "route_to_max": lambda dout, x, axis, keepdims: dout,  # the max of a scalar is the scalar
}

# np.<name> -> its Python-float version; a module using another name runs on NumPy only
FLOATS = types.SimpleNamespace(
    exp=math.exp,
    log=_log,
    log1p=math.log1p,
    expm1=math.expm1,
    sqrt=math.sqrt,
    tanh=math.tanh,
    sin=math.sin,
    cos=math.cos,
    abs=abs,
    maximum=_maximum,
    minimum=_minimum,
    where=_where,
    logical_not=lambda c: not c,
    logaddexp=_logaddexp,
    sign=_sign,
    copy=lambda x: x,  # floats are immutable
    sum=_reduced,
    mean=_reduced,
    max=_reduced,
    min=_reduced,
    square=lambda x: x * x,
    float64=_Float64,
    inf=math.inf,
    nan=math.nan,
    pi=math.pi,
)
_NP_NAME = re.compile(r"\bnp\.(\w+)")
_NOT_FLOAT = re.compile(r"[<>]|[=!]=|np\.(where|maximum|minimum|logical_not)")
_REDUCED = re.compile(r"\bnp\.(?:sum|mean|max|min)\((\w+)\)")  # of one name: that name
_POWER = re.compile(r"\*\*\s*\(?(-?)([^\s,()]+)")
_ENTRIES = ("forward", "backward", "value_and_grad")


@dataclass
class ScalarCode:
    """The straight-line entries of one module: `value_and_grad` compiled, `value` on demand."""

    source: str  # both entries
    value_and_grad: types.FunctionType  # (*args, **kwargs) -> (out, {name: gradient})
    _namespace: dict
    _value_source: str
    _title: str
    _value: types.FunctionType | None = None

    @property
    def value(self) -> types.FunctionType:
        """(*args, **kwargs) -> out, compiled on first use (a graph may have 100k statements)."""
        if self._value is None:
            self._value = _load(self._value_source, self._title, self._namespace)
        return self._value


@dataclass
class Fallbacks:
    """What the entries call where Python floats will not do."""

    positional: typing.Callable  # (args, kwargs) -> the inputs in order, or an InputError
    value: typing.Callable  # the NumPy module's value, (*inputs) -> out
    value_and_grad: typing.Callable  # the NumPy module's (*inputs) -> (out, gradients)


def straight_line(
    source: str,
    title: str,
    inputs: tuple[str, ...],
    gradient_names: tuple[str, ...],
    numpy: Fallbacks,
) -> ScalarCode | None:
    """The straight-line entries for a generated module's `source`, or None if it needs NumPy.

    `inputs` are the function's input names (the module's parameters, unless it renamed one) and
    `gradient_names` the names of the gradients `backward` returns, in order. An entry runs
    the statements when every input is a Python float, and `numpy`'s functions otherwise (a
    NumPy float keeps NumPy's semantics) and where Python raises or goes complex.
    """
    blocks = source.split("\n\n\n")
    head, forward, backward = blocks[0], _block(blocks, "forward"), _block(blocks, "backward")
    helpers = [b for b in blocks[1:] if b.startswith("def ")]
    helpers = [b for b in helpers if b.split("(", 1)[0][4:] not in (*_ENTRIES, *FLOAT_HELPERS)]
    constants = head.split("import numpy as np", 1)[1].strip()
    fwd_lines = [line.split("  # ", 1)[0] for line in forward.splitlines()]  # no comments
    bwd_lines = [line.split("  # ", 1)[0] for line in backward.splitlines()]
    params = [p for p in fwd_lines[0][len("def forward(") : -len("):")].split(", ") if p]
    out = _returned(fwd_lines[-1], first=True)[0]
    seed = bwd_lines[0][len("def backward(") :].split(",", 1)[0]
    body = bwd_lines[1:-1]
    if body and body[0].endswith("= cache"):
        body = body[1:]
    grads = _returned(bwd_lines[-1])
    fwd_lines = fwd_lines[1:-1]
    statements = "\n".join([*fwd_lines, *body])
    names = {*params, *(line.split(" = ", 1)[0].strip() for line in [*fwd_lines, *body])}
    if (
        not params
        or len(grads) != len(gradient_names)  # a module of another shape
        or names & set(OWN_NAMES["floats"])  # never: schedule renames such a user's name
        # an array constant (`C1 = np.array([0.5])`) too: it is NumPy's, not a float's
        or not set(_NP_NAME.findall(constants + statements + "".join(helpers))) <= set(vars(FLOATS))
    ):
        return None
    # comparisons, where, maximum(x, 0) give bools and ints; a power may go complex
    checked = _risky_power(statements) or bool(_NOT_FLOAT.search(statements))
    # np.exp(x) is called as _np_exp(x): one global lookup, no attribute lookup, per call (with
    # more underscores in front if a variable of the module starts so)
    prefix = "_np_"
    while any(name.startswith(prefix) for name in names):
        prefix = "_" + prefix
    spelled = prefix + r"\1"

    def floats(code: str) -> str:
        """Python-float spelling: a reduction of a scalar is the scalar; np.f is _np_f."""
        return _NP_NAME.sub(spelled, _REDUCED.sub(r"\1", code))

    fwd_lines = floats("\n".join(fwd_lines)).split("\n") if fwd_lines else []
    body = floats("\n".join(body)).split("\n") if body else []
    out, grads = floats(out), [floats(g) for g in grads]
    result = "{" + ", ".join(f"{k!r}: {g}" for k, g in zip(gradient_names, grads)) + "}"
    # the inputs by position take names no variable of the module starts with
    by_position = "_pos_"
    while any(name.startswith(by_position) for name in names):
        by_position = "_" + by_position
    entry = _entry_by_name if tuple(params) == tuple(inputs) else _entry
    value = entry("value", params, fwd_lines, out, checked, by_position)
    backprop = [*fwd_lines, f"    {seed} = 1.0", *body]
    value_and_grad = entry(
        "value_and_grad", params, backprop, f"{out}, {result}", checked, by_position
    )
    text = "\n\n\n".join(
        [
            f'"""{quoted(title)} on Python floats: the module\'s statements, straight through."""',
            *([constants] if constants else []),
            *helpers,
            value,
            value_and_grad,
        ]
    )
    namespace = {
        "np": FLOATS,
        "_checked": checked_floats,
        "_positional": numpy.positional,
        "_numpy_value": numpy.value,
        "_numpy_value_and_grad": numpy.value_and_grad,
        "_absent": ABSENT,
        "_twice": TWICE,
        "_otherwise": called_otherwise,
        **FLOAT_HELPERS,
        **{prefix + name: f for name, f in vars(FLOATS).items()},
    }
    prelude = "\n\n\n".join([constants, *helpers])
    exec(compile(prelude, f"<graphc:{title}:floats>", "exec"), namespace)  # generated above
    entry = _load(value_and_grad, title, namespace)
    return ScalarCode(text, entry, namespace, value, title)


def _load(source: str, title: str, namespace: dict) -> types.FunctionType:
    """Compile one entry into `namespace`, with tracebacks that show its lines."""
    name = source.split("(", 1)[0][len("def ") :]
    filename = f"<graphc:{title}:floats:{name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)  # our own generated code
    return namespace[name]


class _Marker:
    """A default no argument can be: an input not given, or given twice."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


ABSENT, TWICE = _Marker("<not given>"), _Marker("<given twice>")


def called_otherwise(entry, names, positions, more, given, unknown):
    """Call `entry` (the NumPy path) as the user called a by-name entry: `positions` are its
    parameters by position (a prefix given, then ABSENT), `more` the extra positions, `given`
    each input as merged (ABSENT if missing, TWICE if by position and by name), `unknown` the
    unexpected keywords. The NumPy path binds them again, and says what is wrong if anything."""
    n = next((i for i, v in enumerate(positions) if v is ABSENT), len(positions))
    kwargs = {
        k: v
        for i, (k, v) in enumerate(zip(names, given))
        if v is TWICE or (i >= n and v is not ABSENT)
    }
    return entry(*positions[:n], *more, **kwargs, **unknown)


def _tuple(names: list[str]) -> str:
    return ", ".join(names) + ("," if len(names) == 1 else "")


def _returning(returned: str, checked: bool, indent: str) -> list[str]:
    """The lines that return the straight-line result."""
    if not checked:
        return [f"{indent}return {returned}"]
    # bools from comparisons become floats; a complex result goes to NumPy
    return [
        f"{indent}_result = _checked({returned})",
        f"{indent}if _result is not None:",
        f"{indent}    return _result",
    ]


def _entry_by_name(
    name: str, params: list[str], lines: list[str], returned: str, checked: bool, by_position: str
) -> str:
    """`def name(_pos_x=_absent, /, *_more, x=_absent, **_unknown)`: each input by position or by
    name, the statements on Python floats, else the NumPy path called as this entry was."""
    positions = [by_position + p for p in params]
    signature = ", ".join(
        [*(f"{p}=_absent" for p in positions), "/", "*_more", *(f"{p}=_absent" for p in params)]
    )
    floats = " and ".join(f"type({p}) is float" for p in params)
    inner = " " * 12  # def, if, try
    return "\n".join(
        [
            f"def {name}({signature}, **_unknown):",
            f"    if {' is '.join(params)} is _absent:  # by position",
            *(f"        {p} = {q}" for p, q in zip(params, positions)),
            f"    elif {positions[0]} is not _absent:  # the first by position, the rest by name",
            *(
                f"        {p} = {p} if {q} is _absent else {q} if {p} is _absent else _twice"
                for p, q in zip(params, positions)
            ),
            f"    if not (_more or _unknown) and {floats}:",
            "        try:",
            *([inner + line[4:] for line in lines] or [f"{inner}pass"]),
            "        except (ArithmeticError, ValueError):",
            "            pass  # inf or NaN in NumPy, where Python raises: NumPy says which",
            "        else:",
            *_returning(returned, checked, inner),
            f"    return _otherwise(_numpy_{name}, {tuple(params)!r}, ({_tuple(positions)}), "
            f"_more, ({_tuple(params)}), _unknown)",
        ]
    )


def _entry(
    name: str, params: list[str], lines: list[str], returned: str, checked: bool, _by_position=""
) -> str:
    """`def name(*_args, **_kwargs)`: the statements on Python floats, else NumPy (for a module
    whose parameters are not the input names, which a caller uses as keywords)."""
    floats = " and ".join(f"type({p}) is float" for p in params)
    inner = " " * 16  # def, if, if, try
    done = _returning(returned, checked, inner)
    return "\n".join(
        [
            f"def {name}(*_args, **_kwargs):",
            "    if _kwargs:",
            "        _args = _positional(_args, _kwargs)",
            f"    if len(_args) == {len(params)}:",
            f"        {', '.join(params)}{',' if len(params) == 1 else ''} = _args",
            f"        if {floats}:",
            "            try:",
            *([inner + line[4:] for line in lines] or [f"{inner}pass"]),
            "            except (ArithmeticError, ValueError):",
            "                pass  # inf or NaN in NumPy, where Python raises: NumPy says which",
            "            else:",
            *done,
            f"    return _numpy_{name}(*_args)",
        ]
    )


def checked_floats(out, grads: dict | None = None):
    """A straight-line result as Python floats (a comparison gives a bool), or None if a power
    went complex."""
    if grads is None:
        return None if type(out) is complex else float(out)
    if type(out) is complex or any(type(g) is complex for g in grads.values()):
        return None
    return float(out), {k: float(g) for k, g in grads.items()}


def _block(blocks: list[str], name: str) -> str:
    return next(b for b in blocks if b.startswith(f"def {name}("))


def _returned(line: str, first: bool = False) -> list[str]:
    """The expressions a `return a, b` line returns, as code (only the first if `first`)."""
    value = ast.parse(line.strip()).body[0].value
    items = value.elts if isinstance(value, ast.Tuple) else [value]
    return [ast.unparse(v) for v in items[: 1 if first else None]]


def _risky_power(code: str) -> bool:
    """Whether some `a ** b` could be complex on floats: b is not a whole-number constant."""
    for _sign, b in _POWER.findall(code):
        try:
            if not float(b).is_integer():
                return True
        except ValueError:  # a name or an expression
            return True
    return False
