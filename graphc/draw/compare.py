"""The comparison: an unfused function and its fused version, side by side.

Stage: draw (two functions -> one picture). Imports `render` and `passes.lint`; works on
`Function` objects.

`compare(f, **inputs)` measures both versions on the same inputs: gates and nodes in the graph,
statements and lines of generated code, the values the forward pass caches for backward (count
and bytes), median forward+backward time, the largest difference in value and in each gradient,
and whether each stays finite at extreme inputs (the probes of `lint`). `str()` prints a table;
the two Function objects stay on the report (`.unfused`, `.fused`) for drawing them.
"""

from __future__ import annotations

import statistics
import timeit
from dataclasses import dataclass

import numpy as np

from ..passes.lint import witnesses
from . import notebook, render


@dataclass(frozen=True)
class Side:
    """What was measured of one version."""

    label: str
    gates: int
    nodes: int
    statements: int
    lines: int
    cached_values: int
    cached_bytes: int
    seconds: float  # median forward+backward time for one call
    finite_at_extremes: bool
    first_failure: dict | None  # an input where value or gradient was not finite, if any


class Comparison:
    """Unfused vs fused: two `Side`s, the two functions, and how far their results differ."""

    def __init__(self, unfused, fused, sides, value_diff, grad_diffs, inputs):
        self.unfused, self.fused = unfused, fused
        self.sides: tuple[Side, Side] = sides
        self.value_diff: float = value_diff
        self.grad_diffs: dict[str, float] = grad_diffs
        self.inputs: dict = inputs

    def rows(self) -> list[tuple[str, str, str]]:
        """The table: a header row, then one row per measure (label, unfused, fused)."""
        a, b = self.sides
        return [("", a.label, b.label), *self._measures()]

    def _measures(self):
        a, b = self.sides
        return [
            ("gates", a.gates, b.gates),
            ("nodes", a.nodes, b.nodes),
            ("code statements", a.statements, b.statements),
            ("code lines", a.lines, b.lines),
            ("cached for backward", _cache(a), _cache(b)),
            ("forward+backward time", _time(a.seconds), _time(b.seconds)),
            ("finite at extreme inputs", _finite(a), _finite(b)),
            ("max |value difference|", "", f"{self.value_diff:.3g}"),
            *((f"max |d{k} difference|", "", f"{v:.3g}") for k, v in self.grad_diffs.items()),
        ]

    def __str__(self) -> str:
        rows = self.rows()
        widths = [max(len(str(r[i])) for r in rows) for i in range(3)]
        return "\n".join(
            f"{r[0]:{widths[0]}}  {r[1]!s:>{widths[1]}}  {r[2]!s:>{widths[2]}}" for r in rows
        )

    def render(
        self,
        digits: int = 2,
        theme: str = "light",
        stack: str = "horizontal",
        sig: int | None = None,
        background: str | None = None,
        direction: str = "LR",
        fit: str | None = None,
    ):
        """Unfused and fused circuits side by side (`stack` "horizontal"), one under the other
        ("vertical"), or whichever fits a slide better ("auto": its text is the larger scaled
        into `fit`, default 16:9), values and gradients on the wires, with the comparison table
        under them: a graphviz.Digraph. The other options are those of `Function.render`."""
        style = render.Style(digits, sig, theme, background, direction, fit)
        panels = [
            render.function_panel(f, self.inputs, style, False, title=side.label)
            for f, side in zip((self.unfused, self.fused), self.sides)
        ]
        if stack != "auto":
            return self._fitted(render.picture(panels, style, table=self.rows(), stack=stack), fit)
        frame = fit or "16:9"
        options = [
            render.picture(panels, style, table=self.rows(), stack=way)
            for way in ("horizontal", "vertical")
        ]
        best = max(options, key=lambda c: render.smallest_text(c, frame))
        return self._fitted(best, fit)

    @staticmethod
    def _fitted(canvas, fit):
        if fit is not None:
            width, height = render.FITS[fit]
            canvas.graph_attr["size"] = f"{width / render.POINTS:.3f},{height / render.POINTS:.3f}!"
        return notebook.Picture.of(canvas)

    @property
    def svg(self) -> str:
        """`render()` as SVG text."""
        return render.svg_text(self.render())

    def _repr_svg_(self) -> str | None:
        return self.svg if notebook.jupyter_format() == "svg" else None

    def _repr_mimebundle_(self, include=None, exclude=None, **_) -> dict:
        """Both circuits and the table, scaled to the notebook's width (see `notebook`)."""
        return notebook.mimebundle(self.render(), include=include, exclude=exclude)

    def explore(self, quiz=False, fit=None):
        """The interactive page (see `Function.explore`) with a toggle between the unfused and
        the fused circuit, at the comparison's inputs (`fit`: each drawn as the slides fit it).

        >>> gc.compare(neuron, **inputs).explore().save("neuron-compare.html")
        """
        pair = (self.unfused, self.fused)
        titles = [s.label for s in self.sides]
        return self.unfused._explore(pair, self.inputs, titles, quiz, fit)

    def __repr__(self) -> str:
        return f"<graphc.Comparison of {self.unfused.__name__}: unfused vs fused>\n{self}"


