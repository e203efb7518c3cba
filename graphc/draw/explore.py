"""The backprop explorer: one self-contained web page that steps through forward and backward.

Stage: draw (functions + values -> an HTML page). Imports `render` (the picture and its scene),
`notation` (local gradients in lecture notation) and the `ir`; the page's numbers are the values
the generated code computed (`values_for`; forward mode: the tangent code's, handed in by the
caller as `forward`), its picture is the slides' SVG (`render.picture`), and its script only
shows and hides them.

The page is one file: the SVG, the script (`explore_assets.SCRIPT`, plain JavaScript) and the
style are inline, and it refers to nothing on the network, so it opens from `file://` with no
server. Its data is one JSON blob computed here, per view (the unfused circuit, and the fused
one for a comparison):

    wires   what each drawn wire carries, one entry per `render.Wire` (a bent wire's end piece
            belongs to the wire before it): its piece ("wire"; "stem" to a fork point, carrying
            the fork's total; "branch" from one; "to-sum"/"from-sum" around the summation that
            undoes a broadcast), value, gradient, shape, the step its value appears (`fwd`) and
            the step its gradient does (`bwd`), the local gradient of the gate it enters for its
            argument position in lecture notation, and the SVG ids drawing it (`handles`: the
            slides' `<wire id>`, `<wire id>-value`, `<wire id>-grad` or `-total`)
    steps   step 0 shows the inputs, then one step per gate in forward order, the seed, and one
            step per gate in backward order: the active gate and the lines explaining it
            ("upstream × local = gradient" with the numbers, fork totals adding up)
    inputs  each input's value and total gradient (the sum over its branches where it forks)
    forward one forward-mode pass per input (seeded d input = 1): each wire's tangent and one
            step per gate, "tangent = Σ local × tangent in"

The one number computed here is a scalar gate's local gradient: gradient / upstream, of the
two numbers the code computed (the formula alone where the upstream is 0). Step K of a view
shows the values of wires with `fwd <= K` and the gradients of wires with `bwd <= K`;
`page.html#step=K` opens at step K (`&view=1`: the fused circuit of a comparison; `&wire=J`:
wire J in the inspector; `&mode=forward&along=x`: forward mode along input x).
"""

from __future__ import annotations

import html
import json
import math
import re

import numpy as np

from ..ir.graph import args_of, topo_order
from ..ir.ops import TENSOR, gate_of
from . import explore_assets, notation, render

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


def gate_handle(prefix: str, key: str) -> str:
    """A drawn node's element id in the slides' SVG (see `render.draw_scene`)."""
    return prefix + key


def inline_svg(svg: str, view: int = 0) -> str:
    """Graphviz's SVG as an element inside HTML: no XML prologue or DOCTYPE, no namespace
    addresses (the HTML parser knows SVG), sized by the page rather than in points, and every
    element id made the view's own (`p0_w3` in view 1: `v1-p0_w3`), so that two views' pictures
    in one page share no id."""
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r' id="', f' id="v{view}-', svg)
    svg = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", svg, count=2)
    svg = re.sub(r'<svg width="[^"]*" height="[^"]*"', '<svg role="group"', svg, count=1)
    return svg


# ---------------------------------------------------------------- numbers as JSON


def _written_into(program, n: int) -> str | None:
    """The name of the statement whose expression computes unnamed node n (a fused module
    writes `add = w0 * x0 + w1 * x1 + w2`: the mul gates are computed in `add`)."""
    g = program.graph
    while n not in program.names:
        users = [u for u in g.successors(n) if g.nodes[u].get("role") not in ("grad", "seed")]
        if len(users) != 1:
            return None
        n = users[0]
    return program.names[n]


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
    None for the output, fork points, bends and the summations undoing broadcasting."""
    if not key.startswith("n"):
        return None
    return int(key[1:].split("_")[0])


def _pieces(scene) -> list[tuple[int, list[int]]]:
    """The scene's wires as the page shows them: (the wire's index, its further pieces). A bent
    wire's second piece (kind "end", see `render._bends`) belongs to the wire before it."""
    found: list[tuple[int, list[int]]] = []
    for k, w in enumerate(scene.wires):
        if w.kind == "end" and found:
            found[-1][1].append(k)
        else:
            found.append((k, []))
    return found


