"""Numerical gradient check: analytic gradients against central differences, whole or per gate.

Stage: surface (a tool over `Function`). Imports `function`, `autodiff`, `codegen`, `graph`,
`ops` and `special`.

What is checked is the gradient of sum(dout * out), for an upstream gradient `dout`: all ones
(the gradient of the sum) unless told, or a random one (`dout="random"`, drawn with the fixed seed
`DOUT_SEED`). A check with ones can be fooled: sum(out) of batch norm is a constant in x, so every
gradient of x, right or wrong, is 0 against a difference of 0. Where the gradient of sum(out) is
zero for an input being checked (and out is not a scalar), the random `dout` is the default.

The numerical gradient of input x along coordinate i is sum(dout * (f(x+h e_i) - f(x-h e_i)))/2h
with the differences taken elementwise before summing, so outputs that do not depend on x_i
contribute exactly zero and a large output adds no round-off. Coordinates are checked all, or a
fixed-seed sample of `samples` per input for large arrays, as in a sparse gradient check.
`report=True` returns a `GradReport`: per input, the worst coordinates with their analytic and
numerical values and relative errors, as a table that prints and shows in notebooks.

`per_gate=True` checks every gate on its own, at the values it sees in the forward pass (read
from the generated code's intermediates): an elementwise gate's derived local gradients against
central differences of its own formula, a tensor gate's vector-Jacobian product with a random
upstream gradient against central differences of the gate alone. A wrong gradient is then pinned
to the gate that causes it, where a whole-function check can only say that something is wrong.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .compiler import compile_graph
from .emit.codegen import formula_template, load_module
from .ir import text
from .ir.errors import InputError
from .ir.graph import add_node, args_of, new_graph, topo_order
from .ir.ops import ELEMENTWISE, GATES, MASK, TENSOR, gate_of
from .ir.special import HELPERS
from .passes.autodiff import gate_local_gradients

if TYPE_CHECKING:
    from .function import Function


def relative_error(a, b) -> float:
    """max |a - b| / max(|a| + |b|, 1e-8), the lecture's relative error."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-8)))


def numerical_gradient(
    f, values: dict, name: str, samples: int | None = None, seed: int = 0, dout=None
):
    """Central-difference gradient of sum(dout * f) w.r.t. input `name` (NaN where not sampled).

    `dout` weights the output's entries (default: all ones, the gradient of the sum).
    """
    x = np.array(values[name], dtype=np.float64)
    out = np.asarray(f(**values), dtype=np.float64)
    dout = np.ones_like(out) if dout is None else np.asarray(dout, dtype=np.float64)
    grad = np.full(x.shape, np.nan)
    for i in sampled(x.shape, samples, seed):
        h = 1e-5 * max(1.0, abs(x[i]))
        x_plus, x_minus = x.copy(), x.copy()
        x_plus[i] += h
        x_minus[i] -= h
        up = np.asarray(f(**{**values, name: _like(values[name], x_plus)}), dtype=np.float64)
        down = np.asarray(f(**{**values, name: _like(values[name], x_minus)}), dtype=np.float64)
        grad[i] = np.sum(dout * (up - down)) / (x_plus[i] - x_minus[i])
    return grad


def sampled(shape: tuple[int, ...], samples: int | None, seed: int = 0) -> list[tuple]:
    """The coordinates a check looks at: all, or a fixed-seed sample of `samples` of them."""
    index = list(np.ndindex(shape))
    if samples is not None and len(index) > samples:
        pick = np.random.default_rng(seed).choice(len(index), size=samples, replace=False)
        index = [index[k] for k in sorted(pick)]
    return index


def _picked(shape, samples) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    for i in sampled(shape, samples):
        mask[i] = True
    return mask


def _like(original, x):
    return float(x) if np.ndim(original) == 0 and not isinstance(original, np.ndarray) else x


DOUT_SEED = 271828  # `dout="random"`: standard normal of this seed (not 0, 42: data often use them)
OPTIONS = ("samples", "per_gate", "dout", "report", "mode")  # check_grad's keywords, not inputs
WORST = 5  # coordinates a report shows per input


