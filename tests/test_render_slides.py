"""Slide pictures (issue 13): forks that show their sums, semantic groups, labels apart.

The SVG is read back by `svg_geometry` (xml.etree, boxes from the SVG's own coordinates and font
sizes). Numbers are checked against central differences of plain Python functions and against
the product rule done by hand, never against graphc's own output.
"""

import re
import shutil

import pytest
from circuit_corpus import corpus, two_layer_net
from conftest import central_diff
from svg_geometry import problems, read

import graphc as gc

pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")


def square_plus(x):
    return x * x + x


def xy_times_x_plus_y(x, y):
    return (x * y) * (x + y)


def labels_of(drawing, wire_id):
    return {t.kind: t.text for t in drawing.texts if t.id.rsplit("-", 1)[0] == wire_id}


def names(drawing):
    """Group id -> the text drawn in it (inputs, gates, forks have no text)."""
    return {t.id: t.text for t in drawing.texts}


def wires_from(drawing, title):
    return [w for w in drawing.wires.values() if w.tail == title and not w.id.endswith("-end")]


def test_x_times_x_has_two_wires_and_the_fork_shows_its_total():
    d = read(gc.function(square_plus).svg(x=3.0))
    (x_title,) = [d.titles[i] for i, k in d.ids.items() if k == "input"]
    (stem,) = wires_from(d, x_title)  # x is drawn once, and forks after its name
    on_stem = labels_of(d, stem.id)
    assert on_stem["value"] == "3.00"
    total = central_diff(square_plus, {"x": 3.0}, "x")  # 2x + 1 = 7
    assert on_stem["total"] == f"Σ {total:.2f}" == "Σ 7.00"
    branches = wires_from(d, stem.head)
    gate_text = {d.titles[i]: t for i, t in names(d).items() if d.ids[i] == "gate"}
    into = sorted(
        (gate_text[d.wires[w.id + "-end"].head if w.id + "-end" in d.wires else w.head],
         labels_of(d, w.id)["value"], labels_of(d, w.id)["grad"])
        for w in branches
    )  # fmt: skip
    # d(a*b)/da = b = 3 for each read of x*x, times the upstream 1 from +; the read of + gets 1
    assert into == [("*", "3.00", "3.00"), ("*", "3.00", "3.00"), ("+", "3.00", "1.00")]
    total_group = [t for t in d.texts if t.kind == "total"]
    assert len(total_group) == 1 and total_group[0].fill == gc.draw.render.THEMES["light"].gradient


def test_every_value_read_twice_shows_its_total_once():
    at = dict(x=3.0, y=-2.0)
    d = read(gc.function(xy_times_x_plus_y).svg(**at))
    totals = {t.text for t in d.texts if t.kind == "total"}
    expected = {f"Σ {central_diff(xy_times_x_plus_y, at, n):.2f}" for n in at}
    assert totals == expected == {"Σ -8.00", "Σ -3.00"}


def test_semantic_groups_name_what_they_are_and_tie_labels_to_wires():
    d = read(gc.function(xy_times_x_plus_y).svg(x=3.0, y=-2.0))
    kinds = list(d.ids.values())
    assert kinds.count("gate") == 3 and kinds.count("input") == 2 and kinds.count("output") == 1
    assert kinds.count("fork") == 2 and kinds.count("total") == 2
    for t in d.texts:
        if t.kind in ("value", "grad", "total"):
            wire, suffix = t.id.rsplit("-", 1)
            assert suffix == t.kind and wire in d.wires  # <wire id>-value, <wire id>-grad
    labelled = {t.id.rsplit("-", 1)[0] for t in d.texts if t.kind == "value"}
    drawn = {w for w in d.wires if not w.endswith("-end")}
    assert labelled == drawn  # every wire carries its value


def test_local_gradients_are_groups_of_their_own():
    f = gc.function(lambda x, y, z, w: 2 * (x * y + gc.maximum(z, w)))
    d = read(f.svg(show_local=True, x=3.0, y=-4.0, z=2.0, w=-1.0))
    locals_ = [t for t in d.texts if t.kind == "local"]
    assert locals_ and all(t.id.endswith("-local") for t in locals_)


@pytest.mark.parametrize("name", [name for name, _, _ in corpus()])
def test_labels_never_collide(name):
    (f, at) = next((f, at) for n, f, at in corpus() if n == name)
    for svg in (f.svg(**at), f.svg(**at, show_local=True)):
        assert problems(svg) == []


