"""Drawings: the numbers on the slide are the right ones, on the right wires, on the right side.

The SVG is parsed as XML; every wire label is a text element of its own (`w<k>v` above wire k,
`w<k>g` below it), so a test can check which number sits on which wire and that the value is
above the line and the gradient below it, not just that the digits appear somewhere.
"""

import re
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
import zlib

import numpy as np
import pytest

import graphc as gc
from graphc import lectures
from graphc.draw import render
from graphc.draw.render import THEMES, fmt

SVG = "{http://www.w3.org/2000/svg}"
pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")

circuit, neuron = gc.function(lectures.circuit), gc.function(lectures.neuron)
LECTURE = lectures.LECTURES[0].inputs
NEURON = lectures.LECTURES[1].inputs


def parse(svg: str):
    """Wires (tail name, head name, path midpoint) and labels (title -> text, x, y, colour)."""
    root = ET.fromstring(svg)
    wires, labels, nodes = [], {}, {}
    for g in root.iter(f"{SVG}g"):
        title = g.find(f"{SVG}title")
        if title is None:
            continue
        name = title.text
        if "edge" in (g.get("class") or "").split():
            tail, head = name.split("->")
            d = g.find(f"{SVG}path").get("d")
            points = [tuple(map(float, p)) for p in re.findall(r"(-?[\d.]+),(-?[\d.]+)", d)]
            if g.get("id").endswith("-end"):
                continue  # the second piece of a bent wire
            k = int(
                g.get("id").split("_w", 1)[1]
            )  # the wire's id (p<panel>_w<k>), as its labels name it
            wires.append((k, tail, head, points[0], points[-1]))
        elif "node" in (g.get("class") or "").split():
            texts = g.findall(f"{SVG}text")
            if texts:
                t = texts[0]
                labels[name] = (t.text, float(t.get("x")), float(t.get("y")), t.get("fill"))
            nodes[name] = [t.text for t in texts]
    return sorted(wires), labels, nodes


def height_of_line(start, end, x: float) -> float:
    """The y of the straight wire from start to end at x (SVG y grows downwards)."""
    return start[1] + (end[1] - start[1]) * (x - start[0]) / ((end[0] - start[0]) or 1.0)


def on_wires(svg: str) -> dict:
    """{(tail label, head label): (value text, gradient text)} with side and colour checked."""
    wires, labels, nodes = parse(svg)
    light = THEMES["light"]
    found = {}
    for k, tail, head, start, end in wires:
        value = labels.get(f"p0_w{k}v")
        grad = labels.get(f"p0_w{k}g")
        if value:
            assert value[3] == light.value
            above = value[2] < height_of_line(start, end, value[1])
            assert above, f"value {value[0]} is not above its wire"
        if grad:
            assert grad[3] == light.gradient
            below = grad[2] > height_of_line(start, end, grad[1])
            assert below, f"gradient {grad[0]} is not below its wire"
        found[(nodes[tail][0], nodes[head][0])] = (value and value[0], grad and grad[0])
    return found


def test_lecture_circuit_numbers_sit_on_the_right_wires():
    found = on_wires(circuit.svg(**LECTURE))
    assert found[("x", "+")] == ("-2.00", "-4.00")
    assert found[("y", "+")] == ("5.00", "-4.00")
    assert found[("+", "*")] == ("3.00", "-4.00")  # the intermediate q = 3
    assert found[("z", "*")] == ("-4.00", "3.00")
    assert found[("*", "out")] == ("-12.00", "1.00")


@pytest.mark.parametrize("fused", [False, True])
def test_sigmoid_neuron_numbers(fused):
    f = neuron.fused() if fused else neuron
    found = on_wires(f.svg(**NEURON))
    inputs = {k: v for k, v in found.items() if k[0] in NEURON}
    assert inputs == {
        ("w0", "*"): ("2.00", "-0.20"),
        ("x0", "*"): ("-1.00", "0.39"),
        ("w1", "*"): ("-3.00", "-0.39"),
        ("x1", "*"): ("-2.00", "-0.59"),
        ("w2", "+"): ("-3.00", "0.20"),
    }
    (to_output,) = [v for k, v in found.items() if k[1] == "out"]
    assert to_output == ("0.73", "1.00")


