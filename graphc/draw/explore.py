"""The backprop explorer: one self-contained web page that steps through forward and backward.

Stage: draw (functions + values -> an HTML page). Imports `render` (the picture and its scene)
and the `ir`; the page's numbers are the values the generated code computed (`values_for`),
its picture is `Function.svg`, and its script only shows and hides them.

The page is one file: the SVG, the script (`explore_assets.SCRIPT`, plain JavaScript) and the
style are inline, and it refers to nothing on the network, so it opens from `file://` with no
server. Its data is one JSON blob computed here, per view (the unfused circuit, and the fused
one for a comparison):

    wires   what each drawn wire carries: value, gradient, shape, the step its value appears
            (`fwd`) and the step its gradient does (`bwd`), the local-gradient formula of the
            gate it enters, and the SVG elements that draw it (`handles`, see `svg_handles`)
    steps   step 0 shows the inputs, then one step per gate in forward order, the seed, and one
            step per gate in backward order: the active gate and the lines explaining it
            ("upstream × local = gradient" with the numbers, fork totals adding up)
    inputs  each input's value and total gradient (the sum over its wires where it forks)

The one number computed here is a scalar gate's local gradient in "upstream × local =
gradient": gradient / upstream, of the two numbers the code computed (the formula alone where
the upstream is 0). Step K of a view shows the values of wires with `fwd <= K` and the
gradients of wires with `bwd <= K`; `page.html#step=K` opens at step K (`&view=1`: the fused
circuit of a comparison; `&wire=J`: wire J in the inspector).
"""

from __future__ import annotations

import html
import json
import math
import re

import numpy as np

from ..ir.graph import args_of, topo_order
from ..ir.ops import TENSOR, gate_of
from . import explore_assets, render

NAMES = ["x", "y", "z", "w", "u", "v", "p", "q"]  # a gate's arguments, as `local_texts` names them


class Page:
    """One explorer page: `html` is the whole file; `save(path)` writes it, and a notebook shows
    it inline (in an iframe, so its ids and script stay its own).

    >>> page = neuron.explore(w0=2.0, x0=-1.0, w1=-3.0, x1=-2.0, w2=-3.0)
    >>> page.save("neuron.html")
    """

    def __init__(self, text: str, write):
        self.html = text
        self._write = write  # the top's atomic file writer (a wing writes no files itself)

    def save(self, path) -> str:
        """Write the page to `path` atomically; returns the path."""
        return self._write(path, self.html)

    def _repr_html_(self) -> str:
        return (
            f'<iframe srcdoc="{html.escape(self.html, quote=True)}" '
            'style="width: 100%; height: 760px; border: 1px solid #ccc"></iframe>'
        )

    def __repr__(self) -> str:
        return f"<graphc explorer page, {len(self.html)} characters>"


# ---------------------------------------------------------------- the SVG elements of a wire


def svg_handles(prefix: str, k: int, tail: str, head: str) -> dict[str, str]:
    """How the script finds wire `k`'s elements in the picture: the line and its two labels.

    Today's drawing names them by their Graphviz titles (an edge `tail->head`, label nodes
    `w<k>v` and `w<k>g`); the script looks a handle up as an element id first, then as a
    title, so a drawing with semantic ids (`w<k>`, `w<k>-value`, `w<k>-grad`) needs a change
    here only.
    """
    return {
        "line": f"{prefix}{tail}->{prefix}{head}",
        "value": f"{prefix}w{k}v",
        "grad": f"{prefix}w{k}g",
    }


def gate_handle(prefix: str, key: str) -> str:
    return prefix + key


def inline_svg(svg: str, view: int = 0) -> str:
    """Graphviz's SVG as an element inside HTML: no XML prologue or DOCTYPE, no namespace
    addresses (the HTML parser knows SVG), sized by the page rather than in points, and
    Graphviz's element ids (`edge1`, `node1`) made the view's own (`v0-edge1`)."""
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r' id="((?:graph|node|edge|clust)\d+)"', rf' id="v{view}-\1"', svg)
    svg = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", svg, count=2)
    svg = re.sub(r'<svg width="[^"]*" height="[^"]*"', '<svg role="group"', svg, count=1)
    return svg


# ---------------------------------------------------------------- numbers as JSON


def encode(value):
    """A value as JSON: a number, a string for inf/-inf/nan, nested lists for an array."""
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        v = float(arr)
        return v if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    return [encode(x) for x in arr]


def number(value) -> str:
    """A scalar for the explanation lines, four significant digits; an array by its shape."""
    arr = np.asarray(value, dtype=float)
    if arr.ndim:
        return "×".join(map(str, arr.shape)) + " array"
    v = float(arr)
    if not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return f"{v:.4g}" if v != 0 else "0"


# ---------------------------------------------------------------- one view


def _node_of(key: str) -> int | None:
    """The graph node a drawn node stands for ("n7", an input drawn once per use "n0_2");
    None for the output and the summations undoing broadcasting ("u9_3")."""
    if not key.startswith("n"):
        return None
    return int(key[1:].split("_")[0])