def test_inputs_stand_in_signature_order():
    f = gc.function(lambda w0, x0, w1, x1, w2: 1 / (1 + gc.exp(-(w0 * x0 + w1 * x1 + w2))))
    d = read(f.svg(w0=2.0, x0=-1.0, w1=-3.0, x1=-2.0, w2=-3.0))
    inputs = sorted((t.centre[1], t.text) for t in d.texts if t.kind == "input")
    assert [name for _, name in inputs] == ["w0", "x0", "w1", "x1", "w2"]  # top to bottom


def entering(drawing, gate_title):
    """{argument position: the point where its wire enters the gate} (SVG y grows down)."""
    found = {}
    for g_id, w in drawing.wires.items():
        if w.head == gate_title:
            position = next(c for c in drawing.classes[g_id] if c.startswith("arg"))
            found[int(position[3:])] = w.points[-1]
    return found


def test_argument_0_enters_above_argument_1():
    # c - a with a above c (signature order): the wire from c still enters the upper side
    f = gc.function(lambda a, b, c: (c - a) / (b - c))
    d = read(f.svg(a=1.0, b=2.0, c=4.0))
    ordered = [t for t in d.gates if d.symbols[t] in ("-", "/")]
    assert len(ordered) == 3
    for title in ordered:
        ends = entering(d, title)
        assert ends[0][1] < ends[1][1], f"{d.symbols[title]}: argument 1 enters above argument 0"


RANDOM = [(seed, 5 + seed % 26) for seed in range(10, 40)]  # 30 DAGs of 5 to 30 gates


@pytest.mark.parametrize("seed, gates", RANDOM)
def test_random_dags_keep_the_rules(seed, gates):
    from circuit_corpus import random_function

    f, at = random_function(seed, gates)
    assert problems(f.svg(**at)) == []


# ---------------------------------------------------------------- numbers


def test_round_off_is_printed_as_zero():
    def f(x, y):
        return x * 0.1 + x * 0.2 - x * 0.3 + y  # d/dx is 0.1 + 0.2 - 0.3: round-off, exactly 0

    assert abs(central_diff(f, {"x": 2.0, "y": 1.0}, "x")) < 1e-9
    d = read(gc.function(f).svg(x=2.0, y=1.0))
    (x_title,) = [d.titles[i] for i, k in d.ids.items() if k == "input" and names(d)[i] == "x"]
    stems = [w for w in d.wires.values() if w.tail == x_title]
    (total,) = [labels_of(d, w.id)["total"] for w in stems]
    assert total == "Σ 0.00"  # not "Σ 5.55e-17"


def test_significant_figures_and_one_style_per_picture():
    import re

    neuron = gc.function(lectures_neuron)
    d = read(neuron.svg(sig=3, **NEURON))
    numbers = [t.text for t in d.texts if t.kind in ("value", "grad")]
    assert "0.731" in numbers and "-0.197" in numbers and "0.368" in numbers
    d = read(neuron.svg(digits=0, **NEURON))
    numbers = [t.text for t in d.texts if t.kind in ("value", "grad")]
    assert all(re.fullmatch(r"-?\d+", t) for t in numbers), numbers  # no 3.7e-01 among them
    from graphc.draw.render import Numbers

    assert Numbers(2).number(123456.0) == "123456.00" and Numbers(2).number(1e6) == "1.00e+06"
    assert Numbers(2).number(9e-5) == "9.00e-05" and Numbers(sig=2).number(0.012345) == "0.012"


def test_small_matrices_are_drawn_as_rows():
    import numpy as np

    f = gc.function(lambda W, x: gc.sum(W @ x))
    W = np.array([[0.1, 0.5], [-0.3, 0.8]])
    d = read(f.svg(W=W, x=np.array([1.0, -1.0])))
    (w_title,) = [d.titles[i] for i, k in d.ids.items() if k == "input" and names(d)[i] == "W"]
    (wire,) = [w for w in d.wires.values() if w.tail == w_title]
    rows = [t.text for t in d.texts if t.id == f"{wire.id}-value"]
    assert rows == ["[ 0.10   0.50]", "[-0.30   0.80]"]  # entries right-aligned
    grads = [t.text for t in d.texts if t.id == f"{wire.id}-grad"]
    assert grads == ["[ 1.00  -1.00]", "[ 1.00  -1.00]"]  # d sum(W x)/dW = 1 x^T


# ---------------------------------------------------------------- backgrounds


def background(svg: str) -> str | None:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(svg)
    graph = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "graph")
    first = graph.find(f"{SVG}polygon")
    return None if first is None else first.get("fill")