def test_structure_only_has_no_numbers():
    _, labels, nodes = parse(circuit.svg())
    assert not any(name.startswith("p0_w") for name in labels)
    assert sorted(t[0] for t in nodes.values() if t) == ["*", "+", "out", "x", "y", "z"]


def test_digits_and_arrays():
    assert fmt(0.7310585786300049, 4) == "0.7311"
    # issue 13: e-notation only below 1e-4 (or from 1e6), small matrices drawn whole
    assert fmt(-0.0001) == "0.00" and fmt(-0.00009) == "-9.00e-05"
    assert fmt(-0.0) == "0.00"
    assert fmt(np.ones((3, 4))) == "3×4: all 1.00"
    assert fmt(np.arange(8.0).reshape(2, 4)) == "2×4: 0.00…7.00"
    assert fmt(np.arange(6.0).reshape(2, 3)) == "[0.00  1.00  2.00]\n[3.00  4.00  5.00]"
    assert fmt(np.array([1.0, np.inf])) == "[1.00, inf]"
    found = on_wires(circuit.svg(digits=3, **LECTURE))
    assert found[("x", "+")] == ("-2.000", "-4.000")


def test_broadcast_summation_is_a_step_of_its_own():
    @gc.function
    def layer(X, b):
        return gc.sum(X + b)

    svg = layer.svg(X=np.ones((4, 3)), b=np.zeros(3))
    _, labels, nodes = parse(svg)
    assert any(t == ["Σ"] and name.startswith("p0_u") for name, t in nodes.items())
    texts = [t[0] for t in labels.values()]
    assert "[4.00, 4.00, 4.00]" in texts  # db: the column sums, after the Σ step
    assert "4×3: all 1.00" in texts  # the gradient before it


def test_non_finite_wires_are_drawn_as_warnings():
    f = gc.function(lambda x: 1 / (1 + gc.exp(-x)))
    root = ET.fromstring(f.svg(x=-800.0))
    warning = THEMES["light"].warning
    strokes = [p.get("stroke") for p in root.iter(f"{SVG}path")]
    assert warning in strokes
    assert any(
        t.text in ("inf", "nan") and t.get("fill") == warning for t in root.iter(f"{SVG}text")
    )


def test_show_local_writes_local_gradients():
    root = ET.fromstring(neuron.fused().svg(show_local=True, **NEURON))
    texts = [t.text for t in root.iter(f"{SVG}text")]
    # in lecture notation, naming the gates' own inputs (issue 13 replaced "d/dx = y")
    assert "∂/∂dot = (1 − σ)σ" in texts
    assert "∂/∂w0 = x0" in texts and "∂/∂x0 = w0" in texts  # the mul gate swaps


def test_dark_theme_and_transparent_background():
    svg = circuit.svg(theme="dark", background="transparent", **LECTURE)
    assert THEMES["dark"].value in svg and THEMES["dark"].gradient in svg
    root = ET.fromstring(svg)
    fills = {p.get("fill") for p in root.iter(f"{SVG}polygon")}
    assert not fills & {"white", "#ffffff", "black", "#000000"}  # no background painted
    with pytest.raises(gc.GraphcError, match="theme"):
        circuit.svg(theme="neon", **LECTURE)


def test_frames_reveal_one_gate_more_each():
    # issue 13: values, the seed alone, one frame per gate (the last one too), the full picture
    frames = circuit.render_steps(**LECTURE)
    assert len(frames) == 1 + 1 + 2 + 1
    first = on_wires(frames[0])
    assert all(g is None for _, g in first.values())  # forward values only
    seed = on_wires(frames[1])
    assert [g for _, g in seed.values() if g is not None] == ["1.00"]  # the output's 1 alone
    third = on_wires(frames[2])
    assert third[("+", "*")] == ("3.00", "-4.00") and third[("x", "+")][1] is None
    assert frames[-1] == circuit.svg(**LECTURE)
    assert len(neuron.render_steps(**NEURON)) == 1 + 1 + 8 + 1