def view_data(f, inputs: dict, title: str, prefix: str = "p0_") -> tuple[dict, str]:
    """The explorer's data for function `f` at `inputs` (by name), see the module docstring,
    and its picture: `f.svg(**inputs)`, drawn from the same scene."""
    from ..passes.autodiff import gate_local_gradients

    g = f.graph
    compiled, values = f.values_for(**inputs)
    program = compiled.program
    pg = program.graph.graph
    panel = render.function_panel(f, inputs)
    scene = panel.scene
    local = render.local_texts(g, gate_local_gradients)
    gates = [n for n in topo_order(g) if g.nodes[n]["op"] not in ("input", "const")]
    forward_step = {n: k for k, n in enumerate(gates, start=1)}
    seed_step = len(gates) + 1
    labels = {key: attrs["label"] for key, attrs in scene.nodes.items()}

    def source(key: str) -> int | None:
        """The graph node whose value a wire out of drawn node `key` carries."""
        if key.startswith("u"):
            return int(key[1:].split("_")[1])
        return _node_of(key)

    def label_of(key: str) -> str:
        """A drawn node in words: an input by name, a gate by symbol and its variable in the
        generated code (`* (mul_2)`), the summation that undoes broadcasting as such."""
        node = _node_of(key)
        if key.startswith("u"):
            return labels[key] + " (sums the broadcast gradient)"
        if node is None or g.nodes[node]["op"] in ("input", "const"):
            return labels[key]
        return f"{labels[key]} ({program.names.get(node, key)})"

    wires = []
    for k, w in enumerate(scene.wires):
        a = source(w.tail)
        gate = _node_of(w.head)  # the gate this wire enters (None: the output)
        if w.head.startswith("u"):
            gate = int(w.head[1:].split("_")[0])
        fwd = forward_step.get(a, 0)
        bwd = None
        if w.gradient is not None:
            bwd = seed_step if gate is None else seed_step + scene.steps[f"n{gate}"]
        formula = ""
        if gate is not None and local.get(f"n{gate}"):
            if gate_of(g.nodes[gate]["op"]).kind == TENSOR:
                formula = local[f"n{gate}"]
            else:
                # x*x: one wire carries both uses, its local gradient is the sum of both
                names = [f"d/d{NAMES[i]} " for i, b in enumerate(args_of(g, gate)) if b == a]
                lines = [t for t in local[f"n{gate}"].split("\n") if t.startswith(tuple(names))]
                formula = " plus ".join(lines)
        wires.append(
            {
                "k": k,
                "from": label_of(w.tail),
                "to": label_of(w.head),
                "tail": a,
                "head": gate,
                "value": encode(w.value),
                "grad": None if w.gradient is None else encode(w.gradient),
                "shape": list(np.shape(w.value)),  # type: ignore[call-overload]
                # the gate's, on a "from-sum" piece
                "grad_shape": list(np.shape(w.gradient)),  # type: ignore[call-overload]
                "fwd": fwd,
                "bwd": bwd,
                "local": formula,
                # a broadcast argument's wire has two pieces: into the summation undoing the
                # broadcast (its gradient summed, shaped like the value) and on to the gate
                "piece": "from-sum" if w.tail[0] == "u" else ("to-sum" if w.head[0] == "u" else ""),
                "handles": svg_handles(prefix, k, w.tail, w.head),
            }
        )

    steps = [
        {"kind": "start", "title": "The inputs", "gate": None, "lines": _input_lines(f, inputs)}
    ]
    for n in gates:
        steps.append(_forward_step(g, n, values, labels, prefix))
    out = g.graph["output"]
    steps.append(
        {
            "kind": "seed",
            "title": "The seed: d out / d out = 1",
            "gate": None,
            "lines": [f"out = {number(values[out])}", "its gradient with respect to itself is 1"],
        }
    )
    for n in reversed(gates):
        steps.append(_backward_step(g, n, values, pg, wires, labels, prefix))
    data = {
        "title": title,
        "wires": wires,
        "steps": steps,
        "inputs": _input_totals(f, values, pg, wires),
        "output": encode(values[out]),
    }
    return data, render.svg_text(render.picture([panel]))


def _input_lines(f, inputs: dict) -> list[str]:
    return [f"{k} = {number(v)}" for k, v in inputs.items()]


def _args_text(g, n, values) -> str:
    """The gate's wired arguments (a constant written in its symbol, as in +1, is left out)."""
    shown = [a for a in args_of(g, n) if not render._folded(g, n, a)]
    return ", ".join(number(values[a] if a in values else g.nodes[a]["value"]) for a in shown)


def _forward_step(g, n, values, labels, prefix) -> dict:
    label = labels.get(f"n{n}", g.nodes[n]["op"])
    return {
        "kind": "forward",
        "title": f"Forward: the {label} gate",
        "gate": gate_handle(prefix, f"n{n}"),
        "lines": [f"{label}({_args_text(g, n, values)}) = {number(values[n])}"],
    }


