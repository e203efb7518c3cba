"""The `graphc` command: every subcommand on the issue's examples, and every way to make it fail.

Runs `main([...])` in-process (plus `python -m graphc` twice as a real process). Oracles: the
lecture's numbers read from the SVG's text elements, an XML parser, the PDF/PNG magic bytes, the
generated module imported and compared with the compiled function, and the file system itself
(nothing executed, nothing written, an existing output byte-identical after a failed run).
"""

import importlib.util
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_grads_close

import graphc as gc
from graphc.cli import main, parse_at
from graphc.front.parse import parse as parse_expression

ROOT = Path(__file__).resolve().parent.parent
LECTURE_FILE = ROOT / "examples" / "lecture.py"
NEURON = "1/(1+exp(-(w0*x0+w1*x1+w2)))"
NEURON_AT = "w0=2,x0=-1,w1=-3,x1=-2,w2=-3"
NEURON_INPUTS = dict(w0=2.0, x0=-1.0, w1=-3.0, x1=-2.0, w2=-3.0)
SVG = "{http://www.w3.org/2000/svg}"


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(code: int, out: str, err: str, match: str = "", status: int = 2) -> None:
    """Exit status 2 (a command line graphc cannot act on; 1: work that failed) and one line
    `graphc: error: ...` on stderr, no traceback."""
    assert code == status, err
    assert err.startswith("graphc: error: "), err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    assert match in err


def svg_texts(path: Path) -> list[str]:
    """The text elements of a well-formed SVG file (the parse fails on malformed XML)."""
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    return ["".join(t.itertext()).strip() for t in root.iter(f"{SVG}text")]