def test_comparison_draws_both_circuits_and_the_table():
    report = gc.compare(neuron, **NEURON)
    root = ET.fromstring(report.svg)
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "unfused" in texts and "fused" in texts and "σ" in texts and "exp" in texts
    assert "gates" in texts and "8" in texts and "5" in texts
    assert texts.count("0.73") == 2


def test_jupyter_reprs():
    assert circuit._repr_svg_().lstrip().startswith("<?xml")
    assert "<svg" in gc.compare(neuron, **NEURON)._repr_svg_()


def _png_pixels(data: bytes):
    """Decode an 8-bit RGB/RGBA PNG (enough for rsvg-convert's output) into rows of bytes."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks += body
        pos += 12 + length
    width, height, depth, colour = header[:4]
    assert depth == 8 and colour in (2, 6)
    bpp = 3 if colour == 2 else 4
    raw, rows, prev = zlib.decompress(chunks), [], bytearray(width * bpp)
    stride = width * bpp
    for r in range(height):
        kind, line = (
            raw[r * (stride + 1)],
            bytearray(raw[r * (stride + 1) + 1 : (r + 1) * (stride + 1)]),
        )
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, corner = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (
                    line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)
                ) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


@pytest.mark.skipif(shutil.which("rsvg-convert") is None, reason="needs librsvg2-bin")
def test_svg_rasterises_to_a_non_blank_image(tmp_path):
    path = tmp_path / "c.svg"
    path.write_text(circuit.svg(**LECTURE))
    png = subprocess.run(
        ["rsvg-convert", "-b", "white", str(path)], capture_output=True, check=True
    ).stdout
    width, height, bpp, rows = _png_pixels(png)
    assert width > 200 and height > 100
    dark = sum(1 for row in rows for i in range(0, len(row), bpp) if sum(row[i : i + 3]) < 300)
    green = sum(
        1
        for row in rows
        for i in range(0, len(row), bpp)
        if row[i + 1] > row[i] + 40 and row[i + 1] > row[i + 2] + 40
    )
    assert dark > 200  # lines and symbols were drawn
    assert green > 20  # and the green forward values


def test_picture_files_are_written_atomically(tmp_path):
    from graphc.files import write_picture

    for suffix, magic in ((".svg", b"<?xml"), (".pdf", b"%PDF"), (".png", b"\x89PNG")):
        path = tmp_path / f"c{suffix}"
        write_picture(circuit.render(**LECTURE), path)
        assert path.read_bytes().startswith(magic)
    keep = tmp_path / "keep.svg"
    keep.write_text("precious")
    with pytest.raises(gc.GraphcError):
        write_picture(circuit.render(**LECTURE), tmp_path / "c.gif")
    with pytest.raises(gc.GraphcError):
        write_picture("<svg/>", tmp_path / "c.pdf")
    assert keep.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pdf", "c.png", "c.svg", "keep.svg"]


# ---------------------------------------------------------------- long circuits


def recurrence(steps: int) -> gc.Function:
    """h = tanh(w h + x) unrolled `steps` times: the inputs w and x feed every step."""

    def rnn(h, w, x):
        for _ in range(steps):
            h = gc.tanh(w * h + x)
        return h

    return gc.function(rnn)


RNN = dict(h=0.1, w=0.5, x=0.2)


def input_wires(svg: str, name: str, side: str = "g"):
    """(value text, gradient text, wire length in points) of every wire leaving input `name`
    (`side` "t": the total gradient of a stem to a fork)."""
    wires, labels, nodes = parse(svg)
    found = []
    for k, tail, _, start, end in wires:
        if nodes[tail] == [name]:
            value, grad = labels[f"p0_w{k}v"][0], labels[f"p0_w{k}{side}"][0]
            found.append(
                (value, grad, ((end[0] - start[0]) ** 2 + (end[1] - start[1]) ** 2) ** 0.5)
            )
    return found


def test_an_input_used_in_nearby_gates_is_drawn_once():
    svg = gc.function(lectures.fanout).svg(x=3.0)
    _, _, nodes = parse(svg)
    assert sum(t == ["x"] for t in nodes.values()) == 1
    # one stem from x to its fork (issue 13: the fork's reads are wires of their own, drawn in
    # tests/test_render_slides.py), carrying the value and the total gradient
    assert [v for v, _, _ in input_wires(svg, "x", side="t")] == ["3.00"]


def test_an_input_used_far_apart_is_drawn_beside_each_use():
    f = recurrence(3)
    svg = f.svg(**RNN)
    _, _, nodes = parse(svg)
    assert sorted(t[0] for t in nodes.values() if t and t[0] in RNN) == [
        "h", "w", "w", "w", "x", "x", "x"
    ]  # fmt: skip
    w_wires = input_wires(svg, "w")
    assert [v for v, _, _ in w_wires] == ["0.50"] * 3
    assert max(length for _, _, length in w_wires) < 200  # short wires, beside each step
    # each copy carries its own use's gradient; together they make dw
    dw = f.grad(**RNN)["w"]
    assert sum(float(g) for _, g, _ in w_wires) == pytest.approx(dw, abs=3 * 0.005)


LONG_CHAIN = """
import sys, time
import graphc as gc

