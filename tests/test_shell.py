"""The `graphc` command as a user types it in a shell: real processes, pipes and exit statuses.

Each test runs `python -m graphc ...` (or the installed `graphc` script) in a subprocess, from a
folder of its own. Oracles: the PNG/PDF magic bytes and the PNG header's pixel width, an XML
parser, Graphviz's own `dot` reading the DOT text back, the generated module imported and run
against the lecture's hand-computed numbers, `sys.modules` of a fresh interpreter, and the exit
status and standard error the process leaves.
"""

import importlib.util
import math
import os
import shutil
import struct
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NEURON_AT = "w0=2,x0=-1,w1=-3,x1=-2,w2=-3"
SVG = "{http://www.w3.org/2000/svg}"


def graphc(*args, cwd=None, stdin: str | None = None, command=None) -> subprocess.CompletedProcess:
    """`graphc ARGS...` in a fresh process; stdout as bytes (pictures), stderr as text."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [*(command or [sys.executable, "-m", "graphc"]), *map(str, args)],
        input=None if stdin is None else stdin.encode(),
        capture_output=True,
        env=env,
        cwd=cwd,
        timeout=180,
    )
    done.stderr = done.stderr.decode()
    return done


def refused(done: subprocess.CompletedProcess, status: int, *words: str) -> None:
    """Exit `status`, one line on stderr naming `words`, no traceback, nothing on stdout."""
    assert done.returncode == status, done.stderr
    assert done.stderr.startswith("graphc: error: ") and done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == b""
    for word in words:
        assert word in done.stderr, done.stderr


def module_from(text: bytes, folder: Path):
    path = folder / "generated.py"
    path.write_bytes(text)
    spec = importlib.util.spec_from_file_location("generated", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def svg_texts(data: bytes) -> list[str]:
    root = ET.fromstring(data)
    assert root.tag == f"{SVG}svg"
    return ["".join(t.itertext()).strip() for t in root.iter(f"{SVG}text")]


def png_width(data: bytes) -> int:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">I", data[16:20])[0]


# ---------------------------------------------------------------- start-up


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_start_without_the_compiler(flag):
    probe = (
        "import sys\n"
        "from graphc.cli import main\n"
        f"assert main([{flag!r}]) == 0\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'sympy', 'numpy', 'networkx'})\n"
        "print('loaded:', heavy)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("loaded: []")


def test_the_lazy_package_gives_the_same_names_whatever_loads_first():
    probe = (
        "import types\n"
        "from graphc.function import Function\n"  # the submodule before the package's names
        "import graphc as gc\n"
        "assert not isinstance(gc.function, types.ModuleType)\n"
        "f = gc.function(lambda x, y: gc.exp(x) * y)\n"
        "assert isinstance(f, Function) and f.grad(x=0.0, y=2.0) == {'x': 2.0, 'y': 1.0}\n"
        "ns = {}\n"
        "exec('from graphc import *', ns)\n"
        "assert sorted(k for k in ns if not k.startswith('__')) == sorted(gc.__all__)\n"
        "assert set(gc.__all__) <= set(dir(gc))\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_python_x_importtime_shows_no_sympy_for_version():
    done = graphc("--version", command=[sys.executable, "-X", "importtime", "-m", "graphc"])
    assert done.returncode == 0 and done.stdout.strip() == b"graphc 0.1.0"
    imported = [line.split("|")[-1].strip() for line in done.stderr.splitlines()]
    assert "graphc" in imported and not any(m.startswith("sympy") for m in imported)


def test_help_examples_run_where_graphc_is_installed(tmp_path):
    done = graphc("render", "--help")
    examples = done.stdout.decode().split("examples:")[1]
    assert "examples/" not in examples and "graphc.lectures:neuron" in examples
    out = tmp_path / "neuron.pdf"  # the --help example, from a folder with no examples/ in it
    ran = graphc("render", "graphc.lectures:neuron", "--at", NEURON_AT, "-o", out, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert out.read_bytes()[:5] == b"%PDF-"


def test_the_installed_script_runs():
    script = Path(sys.executable).parent / "graphc"
    if not script.exists():
        pytest.skip("no `graphc` script beside this Python (graphc is not pip-installed here)")
    done = graphc("--version", command=[str(script)])
    assert done.returncode == 0 and done.stdout.strip() == b"graphc 0.1.0"


# ---------------------------------------------------------------- standard output and input


def test_pictures_go_to_standard_output_in_the_named_format(tmp_path):
    argv = ["render", "(x + y) * z", "--at", "x=-2,y=5,z=-4", "-o", "-"]
    svg = graphc(*argv, cwd=tmp_path)  # svg when nothing names the format
    assert svg.returncode == 0 and "-12.00" in svg_texts(svg.stdout)
    assert graphc(*argv, "--format", "png", cwd=tmp_path).stdout[:4] == b"\x89PNG"
    assert graphc(*argv, "--format", "pdf", cwd=tmp_path).stdout[:5] == b"%PDF-"
    dot = graphc(*argv, "--format", "dot", cwd=tmp_path)
    assert dot.stdout.startswith(b"digraph")
    if shutil.which("dot"):  # Graphviz itself reads the text back
        back = subprocess.run(["dot", "-Tsvg"], input=dot.stdout, capture_output=True, timeout=60)
        assert back.returncode == 0 and "-12.00" in svg_texts(back.stdout)
    assert list(tmp_path.iterdir()) == []  # no file named -, no temporary file


def test_the_format_comes_from_the_suffix_and_dot_files_are_written(tmp_path):
    for name in ("c.dot", "c.gv"):
        done = graphc("render", "x * y", "-o", tmp_path / name)
        assert done.returncode == 0 and (tmp_path / name).read_text().startswith("digraph")
    done = graphc("render", "x * y", "-o", tmp_path / "noext", "--format", "png")
    assert done.returncode == 0 and (tmp_path / "noext").read_bytes()[:4] == b"\x89PNG"


def test_dpi_sets_the_pixel_size_of_a_png():
    argv = ["render", "(x + y) * z", "-o", "-", "--format", "png"]
    low, high = (
        png_width(graphc(*argv, "--dpi", 72).stdout),
        png_width(graphc(*argv, "--dpi", 144).stdout),
    )
    assert abs(high - 2 * low) <= 2, (low, high)


def test_codegen_to_standard_output_and_the_expression_from_standard_input(tmp_path):
    done = graphc("codegen", "-", "-o", "-", stdin="(x + y) * z\n", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    value, grads = module_from(done.stdout, tmp_path).value_and_grad(-2.0, 5.0, -4.0)
    assert value == -12.0 and tuple(grads) == (-4.0, -4.0, 3.0)  # the lecture's numbers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["generated.py"]  # no file named -
    refused(graphc("codegen", "-", stdin="  \n"), 2, "standard input")


def test_compare_to_standard_output_keeps_the_table_on_standard_error():
    done = graphc("compare", "x * y", "--at", "x=2,y=3", "-o", "-", "--repeat", "1")
    assert done.returncode == 0 and "unfused" in svg_texts(done.stdout)
    assert "forward+backward time" in done.stderr


def test_double_dash_ends_the_options(tmp_path):
    done = graphc("codegen", "--at", "x=2,y=3", "--", "-x*y", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert module_from(done.stdout, tmp_path).value_and_grad(2.0, 3.0)[0] == -6.0


# ---------------------------------------------------------------- where functions come from


def test_module_and_package_module_references_load_a_function(tmp_path):
    (tmp_path / "losses").mkdir()
    (tmp_path / "losses" / "__init__.py").write_text("")
    (tmp_path / "losses" / "square.py").write_text("def sq(x, y):\n    return (x - y) * (x - y)\n")
    (tmp_path / "single.py").write_text("import graphc as gc\n\ndef s(x):\n    return gc.exp(x)\n")
    done = graphc("codegen", "losses.square:sq", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert module_from(done.stdout, tmp_path).value_and_grad(5.0, 2.0) == (9.0, (6.0, -6.0))
    done = graphc("render", "single:s", "--at", "x=0", "-o", "-", cwd=tmp_path)
    assert done.returncode == 0 and "1.00" in svg_texts(done.stdout)
    neuron = graphc("render", "graphc.lectures:neuron", "--at", NEURON_AT, "-o", "-")
    assert f"{1 / (1 + math.exp(-1.0)):.2f}" in svg_texts(neuron.stdout)  # sigmoid(1) = 0.73
    refused(graphc("codegen", "nosuchmodule:f", cwd=tmp_path), 2, "no module named 'nosuchmodule'")
    refused(graphc("codegen", "single:nope", cwd=tmp_path), 2, "defines no 'nope'", "s")


def test_a_file_without_a_name_says_how_to_name_one(tmp_path):
    (tmp_path / "mymod.py").write_text("def f(x):\n    return x\n")
    refused(graphc("codegen", "mymod.py", cwd=tmp_path), 2, "mymod.py:NAME")


def test_an_error_in_the_users_file_names_its_file_and_line(tmp_path):
    (tmp_path / "mine.py").write_text(
        "import math\n\n\ndef f(x):\n    return math.exp(x)  # not a gate: cannot be traced\n\n\n"
        "def g(x):\n    raise RuntimeError('boom')\n"
    )
    (tmp_path / "broken.py").write_text("x = 1\nraise ValueError('at import')\n")
    refused(graphc("codegen", "mine.py:g", cwd=tmp_path), 1, "mine.py, line 9, in g", "boom")
    refused(graphc("codegen", "mine.py:f", cwd=tmp_path), 1, "mine.py, line 5, in f")
    refused(graphc("codegen", "broken.py:f", cwd=tmp_path), 1, "broken.py, line 2", "at import")
    refused(graphc("codegen", "broken:f", cwd=tmp_path), 1, "broken.py, line 2", "at import")
    full = graphc("codegen", "mine.py:g", "--traceback", cwd=tmp_path)
    assert full.returncode == 1 and full.stderr.startswith("Traceback (most recent call last)")
    assert "raise RuntimeError('boom')" in full.stderr
    assert full.stderr.splitlines()[-1].startswith("graphc: error: mine.py, line 9")


# ---------------------------------------------------------------- exit statuses and messages


def test_usage_errors_exit_2_and_failed_work_exits_1(tmp_path):
    assert graphc("paint", "x").returncode == 2  # argparse's own
    refused(graphc("render", "x", "-o", "a.jpg", cwd=tmp_path), 2, "--format")
    refused(graphc("render", "x * y", "--at", "x=1", "-o", "-"), 2, "no value for 'y'")
    refused(graphc("render", "x * y", "--at", "x=abc,y=1", "-o", "-"), 2, "x=abc")
    refused(graphc("codegen", "exp(x"), 2, "syntax")
    refused(graphc("steps", "x", "--at", "x=1", "-o", "-"), 2, "folder")
    refused(graphc("render", "sum(W @ x)", "--at", "W=[[1,2],[3,4]],x=[1,2,3]", "-o", "-"), 1)
    assert list(tmp_path.iterdir()) == []


def test_messages_name_the_users_file_not_a_temporary_one(tmp_path):
    target = tmp_path / "missing-folder" / "c.svg"
    done = graphc("render", "x * y", "-o", target)
    refused(done, 1, str(target))
    assert ".graphc-" not in done.stderr and ".tmp" not in done.stderr
    (tmp_path / "mine.py").write_text("def f(x):\n    return undefined_name * x\n")
    done = graphc("codegen", "mine.py:f", cwd=tmp_path)
    refused(done, 1, "mine.py, line 2, in f", "NameError")
    assert "graphc_user" not in done.stderr


def test_compare_on_a_two_gate_circuit_takes_about_a_second():
    start = time.perf_counter()
    done = graphc("compare", "(x + y) * z", "--at", "x=-2,y=5,z=-4")
    elapsed = time.perf_counter() - start
    assert done.returncode == 0 and b"forward+backward time" in done.stdout
    assert elapsed < 5.0, elapsed  # about 1 s (0.25 s of it the comparison); 7.5 s before
