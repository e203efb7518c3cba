"""Hypothesis strategies for random graphc programs, and the oracles' interpreters of them.

A generated case is a short Python program over an `ops` namespace plus its input values:

    def f(x0, x1):
        v0 = ops.exp(x0 * 0.5)
        v1 = ops.where(v0 > 1.25, v0, x1)
        return ops.sum(v1, axis=0)

    inputs = {"x0": np.array([0.5, -1.25]), "x1": 0.75}

The text *is* the case: graphc traces it with `ops` bound to its gates (`GRAPHC_OPS`), and each
oracle runs the same text with its own, independent implementation of every op (NumPy here,
SymPy here, PyTorch in test_oracles_torch.py). A failing case is printed as this text; paste it
into `Case.from_text(...)` to rerun it (see docs/verification.md).

`broadcast_programs` writes programs made mostly of values broadcast into arrays and reduced
again (`h * sum(h)` of a biased `h = x + b`, batched matmuls, permuted transposes, reshaped
reductions): where a gradient has to be summed back to its input's shape.

Every value stays in the safe domain of the gate that reads it. The generator evaluates each
statement as it writes it (in NumPy) and repairs an argument that would leave the domain:
magnitudes are scaled by a power of two before exp, tanh and friends; the arguments of log,
sqrt and negative powers are made positive (`v*v + 0.5`, `exp(v)`); relu, abs, leaky_relu,
maximum, minimum, where and max are kept at least `MARGIN` away from their kinks and ties by a
constant shift. So gradients are defined and central differences stay on one smooth piece.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field

import numpy as np
import sympy
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

MARGIN = 0.05  # distance kept from every kink and tie
LIMIT = 50.0  # largest magnitude of any value
SCALAR, VECTOR = "scalar", "vector"

# ---------------------------------------------------------------- budgets and profiles

SLOW_ENV = "GRAPHC_SLOW"  # set by `pytest --slow` (tests/conftest.py) or by hand

settings.register_profile(
    "graphc-ci",
    derandomize=True,  # a fixed seed: CI sees the same graphs every run
    print_blob=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "graphc-slow",
    derandomize=False,  # new graphs every run; failures are kept in .hypothesis/
    print_blob=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def slow_mode() -> bool:
    """Whether the long run was asked for (`pytest --slow` or GRAPHC_SLOW=1)."""
    return os.environ.get(SLOW_ENV, "") not in ("", "0")


def examples(ci: int, slow: int) -> settings:
    """Settings running `ci` random cases in CI mode and `slow` in slow mode."""
    return settings(max_examples=slow if slow_mode() else ci)


# ---------------------------------------------------------------- the NumPy interpreter


class NumpyOps:
    """Every op in NumPy, written from the textbook definitions, independently of graphc.

    Ops with a kink record which side of it they took (`decisions`), so a finite-difference
    oracle can tell when a step crossed one.
    """

    def __init__(self):
        self.decisions: list = []

    array = staticmethod(lambda v: np.array(v, dtype=np.float64))
    exp, log, sqrt, tanh = np.exp, np.log, np.sqrt, np.tanh

    def abs(self, x):
        self.decisions.append(np.asarray(x) > 0)
        return np.abs(x)

    def sigmoid(self, x):
        return 1.0 / (1.0 + np.exp(-x))

    def softplus(self, x):
        return np.log1p(np.exp(x))

    def log_sigmoid(self, x):
        return -np.log1p(np.exp(-x))

    def relu(self, x):
        self.decisions.append(np.asarray(x) > 0)
        return np.where(x > 0, x, 0.0)

    def leaky_relu(self, x, slope):
        self.decisions.append(np.asarray(x) > 0)
        return np.where(x > 0, x, slope * x)

    def maximum(self, a, b):
        self.decisions.append(np.asarray(a) >= b)
        return np.maximum(a, b)

    def minimum(self, a, b):
        self.decisions.append(np.asarray(a) <= b)
        return np.minimum(a, b)

    def where(self, mask, a, b):
        self.decisions.append(np.asarray(mask))
        return np.where(mask, a, b)

    def sum(self, x, axis=None, keepdims=False):
        return np.sum(x, axis=axis, keepdims=keepdims)

    def mean(self, x, axis=None, keepdims=False):
        return np.mean(x, axis=axis, keepdims=keepdims)

    def max(self, x, axis=None, keepdims=False):
        self.decisions.append(np.argmax(x, axis=axis))
        return np.max(x, axis=axis, keepdims=keepdims)

    def transpose(self, x, axes=None):
        return np.transpose(x, axes)

    def reshape(self, x, shape):
        return np.reshape(x, shape)

    indices = staticmethod(lambda v: np.array(v, dtype=np.int64))
    take_along_axis = staticmethod(np.take_along_axis)
    concatenate, stack = staticmethod(np.concatenate), staticmethod(np.stack)


class SympyOps:
    """Every scalar op as a SymPy expression (sums, means and maxima of a scalar are itself)."""

    array = None  # scalar programs have no array constants
    exp, log, sqrt, abs, tanh = sympy.exp, sympy.log, sympy.sqrt, sympy.Abs, sympy.tanh
    maximum, minimum = sympy.Max, sympy.Min

    @staticmethod
    def sigmoid(x):
        return 1 / (1 + sympy.exp(-x))

    @staticmethod
    def softplus(x):
        return sympy.log(1 + sympy.exp(x))

    @staticmethod
    def log_sigmoid(x):
        return -sympy.log(1 + sympy.exp(-x))

    @staticmethod
    def relu(x):
        return sympy.Max(x, 0)

    @staticmethod
    def leaky_relu(x, slope):
        return sympy.Max(x, slope * x)

    @staticmethod
    def where(mask, a, b):
        return sympy.Piecewise((a, mask), (b, True))

    @staticmethod
    def sum(x, axis=None, keepdims=False):
        return x

    @staticmethod
    def mean(x, axis=None, keepdims=False):
        return x

    @staticmethod
    def max(x, axis=None, keepdims=False):
        return x


GRAPHC_GATES = (
    "exp", "log", "sqrt", "abs", "tanh", "sigmoid", "relu", "maximum", "minimum", "where", "sum",
    "mean", "max", "transpose", "reshape", "take_along_axis", "concatenate", "stack",
)  # fmt: skip


def graphc_ops():
    """The namespace graphc traces a program with: its public gates, plus table gates that
    have no public spelling (softplus, log_sigmoid, leaky_relu) applied directly."""
    import types

    import graphc as gc
    from graphc.front.trace import apply

    ns = types.SimpleNamespace(**{k: getattr(gc, k) for k in GRAPHC_GATES})
    ns.softplus = lambda x: apply("softplus", x)
    ns.log_sigmoid = lambda x: apply("log_sigmoid", x)
    ns.leaky_relu = lambda x, slope: apply("leaky_relu", x, slope)
    ns.array = lambda v: np.array(v, dtype=np.float64)
    ns.indices = lambda v: np.array(v, dtype=np.int64)
    return ns


def module_gradients(f, inputs: dict, dout=None) -> tuple:
    """The gradients the generated module of Function `f` itself returns at `inputs` (the
    Function broadcasts each to its input's shape; the module must not need that), by
    `value_and_grad`, or by `backward(dout, cache)` with an upstream gradient `dout`."""
    module = f.compiled_for(**inputs).module
    args = [np.float64(v) if isinstance(v, float) else v for v in inputs.values()]
    with np.errstate(all="ignore"):
        if dout is None:
            return tuple(module.value_and_grad(*args)[1])
        _, cache = module.forward(*args)
        return tuple(module.backward(dout, cache))


# ---------------------------------------------------------------- a case


def _literal(v) -> str:
    if np.ndim(v) == 0:
        return repr(float(v))
    return f"np.array({np.asarray(v, dtype=np.float64).tolist()!r})"


@dataclass
class Case:
    """A random program: its statements, its inputs and what kind of values it uses."""

    lines: list[str]
    output: str
    inputs: dict[str, object]
    kind: str = VECTOR
    gates: list[str] = field(default_factory=list)  # the op names used, for statistics

    @property
    def source(self) -> str:
        """The program as Python source: `def f(...)` over a global `ops`."""
        body = [f"    {line}" for line in self.lines] + [f"    return {self.output}"]
        return "\n".join([f"def f({', '.join(self.inputs)}):", *body]) + "\n"

    @property
    def text(self) -> str:
        """The reproducible description: the program and its inputs."""
        values = ",\n".join(f"    {k!r}: {_literal(v)}" for k, v in self.inputs.items())
        return (
            f"# a random graphc case ({self.kind}); rerun with tests/strategies.Case.from_text\n"
            f"{self.source}\ninputs = {{\n{values},\n}}\n"
        )

    def __repr__(self) -> str:
        return "\n" + self.text

    def _repr_pretty_(self, printer, cycle) -> None:  # how hypothesis prints a failing case
        printer.text(repr(self))

    @classmethod
    def from_text(cls, text: str) -> Case:
        """The case a failing test printed (its `text`), for rerunning by hand."""
        ns = {"np": np}
        exec(text, ns)
        lines = [ln.strip() for ln in text.split("def f(", 1)[1].split("\n")[1:]]
        body = []
        for ln in lines:
            if ln.startswith("return "):
                output = ln[len("return ") :]
                break
            body.append(ln)
        kind = SCALAR if "(scalar)" in text.split("\n", 1)[0] else VECTOR
        return cls(body, output, ns["inputs"], kind)

    def function(self, ops):
        """The program's `f`, running on the op namespace `ops`."""
        ns = {"ops": ops, "np": np}
        exec(self.source, ns)
        return ns["f"]

    def graphc(self):
        """The program compiled by graphc (traced through `gc.function`)."""
        import graphc as gc

        return gc.function(self.function(graphc_ops()))

    def versions(self, fast: bool = False) -> dict:
        """The program compiled unfused and fused at both levels (and as fast code: lowered)."""
        f = self.graphc()
        out = {
            "none": f,
            "patterns": f.fused(level="patterns"),
            "elementwise": f.fused(level="elementwise"),
        }
        if fast:
            out["patterns, readable=False"] = f.fused(level="patterns", readable=False)
        return out

    def numpy(self, ops: NumpyOps | None = None):
        """The program in NumPy: a function of the inputs by keyword."""
        return self.function(ops or NumpyOps())

    def values(self, ops, inputs: dict) -> dict[str, object]:
        """Every statement's value, by the name it assigns, running the program on `ops`."""
        env = {"ops": ops, "np": np, **inputs}
        for line in self.lines:
            name, code = line.split(" = ", 1)
            env[name] = eval(code, env)  # the case's own statement, as in `function`
        return {line.split(" = ", 1)[0]: env[line.split(" = ", 1)[0]] for line in self.lines}

    def sympy(self) -> tuple[sympy.Expr, dict[str, sympy.Symbol]]:
        """The program as one SymPy expression of real symbols named like the inputs."""
        symbols = {k: sympy.Symbol(k, real=True) for k in self.inputs}
        return sympy.sympify(self.function(SympyOps)(**symbols)), symbols


# ---------------------------------------------------------------- the generator

_CONSTANTS = [0.5, 2.0, -1.5, 3.0, 0.25, -0.75, 1.0, 0.0, -1.0, 2, 1.25]
_SHIFTS = [0.0, 0.3, -0.3, 0.7, -0.7, 1.1, -1.1, 1.7, -1.7, 2.3, -2.3, 3.1, -3.1]

UNARY = [
    "exp", "log", "sqrt", "abs", "tanh", "sigmoid", "softplus", "log_sigmoid", "relu",
    "leaky_relu", "neg", "square", "cube", "inverse", "inverse_square",
]  # fmt: skip
BINARY = ["add", "sub", "mul", "div", "maximum", "minimum", "where", "power"]
SPELLED = [  # the spellings the fusion rules rewrite
    "sigmoid_spelled", "tanh_spelled", "softplus_spelled", "log_sigmoid_spelled",
    "relu_spelled", "leaky_spelled",
]  # fmt: skip
TENSOR = [
    "sum", "mean", "max", "matmul", "transpose", "reshape", "affine", "sum_squares",
    "logsumexp", "log_softmax", "cross_entropy",
]  # fmt: skip
BROADCAST = [  # values broadcast into arrays and reduced again: where a gradient must sum back
    "bias", "self_reduction", "batched_matmul", "permute", "reshape_reduced",
]  # fmt: skip
INDEXING = ["slice", "take", "concatenate", "stack"]  # `indexing_programs`, NumPy backend only
OPS = {
    SCALAR: UNARY + BINARY + SPELLED,
    VECTOR: UNARY + BINARY + SPELLED + TENSOR + BROADCAST,
}
# the mix of `broadcast_programs`: mostly the broadcasting ops, with the gates they meet
FOCUS = BROADCAST * 3 + ["self_reduction"] * 3 + [
    "sum", "mean", "max", "matmul", "reshape", "transpose", "add", "sub", "mul", "tanh", "relu",
    "exp",
]  # fmt: skip


# the mix of `indexing_programs`: slicing and gathering among the gates they meet
INDEXING_FOCUS = INDEXING * 3 + [
    "sum", "mean", "matmul", "transpose", "add", "mul", "tanh", "exp", "bias", "self_reduction",
]  # fmt: skip


class _Val:
    """A value of the program: how the code names it and what it is (float64)."""

    def __init__(self, name: str, value, is_input: bool = False):
        self.name, self.is_input = name, is_input
        self.value = float(value) if np.ndim(value) == 0 else np.asarray(value, dtype=np.float64)

    @property
    def shape(self):
        return np.shape(self.value)

    @property
    def ndim(self):
        return np.ndim(self.value)


class _Builder:
    """Writes one program statement by statement, evaluating each in NumPy as it goes."""

    def __init__(self, draw, kind: str, dims: tuple[int, int, int, int]):
        self.draw, self.kind, self.dims = draw, kind, dims
        self.values: list[_Val] = []
        self.inputs: dict[str, object] = {}
        self.lines: list[str] = []
        self.env = {"ops": NumpyOps(), "np": np}
        self.gates: list[str] = []

    # ---- values

    def shapes(self) -> list[tuple]:
        if self.kind == SCALAR:
            return [()]
        m, n, k, p = self.dims
        return [(), (n,), (m, n), (n, k), (m,), (k,), (p, m, n)]

    def new_input(self, shape) -> _Val:
        name = f"x{len(self.inputs)}"
        elements = st.floats(-3.0, 3.0, allow_subnormal=False, width=64)
        if shape == ():
            value = float(self.draw(elements))
        else:
            size = math.prod(shape)
            value = np.array(self.draw(st.lists(elements, min_size=size, max_size=size)))
            value = value.reshape(shape)
        self.inputs[name] = value
        self.env[name] = value
        val = _Val(name, value, is_input=True)
        self.values.append(val)
        return val

    def constant(self, shape) -> _Val:
        if shape == ():
            c = self.draw(st.sampled_from(_CONSTANTS))
            return _Val(repr(c) if c >= 0 else f"({c!r})", c)
        size = math.prod(shape)
        items = self.draw(st.lists(st.sampled_from(_CONSTANTS), min_size=size, max_size=size))
        value = np.array(items, dtype=np.float64).reshape(shape)
        return _Val(f"ops.array({value.tolist()!r})", value)

    def operand(self, shape=None, allow_const=False) -> _Val:
        """An earlier value (most often the latest: chains), a fresh input, or a constant."""
        fits = [v for v in self.values if shape is None or v.shape == shape]
        choice = self.draw(st.sampled_from(["last", "earlier", "input", "const"]))
        if choice == "const" and allow_const and shape is not None:
            return self.constant(shape)
        if choice == "input" and len(self.inputs) < 4 or not fits:
            return self.new_input(shape if shape is not None else self.draw_shape())
        if choice == "last":
            return fits[-1]
        return self.draw(st.sampled_from(fits))

    def draw_shape(self):
        return self.draw(st.sampled_from(self.shapes()))

    def partner(self, a: _Val, allow_const=True) -> _Val:
        """A second operand that broadcasts with `a`: same shape, a scalar, or a row/column."""
        shape = a.shape
        options = [shape, ()]
        if len(shape) == 2:
            options += [(shape[1],), (shape[0], 1)]
        if len(shape) == 3:
            options += [(shape[2],), shape[1:], (shape[0], 1, 1)]
        if len(shape) == 1:
            options += [(self.dims[0], shape[0])] if self.kind == VECTOR else []
        return self.operand(self.draw(st.sampled_from(options)), allow_const=allow_const)

    def used(self, v: _Val) -> bool:
        """Whether a statement reads `v`."""
        return any(re.search(rf"\b{v.name}\b", line.split(" = ", 1)[1]) for line in self.lines)

    def evaluate(self, code: str):
        with np.errstate(all="ignore"):
            return eval(code, self.env)

    def emit(self, code: str, gate: str | None = None) -> _Val | None:
        """Commit `code` as the next statement if its value is finite and bounded."""
        try:
            value = self.evaluate(code)
        except ValueError:  # operands that do not broadcast together
            return None
        value = value if np.ndim(value) else float(value)
        if not np.all(np.isfinite(value)) or np.max(np.abs(value), initial=0.0) > LIMIT:
            return None
        name = f"v{len(self.lines)}"
        self.lines.append(f"{name} = {code}")
        self.env[name] = value
        if gate:
            self.gates.append(gate)
        val = _Val(name, value)
        self.values.append(val)
        return val

    # ---- domain repairs: each returns a value (or code) inside the domain

    def bounded(self, a: _Val, limit: float) -> str:
        """`a` scaled by a power of two so that |a| <= limit."""
        top = float(np.max(np.abs(a.value), initial=0.0))
        if top <= limit:
            return a.name
        return f"{a.name} * {2.0 ** -math.ceil(math.log2(top / limit))!r}"

    def positive(self, a: _Val) -> str:
        """Code for a value >= 0.25 built from `a`: itself, a**2 + 0.5 or exp(a) + 0.25."""
        if np.min(a.value, initial=np.inf) >= 0.5:
            return a.name
        if self.draw(st.booleans()):
            return f"ops.exp({self.bounded(a, 3.0)}) + 0.25"
        return f"{self._bounded_code(a, 6.0)} ** 2 + 0.5"  # (v * 0.5) ** 2, not v * 0.25

    def shift(self, code: str, value, target, margin: float = MARGIN) -> str | None:
        """`code`, shifted by a constant so that it stays `margin` away from `target`."""
        for c in _SHIFTS:
            if np.min(np.abs(value + c - target), initial=np.inf) >= margin:
                return code if c == 0.0 else f"({code} + {c!r})"
        return None

    def away(self, a: _Val, margin: float = MARGIN) -> str | None:
        return self.shift(a.name, a.value, 0.0, margin)

    # ---- one statement

    def step(self, op: str) -> _Val | None:
        if op in TENSOR:
            return self.tensor_step(op)
        if op in INDEXING:
            return self.index_step(op)
        if op in BROADCAST:
            return self.broadcast_step(op)
        a = self.operand()
        name = a.name
        unary = {
            "exp": lambda: f"ops.exp({self.bounded(a, 3.5)})",
            "log": lambda: f"ops.log({self.positive(a)})",
            "sqrt": lambda: f"ops.sqrt({self.positive(a)})",
            "tanh": lambda: f"ops.tanh({self.bounded(a, 6.0)})",
            "sigmoid": lambda: f"ops.sigmoid({self.bounded(a, 6.0)})",
            "softplus": lambda: f"ops.softplus({self.bounded(a, 6.0)})",
            "log_sigmoid": lambda: f"ops.log_sigmoid({self.bounded(a, 6.0)})",
            "neg": lambda: f"-{name}",
            "square": lambda: f"{self._bounded_code(a, 6.0)} ** 2",
            "cube": lambda: f"{self._bounded_code(a, 3.0)} ** 3",
            "inverse": lambda: self._on(self.away(a, 0.3), "{} ** -1"),
            "inverse_square": lambda: self._on(self.away(a, 0.3), "{} ** -2"),
            "abs": lambda: self._on(self.away(a), "ops.abs({})"),
            "relu": lambda: self._on(self.away(a), "ops.relu({})"),
            "leaky_relu": lambda: self._on(self.away(a), "ops.leaky_relu({}, 0.1)"),
            "sigmoid_spelled": lambda: f"1 / (1 + ops.exp(-{self._paren(self.bounded(a, 6.0))}))",
            "tanh_spelled": lambda: self._tanh_spelled(self.bounded(a, 4.0)),
            "softplus_spelled": lambda: f"ops.log(1 + ops.exp({self.bounded(a, 4.0)}))",
            "log_sigmoid_spelled": lambda: f"ops.log(ops.sigmoid({self.bounded(a, 6.0)}))",
            "relu_spelled": lambda: self._on(
                self.away(a),
                self.draw(
                    st.sampled_from(
                        ["ops.maximum(0, {})", "ops.where({0} > 0, {0}, 0)", "ops.maximum({}, 0)"]
                    )
                ),
            ),
            "leaky_spelled": lambda: self._on(self.away(a), "ops.maximum(0.1 * {0}, {0})"),
        }
        if op in unary:
            code = unary[op]()
            return None if code is None else self.emit(code, op)
        b = self.partner(a)
        if op in ("add", "sub", "mul", "div", "power") and self.draw(st.booleans()):
            a, b = b, a  # constants and other values on either side
        if op in ("add", "sub", "mul"):
            symbol = {"add": "+", "sub": "-", "mul": "*"}[op]
            return self.emit(f"{a.name} {symbol} {self._paren(b.name)}", op)
        if op == "div":
            return self._emit_on(self.away(b, 0.3), f"{a.name} / {{}}", op)
        if op == "power":  # a positive base to a bounded power
            base = self._paren(self.positive(a))
            return self.emit(f"{base} ** {self._paren(self.bounded(b, 2.0))}", op)
        if op in ("maximum", "minimum"):
            b_code = self.shift(b.name, b.value, a.value)
            return self._emit_on(b_code, f"ops.{op}({a.name}, {{}})", op)
        if op == "where":
            c = self.partner(a, allow_const=False)
            threshold = self.partner(c)
            relation = self.draw(st.sampled_from([">", ">=", "<", "<="]))
            t_code = self.shift(threshold.name, threshold.value, c.value)
            if t_code is None:
                return None
            return self.emit(f"ops.where({c.name} {relation} {t_code}, {a.name}, {b.name})", op)
        raise AssertionError(op)

    def tensor_step(self, op: str) -> _Val | None:
        m, n, k, _ = self.dims
        if op in ("sum", "mean", "max", "sum_squares"):
            a = self.operand()
            axis, keepdims = self.axis_for(a, allow_tuple=op != "max")
            args = f"axis={axis!r}" + (", keepdims=True" if keepdims else "")
            if op == "sum_squares":
                square = self.draw(st.sampled_from(["{0} * {0}", "{0} ** 2"]))
                return self.emit(f"ops.sum({square.format(a.name)}, {args})", op)
            if op == "max":
                return self.max_step(a, axis, args)
            return self.emit(f"ops.{op}({a.name}, {args})", op)
        if op in ("matmul", "affine"):
            a = self.operand(self.draw(st.sampled_from([(n,), (m, n)])))
            b = self.operand(self.draw(st.sampled_from([(n,), (n, k)])), allow_const=True)
            code = f"{self._bounded_code(a, 3.0)} @ {self._bounded_code(b, 3.0)}"
            if op == "affine":
                out_shape = np.shape(self.evaluate(code))
                bias = self.operand(out_shape[-1:] if out_shape else (), allow_const=True)
                code = f"{code} + {bias.name}"
            return self.emit(code, op)
        if op == "transpose":
            return self.emit(f"ops.transpose({self.operand((m, n)).name})", op)
        if op == "reshape":
            a = self.operand(self.draw(st.sampled_from([(m, n), (n,), (n, k)])))
            size = math.prod(a.shape)
            shapes = [(size,), (1, size), (size, 1), (-1,)] + ([a.shape[::-1]] if a.ndim else [])
            target = self.draw(st.sampled_from(shapes))
            return self.emit(f"ops.reshape({a.name}, {target!r})", op)
        # the softmax family over one axis of a vector or matrix (bounded, so exp stays finite)
        a = self.operand(self.draw(st.sampled_from([(n,), (m, n)])))
        axis = self.draw(st.sampled_from(range(a.ndim)))
        x = self._paren(self.bounded(a, 6.0))
        if op == "logsumexp":
            return self.emit(f"ops.log(ops.sum(ops.exp({x}), axis={axis}))", op)
        lse = f"ops.log(ops.sum(ops.exp({x}), axis={axis}, keepdims=True))"
        if op == "log_softmax":
            return self.emit(f"{x} - {lse}", op)
        y = self.operand(a.shape, allow_const=True)
        return self.emit(f"-ops.sum({y.name} * ({x} - {lse}), axis={axis})", op)

    # ---- slicing and gathering (positive steps: PyTorch's oracle has no negative ones)

    def index_step(self, op: str) -> _Val | None:
        m, n, k, p = self.dims
        if op == "slice":
            a = self.operand(self.draw(st.sampled_from([(n,), (m, n), (p, m, n)])))
            if a.ndim == 0:
                return None
            key = self.basic_index(a.shape)
            if np.size(np.empty(a.shape)[eval(f"np.s_[{key}]")]) == 0:
                return None  # nothing taken: no gradient to check
            return self.emit(f"{a.name}[{key}]", op)
        if op == "take":  # indices with repeats, along either axis of a matrix
            a = self.operand(self.draw(st.sampled_from([(m, n), (n, k)])))
            if a.ndim != 2:
                return None
            axis = self.draw(st.sampled_from([0, 1, -1]))
            size = a.shape[axis]
            shape = list(a.shape)
            shape[axis] = self.draw(st.integers(1, 3))
            count = math.prod(shape)
            picks = self.draw(st.lists(st.integers(0, size - 1), min_size=count, max_size=count))
            idx = np.array(picks, dtype=np.int64).reshape(shape).tolist()
            return self.emit(
                f"ops.take_along_axis({a.name}, ops.indices({idx!r}), axis={axis})", op
            )
        a = self.operand(self.draw(st.sampled_from([(n,), (m, n)])))
        if a.ndim == 0:
            return None
        if op == "stack":
            b = self.operand(a.shape, allow_const=True)
            axis = self.draw(st.integers(-a.ndim - 1, a.ndim))
            return self.emit(f"ops.stack([{a.name}, {b.name}, {a.name}], axis={axis})", op)
        axis = self.draw(st.integers(-a.ndim, a.ndim - 1))
        shape = list(a.shape)
        shape[axis] = self.draw(st.integers(1, 3))
        b = self.operand(tuple(shape), allow_const=True)
        return self.emit(f"ops.concatenate([{a.name}, {b.name}], axis={axis})", op)

    def basic_index(self, shape) -> str:
        """A basic index of `shape` as Python writes it: ints (negative too), slices with
        positive steps, None and ...; at least one entry."""
        parts: list[str] = []
        axis = 0
        while axis < len(shape) and (not parts or self.draw(st.booleans())):
            size = shape[axis]
            kind = self.draw(st.sampled_from(["int", "slice", "slice", "new", "rest"]))
            if kind == "rest" and "..." not in parts:
                parts.append("...")
                break
            if kind == "new":
                parts.append("None")
                continue
            if kind == "int":
                parts.append(str(self.draw(st.integers(-size, size - 1))))
            else:
                bound = st.one_of(st.none(), st.integers(-size - 1, size + 1))
                start, stop = self.draw(bound), self.draw(bound)
                step = self.draw(st.sampled_from([None, 1, 2, 3]))
                text = f"{'' if start is None else start}:{'' if stop is None else stop}"
                parts.append(text + ("" if step is None else f":{step}"))
            axis += 1
        return ", ".join(parts) if parts else ":"

    # ---- broadcast values and their reductions

    def broadcast_step(self, op: str) -> _Val | None:
        m, n, k, p = self.dims
        if op == "bias":
            return self.biased(self.operand())
        if op == "self_reduction":
            return self.self_reduction()
        if op == "batched_matmul":  # batches on either side, broadcast batches, vectors
            pairs = [
                ((p, m, n), (p, n, k)), ((p, m, n), (n, k)), ((m, n), (p, n, k)),
                ((1, m, n), (p, n, k)), ((p, m, n), (1, n, k)), ((n,), (p, n, k)),
                ((p, m, n), (n,)),
            ]  # fmt: skip
            left, right = self.draw(st.sampled_from(pairs))
            a, b = self.operand(left), self.operand(right, allow_const=True)
            return self.emit(f"{self._bounded_code(a, 3.0)} @ {self._bounded_code(b, 3.0)}", op)
        if op == "permute":  # transpose by a permutation, some axes counted from the end
            a = self.operand(self.draw(st.sampled_from([(m, n), (p, m, n)])))
            order = self.draw(st.permutations(range(a.ndim)))
            ends = self.draw(st.lists(st.booleans(), min_size=a.ndim, max_size=a.ndim))
            axes = tuple(i - a.ndim if end else i for i, end in zip(order, ends))
            return self.emit(f"ops.transpose({a.name}, axes={axes!r})", op)
        # reshape_reduced: a reduction's result given another shape
        a = self.operand()
        reduce = self.draw(st.sampled_from(["sum", "mean"]))
        axis, keepdims = self.axis_for(a, allow_tuple=True)
        args = f"axis={axis!r}" + (", keepdims=True" if keepdims else "")
        size = math.prod(np.shape(self.evaluate(f"ops.{reduce}({a.name}, {args})")))
        target = self.draw(st.sampled_from([(size,), (1, size), (size, 1), (-1,), (1, -1, 1)]))
        return self.emit(f"ops.reshape(ops.{reduce}({a.name}, {args}), {target!r})", op)

    def biased(self, a: _Val) -> _Val | None:
        """`a` plus (minus, times) a fresh input that broadcasts to its shape: a bias of shape (),
        (1,), a row, a row kept 2-d, a column, or all of a's dimensions but the first."""
        s = a.shape
        options = [(), (1,)]
        if s:
            options += [s[-1:], (1, s[-1])]
        if len(s) >= 2:
            options += [(s[-2], 1), s[1:]]
        if len(self.inputs) >= 6:  # enough inputs: a constant bias
            b = self.constant(self.draw(st.sampled_from(options)))
        else:
            b = self.new_input(self.draw(st.sampled_from(options)))
        template = self.draw(st.sampled_from(["{} + {}", "{1} + {0}", "{} - {}", "{} * {}"]))
        return self.emit(template.format(a.name, self._paren(b.name)), "bias")

    def self_reduction(self) -> _Val | None:
        """h op reduce(h): a value times (plus, minus, over) its own sum, mean or max, over any
        axes (kept where they would not broadcast back); h most often a fresh bias sum."""
        h = self.operand()
        if not h.shape or self.draw(st.sampled_from([True, True, False])):
            h = self.biased(h) or h
        reduce = self.draw(st.sampled_from(["sum", "mean", "max"]))
        axis, kept = self.axis_for(h, allow_tuple=reduce != "max")
        if not self._broadcasts(h, f"ops.{reduce}({h.name}, axis={axis!r})"):
            kept = True
        args = f"axis={axis!r}" + (", keepdims=True" if kept else "")
        if reduce == "max":
            h = self.untied(h, None if axis is None else axis % h.ndim)
        for attempt in range(2):
            if h is None:
                return None
            reduced = f"ops.{reduce}({h.name}, {args})"
            op = self.draw(st.sampled_from(["*", "-", "+", "/"] if reduce != "max" else ["-"]))
            if op == "/":
                reduced = self.shift(reduced, self.evaluate(reduced), 0.0, 0.3)
            code = None if reduced is None else f"{h.name} {op} {reduced}"
            out = None if code is None else self.emit(code, "self_reduction")
            if out is not None or attempt:
                return out
            h = self.emit(f"{h.name} * 0.125", "mul")  # smaller: h * sum(h) stays bounded
        return None

    def _broadcasts(self, a: _Val, code: str) -> bool:
        try:
            np.broadcast_shapes(a.shape, np.shape(self.evaluate(code)))
        except ValueError:
            return False
        return True

    def untied(self, a: _Val, axis) -> _Val | None:
        """`a`, or `a` plus a ramp (a statement of its own): no tie for the max over `axis`."""
        for scale in (0.0, 0.37, 0.61, 1.3, 2.9):
            if a.ndim == 0 or scale == 0.0:
                code = a.name
            else:
                ramp = np.arange(math.prod(a.shape), dtype=np.float64).reshape(a.shape) * scale
                code = f"{a.name} + ops.array({np.round(ramp, 6).tolist()!r})"
            if _runner_up_gap(self.evaluate(code), axis) >= MARGIN:
                return a if code == a.name else self.emit(code, "add")
        return None

    def axis_for(self, a: _Val, allow_tuple: bool):
        """An axis of `a` (None, an int, negative ones too, or a tuple) and keepdims."""
        axes = [None, *range(a.ndim), *range(-a.ndim, 0)]
        if allow_tuple and a.ndim >= 2:
            axes += [(0, 1), (-1, 0)] + ([(0, 2), (-1, -2), (2, 0, 1)] if a.ndim == 3 else [])
        return self.draw(st.sampled_from(axes)), self.draw(st.booleans())

    def max_step(self, a: _Val, axis, args: str) -> _Val | None:
        """max over `axis`, its largest entry at least MARGIN above the runner-up (no tie)."""
        for scale in (0.0, 0.37, 0.61, 1.3, 2.9):
            if a.ndim == 0 or scale == 0.0:
                code = a.name
            else:
                ramp = np.arange(math.prod(a.shape), dtype=np.float64).reshape(a.shape) * scale
                code = f"({a.name} + ops.array({np.round(ramp, 6).tolist()!r}))"
            value = self.evaluate(code)
            if _runner_up_gap(value, axis) >= MARGIN:
                return self.emit(f"ops.max({code}, {args})", "max")
        return None

    # ---- helpers

    def _bounded_code(self, a: _Val, limit: float) -> str:
        return self._paren(self.bounded(a, limit))

    @staticmethod
    def _paren(code: str) -> str:
        return code if code.replace("_", "").replace(".", "").isalnum() else f"({code})"

    @staticmethod
    def _tanh_spelled(x: str) -> str:
        x = _Builder._paren(x)
        return f"(ops.exp({x}) - ops.exp(-{x})) / (ops.exp({x}) + ops.exp(-{x}))"

    @staticmethod
    def _on(code: str | None, template: str) -> str | None:
        return None if code is None else template.format(code)

    def _emit_on(self, code, template, op):
        return None if code is None else self.emit(template.format(code), op)


def _runner_up_gap(x, axis) -> float:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 0:
        return np.inf
    flat = x.reshape(-1) if axis is None else np.moveaxis(x, axis, -1)
    flat = flat.reshape(-1, flat.shape[-1]) if axis is not None else flat.reshape(1, -1)
    if flat.shape[-1] < 2:
        return np.inf
    top2 = np.sort(flat, axis=-1)[:, -2:]
    return float(np.min(top2[:, 1] - top2[:, 0]))


@st.composite
def programs(draw, kind: str = VECTOR, max_steps: int = 8, focus: bool | str = False) -> Case:
    """A random program over every gate graphc supports (scalar kind: elementwise gates only;
    `focus`: mostly broadcasts, biases, self-reductions, batched matmuls and permutations;
    `focus="indexing"`: mostly slicing, gathering, concatenating and stacking)."""
    dims = (1, 1, 1, 1) if kind == SCALAR else tuple(draw(st.integers(1, 3)) for _ in range(4))
    b = _Builder(draw, kind, dims)
    b.new_input(b.draw_shape())
    steps = draw(st.integers(1, max_steps))
    for _ in range(steps):
        mix = INDEXING_FOCUS if focus == "indexing" else FOCUS if focus else OPS[kind]
        op = draw(st.sampled_from(mix))
        if b.step(op) is None:  # out of domain even after repairs: a safe op instead
            b.emit(f"ops.tanh({b.bounded(b.values[-1], 6.0)})", "tanh")
    out = b.values[-1]
    if out.is_input:  # at least one gate
        out = b.emit(f"ops.tanh({out.name})", "tanh")
    unused = [v.name for v in b.values if not v.is_input and v is not out and not b.used(v)]
    if unused and draw(st.booleans()):  # most often, every value reaches the output
        out = b.emit(" + ".join([out.name, *(f"ops.mean({u})" for u in unused)]), "add") or out
    summed = kind == VECTOR and out.shape and draw(st.booleans())
    if summed and (not focus or draw(st.booleans())):  # focus: 1 in 4, else dout has out's shape
        out = b.emit(f"ops.sum({out.name})", "sum") or out
    return Case(b.lines, out.name, b.inputs, kind, b.gates)


def scalar_programs(max_steps: int = 8):
    """Programs over scalars only: small enough for SymPy to differentiate whole."""
    return programs(SCALAR, max_steps)


def vector_programs(max_steps: int = 8):
    """Programs over scalars, vectors, matrices and batches of them, with every tensor gate."""
    return programs(VECTOR, max_steps)


def broadcast_programs(max_steps: int = 6):
    """Vector programs made mostly of the broadcasting ops (`BROADCAST`): `h * sum(h)` of a
    biased h, batched matmuls, permuted transposes, reshaped reductions."""
    return programs(VECTOR, max_steps, focus=True)


def indexing_programs(max_steps: int = 6):
    """Vector programs made mostly of slicing, `take_along_axis` (with repeated indices),
    `concatenate` and `stack`, among the gates they meet (NumPy backend: the array API
    standard has no scatter-add for their gradients)."""
    return programs(VECTOR, max_steps, focus="indexing")