def check_grad(
    f: Function,
    /,
    *args,
    samples: int | None = 100,
    per_gate: bool = False,
    dout=None,
    report: bool = False,
    mode: str = "reverse",
    **inputs,
) -> float | GateReport | GradReport:
    """Max relative error between f's gradients and central differences, over all inputs.

    The gradient checked is that of sum(dout * out). `dout` is an array (broadcast to out's
    shape), `"random"` (standard normal, seed `DOUT_SEED`), `"ones"`, or None: ones, unless the
    gradient of sum(out) is zero for an input being checked (batch norm's x), where ones cannot
    tell a right gradient from a wrong one; then random. Inputs are promoted to float64 (index
    inputs, such as integer labels, stay integers and are not checked: they get no gradient).
    `samples` caps the coordinates checked per input (a fixed-seed random subset);
    `samples=None` checks every coordinate. The result is NaN where a gradient or a difference
    is not finite (at NaN inputs, say): never a pass. `report=True` returns a `GradReport`
    instead (per input: the worst coordinates, analytic against numerical). `per_gate=True`
    returns a `GateReport`: every gate checked on its own (see the module docstring);
    `print(report)` shows the table and names the worst gate. An input named like an option
    goes by position.

    >>> check_grad(f, x=-2.0, y=5.0, z=-4.0) < 1e-7
    True
    >>> print(check_grad(batchnorm, x=x, gamma=gamma, beta=beta, report=True))
    >>> print(check_grad(f, x=-2.0, y=5.0, z=-4.0, per_gate=True))   # one row per gate

    `mode="forward"` checks forward mode instead (`f.jvp`, see `check_forward`).
    """
    named = f._named(args, inputs, OPTIONS, "gc.check_grad")
    bound = f._bind((), named)  # missing, unexpected or refused inputs: InputError
    values = {  # index inputs (integer labels) stay as they are: they get no gradient
        k: v if isinstance(v, float) or k in f.index_inputs else np.asarray(v, dtype=np.float64)
        for k, v in zip(f.inputs, bound)
    }
    if mode not in ("reverse", "forward"):
        raise InputError(f"gc.check_grad: mode={mode!r}; choose 'reverse' or 'forward'")
    if mode == "forward":
        for given, option in ((per_gate, "per_gate=True"), (report, "report=True"), (dout, "dout")):
            if given is not None and given is not False:
                raise InputError(
                    f"gc.check_grad: {option} checks the reverse mode only; drop it for "
                    "mode='forward'"
                )
        return check_forward(f, values, samples)
    with np.errstate(all="ignore"):
        out, analytic = f.value_and_grad(**values)
        weights, drawn = _upstream(f, values, out, analytic, dout)
        if weights is not None:
            analytic = _gradients_for(f, values, weights)
    worst, rows = 0.0, []
    for name in f.gradient_names:
        numeric = numerical_gradient(f, values, name, samples, dout=weights)
        picked = _picked(numeric.shape, samples)  # a NaN where a gradient is NaN counts
        error = _error(np.asarray(analytic[name])[picked], numeric[picked])
        worst = error if np.isnan(error) else max(worst, error)
        if report:
            rows.append(_input_rows(name, np.asarray(analytic[name]), numeric, picked, error))
    if per_gate:
        return GateReport(f.__name__, _check_gates(f, values, samples), worst)
    if report:
        return GradReport(f.__name__, tuple(rows), worst, drawn)
    return worst


def _upstream(f, values: dict, out, analytic: dict, dout) -> tuple[np.ndarray | None, str]:
    """The upstream gradient to check with (None: ones) and how it was chosen."""
    shape = np.shape(out)
    if isinstance(dout, str):
        if dout not in ("random", "ones"):
            raise InputError(
                f"gc.check_grad: dout={dout!r}; give an array shaped like the output {shape}, "
                "'random' (seed DOUT_SEED) or 'ones'"
            )
        if dout == "ones":
            return None, "ones"
        return np.random.default_rng(DOUT_SEED).standard_normal(shape), "random"
    if dout is not None:
        try:
            given = np.broadcast_to(np.asarray(dout, dtype=np.float64), shape)
        except (ValueError, TypeError):
            raise InputError(
                f"gc.check_grad: dout of shape {np.shape(dout)} does not broadcast to the "
                f"output's shape {shape}; give one shaped like the output"
            ) from None
        return np.array(given), "given"
    scale = max(1.0, float(np.max(np.abs(out), initial=0.0)))
    blind = [  # sum(out) is constant in this input: ones would check nothing of its gradient
        k
        for k in f.gradient_names
        if np.size(analytic[k]) and np.max(np.abs(analytic[k])) <= 1e-9 * scale
    ]
    if shape == () or not blind:
        return None, "ones"
    return np.random.default_rng(DOUT_SEED).standard_normal(shape), (
        f"random: sum(out) has a zero gradient in {', '.join(blind)}"
    )