def _cache(s: Side) -> str:
    return f"{s.cached_values} values, {s.cached_bytes} B"


def _time(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} us" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def _finite(s: Side) -> str:
    if s.finite_at_extremes:
        return "yes"
    return "no: " + ", ".join(f"{k}={v:g}" for k, v in s.first_failure.items())


TIMING_WINDOW = 0.01  # seconds per timed batch: long enough to average out the clock's steps


def _median_seconds(module, values: list, repeat: int) -> float:
    """The median time of one call, over `repeat` batches of calls that each take about
    TIMING_WINDOW (timeit's autorange aims at 0.2 s a batch, which made `compare` take seconds)."""
    timer = timeit.Timer(lambda: module.value_and_grad(*values))
    number = 1
    while timer.timeit(number) < TIMING_WINDOW and number < 10**7:
        number *= 10
    return statistics.median(t / number for t in timer.repeat(repeat=repeat, number=number))


def _first_failure(f, base: dict) -> dict | None:
    with np.errstate(all="ignore"):
        for name, v, inputs in witnesses(f, base):
            value, grads = f.value_and_grad(**inputs)
            if not (
                np.all(np.isfinite(value)) and all(np.all(np.isfinite(g)) for g in grads.values())
            ):
                return {name: v}
    return None


def _side(label: str, f, inputs: dict, repeat: int) -> Side:
    compiled = f.compiled_for(**inputs)
    values = compiled.prepared(f._bind((), inputs))
    _, cache = compiled.module.forward(*values)
    ops = [op for _, op in f.graph.nodes(data="op")]
    failure = _first_failure(f, inputs)
    return Side(
        label,
        gates=sum(op not in ("input", "const") for op in ops),
        nodes=len(ops),
        statements=len(compiled.program.forward) + len(compiled.program.backward),
        lines=len(compiled.source.splitlines()),
        cached_values=len(cache),
        cached_bytes=int(sum(np.asarray(v).nbytes for v in cache)),
        seconds=_median_seconds(compiled.module, values, repeat),
        finite_at_extremes=failure is None,
        first_failure=failure,
    )


def _max_diff(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def compare(
    f, /, *args, rules=None, level: str = "patterns", repeat: int = 7, **inputs
) -> Comparison:
    """Compare `f` with `f.fused(rules, level)` on `inputs`; print the result for a table.

    >>> print(compare(neuron, w0=2.0, x0=-1.0, w1=-3.0, x1=-2.0, w2=-3.0))
    """
    inputs = f._named(args, inputs, ("rules", "level", "repeat"), "gc.compare")
    fused = f.fused(rules, level)
    value, grads = f.value_and_grad(**inputs)
    fused_value, fused_grads = fused.value_and_grad(**inputs)
    sides = (_side("unfused", f, inputs, repeat), _side("fused", fused, inputs, repeat))
    diffs = {k: _max_diff(grads[k], fused_grads[k]) for k in grads}
    return Comparison(f, fused, sides, _max_diff(value, fused_value), diffs, dict(inputs))
