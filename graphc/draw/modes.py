"""Forward-mode pictures: the tangent under every wire, and one circuit drawn in both modes.

Stage: draw (graph + values -> graphviz). Imports `draw.render` and the `ir`.

Reverse mode writes each wire's gradient under the line (red): one backward pass gives the
gradient of one output with respect to every input. Forward mode writes each wire's tangent
there instead (its own colour): one pass gives the derivative of every value along one input
direction. `modes_picture` draws the two side by side with what each costs for n inputs and m
outputs, the lecture's "the effect of one thing on many" against "of many things on one".
"""

from __future__ import annotations

from dataclasses import replace

import networkx as nx

from . import render

ZERO = "zero"  # the tangent of a wire no tangent reaches, in a scene's values


def forward_scene(graph: nx.DiGraph, program, values: dict, digits: int = 2) -> render.Scene:
    """The scene of `graph` with each wire's value above it and its tangent below it, from the
    values the tangent code computed (`modes.jvp_values`); a wire no tangent reaches shows 0."""
    h = program.graph
    tangent_of = {**h.graph["tangent_of"], **h.graph["tangents"]}
    wires = {}
    for n in graph.nodes:
        for a in graph.predecessors(n):
            wires[(n, a)] = (tangent_of.get(a, ZERO), None)
    output = graph.graph["output"]
    shown = {**values, ZERO: 0.0}
    name = program.names.get(output, "out")
    scene = render.build_scene(graph, shown, wires, tangent_of.get(output, ZERO), name, digits)
    return replace(scene, wires=[replace(w, below="tangent") for w in scene.wires])


def forward_panel(graph, program, values, digits: int = 2, title=None) -> render.Panel:
    return render.Panel(forward_scene(graph, program, values, digits), title)


def cost_rows(n: int, m: int, along: tuple[str, ...]) -> list[list[str]]:
    """What each mode costs for this function: passes for n input and m output numbers."""
    return [
        ["mode", "one pass gives", "passes for the whole Jacobian", "here"],
        ["reverse (backprop)", "d out / d every input", "m (one per output number)", f"{m}"],
        [
            "forward (tangents)",
            f"d every value / d {', '.join(along)}",
            "n (one per input number)",
            f"{n}",
        ],
    ]


def modes_picture(reverse: render.Panel, forward: render.Panel, rows, theme="light", digits=2):
    """The reverse-mode and forward-mode panels side by side, with the cost table below."""
    return render.picture([reverse, forward], theme, digits, table=rows)