def _gradients_for(f, values: dict, dout: np.ndarray) -> dict:
    """f's gradients of sum(dout * out), from its generated forward and backward."""
    bound = f._bind((), values)
    compiled = f.compiled_for(**values)
    _, cache = compiled.module.forward(*compiled.prepared(bound))
    grads = compiled.module.backward(dout, cache)
    return {
        k: np.broadcast_to(np.asarray(g, dtype=np.float64), np.shape(values[k]))
        for k, g in zip(f.gradient_names, grads)
    }


def _input_rows(name, analytic, numeric, picked, error) -> InputCheck:
    """One input's worst coordinates (largest relative error first, NaN the largest)."""
    analytic = np.broadcast_to(analytic, numeric.shape)
    where = [i for i in np.ndindex(numeric.shape) if picked[i]]
    errors = {i: _error(analytic[i], numeric[i]) for i in where}
    order = sorted(where, key=lambda i: (-np.inf if np.isnan(errors[i]) else -errors[i], i))
    shown = tuple((i, float(analytic[i]), float(numeric[i]), errors[i]) for i in order[:WORST])
    return InputCheck(name, numeric.shape, len(where), error, shown)


@dataclass(frozen=True)
class InputCheck:
    """One input's part of a `GradReport`: its worst coordinates."""

    name: str
    shape: tuple[int, ...]
    checked: int  # coordinates compared
    error: float  # the largest relative error among them (NaN: not finite somewhere)
    worst: tuple[
        tuple[tuple[int, ...], float, float, float], ...
    ]  # (index, analytic, numerical, error)


class _Rows:
    """What both reports share: a row by its name, and the whole function's error as float."""

    rows: tuple
    error: float
    _missing = "no row {name!r}; rows: {names}"  # the KeyError, said the report's own way

    def __getitem__(self, name: str):
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(self._missing.format(name=name, names=[r.name for r in self.rows]))

    def __float__(self) -> float:
        return float(self.error)


@dataclass(frozen=True)
class GradReport(_Rows):
    """`check_grad(..., report=True)`: per input, analytic against numerical gradients.

    `rows` has one `InputCheck` per input checked; `error` is what `check_grad` returns without
    `report`; `dout` says which upstream gradient was used. `str(report)` is a table;
    notebooks show `_repr_html_`. `report["x"]` is the row of input x.
    """

    function: str
    rows: tuple[InputCheck, ...]
    error: float
    dout: str
    _missing = "no input {name!r} was checked; inputs: {names}"

    def _table(self) -> list[tuple[str, ...]]:
        table: list[tuple[str, ...]] = [("input", "index", "analytic", "numerical", "rel. error")]
        for row in self.rows:
            for k, (i, a, n, e) in enumerate(row.worst):
                first = f"{row.name} {row.shape}" if k == 0 else ""
                table.append((first, str(i) if i else "()", f"{a:.6g}", f"{n:.6g}", _fmt(e)))
        return table

    def _head(self) -> list[str]:
        per = ", ".join(f"{r.name} {_fmt(r.error)} ({r.checked} checked)" for r in self.rows)
        return [
            f"gradient check of {self.function}: max relative error {_fmt(self.error)}",
            f"upstream gradient dout: {self.dout}",
            *textwrap.wrap(f"per input: {per or 'none'}", 96),
        ]

    def __str__(self) -> str:
        table = self._table()
        widths = [max(len(row[k]) for row in table) for k in range(len(table[0]))]
        lines = [
            "  ".join(
                c.rjust(w) if k > 1 else c.ljust(w) for k, (c, w) in enumerate(zip(row, widths))
            ).rstrip()
            for row in table
        ]
        return "\n".join([*self._head(), "", *lines])

    def __repr__(self) -> str:
        return f"<GradReport {self.function}: {len(self.rows)} inputs, error {_fmt(self.error)}>"

    def _repr_html_(self) -> str:
        """The table, under the lines `str` opens with."""
        first, *rest = self._head()
        tail = "".join(f"<p>{text.markup(line)}</p>" for line in rest)
        return text.html_table(self._table(), first) + tail