def rnn(h, w, x):
    for _ in range(334):  # 1002 gates
        h = gc.tanh(w * h + x)
    return h

f = gc.function(rnn)
f.grad(h=0.1, w=0.5, x=0.2)  # compile first: the time below is the drawing's
start = time.perf_counter()
svg = f.svg(h=0.1, w=0.5, x=0.2)
print(f"{time.perf_counter() - start:.1f}", file=sys.stderr)
sys.stdout.write(svg)
"""


def test_a_thousand_gate_recurrence_is_drawn_in_seconds():
    """`dot` used to take minutes past ~150 gates of this (and hang at 300): the wires from w and
    x to every step crossed all the steps before. Run apart, so a regression fails, not hangs."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", LONG_CHAIN], capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired:
        pytest.fail("drawing a 1002-gate recurrence took more than 120 s")
    assert done.returncode == 0, done.stderr
    assert float(done.stderr.split()[-1]) < 60  # about 3 s on 2 shared cores
    _, labels, nodes = parse(done.stdout)
    gates = [t[0] for t in nodes.values() if t and t[0] in ("*", "+", "tanh")]
    assert len(gates) == 1002
    assert sum(t == ["w"] for t in nodes.values()) == 334  # beside each step
    # value and gradient on every wire, and the Σ total of w and of x once each (issue 13)
    assert sum(1 for name in labels if name.startswith("p0_w")) == 2 * (1002 + 2 * 334 + 1) + 2
    assert sum(1 for text, *_ in labels.values() if text.startswith("Σ ")) == 2


def test_a_drawing_too_large_for_graphviz_is_refused_saying_what_to_do():
    def shared(h, a, x):
        g = gc.exp(a)  # a gate, used by every step: it cannot be drawn once per use
        for _ in range(200):
            h = gc.tanh(g * h + x)
        return h

    f = gc.function(shared)
    with pytest.raises(gc.GraphcError, match="too large to draw: 601 gates") as refused:
        f.svg(h=0.1, a=0.5, x=0.2)
    assert "fewer loop steps" in str(refused.value)
    assert "f.fused(level='elementwise')" in str(refused.value)
    # and the advice works: fused, the loop is a few gates that draw in a moment
    _, _, nodes = parse(f.fused(level="elementwise").svg(h=0.1, a=0.5, x=0.2))
    assert any(t == ["exp"] for t in nodes.values())


def test_too_many_nodes_are_refused(monkeypatch):
    monkeypatch.setattr(render, "MAX_NODES", 20)
    with pytest.raises(gc.GraphcError, match=r"too large to draw: 30 gates, \d+ nodes"):
        recurrence(10).svg()
    assert recurrence(2).svg()  # 6 gates, 10 nodes: drawn
