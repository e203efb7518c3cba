"""The `graphc` command: render, codegen, compare, steps and demo from a shell.

Stage: surface (with `__main__` and `function`, the modules that touch files and processes).
Imports `parse`, `function`, `compare`, `lectures` and `errors`.

A function comes from an expression string, read by the whitelist parser of `parse.py` (never
evaluated), or from `FILE.py:NAME`, a function in the user's own file. Every output file is
written atomically (a temporary file renamed into place), and only after everything it holds has
been computed, so a failed run leaves an existing file as it was. Every error prints one line,
`graphc: error: <message>`, and exits with status 2. `graphc demo --gallery -o docs/gallery`
writes the docs' checked-in gallery: the demo without timings, so its files are byte-identical
from run to run (tests/test_gallery.py regenerates and compares them).
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import keyword
import os
import re
import sys
from pathlib import Path

import numpy as np

from . import __version__
from .draw import render
from .draw.compare import compare
from .draw.gallery import GALLERY_COMMAND, Circuit, Picture, demo_files
from .files import write_atomic, write_beamer, write_files, write_frames, write_picture
from .front.parse import parse
from .function import Function, function
from .ir.errors import GraphcError
from .lectures import LECTURES, SLIDES

PICTURE_SUFFIXES = (".svg", ".pdf", ".png")
MAX_AT_LENGTH = 1_000_000  # characters of --at values; a literal list is read, never run

EXAMPLES = {
    "render": [
        'graphc render "(x + y) * z" --at x=-2,y=5,z=-4 -o circuit.svg',
        'graphc render "1/(1+exp(-(w0*x0+w1*x1+w2)))" --at w0=2,x0=-1,w1=-3,x1=-2,w2=-3 '
        "--fuse -o neuron.svg",
        'graphc render "sum(W @ x)" --at "W=[[1,2],[3,4]],x=[1,-1]" -o matvec.png',
        "graphc render examples/lecture.py:neuron -o neuron.pdf      # structure only",
    ],
    "codegen": [
        'graphc codegen "1/(1+exp(-(w0*x0+w1*x1+w2)))" --fuse -o neuron_grad.py',
        'graphc codegen "sum(W @ x)" --at "W=[[1,2],[3,4]],x=[1,-1]"   # prints the code',
    ],
    "compare": [
        'graphc compare "1/(1+exp(-(w0*x0+w1*x1+w2)))" --at w0=2,x0=-1,w1=-3,x1=-2,w2=-3 '
        "-o compare.svg",
    ],
    "steps": ['graphc steps "(x + y) * z" --at x=-2,y=5,z=-4 -o frames/'],
    "demo": [
        "graphc demo                  # writes ./graphc-demo/ and its README.md",
        f"{GALLERY_COMMAND}   # the docs' gallery: docs/gallery.md and docs/gallery/",
    ],
}

SOURCE_HELP = (
    "an expression such as '(x + y) * z' (inputs: its names in order of first appearance; "
    "gates: exp, log, sqrt, abs, tanh, sigmoid, relu, max, min, where, sum, mean, matmul, ...), "
    "or FILE.py:NAME, a function in your own Python file. An expression that is a minus "
    "sign and a name alone, such as -x, needs a leading space: ' -x'"
)


class UsageError(GraphcError, ValueError):
    """A command line graphc cannot act on: a missing file, a bad --at value, a bad suffix."""


# ---------------------------------------------------------------- the command line


def main(argv: list[str] | None = None) -> int:
    """Run the `graphc` command; returns the exit status (0, or 2 after an error)."""
    parser = _parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parser.parse_args(_protect_expressions(argv))
    except SystemExit as e:  # --help, --version and argparse's own usage errors
        return e.code if isinstance(e.code, int) else 0
    try:
        with np.errstate(all="ignore"):  # inf and NaN are drawn in warning style, not warned
            args.run(args)
    except KeyboardInterrupt:
        print("graphc: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # the command's contract: one line, exit status 2
        print(f"graphc: error: {_message(e)}", file=sys.stderr)
        return 2
    return 0


_OPTION_LIKE = re.compile(r"--?[A-Za-z][\w-]*(=.*)?")
_TAKES_VALUE = {"--at", "--level", "--digits", "--theme", "-o", "--output", "--repeat", "--sig",
                "--background", "--direction", "--fit", "--stack"}  # fmt: skip


def _protect_expressions(argv: list[str]) -> list[str]:
    """argparse reads "-x*2" as an unknown option; a leading space makes it the expression."""
    return [
        f" {a}"
        if a.startswith("-")
        and len(a) > 1
        and not _OPTION_LIKE.fullmatch(a)
        and (i == 0 or argv[i - 1] not in _TAKES_VALUE)
        else a
        for i, a in enumerate(argv)
    ]


def _message(e: Exception) -> str:
    text = " ".join(str(e).split())
    if isinstance(e, (GraphcError, OSError, ValueError)):
        return text or type(e).__name__
    if type(e).__name__ == "ExecutableNotFound":
        return f"{text}; install Graphviz (e.g. apt-get install graphviz)"
    if isinstance(e, (RecursionError, MemoryError)):
        return "the function is too large or too deeply nested to compile"
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="graphc",
        description="Draw computational graphs with values and gradients on the wires, generate "
        "NumPy gradient code, and compare fused with unfused graphs.",
        epilog="examples:\n"
        + "\n".join(f"  {line}" for lines in EXAMPLES.values() for line in lines),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"graphc {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    def command(name: str, help_text: str, run) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog="examples:\n" + "\n".join(f"  {line}" for line in EXAMPLES[name]),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(run=run)
        return sub

    render = command(
        "render", "draw the circuit, with values and gradients if --at is given", _render
    )
    _source(render)
    _at(render, required=False)
    _fuse(render)
    _drawing(render)
    render.add_argument(
        "-o", "--output", required=True, metavar="OUT", help="the picture: .svg, .pdf or .png"
    )

    codegen = command("codegen", "write the generated NumPy forward/backward module", _codegen)
    _source(codegen)
    _at(codegen, required=False, what="specialise the code to these inputs' shapes")
    _fuse(codegen)
    codegen.add_argument(
        "-o", "--output", metavar="OUT.py", help="the module to write (default: print it)"
    )

    comparison = command(
        "compare", "draw unfused and fused side by side and print the comparison", _compare
    )
    _source(comparison)
    _at(comparison, required=True)
    comparison.add_argument(
        "--level",
        choices=("patterns", "elementwise"),
        default="patterns",
        help="what fusion may do (default: patterns)",
    )
    _repeat(comparison, 7)
    _drawing(comparison, local=False)
    comparison.add_argument(
        "--stack",
        choices=("horizontal", "vertical", "auto"),
        default="horizontal",
        help="the two circuits side by side, one under the other, or what fits a slide",
    )
    comparison.add_argument(
        "-o", "--output", metavar="OUT", help="the picture: .svg, .pdf or .png (default: none)"
    )

    steps = command("steps", "write SVG frames that reveal backprop gate by gate", _steps)
    _source(steps)
    _at(steps, required=True)
    _fuse(steps)
    _drawing(steps)
    steps.add_argument(
        "--forward", action="store_true", help="build the forward pass up one gate per frame first"
    )
    steps.add_argument(
        "--beamer",
        action="store_true",
        help="write the frames as PDF and frames.tex, one beamer slide with overlays",
    )
    steps.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="DIR",
        help="the folder for frame-01.svg, frame-02.svg, ... (created if missing)",
    )

    demo = command(
        "demo",
        "draw the lecture circuits unfused and fused, their comparisons, step frames and "
        "generated code",
        _demo,
    )
    demo.add_argument(
        "-o", "--output", default="graphc-demo", metavar="DIR", help="default: ./graphc-demo"
    )
    _repeat(demo, 3)
    demo.add_argument(
        "--gallery",
        action="store_true",
        help="write the page as DIR.md beside the folder (docs/gallery.md for -o docs/gallery) "
        "instead of DIR/README.md, and leave out timings, which vary from run to run: the same "
        "graphc, NumPy and Graphviz then write byte-identical files, fit for checking in",
    )
    return parser


def _source(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="EXPR|FILE.py:NAME", help=SOURCE_HELP)


def _at(p: argparse.ArgumentParser, required: bool, what: str = "evaluate at these inputs"):
    p.add_argument(
        "--at",
        action="append",
        required=required,
        metavar="NAME=VALUE,...",
        help=f"{what}: numbers or NumPy-style lists, e.g. x=-2,y=5 or "
        "'x=[1,2,3],W=[[1,2],[3,4]]' (may be repeated)",
    )


def _repeat(p: argparse.ArgumentParser, default: int) -> None:
    p.add_argument(
        "--repeat",
        type=_count,
        default=default,
        help=f"timing repetitions of the comparison (default: {default})",
    )


def _fuse(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fuse", action="store_true", help="fuse gates first (see graphc.fuse)")
    p.add_argument(
        "--level",
        choices=("patterns", "elementwise"),
        help="what fusion may do (default: patterns); implies --fuse",
    )


def _drawing(p: argparse.ArgumentParser, local: bool = True) -> None:
    p.add_argument("--digits", type=_digits, default=2, help="decimals shown (default: 2)")
    p.add_argument("--sig", type=_sig, help="significant figures shown instead of --digits")
    if local:
        p.add_argument(
            "--show-local", action="store_true", help="write each gate's local gradient beside it"
        )
    p.add_argument("--theme", choices=("light", "dark"), default="light")
    p.add_argument(
        "--background", help="the background: a colour, or transparent (default: the theme's)"
    )
    p.add_argument(
        "--direction", choices=("LR", "TB"), default="LR", help="left to right or top to bottom"
    )
    p.add_argument("--fit", choices=("16:9", "4:3"), help="size the picture for a slide")


def _sig(text: str) -> int:
    n = _count(text, low=1)
    if n > 15:
        raise argparse.ArgumentTypeError(f"{text} significant figures: use 1 to 15")
    return n


def _digits(text: str) -> int:
    n = _count(text, low=0)
    if n > 15:
        raise argparse.ArgumentTypeError(f"{text} digits: use 0 to 15")
    return n


def _count(text: str, low: int = 1) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < low:
        raise argparse.ArgumentTypeError(f"{text} is too small; use {low} or more")
    return n


# ---------------------------------------------------------------- the commands


def _render(args) -> None:
    f, inputs = _function(args), _inputs(args)
    _check_suffix(args.output)
    picture = f.render(**_drawing_options(args, inputs), **inputs)
    write_picture(picture, args.output)
    print(args.output)


def _codegen(args) -> None:
    f, inputs = _function(args), _inputs(args)
    source = f.source_for(**inputs) if inputs else f.source
    if args.output is None:
        print(source, end="")
        return
    write_atomic(args.output, source)
    print(args.output)


def _compare(args) -> None:
    f, inputs = _load(args.source), _inputs(args)
    _reserved(inputs, ("rules", "level", "repeat"), "graphc compare")
    if args.output is not None:
        _check_suffix(args.output)
    comparison = compare(f, level=args.level, repeat=args.repeat, **inputs)
    picture = None
    if args.output is not None:
        picture = comparison.render(
            digits=args.digits, theme=args.theme, stack=args.stack, sig=args.sig,
            background=args.background, direction=args.direction, fit=args.fit,
        )  # fmt: skip
    print(comparison)
    if picture is not None:
        write_picture(picture, args.output)
        print(args.output)


def _steps(args) -> None:
    f, inputs = _function(args), _inputs(args)
    options = _drawing_options(args, inputs)
    folder = _folder(args.output, "steps writes its frames into a folder")
    if args.beamer:
        named = f._named((), inputs, (), "graphc steps")
        pictures = render.step_pictures(
            f, named, style=render.Style(
                options["digits"], options["sig"], options["theme"], options["background"],
                options["direction"], options["fit"],
            ), show_local=options["show_local"], forward=args.forward,
        )  # fmt: skip
        for path in write_beamer(pictures, folder):
            print(path)
        return
    frames = f.render_steps(**options, forward=args.forward, **inputs)
    for path in write_frames(frames, folder):
        print(path)


def _demo(args) -> None:
    for path in write_demo(Path(args.output), args.repeat, args.gallery):
        print(path, flush=True)


# ---------------------------------------------------------------- functions and inputs


def _function(args) -> Function:
    f = _load(args.source)
    if args.fuse or args.level:
        f = f.fused(level=args.level or "patterns")
    return f


def _load(source: str) -> Function:
    """A Function from an expression string, or from FILE.py:NAME."""
    found = re.fullmatch(r"(.+\.py):([A-Za-z_]\w*)", source.strip())
    if found is None:
        return Function(parse(source))
    return load_from_file(found[1], found[2])


def load_from_file(path: str, name: str) -> Function:
    """The function `name` of the user's Python file at `path` (the file is run to define it)."""
    if not os.path.isfile(path):
        raise UsageError(f"no such file: {path!r} (from {path}:{name})")
    module_name = "graphc_user_" + re.sub(r"\W", "_", Path(path).stem)
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot load {path!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    folder = os.path.dirname(os.path.abspath(path))
    sys.path.insert(0, folder)  # the file may import its neighbours
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as e:  # the user's file, reported in one line
        raise UsageError(f"running {path} failed: {type(e).__name__}: {e}") from None
    finally:
        if sys.path and sys.path[0] == folder:
            del sys.path[0]
    obj = getattr(module, name, None)
    if obj is None:
        defined = sorted(
            k
            for k, v in vars(module).items()
            if not k.startswith("_") and (isinstance(v, Function) or _is_own_function(v, module))
        )
        raise UsageError(
            f"{path} defines no {name!r}; functions there: {', '.join(defined) or 'none'}"
        )
    if isinstance(obj, Function):
        return obj
    if not callable(obj):
        raise UsageError(f"{path}:{name} is a {type(obj).__name__}, not a function")
    return function(obj)


def _is_own_function(v, module) -> bool:
    return callable(v) and getattr(v, "__module__", None) == module.__name__


def parse_at(text: str) -> dict:
    """`x=-2,W=[[1,2],[3,4]]` -> {"x": np.float64(-2.0), "W": array}; values are read, not run."""
    if len(text) > MAX_AT_LENGTH:
        raise UsageError(f"--at is {len(text)} characters long; the limit is {MAX_AT_LENGTH}")
    values: dict = {}
    for item in _split_top_level(text):
        name, eq, value = item.partition("=")
        name = name.strip()
        if not eq or not name:
            raise UsageError(f"--at {item!r}: write NAME=VALUE, e.g. x=-2 or x=[1,2,3]")
        if not name.isidentifier() or keyword.iskeyword(name):
            raise UsageError(f"--at {item!r}: {name!r} is not an input name")
        if name in values:
            raise UsageError(f"--at gives {name!r} twice")
        values[name] = _at_value(name, value.strip())
    return values


def _split_top_level(text: str) -> list[str]:
    """Split on the commas outside brackets."""
    items, depth, start = [], 0, 0
    for i, c in enumerate(text):
        if c in "[(":
            depth += 1
        elif c in "])":
            depth -= 1
        elif c == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    if depth != 0:
        raise UsageError(f"--at {text!r}: unbalanced brackets")
    return [s for s in items if s.strip()] or [""]


_SPECIAL = {"inf": np.inf, "+inf": np.inf, "-inf": -np.inf, "nan": np.nan}


def _at_value(name: str, text: str):
    # scalars are NumPy floats: x/0 and log(0) then give inf for the picture to show, where
    # Python floats would raise ZeroDivisionError inside the generated code
    if text.lower() in _SPECIAL:
        return np.float64(_SPECIAL[text.lower()])
    bad = UsageError(
        f"--at {name}={text:.40}: not a number or a NumPy-style list of numbers, "
        "e.g. -2, 0.5, [1,2,3] or [[1,2],[3,4]]"
    )
    try:
        value = ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise bad from None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return np.float64(value)
    if not isinstance(value, (list, tuple)) or not _all_numbers(value):
        raise bad
    try:
        return np.array(value, dtype=np.float64)
    except (ValueError, TypeError):
        raise UsageError(f"--at {name}: the rows of {text:.40} have different lengths") from None


def _all_numbers(value) -> bool:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, (list, tuple)):
            stack.extend(v)
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            return False
    return True