def check_forward(f, values: dict, samples: int | None = 100) -> float:
    """Max relative error of forward mode: for each sampled coordinate x_i of each input, the
    tangent `f.jvp` gives along e_i (shaped like the output) against the central difference
    (f(x + h e_i) - f(x - h e_i)) / 2h, entry by entry; NaN where either is not finite."""
    worst = 0.0
    for name in f.inputs:
        x = np.array(values[name], dtype=np.float64)
        for i in sampled(x.shape, samples):
            direction = np.zeros(x.shape)
            direction[i] = 1.0
            with np.errstate(all="ignore"):
                _, tangent = f.jvp(values, {name: _like(values[name], direction)})
            h = 1e-5 * max(1.0, abs(x[i]))
            x_plus, x_minus = x.copy(), x.copy()
            x_plus[i] += h
            x_minus[i] -= h
            up = np.asarray(f(**{**values, name: _like(values[name], x_plus)}), dtype=np.float64)
            down = np.asarray(f(**{**values, name: _like(values[name], x_minus)}), dtype=np.float64)
            error = _error(np.asarray(tangent), (up - down) / (x_plus[i] - x_minus[i]))
            worst = error if np.isnan(error) else max(worst, error)
    return worst


# ---------------------------------------------------------------- the per-gate report


@dataclass(frozen=True)
class GateCheck:
    """One gate's row: which gate, the variable it computes, and its worst relative error."""

    node: int
    gate: str
    name: str
    error: float  # max over the gate's arguments; NaN if a value was not finite
    errors: tuple[float | None, ...]  # per argument (None: no gradient flows into it)
    kind: str  # "local gradient" (elementwise) or "vector-Jacobian product" (tensor)


@dataclass(frozen=True)
class GateReport(_Rows):
    """`check_grad(..., per_gate=True)`: every gate's own gradient against central differences.

    `rows` in forward order; `worst` is the gate with the largest error (NaN counts as largest);
    `error` is the whole function's max relative error, what `check_grad` returns without
    `per_gate`. `str(report)` is the table.
    """

    function: str
    rows: tuple[GateCheck, ...]
    error: float
    _missing = "no gate computes {name!r}; variables: {names}"

    @property
    def worst(self) -> GateCheck | None:
        if not self.rows:
            return None
        return max(self.rows, key=lambda r: np.inf if np.isnan(r.error) else r.error)

    def __str__(self) -> str:
        worst = self.worst
        head = [f"per-gate gradient check of {self.function}: {len(self.rows)} gate(s)"]
        if worst is not None:
            head.append(f"worst: {worst.gate} ({worst.name}), relative error {_fmt(worst.error)}")
        table = [("gate", "variable", "checks", "max rel. error")]
        table += [(r.gate, r.name, r.kind, _fmt(r.error)) for r in self.rows]
        widths = [max(len(row[k]) for row in table) for k in range(3)]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + "  " + row[3]
            for row in table
        ]
        for k, r in enumerate(self.rows, start=1):
            if r is worst:
                lines[k] += "  <- worst"
        tail = f"whole function: max relative error {_fmt(self.error)}"
        return "\n".join([*head, "", *lines, "", tail])

    def __repr__(self) -> str:
        return f"<GateReport {self.function}: {len(self.rows)} gates, error {_fmt(self.error)}>"

    def _repr_html_(self) -> str:
        """The table, with the worst gate marked and the whole function's error under it."""
        worst = self.worst
        table = [("gate", "variable", "checks", "max rel. error", "")]
        table += [
            (r.gate, r.name, r.kind, _fmt(r.error), "worst" if r is worst else "")
            for r in self.rows
        ]
        caption = f"per-gate gradient check of {self.function}: {len(self.rows)} gate(s)"
        whole = f"whole function: max relative error {_fmt(self.error)}"
        return f"{text.html_table(table, caption)}<p>{text.markup(whole)}</p>"


def _fmt(x: float) -> str:
    return "nan" if np.isnan(x) else f"{x:.1e}"


def _helpers():
    """A namespace where printed formulas run: NumPy and graphc's helper functions."""
    global _NAMESPACE
    if _NAMESPACE is None:
        source = "import numpy as np\n\n" + "\n\n".join(HELPERS.values())
        _NAMESPACE = vars(load_module(source, "check_helpers"))
    return _NAMESPACE


_NAMESPACE = None