def _position_texts(g, n: int) -> dict[int, str]:
    """Gate `n`'s local gradient per argument position, in lecture notation ("∂/∂q = z"); a
    tensor gate's one text (its vector-Jacobian rule) for every position."""
    from ..passes.autodiff import gate_local_gradients

    names = notation.value_names(g)
    free = [p for p in notation.PLACEHOLDERS if p not in set(names.values())]
    slots = notation._slots(g, n, names, free)
    found = notation.gate_locals(g, n, gate_local_gradients, slots)
    texts = {i: f"∂/∂{slots[i]} = {t}" for i, t in found if i is not None}
    rule = "; ".join(t for i, t in found if i is None)
    if rule:
        texts.update({i: rule for i in range(len(args_of(g, n)))})
    return texts


def view_data(
    f, inputs: dict, title: str, prefix: str = "p0_", style=None, forward=None
) -> tuple[dict, str]:
    """The explorer's data for function `f` at `inputs` (by name), see the module docstring,
    and its picture: `f`'s slide picture in `style` (a `render.Style`), drawn from the same
    scene. `forward(f, name)`: the tangent values (node -> tangent) of one forward-mode pass
    seeded with d name = 1 (None: no forward mode)."""
    g = f.graph
    compiled, values = f.values_for(**inputs)
    program = compiled.program
    pg = program.graph.graph
    style = style or render.Style(digits=2)
    panel = render.function_panel(f, inputs, style)
    scene = panel.scene
    gates = [n for n in topo_order(g) if g.nodes[n]["op"] not in ("input", "const")]
    seed_step = len(gates) + 1
    labels = {key: attrs["label"] for key, attrs in scene.nodes.items()}
    locals_ = {n: _position_texts(g, n) for n in gates}

    def label_of(key: str) -> str:
        """A drawn node in words: an input by name, a gate by symbol and its variable in the
        generated code (`* (mul_2)`), the summation that undoes broadcasting as such."""
        if key.startswith("u"):
            return labels[key] + " (sums the broadcast gradient)"
        node = _node_of(key)
        if node is None or g.nodes[node]["op"] in ("input", "const"):
            return labels[key]
        if node in program.names:
            return f"{labels[key]} ({program.names[node]})"
        return f"{labels[key]} (in {_written_into(program, node) or key})"

    def source(w) -> int | None:
        """The graph node whose value wire `w` carries."""
        if w.tail.startswith("u"):
            return int(w.tail[1:].split("_")[1])
        if w.tail.startswith("f"):  # a branch out of a fork point "f<source key>"
            return _node_of(w.tail[1:])
        return _node_of(w.tail)

    wires, numbers = [], []
    for k, more in _pieces(scene):
        w = scene.wires[k]
        a = source(w)
        end = scene.wires[more[-1]] if more else w
        piece = w.kind if w.kind in ("stem", "branch") else "wire"
        if w.head.startswith("u"):
            piece = "to-sum"  # into the summation undoing a broadcast: the summed gradient
        elif w.tail.startswith("u"):
            piece = "from-sum"  # from it on to the gate: the gradient before the sum
        tail_key = w.tail[1:] if w.tail.startswith("f") else w.tail
        if piece == "stem":
            to = f"the fork of {label_of(w.tail)}"
        else:
            to = label_of(end.head)
        gradient = w.total if piece == "stem" else w.gradient
        gate = w.gate if piece != "stem" else None
        wire_id = render._wire_id(scene, k, prefix)
        wires.append(
            {
                "k": len(wires),
                "from": label_of(tail_key),
                "to": to,
                "tail": a,
                "head": gate,
                "position": w.position if gate is not None else None,
                "piece": piece,
                "fork": w.head if piece == "stem" else (w.tail if piece == "branch" else None),
                "value": encode(w.value),
                "grad": None if gradient is None else encode(gradient),
                "shape": list(np.shape(w.value)),  # type: ignore[call-overload]
                # the gate's, on a "from-sum" piece
                "grad_shape": list(np.shape(gradient)),  # type: ignore[call-overload]
                "fwd": w.made,
                "bwd": None if gradient is None else seed_step + w.step,
                "local": locals_[gate].get(w.position, "") if gate is not None else "",
                "handles": {
                    "line": wire_id,
                    "pieces": [render._wire_id(scene, j, prefix) for j in more],
                    "value": f"{wire_id}-value",
                    "grad": f"{wire_id}-{'total' if piece == 'stem' else 'grad'}",
                },
            }
        )
        numbers.append(gradient)

    out = g.graph["output"]
    steps = [{"kind": "start", "title": "The inputs", "gate": None, "lines": _input_lines(inputs)}]
    for n in gates:
        steps.append(_forward_step(g, n, values, labels, prefix))
    steps.append(
        {
            "kind": "seed",
            "title": "The seed: d out / d out = 1",
            "gate": None,
            "lines": [f"out = {number(values[out])}", "its gradient with respect to itself is 1"],
        }
    )
    for n in reversed(gates):
        steps.append(_backward_step(g, n, values, pg, wires, numbers, labels, prefix))
    data = {
        "title": title,
        "wires": wires,
        "steps": steps,
        "inputs": _input_totals(f, values, pg, wires, numbers),
        "output": encode(values[out]),
        "forward": [] if forward is None else _forward_mode(f, forward, wires, numbers, gates,
                                                             values, pg, labels, prefix),
    }  # fmt: skip
    return data, render.svg_text(render.picture([panel], style))


