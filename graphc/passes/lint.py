"""Stability lint: find inputs where an unfused graph overflows although its mathematics does not.

Stage: passes (graph -> findings), read by `graphc.lint` and the comparison. Imports the `ir`.

For each input in turn, graphc tries extreme values (1, 10, 40, 100, 800, 1000 and their
negatives, smallest first) with the other inputs at their example values. Where the fused
function's value and gradients are finite but some value or gradient inside the unfused graph is
inf or NaN, the mathematics was finite and the spelling was not: the lint reports the first gate
that failed, the witness input, and the fusion rule that cures it. Values come from running the
generated code itself (`Compiled.values`).
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np

from ..ir import text
from ..ir.errors import InputError
from ..ir.graph import topo_order
from ..ir.ops import TEXTBOOK, textbook_gates

PROBES = (1.0, -1.0, 10.0, -10.0, 40.0, -40.0, 100.0, -100.0, 800.0, -800.0, 1000.0, -1000.0)


@dataclass(frozen=True)
class Finding:
    """One unstable gate: which, where it fails, and what cures it."""

    gate: str  # the gate's name, e.g. "exp"
    variable: str  # its name in the generated code
    what: str  # "value" or "gradient": which of the two became inf/NaN first
    witness: dict  # the inputs that show it, e.g. {"x": -800.0}
    cure: str | None  # the fusion rule whose gate stays finite there, e.g. "sigmoid"
    rewrite: str | None  # that rule's comment, e.g. "1/(1+exp(-x)) -> sigmoid(x)"

    def __str__(self) -> str:
        gate, variable, what, at, cure = self.row()
        return f"{gate} ({variable}): {what} not finite at {at}; {cure}"

    def row(self) -> tuple[str, str, str, str, str]:
        """gate, variable, what, the witness, the cure: a row of the report's table."""
        at = ", ".join(f"{k}={_short(v)}" for k, v in self.witness.items())
        cure = f"fuse: {self.rewrite}" if self.rewrite else "no fusion rule covers this gate"
        return self.gate, self.variable, self.what, at, cure


@dataclass(frozen=True)
class TextbookLoss:
    """A gate that `style="textbook"` spells as the lecture does, and where that loses accuracy."""

    gate: str
    variable: str
    loses: str  # from `ir.ops.TEXTBOOK`

    def __str__(self) -> str:
        return f"{self.gate} ({self.variable}): textbook style: {self.loses}"


def textbook_losses(graph) -> list[TextbookLoss]:
    """The gates of `graph` whose textbook spelling loses accuracy somewhere, once per gate."""
    found, seen = [], set()
    for n in topo_order(graph):
        data = graph.nodes[n]
        inside = textbook_gates(data["formula"]) if data["op"] == "expr" else [data["op"]]
        for op in inside:  # a fused gate: the gates inside it
            if op in TEXTBOOK and op not in seen:
                seen.add(op)
                found.append(
                    TextbookLoss(op, data.get("hint", data.get("gate", op)), TEXTBOOK[op].loses)
                )
    return found


class LintReport(list):
    """The findings of `lint`, one per unstable gate (and, for `style="textbook"`, one note per
    gate whose textbook spelling loses accuracy); empty when the graph is stable. Prints (and
    shows in a notebook) as a table, one row an unstable gate, with the notes under it."""

    def rows(self) -> list[tuple[str, ...]]:
        """The table: a header row, then one row per unstable gate."""
        found = [f.row() for f in self if not isinstance(f, TextbookLoss)]
        return [("gate", "variable", "not finite", "at", "cure"), *found]

    def notes(self) -> list[str]:
        """Where the textbook spelling loses accuracy, one line per gate."""
        return [str(f) for f in self if isinstance(f, TextbookLoss)]

    def __str__(self) -> str:
        if not self:
            return "no unstable gates found"
        rows = self.rows()
        table = [text.text_table(rows)] if len(rows) > 1 else []
        return "\n".join([*table, *self.notes()])

    def _repr_html_(self) -> str:
        if not self:
            return "<p>graphc lint: no unstable gates found</p>"
        rows, parts = self.rows(), []
        if len(rows) > 1:
            caption = f"graphc lint: {len(rows) - 1} unstable gate(s)"
            parts.append(text.html_table(rows, caption=caption))
        parts += [f"<p>{html.escape(note)}</p>" for note in self.notes()]
        return "\n".join(parts)