def _check_gates(f, values: dict, samples: int | None, seed: int = 0) -> tuple[GateCheck, ...]:
    compiled = f.compiled_for(**values)
    program = compiled.program
    g = program.graph
    bound = f._bind((), values)
    seen = compiled.values(bound, compiled.ones(bound))
    rng = np.random.default_rng(seed)
    flows = set(g.graph["wires"])  # (gate, argument) pairs a gradient flows back along
    rows = []
    for n in topo_order(g):
        data = g.nodes[n]
        op = data["op"]
        if data.get("role") in ("grad", "seed") or op in ("input", "const") or n not in seen:
            continue
        if "pair_of" in data or "cached_for" in data:
            continue  # sigmoid(-x) beside a sigmoid, log_softmax beside a cross-entropy, for
            # the gate's gradient: checked with that gate
        gate = gate_of(op)
        assert gate is not None  # every node but inputs and constants is a gate
        if gate.kind == MASK:
            continue  # a comparison: no gradient flows through it
        args = [_value(g, a, seen) for a in _gate_args(g, n)]
        label = data.get("gate", op)
        name = program.names.get(n, label)
        # only the arguments a gradient flows into: a constant exponent has none (and x**2 at
        # x < 0 has no derivative in its exponent to check), nor has an input outside `wrt`
        used = [(n, a) in flows for a in _gate_args(g, n)]
        if gate.kind == ELEMENTWISE:
            errors = _check_local(g, n, args, seen[n], used)
            kind = "local gradient"
        else:
            assert gate.kind == TENSOR
            errors = _check_vjp(g, n, args, rng, samples, f.readable, used)
            kind = "vector-Jacobian product"
        found = [e for e in errors if e is not None]
        error = float("nan") if any(np.isnan(found)) else max(found, default=0.0)
        rows.append(GateCheck(n, label, name, error, tuple(errors), kind))
    # in the order the gates were traced: a sigmoid reads its sigmoid(-x) step, made later
    return tuple(sorted(rows, key=lambda r: r.node))


def _gate_args(g, n: int) -> list[int]:
    """The arguments of gate n as written: without the log_softmax a cross-entropy reads from
    forward (`passes.lower.cache_log_softmax`), which the gate alone computes itself."""
    return [a for a in args_of(g, n) if "cached_for" not in g.nodes[a]]


def _value(g, n: int, seen: dict):
    if n in seen:
        return seen[n]
    return g.nodes[n]["value"]  # a constant written inside the statement that reads it


def _run(template: str, args: list, out=None):
    ns = dict(_helpers())
    ns.update({f"_a{k}": v for k, v in enumerate(args)}, _out=out)
    code = template.format(*(f"_a{k}" for k in range(len(args))), out="_out")
    with np.errstate(all="ignore"):
        return eval(code, ns)  # graphc's own printed formula, over these values only


def _check_local(g, n: int, args: list, out, used: list[bool]) -> list[float | None]:
    """Each derived local gradient the backward pass uses against central differences of the
    gate's own formula (None for the arguments no gradient flows into)."""
    data = g.nodes[n]
    if "local" in data and "pair" not in data:  # lowered: the gate of x over e = exp(-|x|)
        forward = formula_template(GATES[data["gate"]].expr())
    elif data["op"] == "expr":
        forward = formula_template(data["formula"])
    else:
        gate = gate_of(data["op"])
        assert gate is not None
        forward = formula_template(gate.expr())
    shape = np.shape(out)
    errors: list[float | None] = []
    for i, local in enumerate(gate_local_gradients(g, n)):
        if local is None or not used[i]:
            errors.append(None)
            continue
        analytic = np.broadcast_to(np.asarray(_run(formula_template(local), args, out)), shape)
        x = np.array(np.broadcast_to(np.asarray(args[i], dtype=np.float64), shape))
        numeric, uncertainty = _central_difference(forward, args, i, x, np.abs(out))
        errors.append(_error(analytic, numeric, uncertainty))
    return errors