def _inputs(args) -> dict:
    inputs: dict = {}
    for text in args.at or ():
        for k, v in parse_at(text).items():
            if k in inputs:
                raise UsageError(f"--at gives {k!r} twice")
            inputs[k] = v
    return inputs


def _drawing_options(args, inputs: dict) -> dict:
    options = {
        "digits": args.digits, "sig": args.sig, "show_local": args.show_local,
        "theme": args.theme, "background": args.background, "direction": args.direction,
        "fit": args.fit,
    }  # fmt: skip
    _reserved(inputs, options, "drawing")
    return options


def _reserved(inputs: dict, names, what: str) -> None:
    clash = sorted(set(inputs) & set(names))
    if clash:
        raise UsageError(
            f"an input named {clash[0]!r} clashes with an option of {what}; rename the input"
        )


# ---------------------------------------------------------------- writing files


def _check_suffix(path: str) -> None:
    if Path(path).suffix.lower() not in PICTURE_SUFFIXES:
        raise UsageError(
            f"cannot tell the picture format of {path!r}; end it in {', '.join(PICTURE_SUFFIXES)}"
        )


def _folder(path: str, what: str) -> Path:
    """`path` as the folder a command writes into; a UsageError if a file is in the way."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} is a file; {what}")
    return folder


def write_demo(folder: Path, repeat: int = 3, gallery: bool = False):
    """Draw and compile every lecture circuit into `folder`, yielding each path as it is written
    (the files are made by `draw.gallery`; see there for the page and the gallery)."""
    folder = _folder(folder, "the demo writes into a folder")
    circuits = (
        Circuit(c.name, c.title, c.inputs, f, f.fused())
        for c in LECTURES
        for f in [function(c.fn, name=c.name)]
    )
    pictures = [
        Picture(s.name, s.title, f.fused() if s.fused else f, s.inputs, s.options)
        for s in SLIDES
        for f in [function(s.fn, name=s.name.split("-")[0])]
    ]
    name = folder.resolve().name
    files = demo_files(circuits, name, __version__, repeat, gallery, pictures)
    yield from map(Path, write_files(folder, files))