def _short(v) -> str:
    if np.ndim(v) == 0:
        return f"{float(v):g}"
    flat = np.ravel(v)
    if flat.size and np.all(flat == flat[0]):
        return f"full({np.shape(v)}, {float(flat[0]):g})"
    return f"<array {np.shape(v)}>"


def _finite(value, grads: dict) -> bool:
    return bool(np.all(np.isfinite(value))) and all(np.all(np.isfinite(g)) for g in grads.values())


def _origins(fused) -> dict[int, tuple[str, str]]:
    """Original node -> (rule name, comment) of the outermost rewrite that replaced it."""
    covered: dict[int, set[int]] = {}
    origin: dict[int, tuple[str, str]] = {}
    for rule, new, nodes in fused.graph.graph.get("rewrites", []):
        mine = set()
        for n in nodes:
            mine |= covered.get(n, {n})
        covered[new] = mine
        for n in mine:
            origin[n] = (rule.name, rule.comment)
    return origin


def witnesses(f, base: dict):
    """(input name, probe value, inputs) for every single-input extreme probe, smallest first."""
    for v in PROBES:
        for name in f.inputs:
            if name in getattr(f, "index_inputs", ()):  # integer labels: never a probe value
                continue
            x = base[name]
            probe = (
                v if np.ndim(x) == 0 and not isinstance(x, np.ndarray) else np.full(np.shape(x), v)
            )
            yield name, v, {**base, name: probe}


def lint(f, /, rules=None, **examples) -> LintReport:
    """Gates of `f` whose value or gradient overflows where the fused function stays finite.

    `examples` give input shapes and the values of the inputs not being probed (default: 1.0);
    an input named `rules` takes the default (`rules=` chooses the fusion rules).

    >>> print(lint(neuron))
    exp (exp): value not finite at w0=1, x0=-800, ...; fuse: 1/(1+exp(-x)) -> sigmoid(x)

    For a function of `style="textbook"`, the report also names each gate whose lecture
    formula loses accuracy, and where (`TextbookLoss`: sigmoid' = (1 - s) * s is 0 beyond 37).
    """
    unknown = [k for k in examples if k not in f.inputs]
    if unknown:
        raise InputError(
            f"lint: {f.__name__} has no input(s) {unknown}; its inputs are {list(f.inputs)}"
        )
    base = {k: examples.get(k, 1.0) for k in f.inputs}
    fused = f.fused(rules)
    origin = _origins(fused)
    report, seen = LintReport(), set()
    with np.errstate(all="ignore"):
        for _, _, inputs in witnesses(f, base):
            if not _finite(*fused.value_and_grad(**inputs)):
                continue  # not finite after fusion either: the mathematics may be infinite
            compiled = f.compiled_for(**inputs)
            blame = _first_failure(compiled, f._bind((), inputs))
            if blame is None:
                continue
            node, what = blame
            graph = compiled.program.graph
            rule, comment = origin.get(node, (None, None))
            key = (graph.nodes[node]["op"], rule)
            if key in seen:
                continue
            seen.add(key)
            report.append(
                Finding(
                    graph.nodes[node]["op"],
                    compiled.program.names.get(node, "?"),
                    what,
                    {k: inputs[k] for k in f.inputs},
                    rule,
                    comment,
                )
            )
    if getattr(f, "style", "accurate") == "textbook":
        report.extend(textbook_losses(f.graph))
    return report


def _first_failure(compiled, values: list) -> tuple[int, str] | None:
    """The first forward node whose value, else the first whose gradient, is not finite."""
    program = compiled.program
    g = program.graph
    computed = compiled.values(values, compiled.ones(values))
    forward = [n for n in topo_order(g) if n in program.forward]
    for n in forward:
        if not np.all(np.isfinite(computed[n])):
            return n, "value"
    gradient_of = g.graph["gradient_of"]
    for n in reversed(forward):
        d = gradient_of.get(n)
        if d in computed and not np.all(np.isfinite(computed[d])):
            return n, "gradient"
    return None