def _upstream_line(g, n, values, pg, wires) -> tuple[object, str]:
    """The gradient arriving at gate `n`'s output, and the line saying where it comes from."""
    total = values[pg["gradient_of"][n]]
    branches = [
        w for w in wires if w["tail"] == n and w["grad"] is not None and w["piece"] != "from-sum"
    ]
    if len(branches) > 1:
        parts = " + ".join(number(_grad(values, pg, w)) for w in branches)
        return total, f"upstream = {parts} = {number(total)} (a fork: the branches' gradients add)"
    return total, f"upstream = {number(total)}"


def _grad(values, pg, w):
    """A wire's gradient as the code computed it (kept beside the JSON, for the lines)."""
    return values[pg["wires"][(w["head"], w["tail"])][0]] if w["head"] is not None else None


def _backward_step(g, n, values, pg, wires, labels, prefix) -> dict:
    label = labels.get(f"n{n}", g.nodes[n]["op"])
    step = {"kind": "backward", "title": f"Backward: the {label} gate", "gate": None, "lines": []}
    step["gate"] = gate_handle(prefix, f"n{n}")
    if n not in pg["gradient_of"]:
        step["lines"] = ["no gradient reaches this gate (it leads to no input asked for)"]
        return step
    upstream, line = _upstream_line(g, n, values, pg, wires)
    lines, quiz = [line], [line]
    tensor = gate_of(g.nodes[n]["op"]).kind == TENSOR
    for w in wires:
        if w["head"] != n or w["grad"] is None or w["piece"] == "from-sum":
            continue
        gradient = values[pg["wires"][(n, w["tail"])][0]]
        before = pg["wires"][(n, w["tail"])][1]
        to = f"to {w['from']}"
        if tensor or np.ndim(gradient) or np.ndim(upstream):
            rule = w["local"] or "the gate's vector-Jacobian rule"
            lines.append(f"{to}: {rule} gives {number(gradient)}")
            quiz.append(f"{to}: {rule} gives ?")
        else:
            up, grad = float(upstream), float(gradient)
            local = grad / up if up != 0 and math.isfinite(up) else None
            shown = "local" if local is None else number(local)
            formula = f" ({w['local']})" if w["local"] else ""
            lines.append(
                f"{to}: upstream × local = gradient: {number(up)} × {shown} = {number(grad)}"
                + formula
            )
            quiz.append(f"{to}: upstream × local = gradient: {number(up)} × ? = ?" + formula)
        if before is not None:
            lines[-1] += ", summed over the broadcast axes"
    step["lines"], step["quiz"] = lines, quiz
    return step


def _input_totals(f, values, pg, wires) -> list[dict]:
    """Each input: its value, its total gradient (as the code returns it), and its wires."""
    g = f.graph
    totals = []
    for i in g.graph["inputs"]:
        mine = [
            w
            for w in wires
            if w["tail"] == i and w["grad"] is not None and w["piece"] != "from-sum"
        ]
        grad = pg["grads"].get(i)
        parts = " + ".join(number(_grad(values, pg, w)) for w in mine) if len(mine) > 1 else ""
        totals.append(
            {
                "name": g.nodes[i]["name"],
                "node": i,
                "value": encode(values[i]),
                "grad": None if grad is None else encode(values[grad]),
                "sum": parts,
                "wires": [w["k"] for w in mine],
                "bwd": max((w["bwd"] for w in mine), default=None),
            }
        )
    return totals


# ---------------------------------------------------------------- the page


def page_html(views: list[tuple[dict, str]], title: str, quiz=False) -> str:
    """The page for `views` (each: its data, its SVG), titled `title`.

    `quiz`: True hides every gradient as "?" until clicked; a collection of input names hides
    the gradients on those inputs' wires only.
    """
    data = {"title": title, "quiz": _quiz(quiz), "views": [v for v, _ in views]}
    blob = json.dumps(data, allow_nan=False, ensure_ascii=True, separators=(",", ":"))
    blob = blob.replace("</", "<\\/").replace("<!--", "<\\!--")  # nothing closes the script
    figures = "\n".join(
        f'<figure class="view" data-view="{i}" aria-label="{html.escape(v["title"])} circuit">'
        f"{inline_svg(svg, i)}</figure>"
        for i, (v, svg) in enumerate(views)
    )
    return explore_assets.TEMPLATE.format(
        title=html.escape(title),
        style=explore_assets.STYLE,
        figures=figures,
        data=blob,
        script=explore_assets.SCRIPT,
    )


def _quiz(quiz):
    if quiz is True or quiz is False:
        return quiz
    return sorted(str(k) for k in quiz)


def explore(functions, inputs: dict, titles=None, quiz=False) -> str:
    """The explorer page's HTML for one function or several (unfused, fused) at `inputs`."""
    titles = titles or [f.__name__ for f in functions]
    views = []
    for f, t in zip(functions, titles):
        views.append(view_data(f, inputs, t))
    name = functions[0].__name__
    return page_html(views, f"{name}: forward and backward, step by step", quiz)