def _input_lines(inputs: dict) -> list[str]:
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


def _upstream_line(n, values, pg, wires, numbers) -> tuple[object, str]:
    """The gradient arriving at gate `n`'s output, and the line saying where it comes from: at
    a fork, the branches' gradients adding up to the total."""
    total = values[pg["gradient_of"][n]]
    branches = [
        numbers[w["k"]]
        for w in wires
        if w["tail"] == n and w["piece"] == "branch" and w["grad"] is not None
    ]
    if len(branches) > 1:
        parts = " + ".join(number(b) for b in branches)
        return total, f"upstream = {parts} = {number(total)} (a fork: the branches' gradients add)"
    return total, f"upstream = {number(total)}"


def _into(wires, n) -> list[dict]:
    """The wires into gate `n` that carry its gradient rules' results, one per argument
    position (a broadcast argument's piece into the summation, whose gradient is summed)."""
    return [
        w
        for w in wires
        if w["head"] == n and w["grad"] is not None and w["piece"] not in ("from-sum", "stem")
    ]


def _local(gradient, upstream):
    """A scalar gate's local gradient at this point, from two numbers the code computed:
    gradient / upstream (None where the upstream is 0 or not finite, or either is an array)."""
    if np.ndim(gradient) or np.ndim(upstream):
        return None
    up, grad = float(upstream), float(gradient)
    return grad / up if up != 0 and math.isfinite(up) else None


def _backward_step(g, n, values, pg, wires, numbers, labels, prefix) -> dict:
    label = labels.get(f"n{n}", g.nodes[n]["op"])
    step = {"kind": "backward", "title": f"Backward: the {label} gate", "gate": None, "lines": []}
    step["gate"] = gate_handle(prefix, f"n{n}")
    if n not in pg["gradient_of"]:
        step["lines"] = ["no gradient reaches this gate (it leads to no input asked for)"]
        return step
    upstream, line = _upstream_line(n, values, pg, wires, numbers)
    lines, quiz = [line], [line]
    tensor = gate_of(g.nodes[n]["op"]).kind == TENSOR
    for w in _into(wires, n):
        gradient = numbers[w["k"]]
        to = f"to {w['from']}"
        if tensor or np.ndim(gradient) or np.ndim(upstream):
            rule = w["local"] or "the gate's vector-Jacobian rule"
            lines.append(f"{to}: {rule} gives {number(gradient)}")
            quiz.append(f"{to}: {rule} gives ?")
        else:
            local = _local(gradient, upstream)
            shown = "local" if local is None else number(local)
            formula = f" ({w['local']})" if w["local"] else ""
            up = number(upstream)
            lines.append(
                f"{to}: upstream × local = gradient: {up} × {shown} = {number(gradient)}" + formula
            )
            quiz.append(f"{to}: upstream × local = gradient: {up} × ? = ?" + formula)
        if w["piece"] == "to-sum":
            lines[-1] += ", summed over the broadcast axes"
    step["lines"], step["quiz"] = lines, quiz
    return step


def _input_totals(f, values, pg, wires, numbers) -> list[dict]:
    """Each input: its value, its total gradient (as the code returns it), the branches' or
    wires' gradients adding up to it, and the wires leaving it."""
    g = f.graph
    totals = []
    for i in g.graph["inputs"]:
        mine = [
            w
            for w in wires
            if w["tail"] == i and w["grad"] is not None and w["piece"] not in ("from-sum", "stem")
        ]
        grad = pg["grads"].get(i)
        parts = " + ".join(number(numbers[w["k"]]) for w in mine) if len(mine) > 1 else ""
        leaving = [w for w in wires if w["tail"] == i and w["piece"] != "from-sum"]
        totals.append(
            {
                "name": g.nodes[i]["name"],
                "node": i,
                "value": encode(values[i]),
                "grad": None if grad is None else encode(values[grad]),
                "sum": parts,
                "wires": [w["k"] for w in mine],
                "shape": list(np.shape(values[i])),
                "bwd": max((w["bwd"] for w in leaving if w["bwd"] is not None), default=None),
            }
        )
    return totals