def import_file(path: Path):
    spec = importlib.util.spec_from_file_location(f"generated_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob(".graphc-*")]


# ---------------------------------------------------------------- version and help


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert out.strip() == f"graphc {gc.__version__}"


def _python_m(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "graphc", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_python_m_graphc_version():
    done = _python_m("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"graphc {gc.__version__}"


def test_python_m_graphc_help_has_an_example_for_every_subcommand():
    done = _python_m("--help")
    assert done.returncode == 0
    for command in ("render", "codegen", "compare", "steps", "demo"):
        assert f"  graphc {command}" in done.stdout.split("examples:")[1]


@pytest.mark.parametrize("command", ["render", "codegen", "compare", "steps", "demo"])
def test_every_subcommand_help_has_an_example(capsys, command):
    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    assert f"graphc {command}" in out.split("examples:")[1]


def test_argparse_usage_errors_exit_2(capsys, tmp_path):
    assert run(capsys, "paint", "x")[0] == 2
    assert run(capsys, "render", "x")[0] == 2  # -o is required
    assert run(capsys, "steps", "x", "-o", tmp_path / "f")[0] == 2  # --at is required
    assert run(capsys, "render", "x", "-o", tmp_path / "a.svg", "--digits", "-1")[0] == 2
    assert run(capsys, "render", "x", "-o", tmp_path / "a.svg", "--theme", "pink")[0] == 2
    assert run(capsys)[0] == 2
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- render


def test_render_the_lecture_circuit(capsys, tmp_path):
    out = tmp_path / "circuit.svg"
    code, stdout, _ = run(capsys, "render", "(x + y) * z", "--at", "x=-2,y=5,z=-4", "-o", out)
    assert code == 0
    assert stdout.strip() == str(out)
    assert {"-12.00", "-4.00", "3.00"} <= set(svg_texts(out))
    assert leftovers(tmp_path) == []


def test_render_the_neuron_fused(capsys, tmp_path):
    out = tmp_path / "neuron.svg"
    assert run(capsys, "render", NEURON, "--at", NEURON_AT, "--fuse", "-o", out)[0] == 0
    texts = svg_texts(out)
    assert "0.73" in texts
    assert {"-0.20", "0.39", "-0.39", "-0.59", "0.20"} <= set(texts)


def test_render_options(capsys, tmp_path):
    out = tmp_path / "neuron.svg"
    argv = ["render", NEURON, "--at", NEURON_AT, "--level", "elementwise", "--digits", "3"]
    argv += ["--show-local", "--theme", "dark", "-o", out]
    assert run(capsys, *argv)[0] == 0
    assert "0.731" in svg_texts(out)


def test_render_without_values_draws_the_structure(capsys, tmp_path):
    out = tmp_path / "structure.svg"
    assert run(capsys, "render", "(x + y) * z", "-o", out)[0] == 0
    assert "-12.00" not in svg_texts(out)


def test_render_a_function_from_a_file_to_pdf_and_png(capsys, tmp_path):
    pdf, png = tmp_path / "neuron.pdf", tmp_path / "neuron.png"
    assert run(capsys, "render", f"{LECTURE_FILE}:neuron", "-o", pdf)[0] == 0
    assert pdf.read_bytes().startswith(b"%PDF")
    argv = ["render", f"{LECTURE_FILE}:neuron", "--at", NEURON_AT, "-o", png]
    assert run(capsys, *argv)[0] == 0
    assert png.read_bytes().startswith(b"\x89PNG")


def test_render_arrays(capsys, tmp_path):
    out = tmp_path / "matvec.svg"
    argv = ["render", "sum(W @ x)", "--at", "W=[[1,2],[3,4]],x=[1,-1]", "-o", out]
    assert run(capsys, *argv)[0] == 0
    svg_texts(out)


def test_render_infinities_draws_them(capsys, tmp_path):
    """log(0) and 1/0 are drawn (in warning style), not raised from inside the generated code."""
    out = tmp_path / "warn.svg"
    assert run(capsys, "render", "log(x) + 1/y", "--at", "x=0,y=0", "-o", out)[0] == 0
    svg_texts(out)


# ---------------------------------------------------------------- codegen


def test_codegen_writes_an_importable_module(capsys, tmp_path):
    out = tmp_path / "neuron_grad.py"
    assert run(capsys, "codegen", NEURON, "--fuse", "-o", out)[0] == 0
    module = import_file(out)
    value, grads = module.value_and_grad(*NEURON_INPUTS.values())
    expected_value, expected = gc.Function(parse_expression(NEURON)).value_and_grad(**NEURON_INPUTS)
    assert value == pytest.approx(expected_value, rel=1e-12)
    assert_grads_close(dict(zip(NEURON_INPUTS, grads)), expected, rtol=1e-12)
    assert round(value, 2) == 0.73
    out_, cache = module.forward(*NEURON_INPUTS.values())
    assert out_ == value and len(module.backward(1.0, cache)) == 5


def test_codegen_without_output_prints_the_module(capsys):
    code, out, _ = run(capsys, "codegen", "(x + y) * z")
    assert code == 0
    assert "def forward(x, y, z):" in out and "def backward(dout, cache):" in out


def test_codegen_at_array_shapes(capsys, tmp_path, rng):
    out = tmp_path / "layer.py"
    argv = ["codegen", "sum(relu(W @ x))", "--at", "W=[[1,2],[3,4],[5,6]],x=[1,-1]", "-o", out]
    assert run(capsys, *argv)[0] == 0
    module = import_file(out)
    W, x = rng.normal(size=(3, 2)), rng.normal(size=2)
    value, (dW, dx) = module.value_and_grad(W, x)
    f = gc.Function(parse_expression("sum(relu(W @ x))"))
    expected_value, expected = f.value_and_grad(W=W, x=x)
    assert value == pytest.approx(expected_value)
    assert_grads_close({"W": dW, "x": dx}, expected, rtol=1e-12)


# ---------------------------------------------------------------- compare and steps


def test_compare_prints_the_table_and_draws_both(capsys, tmp_path):
    out = tmp_path / "compare.svg"
    code, stdout, _ = run(capsys, "compare", NEURON, "--at", NEURON_AT, "--repeat", "1", "-o", out)
    assert code == 0
    assert "unfused" in stdout and "fused" in stdout and "gates" in stdout
    assert stdout.strip().endswith(str(out))
    svg_texts(out)


def test_steps_writes_frames(capsys, tmp_path):
    folder = tmp_path / "frames"
    code, stdout, _ = run(capsys, "steps", "(x + y) * z", "--at", "x=-2,y=5,z=-4", "-o", folder)
    assert code == 0
    frames = sorted(folder.iterdir())
    assert len(frames) >= 2
    assert [p.name for p in frames] == [f"frame-{i:02d}.svg" for i in range(1, len(frames) + 1)]
    assert stdout.split() == [str(p) for p in frames]
    for p in frames:
        svg_texts(p)
    assert "-12.00" in svg_texts(frames[-1])


def test_steps_removes_the_frames_of_a_longer_earlier_run(capsys, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "frame-99.svg").write_text("old")
    (folder / "notes.txt").write_text("mine")
    assert run(capsys, "steps", "x * y", "--at", "x=2,y=3", "-o", folder)[0] == 0
    assert not (folder / "frame-99.svg").exists()
    assert (folder / "notes.txt").read_text() == "mine"


def test_steps_into_a_file_is_refused(capsys, tmp_path):
    target = tmp_path / "frames"
    target.write_text("a file")
    assert_refused(*run(capsys, "steps", "x * y", "--at", "x=2,y=3", "-o", target))
    assert target.read_text() == "a file"


# ---------------------------------------------------------------- demo


def test_demo_writes_the_gallery(capsys, tmp_path):
    folder = tmp_path / "demo"
    code, stdout, _ = run(capsys, "demo", "-o", folder, "--repeat", "1")
    assert code == 0
    printed = [Path(p) for p in stdout.split()]
    assert all(p.is_file() for p in printed)
    written = {str(p.relative_to(folder)) for p in printed}
    for name in ("circuit", "neuron", "max_gate", "fanout"):
        assert {f"{name}.svg", f"{name}-fused.svg", f"{name}-compare.svg"} <= written
        assert {f"{name}.py", f"{name}-fused.py"} <= written
        svg_texts(folder / f"{name}-compare.svg")
    assert "circuit-steps/frame-01.svg" in written and "README.md" in written
    index = (folder / "README.md").read_text()
    assert all(f"({p})" in index for p in written if "/" not in p and p != "README.md")
    assert "![neuron](neuron.svg)" in index and "```python" in index
    assert "| forward+backward time |" in index  # measured here; only --gallery leaves it out
    module = import_file(folder / "neuron-fused.py")
    assert round(module.value_and_grad(*NEURON_INPUTS.values())[0], 2) == 0.73
    assert "-12.00" in svg_texts(folder / "circuit.svg")
    assert leftovers(folder) == []


def test_a_circuit_too_large_to_draw_is_one_line_saying_what_to_do(capsys, tmp_path):
    source = tmp_path / "loop.py"
    source.write_text(
        "import graphc as gc\n"
        "def loop(h, a, x):\n"
        "    g = gc.exp(a)\n"  # a gate every step uses: wires across the whole drawing
        "    for _ in range(200):\n"
        "        h = gc.tanh(g * h + x)\n"
        "    return h\n"
    )
    out = tmp_path / "loop.svg"
    refused = run(capsys, "render", f"{source}:loop", "--at", "h=0.1,a=0.5,x=0.2", "-o", out)
    assert_refused(*refused, match="too large to draw: 601 gates", status=1)
    assert "--level elementwise" in refused[2] and not out.exists()
    argv = ["render", f"{source}:loop", "--at", "h=0.1,a=0.5,x=0.2", "--level", "elementwise"]
    assert run(capsys, *argv, "-o", out)[0] == 0  # the advice works
    assert "exp" in svg_texts(out)


# ---------------------------------------------------------------- FILE.py:NAME


def test_functions_load_from_the_users_file(capsys, tmp_path):
    source = tmp_path / "mine.py"
    source.write_text(
        "import graphc as gc\n"
        "from helper import SCALE\n"  # a neighbour of the file imports
        "def plain(x, y):\n    return SCALE * gc.exp(x) * y\n"
        "@gc.function\ndef compiled(x):\n    return x * x\n"
        "NUMBER = 3\n"
    )
    (tmp_path / "helper.py").write_text("SCALE = 2.0\n")
    out = tmp_path / "plain.py"
    assert run(capsys, "codegen", f"{source}:plain", "-o", out)[0] == 0
    value, grads = import_file(out).value_and_grad(0.0, 3.0)
    assert value == 6.0 and tuple(grads) == (6.0, 2.0)
    assert (
        run(capsys, "render", f"{source}:compiled", "--at", "x=3", "-o", tmp_path / "c.svg")[0] == 0
    )
    assert "9.00" in svg_texts(tmp_path / "c.svg")
    assert_refused(*run(capsys, "codegen", f"{source}:missing"), match="compiled, plain")
    assert_refused(*run(capsys, "codegen", f"{source}:NUMBER"), match="not a function")
    assert_refused(*run(capsys, "codegen", f"{tmp_path / 'nope.py'}:f"), match="no such file")


def test_a_users_file_that_fails_is_one_line(capsys, tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    assert_refused(*run(capsys, "codegen", f"{broken}:f"), match="boom", status=1)
    syntax = tmp_path / "syntax.py"
    syntax.write_text("def f(:\n")
    assert_refused(*run(capsys, "codegen", f"{syntax}:f"), match="SyntaxError", status=1)
    exits = tmp_path / "exits.py"
    exits.write_text("import sys\nsys.exit(5)\n")
    assert_refused(*run(capsys, "codegen", f"{exits}:f"), match="SystemExit", status=1)


# ---------------------------------------------------------------- refusals

MALICIOUS = [
    "__import__('os').system('touch X')",
    "exp(__import__('os').system('touch X'))",
    "os.system('touch X')",
    "x.__class__",
    "(lambda: __import__('os').system('touch X'))()",
    "[__import__('os').system('touch X') for i in [1]]",
    "x[0]",
    "open('X', 'w')",
    "system('touch X')",
    "x+" * 50_000 + "x",  # 100 kB
    "-" * 5000 + "x",
    "'touch X'",
    "x +",
]
COMMANDS = {
    "render": (["--at", "x=1"], "out.svg"),
    "codegen": ([], "out.py"),
    "compare": (["--at", "x=1"], "out.svg"),
    "steps": (["--at", "x=1"], "frames"),
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("expression", MALICIOUS, ids=lambda s: s[:40])
def test_malicious_or_malformed_expressions_are_refused_and_nothing_runs(
    capsys, tmp_path, monkeypatch, command, expression
):
    monkeypatch.chdir(tmp_path)
    extra, output = COMMANDS[command]
    assert_refused(*run(capsys, command, expression, *extra, "-o", output))
    assert list(tmp_path.iterdir()) == []  # no X, no output, no temporary file


@pytest.mark.parametrize(
    "argv, status",
    [
        (["render", "__import__('os').system('touch X')", "--at", "x=1"], 2),
        (["render", "(x + y) * z", "--at", "x=1,y=2"], 2),  # z is missing
        (["render", "(x + y) * z", "--at", "x=1,y=2,z=3,w=4"], 2),  # w is not an input
        (["render", "sum(W @ x)", "--at", "W=[[1,2],[3,4]],x=[1,2,3]"], 1),  # shapes do not fit
        (["render", "(x + y) * z", "--at", "x=1,y=2,z=oops"], 2),
        (["render", "sum(x, axis=3)", "--at", "x=[1,2]"], 1),  # refused by the compiler
        (["compare", "x * y", "--at", "x=1,y=hello"], 2),
        (["compare", "x * y", "--at", "x=1"], 2),
    ],
    ids=lambda a: " ".join(a)[:50] if isinstance(a, list) else str(a),
)
def test_an_existing_output_survives_a_failed_run(capsys, tmp_path, monkeypatch, argv, status):
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "out.svg"
    target.write_bytes(b"<svg>the slide I made yesterday</svg>")
    assert_refused(*run(capsys, *argv, "-o", target), status=status)
    assert target.read_bytes() == b"<svg>the slide I made yesterday</svg>"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.svg"]


def test_an_existing_module_survives_a_failed_codegen(capsys, tmp_path):
    target = tmp_path / "grad.py"
    target.write_text("# mine\n")
    assert_refused(*run(capsys, "codegen", "exp(x", "-o", target), match="syntax")
    failed = run(capsys, "codegen", "x @ y", "--at", "x=[1,2],y=[1,2,3]", "-o", target)
    assert_refused(*failed, status=1)  # the command line is fine; the shapes do not fit
    assert target.read_text() == "# mine\n"
    assert leftovers(tmp_path) == []


def test_an_unknown_picture_format_is_refused_before_any_work(capsys, tmp_path):
    assert_refused(*run(capsys, "render", "x", "-o", tmp_path / "a.jpg"), match=".svg")
    assert_refused(*run(capsys, "compare", "x", "--at", "x=1", "-o", tmp_path / "a.txt"))
    assert list(tmp_path.iterdir()) == []


def test_unknown_gates_are_refused(capsys, tmp_path):
    code, out, err = run(capsys, "render", "softmax(x)", "--at", "x=1", "-o", tmp_path / "a.svg")
    assert_refused(code, out, err, match="unknown function 'softmax'")
    assert "exp, log" in err  # and says what is allowed


BAD_AT = [
    "x",
    "x=",
    "=1",
    "x=abc",
    "x=[1,2",
    "x=[1,2]]",
    "x=[[1],[2,3]]",
    "x=True",
    "x=[True,1]",
    "x='one'",
    "x=1j",
    "x=None",
    "x={1: 2}",
    "x=__import__('os').system('touch X')",
    "x=(lambda: 1)()",
    "x=1,x=2",
    "1x=3",
    "x.y=3",
    "x=[" * 5000 + "]" * 5000,
]


@pytest.mark.parametrize("at", BAD_AT, ids=lambda s: s[:30])
def test_bad_at_values_exit_2(capsys, tmp_path, monkeypatch, at):
    monkeypatch.chdir(tmp_path)
    assert_refused(*run(capsys, "render", "x * 2", "--at", at, "-o", "out.svg"))
    assert list(tmp_path.iterdir()) == []


def test_at_reads_scalars_and_nested_lists():
    at = parse_at("x=-2, y=5.5,W=[[1,2],[3,4]],v=(1,2),big=1e3,n=-inf")
    assert at["x"] == -2.0 and at["y"] == 5.5 and at["big"] == 1000.0 and at["n"] == -np.inf
    np.testing.assert_array_equal(at["W"], [[1.0, 2.0], [3.0, 4.0]])
    assert at["W"].dtype == np.float64 and at["v"].shape == (2,)


def test_repeated_at_options_merge(capsys, tmp_path):
    out = tmp_path / "c.svg"
    argv = ["render", "(x + y) * z", "--at", "x=-2", "--at", "y=5,z=-4", "-o", out]
    assert run(capsys, *argv)[0] == 0
    assert "-12.00" in svg_texts(out)
    assert_refused(*run(capsys, "render", "x", "--at", "x=1", "--at", "x=2", "-o", out))


def test_an_input_named_like_a_drawing_option_is_refused(capsys, tmp_path):
    argv = ["render", "theme * x", "--at", "theme=1,x=2", "-o", tmp_path / "a.svg"]
    assert_refused(*run(capsys, *argv), match="theme")


def test_an_expression_may_start_with_a_minus_sign(capsys, tmp_path):
    out = tmp_path / "neg.py"
    assert run(capsys, "codegen", "-x*y", "--at", "x=2,y=3", "-o", out)[0] == 0
    assert import_file(out).value_and_grad(2.0, 3.0)[0] == -6.0
    assert run(capsys, "codegen", " -x", "-o", out)[0] == 0