@pytest.mark.parametrize(
    "options, paper",
    [({}, "#ffffff"), ({"theme": "dark"}, "#2b2b2b"), ({"background": "#fdf6e3"}, "#fdf6e3")],
)
def test_backgrounds_are_opaque_by_default(options, paper):
    svg = gc.function(square_plus).svg(x=3.0, **options)
    assert background(svg) == paper


def test_a_transparent_background_on_request():
    assert background(gc.function(square_plus).svg(x=3.0, background="transparent")) in (
        None, "transparent", "none",
    )  # fmt: skip


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two #rrggbb colours."""

    def luminance(c):
        rgb = [int(c[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        lin = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in rgb]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_both_themes_are_legible_on_their_own_background(theme):
    from graphc.draw.render import PAPER, THEMES

    colours = THEMES[theme]
    for ink in (colours.text, colours.line, colours.value, colours.gradient, colours.active):
        assert contrast(ink, PAPER[theme]) >= 4.5, (theme, ink)  # WCAG AA for text


# ---------------------------------------------------------------- step frames


def test_step_frames_write_each_gates_computation():
    f = gc.function(lectures_neuron)
    frames = f.render_steps(**NEURON)
    seed = read(frames[1])
    assert [t.text for t in seed.texts if t.kind == "grad"] == ["1.00"]
    first = read(frames[2])  # the 1/x gate: d(1/x)/dx = -1/x^2 at x = 1.37
    (step,) = [t.text for t in first.texts if t.kind == "step"]
    x = 1 + __import__("math").exp(-1.0)
    assert step == f"1.00 × (−1/{x:.2f}²) = {-1 / x**2:.2f}" == "1.00 × (−1/1.37²) = -0.53"
    for k, frame in enumerate(frames[2:-1], start=1):  # every gate, the last one too
        d = read(frame)
        steps = [t for t in d.texts if t.kind == "step"]
        assert steps, f"frame of gate {k} writes no computation"
    last = read(frames[-2])
    active = gc.draw.render.THEMES["light"].active
    assert any(t.fill == active for t in last.texts if t.kind == "gate")  # the last gate lit


def test_forward_frames_build_up_one_gate_at_a_time():
    f = gc.function(lectures_neuron)
    frames = f.render_steps(forward=True, **NEURON)
    assert len(frames) == 8 + 1 + 1 + 8 + 1
    counts = [sum(t.kind == "value" for t in read(frame).texts) for frame in frames[:9]]
    assert counts == sorted(counts) and counts[0] == 5 and len(set(counts)) == 9


def lectures_neuron(w0, x0, w1, x1, w2):
    return 1 / (1 + gc.exp(-(w0 * x0 + w1 * x1 + w2)))


NEURON = dict(w0=2.0, x0=-1.0, w1=-3.0, x1=-2.0, w2=-3.0)
SVG = "{http://www.w3.org/2000/svg}"


# ---------------------------------------------------------------- slides


def slide_text_px(svg: str) -> tuple[float, float, float]:
    """(smallest text in px, width, height) of a picture as drawn in its own size (points as
    pixels of a 1920x1080 frame): font sizes times the scale Graphviz applied."""
    import re
    import xml.etree.ElementTree as ET

    root = ET.fromstring(svg)
    width = float(root.get("width").removesuffix("pt"))
    height = float(root.get("height").removesuffix("pt"))
    view = [float(v) for v in root.get("viewBox").split()]
    graph = root.find(f"{SVG}g")
    scale = float(re.search(r"scale\(([\d.]+)", graph.get("transform"))[1]) * width / view[2]
    sizes = [float(t.get("font-size")) for t in root.iter(f"{SVG}text")]
    return min(sizes) * scale, width, height


def gate_count(f) -> int:
    return sum(1 for _, op in f.graph.nodes(data="op") if op not in ("input", "const"))


@pytest.mark.parametrize("fit, frame", [("16:9", (1920, 1080)), ("4:3", (1440, 1080))])
@pytest.mark.parametrize("name", [n for n, _, _ in corpus()])
def test_fitted_the_smallest_text_is_12_px_and_the_rules_hold(name, fit, frame):
    """Every corpus circuit of up to 30 gates (lecture circuits, forks, random DAGs, the 2-layer
    net fused and not) fitted to a slide: scaled into the frame, no text under 12 px, and every
    geometric rule read back from the SVG holds; above 30 gates it is drawn fused (its own test)."""
    (f, at) = next((f, at) for n, f, at in corpus() if n == name)
    svg = f.svg(fit=fit, **at)
    px, width, height = slide_text_px(svg)
    assert width <= frame[0] + 0.5 and height <= frame[1] + 0.5
    assert max(width / frame[0], height / frame[1]) > 0.99  # it fills the frame one way
    if gate_count(f) <= 30:
        assert px >= 12.0, f"{name}: {gate_count(f)} gates, smallest text {px:.1f} px"
    assert problems(svg) == []


def tanh_chain(x, tanh=None):
    for _ in range(9):
        x = (tanh or gc.tanh)(x * 0.9 + 0.1)
    return x


def loop(x, y, tanh=None):
    for _ in range(8):
        x = (tanh or gc.tanh)(x * y + 1.0)
    return x


def test_a_wrapped_picture_links_its_rows_by_letters():
    """A chain too long for one row is wrapped: each wire cut at a row's end leaves at "→ A" and
    comes back at "A →" in a later row; the gradients are those of central differences."""
    import math

    svg = gc.function(lambda x: tanh_chain(x)).svg(fit="16:9", x=0.3)
    d = read(svg)
    links = [t for t in d.texts if "link" in d.classes[t.id]]
    exits = {t.text.removeprefix("→ ") for t in links if t.kind == "output"}
    entries = {t.text.removesuffix(" →") for t in links if t.kind == "input"}
    assert exits and exits == entries
    assert problems(svg) == []
    x_in = next(t for t in d.texts if t.kind == "input" and t.text == "x")
    grads = [t for t in d.texts if t.kind == "grad"]
    first = min(grads, key=lambda t: math.dist(t.centre, x_in.centre))
    expected = central_diff(lambda x: tanh_chain(x, math.tanh), {"x": 0.3}, "x")
    assert float(first.text) == pytest.approx(expected, abs=0.006)


def test_an_input_drawn_once_per_use_shows_its_total_once():
    """y is read by every step of an unrolled loop; drawn beside each use, its total gradient
    is written once, beside its first copy, equal to the central difference of the loop."""
    import math

    svg = gc.function(lambda x, y: loop(x, y)).svg(x=0.1, y=0.5)
    d = read(svg)
    copies = [t for t in d.texts if t.kind == "input" and t.text == "y"]
    totals = [t for t in d.texts if t.kind == "total"]
    assert len(copies) == 8 and len(totals) == 1
    expected = central_diff(lambda x, y: loop(x, y, math.tanh), {"x": 0.1, "y": 0.5}, "y")
    assert float(totals[0].text.removeprefix("Σ ")) == pytest.approx(expected, abs=0.006)
    first = min(copies, key=lambda t: t.centre[0])
    assert math.dist(totals[0].centre, first.centre) < 80  # beside the first y
    assert problems(svg) == []


def test_above_30_gates_a_fitted_picture_is_drawn_fused_and_says_so():
    def long(x, y):
        for _ in range(12):
            x = gc.tanh(x * y + 1.0)
        return x

    f = gc.function(long)
    d = read(f.svg(fit="16:9", x=0.1, y=0.5))
    gates = [k for k, kind in d.ids.items() if kind == "gate"]
    assert len(gates) < 36
    svg = f.svg(fit="16:9", x=0.1, y=0.5)
    assert "fused to fit the slide: 36 gates drawn as" in svg
    # and says what each box collapsed: 12 loop steps of (*, +1, tanh), 36 gates in all
    captions = [line for line in svg.split(">") if "gates each (" in line]
    assert captions, "no caption says what the fused boxes collapsed"
    count, per, ops = re.search(r"×(\d+): (\d+) gates each \(([^)]*)\)", captions[0]).groups()
    assert int(count) * int(per) == 36 and ops.split(", ")[:3] == ["*", "+1", "tanh"]
    assert problems(svg) == []


def test_what_fused_regions_collapsed_is_written_out():
    """The 2-layer net's two layers X @ W1 + b1 and hidden @ W2 + b2 (examples/two_layer_net.py)
    become two affine boxes, and the caption says so."""
    from graphc.draw.render import collapsed

    net, _ = two_layer_net()
    lines = collapsed(net.graph, net.fused(level="patterns").graph)
    assert "affine ×2: 2 gates each (@, +)" in lines
    assert any(line.startswith("softmax cross entropy: ") for line in lines)


@pytest.mark.parametrize("name", ["circuit", "neuron", "max_gate", "xy_times_x_plus_y"])
def test_top_to_bottom_keeps_the_rules(name):
    (f, at) = next((f, at) for n, f, at in corpus() if n == name)
    svg = f.svg(direction="TB", **at)
    assert problems(svg) == []
    d = read(svg)
    inputs = sorted((t.centre[0], t.text) for t in d.texts if t.kind == "input")
    assert [n for _, n in inputs] == list(f.inputs)  # left to right in signature order
    outputs = [t.centre[1] for t in d.texts if t.kind == "output"]
    assert all(o > max(t.centre[1] for t in d.texts if t.kind == "input") for o in outputs)


def test_bad_drawing_options_are_refused_by_name():
    f = gc.function(square_plus)
    for options, word in (
        ({"direction": "RL"}, "direction"), ({"fit": "21:9"}, "fit"), ({"sig": 0}, "sig"),
        ({"theme": "neon"}, "theme"), ({"digits": 16}, "digits"),
    ):  # fmt: skip
        with pytest.raises(gc.GraphcError, match=word):
            f.svg(x=3.0, **options)


def test_comparison_stacks_as_asked():
    import graphviz

    report = gc.compare(gc.function(lectures_neuron), **NEURON)
    shapes = {}
    for stack in ("horizontal", "vertical", "auto"):
        svg = graphviz.Digraph.pipe(report.render(stack=stack), format="svg").decode()
        _, width, height = slide_text_px(svg)
        shapes[stack] = width / height
    assert shapes["horizontal"] > 1.5 > shapes["vertical"]
    assert shapes["auto"] in (shapes["horizontal"], shapes["vertical"])
    with pytest.raises(gc.GraphcError, match="stack"):
        report.render(stack="diagonal")


def test_the_command_line_draws_for_slides(tmp_path, capsys):
    from graphc.cli import main

    out = tmp_path / "c.svg"
    argv = ["render", "(x + y) * z", "--at", "x=-2,y=5,z=-4", "--direction", "TB"]
    assert main([*argv, "--fit", "16:9", "--sig", "3", "-o", str(out)]) == 0
    px, width, height = slide_text_px(out.read_text())
    # --fit picks the direction whose text is larger: the picture fills the frame one way
    assert px >= 12 and max(width / 1920, height / 1080) == pytest.approx(1, abs=1e-3)
    frames = tmp_path / "frames"
    assert (
        main(["steps", "(x + y) * z", "--at", "x=-2,y=5,z=-4", "--beamer", "-o", str(frames)]) == 0
    )
    pdfs = sorted(p.name for p in frames.glob("*.pdf"))
    assert pdfs == [f"frame-0{k}.pdf" for k in range(1, 6)]
    assert all((frames / p).read_bytes().startswith(b"%PDF") for p in pdfs)
    tex = (frames / "frames.tex").read_text()
    assert tex.count("\\only<") == 5 and "\\begin{frame}" in tex and "frame-05.pdf" in tex
    compare_out = tmp_path / "cmp.svg"
    assert (
        main(["compare", "x*x + x", "--at", "x=3", "--stack", "vertical", "-o", str(compare_out)])
        == 0
    )
    assert compare_out.read_text().startswith("<?xml")


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="needs pdflatex (TeX Live), beamer")
def test_the_beamer_snippet_compiles_into_one_slide_with_an_overlay_per_frame(
    tmp_path, monkeypatch, capsys
):
    """pdflatex, not graphc, is the judge: a beamer document \\input'ing the snippet compiles
    and has one page per frame."""
    import re
    import subprocess

    from graphc.cli import main

    monkeypatch.chdir(tmp_path)
    frames = "frames with space_1"  # spaces and underscores in the folder's name are fine
    argv = ["steps", "(x + y) * z", "--at", "x=-2,y=5,z=-4", "--beamer"]
    assert main([*argv, "-o", frames]) == 0
    (tmp_path / "deck.tex").write_text(
        "\\documentclass{beamer}\n\\begin{document}\n"
        f"\\input{{{frames}/frames.tex}}\n\\end{{document}}\n"
    )
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "deck.tex"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:]
    pages = re.search(r"Output written on deck\.pdf \((\d+) pages?", done.stdout)
    assert pages and int(pages[1]) == 5  # values, seed, two gates, the full picture
    capsys.readouterr()
    assert main([*argv, "-o", "100%_frames"]) != 0  # TeX would read % as a comment
    assert "TeX" in capsys.readouterr().err and not (tmp_path / "100%_frames").exists()