def _central_difference(forward: str, args: list, i: int, x, size):
    """d forward / d args[i] by central differences at the step that is surest, and how sure:
    the difference's round-off plus how far the estimate moves at the next step (truncation, or
    a kink). Steps go up from 1e-6 |x| by tens, to a hundredth of the output's size: a term of
    1e20 next to x's contribution of 1 needs a step of 1e14 to be seen at all."""
    eps = np.finfo(np.float64).eps
    low = 1e-6 * np.maximum(1.0, np.abs(x))
    high = 1e-2 * np.maximum(1.0, np.where(np.isfinite(size), size, 1.0))
    with np.errstate(all="ignore"):
        decades = int(np.clip(np.max(np.log10(high / low), initial=0.0), 0, 40))
        estimates, noise = [], []
        for k in range(decades + 2):
            h = low * 10.0**k
            plus, minus = list(args), list(args)
            plus[i], minus[i] = x + h, x - h
            up, down = np.asarray(_run(forward, plus)), np.asarray(_run(forward, minus))
            step = (x + h) - (x - h)
            estimates.append((up - down) / step)
            rounding = 4 * eps * (np.abs(up) + np.abs(down)) / step
            noise.append(np.where(h <= 10 * np.maximum(high, low), rounding, np.inf))
        d, n = np.array(estimates), np.array(noise)
        moved = np.full(d.shape, np.inf)  # inf where the next step is not taken
        moved[:-1] = np.where(np.isfinite(n[1:]), np.abs(d[:-1] - d[1:]), np.inf)
        uncertain = n + moved
    uncertain = np.where(np.isnan(uncertain), np.inf, uncertain)
    best = np.argmin(uncertain, axis=0)[np.newaxis]
    pick = np.take_along_axis
    return pick(d, best, axis=0)[0], pick(uncertain, best, axis=0)[0]


def _check_vjp(
    g, n: int, args: list, rng, samples, readable: bool, used: list[bool]
) -> list[float | None]:
    """The gate alone, compiled: its backward with a random upstream against differences, for
    the arguments a gradient flows into (None for the others)."""
    data = g.nodes[n]
    arg_nodes = _gate_args(g, n)
    distinct = list(dict.fromkeys(arg_nodes))
    alone = new_graph(f"{data['op']}_alone")
    inputs = {a: add_node(alone, "input", name=f"a{k}") for k, a in enumerate(distinct)}
    params = {"params": data["params"]} if "params" in data else {}
    node = add_node(alone, data["op"], [inputs[a] for a in arg_nodes], **params)
    alone.graph.update(inputs=[inputs[a] for a in distinct], output=node)
    gate = gate_of(data["op"])
    indices = {arg_nodes[p] for p in (gate.indices if gate else ())}  # integer indices stay so
    given = {
        f"a{k}": np.asarray(args[arg_nodes.index(a)], dtype=None if a in indices else np.float64)
        for k, a in enumerate(distinct)
    }
    wrt = [f"a{k}" for k, a in enumerate(distinct) if a not in indices]
    shapes = {k: v.shape for k, v in given.items()}
    module = compile_graph(alone, shapes, tuple(wrt), readable=readable).module
    out, _ = module.forward(*given.values())
    dout = rng.standard_normal(np.shape(out))
    with np.errstate(all="ignore"):
        _, cache = module.forward(*given.values())
        analytic = module.backward(dout if np.shape(out) else float(dout), cache)

    def forward(**kw):
        with np.errstate(all="ignore"):
            return module.forward(*kw.values())[0]

    per_input = {}
    for k, name in enumerate(wrt):
        numeric = numerical_gradient(forward, given, name, samples, dout=dout)
        picked = _picked(numeric.shape, samples)
        a = distinct[int(name[1:])]
        per_input[a] = _error(np.asarray(analytic[k])[picked], numeric[picked])
    # an argument used twice is one input of the gate alone: its row shows once per position
    return [per_input[a] if flows and a in per_input else None for a, flows in zip(arg_nodes, used)]


def _error(analytic, numeric, uncertainty=0.0) -> float:
    """The relative error, or NaN if either side is not finite: a check that cannot pass.

    With an `uncertainty` of the numeric side, a disagreement of that size counts as 1e-6 (as
    the property tests' oracle floors it, docs/verification.md): float64 differences cannot
    tell 4e-18 (sigmoid' at 40) from 0, and neither is wrong."""
    analytic, numeric = np.asarray(analytic, dtype=float), np.asarray(numeric, dtype=float)
    if not (np.all(np.isfinite(analytic)) and np.all(np.isfinite(numeric))):
        return float("nan")
    if analytic.size == 0:
        return 0.0
    floor = np.maximum(1e-8, np.asarray(uncertainty) / 1e-6)
    scale = np.maximum(np.abs(analytic) + np.abs(numeric), floor)
    return float(np.max(np.abs(analytic - numeric) / scale))
