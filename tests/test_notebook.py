"""graphc in Jupyter: a notebook executed by nbconvert in a real kernel, its outputs checked.

The notebook is built here with nbformat, run by nbconvert's ExecutePreprocessor in an ipykernel
(the notebook extra installs the three), and every cell's outputs are read back from the
executed notebook: their MIME types, as a notebook front end receives them, and what the HTML
holds (an XML parser for the inline SVG, the PNG magic bytes, the player's frames). Oracles:
the notebook format itself and the lecture's numbers; nothing asks graphc what it displayed.
"""

import base64
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbconvert = pytest.importorskip("nbconvert.preprocessors")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parent.parent
NEURON = "2.0, -1.0, -3.0, -2.0, -3.0"

CELLS = {
    "setup": f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n"
    "import graphviz\nimport graphc as gc\nfrom graphc.lectures import neuron\n"
    "f = gc.function(neuron)",
    "function": "f",
    "render": f"f.render({NEURON})",
    "compare": f"gc.compare(f, {NEURON}, repeat=1)",
    "steps": f"f.render_steps({NEURON})",
    "source": "f.source",
    "source_is_str": "s = f.source_for(1.0, 2.0, 3.0, 4.0, 5.0)\n"
    "print(isinstance(s, str), s == str(s), s[:3], len(s.splitlines()) > 10)",
    "lint": "gc.lint(f)",
    "lint_print": "print(gc.lint(f))",
    "check": f"gc.check_grad(f, {NEURON}, per_gate=True)",
    "value": 'x, y = gc.symbols("x y")\nx + y',
    "save": f'f.save_picture("neuron.png", {NEURON}, dpi=150)',
    "png": 'graphviz.set_jupyter_format("png")\nf',
    "png_render": f"f.render({NEURON})",
}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("notebook")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in CELLS.values()]
    runner = nbconvert.ExecutePreprocessor(timeout=300, kernel_name="python3")
    runner.preprocess(notebook, {"metadata": {"path": str(folder)}})
    nbformat.validate(notebook)
    found = {"_folder": folder}
    for name, cell in zip(CELLS, notebook.cells):
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"{name}: {errors[0].ename}: {errors[0].evalue}"
        found[name] = cell.outputs
    return found


def data(outputs, name: str) -> dict:
    """The MIME bundle of the cell's displayed result."""
    (result,) = [o for o in outputs[name] if o.output_type in ("execute_result", "display_data")]
    return result.data


def inline_svg(html: str) -> ET.Element:
    svg = re.search(r"<svg\b.*?</svg>", html, re.S).group(0)
    return ET.fromstring(svg)


def assert_no_network(html: str) -> None:
    addresses = set(re.findall(r"(?:https?:)?//[\w.-]+", html)) - {
        "http://www.w3.org",
        "//www.w3.org",
    }
    assert not addresses and "<script src" not in html, addresses


def test_a_function_shows_its_circuit_and_a_one_line_summary(outputs):
    bundle = data(outputs, "function")
    assert {"text/html", "image/svg+xml", "text/plain"} <= set(bundle)
    assert bundle["text/plain"] == "<graphc.Function neuron(w0, x0, w1, x1, w2): 8 gates>"
    html = bundle["text/html"]
    assert "neuron(w0, x0, w1, x1, w2): 8 gates" in html
    assert inline_svg(html).get("width") == "100%"  # scaled to the notebook's width


@pytest.mark.parametrize("name", ["render", "compare"])
def test_drawings_are_scaled_to_the_notebooks_width(outputs, name):
    bundle = data(outputs, name)
    assert {"text/html", "image/svg+xml"} <= set(bundle)
    svg = inline_svg(bundle["text/html"])
    assert svg.get("width") == "100%" and svg.get("height") is None
    assert re.fullmatch(r"max-width:[\d.]+pt;height:auto", svg.get("style"))
    assert len(svg.get("viewBox").split()) == 4  # the shape is kept
    assert_no_network(bundle["text/html"])


def test_step_frames_show_as_a_player_without_widgets_or_network(outputs):
    bundle = data(outputs, "steps")
    html = bundle["text/html"]
    assert "application/vnd.jupyter.widget-view+json" not in bundle
    # 8 gates: the forward values, the seed, one frame per gate, the full picture (issue 13)
    assert html.count('class="graphc-frame"') == 1 + 1 + 8 + 1
    assert "<script>" in html and 'type="range"' in html and 'max="10"' in html
    assert_no_network(html)


def test_source_shows_highlighted_and_stays_a_string(outputs):
    html = data(outputs, "source")["text/html"]
    assert "<span style=" in html and "def forward" in re.sub(r"<[^>]+>", "", html)
    (printed,) = [o for o in outputs["source_is_str"] if o.output_type == "stream"]
    assert printed.text.strip() == 'True True """ True'


def test_lint_and_gradient_check_reports_are_tables(outputs):
    lint = data(outputs, "lint")["text/html"]
    assert lint.startswith('<table class="graphc-table">') and "<th>cure</th>" in lint
    assert "sigmoid" in lint
    (printed,) = [o for o in outputs["lint_print"] if o.output_type == "stream"]
    header, row = printed.text.strip().splitlines()
    assert header.split()[:2] == ["gate", "variable"] and row.split()[0] == "exp"
    check = data(outputs, "check")["text/html"]
    assert check.count("<tr>") == 1 + 8 and "whole function: max relative error" in check


def test_traced_values_name_their_gate_and_arguments(outputs):
    assert data(outputs, "value")["text/plain"] == "<graphc value add(x, y)>"


def test_graphvizs_jupyter_format_is_respected(outputs):
    for name in ("png", "png_render"):
        bundle = data(outputs, name)
        assert "image/png" in bundle and "image/svg+xml" not in bundle, name
        assert base64.b64decode(bundle["image/png"])[:8] == b"\x89PNG\r\n\x1a\n"
        assert '<img src="data:image/png;base64,' in bundle["text/html"]


def test_save_picture_writes_a_png_at_the_dpi_asked(outputs):
    png = (outputs["_folder"] / "neuron.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert data(outputs, "save")["text/plain"] == "'neuron.png'"