# ---------------------------------------------------------------- forward mode


def _forward_mode(f, forward, wires, numbers, gates, values, pg, labels, prefix) -> list[dict]:
    """Forward mode, one pass per input (seeded d input = 1, ones for an array, the other
    inputs held still): each wire's tangent (that of the value it carries) and one step per
    gate in forward order, "tangent = Σ local × tangent in" with the numbers."""
    g = f.graph
    passes = []
    for i in g.graph["inputs"]:
        name = g.nodes[i]["name"]
        tangent = forward(f, name)

        def of(node, tangent=tangent):
            t = tangent.get(node)
            return np.zeros_like(np.asarray(values[node], dtype=float)) if t is None else t

        seed = [
            f"d{g.nodes[j]['name']} = {'1' if j == i else '0'}"
            + (" (every entry)" if np.ndim(values[j]) else "")
            for j in g.graph["inputs"]
        ]
        steps = [{"kind": "seed", "title": f"The seed: d{name} = 1", "gate": None, "lines": seed}]
        for n in gates:
            label = labels.get(f"n{n}", g.nodes[n]["op"])
            terms = []
            upstream = values[pg["gradient_of"][n]] if n in pg["gradient_of"] else None
            for w in _into(wires, n):
                local = None if upstream is None else _local(numbers[w["k"]], upstream)
                rule = number(local) if local is not None else f"({w['local'] or 'local'})"
                terms.append(f"{rule} × {number(of(w['tail']))}")
            lines = [f"{label}({_args_text(g, n, values)}) = {number(values[n])}"]
            lines.append(f"tangent = {' + '.join(terms) or '0'} = {number(of(n))}")
            steps.append(
                {
                    "kind": "tangent",
                    "title": f"Forward mode: the {label} gate",
                    "gate": gate_handle(prefix, f"n{n}"),
                    "lines": lines,
                }
            )
        out = g.graph["output"]
        passes.append(
            {
                "along": name,
                "tangents": [encode(of(w["tail"])) for w in wires],
                "steps": steps,
                "output": encode(of(out)),
            }
        )
    return passes


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


def fitted_function(f, inputs: dict, style):
    """What the slides draw for `f` fitted to `style.fit` (see `render.fitted`): the function
    (fused above `render.FIT_GATES` gates) and the style in the direction whose text is larger,
    in one piece: where a slide wraps onto rows, the page scrolls (`render.fitted(wrap=False)`)."""
    from dataclasses import replace

    gates = sum(1 for _, op in f.graph.nodes(data="op") if op not in ("input", "const"))
    if gates > render.FIT_GATES:
        for level in ("patterns", "elementwise"):  # named regions first, then every run
            fused = f.fused(level=level)
            now = sum(1 for _, op in fused.graph.nodes(data="op") if op not in ("input", "const"))
            if now <= render.FIT_GATES:
                break
        f = fused
    best, best_size = style, -1.0
    for direction in render.DIRECTIONS:
        trial = replace(style, direction=direction)
        canvas = render.picture([render.function_panel(f, inputs, trial)], trial)
        size = render.smallest_text(canvas, style.fit)
        if size > best_size:
            best, best_size = trial, size
    return f, best


def explore(functions, inputs: dict, titles=None, quiz=False, fit=None, forward=None) -> str:
    """The explorer page's HTML for one function or several (unfused, fused) at `inputs`.
    `fit` ("16:9", "4:3"): each picture drawn as the slides fit it (`fitted_function`);
    `forward(f, name)`: one forward-mode pass's tangents (see `view_data`)."""
    titles = titles or [f.__name__ for f in functions]
    views = []
    for f, t in zip(functions, titles):
        style = render.Style(digits=2, fit=fit)
        if fit is not None:
            f, style = fitted_function(f, inputs, style)
        views.append(view_data(f, inputs, t, style=style, forward=forward))
    name = functions[0].__name__
    return page_html(views, f"{name}: forward and backward, step by step", quiz)
