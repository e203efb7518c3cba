"""Forward-mode pictures and the backward graph drawn as a circuit: numbers on the right wires
(values above in green, tangents below in their own colour), no two labels overlapping, both
modes side by side with their costs, and the `graphc compare-modes` command.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from itertools import combinations

import numpy as np
import pytest
from conftest import central_diff
from test_render import height_of_line, parse

import graphc as gc
from graphc import cli
from graphc.draw import render
from graphc.draw.render import TANGENT_COLOURS, THEMES

pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")

SVG = "{http://www.w3.org/2000/svg}"


@gc.function
def neuron(w0, x0, w1, x1, w2):
    return gc.sigmoid(w0 * x0 + w1 * x1 + w2)


AT = dict(w0=2.0, x0=-1.0, w1=-3.0, x1=-2.0, w2=-3.0)


def plain_neuron(w0, x0, w1, x1, w2):
    return 1 / (1 + np.exp(-(w0 * x0 + w1 * x1 + w2)))


def wires_with_tangents(svg: str, prefix: str = "p0_") -> dict:
    """{(tail label, head label): (value text, tangent text)}, sides and colours checked."""
    wires, labels, nodes = parse(svg)
    light = THEMES["light"]
    found = {}
    mine = [w for w in wires if w[1].startswith(prefix)]  # a panel numbers its own wires
    for k, tail, head, start, end in mine:  # the tangent's node: <wire>t, class "tangent"
        value, tangent = labels.get(f"{prefix}w{k}v"), labels.get(f"{prefix}w{k}t")
        assert value[3] == light.value
        assert value[2] < height_of_line(start, end, value[1]), f"{value[0]} not above"
        assert tangent[3] == TANGENT_COLOURS[light] != light.gradient
        assert tangent[2] > height_of_line(start, end, tangent[1]), f"{tangent[0]} not below"
        found[(nodes[tail][0], nodes[head][0])] = (value[0], tangent[0])
    return found


def text_boxes(svg: str) -> list[tuple[str, float, float, float, float]]:
    """Every text's box (text, left, top, right, bottom), from its anchor and font size; the
    cost table's cells are laid out by Graphviz's own table and left out."""
    boxes = []
    root = ET.fromstring(svg)
    table = [g for g in root.iter(f"{SVG}g") if g.findtext(f"{SVG}title") == "table"]
    in_table = {id(t) for g in table for t in g.iter(f"{SVG}text")}
    for t in root.iter(f"{SVG}text"):
        if id(t) in in_table:
            continue
        size = float(t.get("font-size", "14"))
        width = 0.6 * size * len(t.text or "")
        x, y = float(t.get("x")), float(t.get("y"))
        left = {"start": x, "end": x - width}.get(t.get("text-anchor"), x - width / 2)
        boxes.append((t.text, left, y - 0.8 * size, left + width, y + 0.2 * size))
    return boxes


def assert_no_overlaps(svg: str) -> None:
    for a, b in combinations(text_boxes(svg), 2):
        apart = a[3] <= b[1] or b[3] <= a[1] or a[4] <= b[2] or b[4] <= a[2]
        assert apart, f"labels {a[0]!r} and {b[0]!r} overlap"


def test_forward_mode_picture_has_the_tangents_of_d_by_dw0():
    svg = neuron.svg(**AT, mode="forward", tangents={"w0": 1.0})
    found = wires_with_tangents(svg)
    inputs = {k: v for k, v in found.items() if k[0] in AT}
    assert inputs == {
        ("w0", "*"): ("2.00", "1.00"),  # the direction: w0 moves, nothing else does
        ("x0", "*"): ("-1.00", "0.00"),
        ("w1", "*"): ("-3.00", "0.00"),
        ("x1", "*"): ("-2.00", "0.00"),
        ("w2", "+"): ("-3.00", "0.00"),
    }
    (to_output,) = [v for k, v in found.items() if k[1] == "out"]
    slope = central_diff(plain_neuron, AT, "w0")  # d out / d w0 by NumPy alone
    assert to_output == ("0.73", f"{slope:.2f}") == ("0.73", "-0.20")
    assert_no_overlaps(svg)


def test_forward_mode_picture_of_a_fused_neuron_along_two_inputs():
    svg = neuron.fused().svg(**AT, mode="forward", tangents={"x0": 1.0, "x1": 1.0})
    found = wires_with_tangents(svg)
    (to_output,) = [v for k, v in found.items() if k[1] == "out"]
    slope = central_diff(plain_neuron, AT, "x0") + central_diff(plain_neuron, AT, "x1")
    assert to_output[1] == f"{slope:.2f}"
    assert_no_overlaps(svg)


def test_the_backward_graph_is_drawn_as_a_circuit():
    dneuron = neuron.gradient("w0")
    svg = dneuron.svg(**AT)
    wires, labels, nodes = parse(svg)
    gates = {texts[0] for texts in nodes.values() if texts}
    assert {"σ'", "*'"} <= gates  # the backward steps, as gates of their own
    out = [
        labels[f"p0_w{k}v"][0] for k, _, head, _, _ in wires if nodes[head][:1] == ["dw0"]
    ]  # fork points have no text
    assert out == [f"{central_diff(plain_neuron, AT, 'w0'):.2f}"]
    assert_no_overlaps(svg)


def test_both_modes_side_by_side_with_their_costs():
    picture = neuron.compare_modes(**AT, tangents={"w0": 1.0})
    svg = render.svg_text(picture)
    texts = [t.text for t in ET.fromstring(svg).iter(f"{SVG}text")]
    assert "reverse mode: gradients under the wires" in texts
    assert "forward mode: tangents along w0" in texts
    assert "m (one per output number)" in texts and "n (one per input number)" in texts
    assert wires_with_tangents(svg, "p1_")[("w0", "*")] == ("2.00", "1.00")
    assert_no_overlaps(svg)


def test_forward_mode_options_are_checked():
    with pytest.raises(gc.InputError, match="choose 'reverse' or 'forward'"):
        neuron.render(**AT, mode="sideways")
    with pytest.raises(gc.InputError, match="needs input values"):
        neuron.render(mode="forward")


def test_compare_modes_command(tmp_path, capsys):
    out = tmp_path / "modes.svg"
    expr = "1/(1+exp(-(w0*x0+w1*x1+w2)))"
    at = "w0=2,x0=-1,w1=-3,x1=-2,w2=-3"
    assert cli.main(["compare-modes", expr, "--at", at, "--along", "w0", "-o", str(out)]) == 0
    found = wires_with_tangents(out.read_text(), "p1_")
    assert found[("w0", "*")] == ("2.00", "1.00")
    assert cli.main(["compare-modes", expr, "--at", at, "--along", "q", "-o", str(out)]) != 0
    assert "--along q: not an input" in capsys.readouterr().err
