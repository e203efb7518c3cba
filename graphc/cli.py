"""The `graphc` command: render, codegen, compare, steps, explore and demo from a shell.

Stage: top (with `files` and `__main__`, the modules that touch files and processes). Parses the
command line and dispatches; every file it writes goes through `files`.

A function comes from an expression string, read by the whitelist parser of `front.parse` (never
evaluated; `-` reads it from standard input), or from `MODULE:NAME` or `FILE.py:NAME`, a
function in an importable module or in the user's own file. `-o -` writes to standard output.
Every output file is written atomically, and only after everything it holds has been computed,
so a failed run leaves an existing file as it was. An error prints one line, `graphc: error:
<message>` (with the file and line when the user's own code failed; `--traceback` prints the
whole traceback), and exits with status 2 for a command line graphc cannot act on, or 1 when
the work itself failed. `--help` and `--version` answer without loading the compiler (SymPy and
NumPy load only when a command runs). `graphc demo --gallery -o docs/gallery` writes the docs'
checked-in gallery: the demo without timings, so its files are byte-identical from run to run
(tests/test_gallery.py regenerates and compares them).
"""

from __future__ import annotations

import argparse
import keyword
import os
import re
import sys
import sysconfig
import traceback
from pathlib import Path

from . import __version__
from .ir.errors import GraphcError

PICTURE_FORMATS = ("svg", "pdf", "png", "dot")
PICTURE_SUFFIXES = (".svg", ".pdf", ".png", ".dot", ".gv")
MAX_AT_LENGTH = 1_000_000  # characters of --at values; a literal list is read, never run
GALLERY_COMMAND = "graphc demo --gallery -o docs/gallery"  # as draw.gallery writes it
USAGE, FAILED = 2, 1  # exit statuses: a command line graphc cannot act on; work that failed

EXAMPLES = {
    "render": [
        'graphc render "(x + y) * z" --at x=-2,y=5,z=-4 -o circuit.svg',
        'graphc render "1/(1+exp(-(w0*x0+w1*x1+w2)))" --at w0=2,x0=-1,w1=-3,x1=-2,w2=-3 '
        "--fuse -o neuron.svg",
        'graphc render "sum(W @ x)" --at "W=[[1,2],[3,4]],x=[1,-1]" -o matvec.png --dpi 200',
        "graphc render graphc.lectures:neuron --at w0=2,x0=-1,w1=-3,x1=-2,w2=-3 -o neuron.pdf",
        "graphc render mycircuits.py:loss -o - --format png > loss.png   # a function of yours",
    ],
    "codegen": [
        'graphc codegen "1/(1+exp(-(w0*x0+w1*x1+w2)))" --fuse -o neuron_grad.py',
        'graphc codegen "sum(W @ x)" --at "W=[[1,2],[3,4]],x=[1,-1]"   # prints the code',
        'echo "(x + y) * z" | graphc codegen -                   # the expression from stdin',
    ],
    "compare": [
        'graphc compare "1/(1+exp(-(w0*x0+w1*x1+w2)))" --at w0=2,x0=-1,w1=-3,x1=-2,w2=-3 '
        "-o compare.svg",
    ],
    "steps": ['graphc steps "(x + y) * z" --at x=-2,y=5,z=-4 -o frames/'],
    "compare-modes": [
        'graphc compare-modes "1/(1+exp(-(w0*x0+w1*x1+w2)))" --at w0=2,x0=-1,w1=-3,x1=-2,w2=-3 '
        "--along w0 -o modes.svg",
    ],
    "explore": [
        'graphc explore "(x + y) * z" --at x=-2,y=5,z=-4 -o circuit.html',
        'graphc explore "1/(1+exp(-(w0*x0+w1*x1+w2)))" --at w0=2,x0=-1,w1=-3,x1=-2,w2=-3 '
        "--compare --quiz -o neuron.html",
    ],
    "demo": [
        "graphc demo                  # writes ./graphc-demo/ and its README.md",
        f"{GALLERY_COMMAND}   # the docs' gallery: docs/gallery.md and docs/gallery/",
    ],
}

SOURCE_HELP = (
    "an expression such as '(x + y) * z' (inputs: its names in order of first appearance; "
    "gates: exp, log, sqrt, abs, tanh, sigmoid, relu, max, min, where, sum, mean, matmul, ...); "
    "- to read the expression from standard input; MODULE:NAME, a function in an importable "
    "module (graphc.lectures:neuron); or FILE.py:NAME, a function in your own Python file. An "
    "expression that is a minus sign and a name alone, such as -x, needs a leading space (' -x') "
    "or a -- before it"
)


class UsageError(GraphcError, ValueError):
    """A command line graphc cannot act on: a missing file, a bad --at value, a bad suffix."""


class UserCodeError(GraphcError):
    """The user's own module or file failed while graphc ran it; the failure is the cause."""


# ---------------------------------------------------------------- the command line


def main(argv: list[str] | None = None) -> int:
    """Run the `graphc` command; returns the exit status: 0, 2 for a command line graphc cannot
    act on (USAGE), 1 when the work failed (FAILED), 130 when interrupted."""
    parser = _parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parser.parse_args(_protect_expressions(argv))
    except SystemExit as e:  # --help, --version and argparse's own usage errors
        return e.code if isinstance(e.code, int) else 0
    try:
        import numpy as np

        with np.errstate(all="ignore"):  # inf and NaN are drawn in warning style, not warned
            args.run(args)
    except KeyboardInterrupt:
        print("graphc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `graphc ... -o - | head`: the reader left; nothing to say
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return FAILED
    except Exception as e:  # the command's contract: one line, and a status saying whose fault
        if args.traceback:  # the user's own failure alone, where it was theirs
            traceback.print_exception(e.__cause__ if isinstance(e, UserCodeError) else e)
        print(f"graphc: error: {_where(e)}{_message(e)}", file=sys.stderr)
        return USAGE if _is_usage(e) else FAILED
    return 0


def _is_usage(e: Exception) -> bool:
    """A command line graphc cannot act on, rather than work that failed."""
    from .front.parse import ParseError

    return isinstance(e, (UsageError, ParseError))


_OPTION_LIKE = re.compile(r"--?[A-Za-z][\w-]*(=.*)?")
_TAKES_VALUE = {
    "--at", "--level", "--digits", "--theme", "-o", "--output", "--repeat", "--format", "--dpi",
    "--along", "--sig", "--background", "--direction", "--fit", "--stack",
}  # fmt: skip


def _protect_expressions(argv: list[str]) -> list[str]:
    """argparse reads "-x*2" as an unknown option; a leading space makes it the expression.
    After `--` every argument is left as it is (argparse reads them all as positional)."""
    end = argv.index("--") if "--" in argv else len(argv)
    return [
        f" {a}"
        if i < end
        and a.startswith("-")
        and len(a) > 1
        and not _OPTION_LIKE.fullmatch(a)
        and (i == 0 or argv[i - 1] not in _TAKES_VALUE)
        else a
        for i, a in enumerate(argv)
    ]


def _message(e: BaseException) -> str:
    if isinstance(e, UserCodeError) and e.__cause__ is not None:
        return _message(e.__cause__)
    if isinstance(e, OSError) and e.filename and e.strerror:
        return f"{e.filename}: {e.strerror}"
    if isinstance(e, SyntaxError) and not isinstance(e, GraphcError):
        return f"SyntaxError: {e.msg}"
    text = " ".join(str(e).split())
    if isinstance(e, GraphcError):
        return text or type(e).__name__
    if type(e).__name__ == "ExecutableNotFound":
        return f"{text}; install Graphviz (e.g. apt-get install graphviz)"
    if isinstance(e, (RecursionError, MemoryError)):
        return "the function is too large or too deeply nested to compile"
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _where(e: BaseException) -> str:
    """ "mine.py, line 3, in f: " for an error raised in the user's own code, else ""."""
    e = e.__cause__ if isinstance(e, UserCodeError) and e.__cause__ is not None else e
    if isinstance(e, SyntaxError) and e.filename and not e.filename.startswith("<"):
        return f"{_shown(e.filename)}, line {e.lineno}: "
    found = [f for f in traceback.extract_tb(e.__traceback__) if _is_users(f.filename)]
    if not found:
        return ""
    frame = found[-1]
    return f"{_shown(frame.filename)}, line {frame.lineno}, in {frame.name}: "


_NOT_USERS = tuple(
    os.path.realpath(p) + os.sep
    for p in {
        os.path.dirname(os.path.abspath(__file__)),
        *(sysconfig.get_path(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")),
    }
    if p
)


def _is_users(filename: str) -> bool:
    """A file of the user's, not graphc's, Python's or an installed package's."""
    if filename.startswith("<"):  # generated code, <string>, <frozen ...>
        return False
    return not os.path.realpath(filename).startswith(_NOT_USERS)


def _shown(path: str) -> str:
    """`path` relative to the working folder when it lies inside it, as the user typed it."""
    relative = os.path.relpath(os.path.abspath(path))
    return path if relative.startswith("..") else relative


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
        sub.add_argument(
            "--traceback",
            action="store_true",
            help="on an error, print the whole traceback before the one-line message",
        )
        return sub

    render = command(
        "render", "draw the circuit, with values and gradients if --at is given", _render
    )
    _source(render)
    _at(render, required=False)
    _fuse(render)
    _drawing(render)
    render.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="the picture: .svg, .pdf, .png or .dot/.gv (Graphviz's source), or - for "
        "standard output",
    )
    _format(render)

    codegen = command("codegen", "write the generated NumPy forward/backward module", _codegen)
    _source(codegen)
    _at(codegen, required=False, what="specialise the code to these inputs' shapes")
    _fuse(codegen)
    codegen.add_argument(
        "-o", "--output", metavar="OUT.py", help="the module to write (default or -: print it)"
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
        "-o",
        "--output",
        metavar="OUT",
        help="the picture: .svg, .pdf, .png or .dot/.gv, or - for standard output (the table "
        "then goes to standard error; default: no picture)",
    )
    _format(comparison)

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

    both = command(
        "compare-modes",
        "draw one circuit in reverse mode (gradients) and forward mode (tangents), with the "
        "passes each needs",
        _compare_modes,
    )
    _source(both)
    _at(both, required=True)
    _fuse(both)
    both.add_argument(
        "--along",
        action="append",
        metavar="NAME",
        help="the input(s) whose tangent is 1 in forward mode (default: the first input)",
    )
    both.add_argument("--digits", type=_digits, default=2, help="decimals shown (default: 2)")
    both.add_argument("--theme", choices=("light", "dark"), default="light")
    both.add_argument(
        "-o", "--output", required=True, metavar="OUT", help="the picture: .svg, .pdf or .png"
    )
    _format(both)
    explore = command(
        "explore",
        "write an interactive page that steps through forward and backward (one HTML file)",
        _explore,
    )
    _source(explore)
    _at(explore, required=True)
    _fuse(explore)
    explore.add_argument(
        "--compare", action="store_true", help="a toggle between the unfused and fused circuit"
    )
    explore.add_argument("--quiz", action="store_true", help='hide gradients as "?" until clicked')
    explore.add_argument(
        "--fit", choices=("16:9", "4:3"), help="draw the circuit as the slides fit it"
    )
    explore.add_argument("-o", "--output", required=True, metavar="OUT.html", help="the page")

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
    p.add_argument("source", metavar="EXPR|-|MODULE:NAME|FILE.py:NAME", help=SOURCE_HELP)


def _format(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--format",
        choices=PICTURE_FORMATS,
        help="the picture's format (default: from OUT's suffix; svg for -o -)",
    )
    p.add_argument(
        "--dpi",
        type=_count,
        help="dots per inch of a PNG (default: Graphviz's 96); SVG and PDF are vector pictures",
    )


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
    fmt = _picture_format(args)
    f, inputs = _function(args), _inputs(args)
    _check_inputs(f, inputs)
    picture = f.render(**_drawing_options(args, inputs), **inputs)
    _write_picture(picture, args, fmt)


def _codegen(args) -> None:
    from .files import write_output

    f, inputs = _function(args), _inputs(args)
    _check_inputs(f, inputs)
    source = f.source_for(**inputs) if inputs else f.source
    if args.output in (None, "-"):
        write_output("-", source)
        return
    write_output(args.output, source)
    print(args.output)


def _compare(args) -> None:
    from .draw.compare import compare

    fmt = _picture_format(args) if args.output is not None else "svg"
    f, inputs = _load(args.source), _inputs(args)
    _reserved(inputs, ("rules", "level", "repeat"), "graphc compare")
    _check_inputs(f, inputs)
    comparison = compare(f, level=args.level, repeat=args.repeat, **inputs)
    picture = None
    if args.output is not None:
        picture = comparison.render(
            digits=args.digits, theme=args.theme, stack=args.stack, sig=args.sig,
            background=args.background, direction=args.direction, fit=args.fit,
        )  # fmt: skip
    print(comparison, file=sys.stderr if args.output == "-" else sys.stdout)
    if picture is not None:
        _write_picture(picture, args, fmt)


def _steps(args) -> None:
    from .draw import render
    from .files import write_beamer, write_frames

    if args.output == "-":
        raise UsageError("steps writes a folder of frames; name one with -o, e.g. -o frames/")
    f, inputs = _function(args), _inputs(args)
    _check_inputs(f, inputs)
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


def _compare_modes(args) -> None:
    import numpy as np

    fmt = _picture_format(args)
    f, inputs = _function(args), _inputs(args)
    _check_inputs(f, inputs)
    _reserved(inputs, ("tangents", "digits", "theme"), "graphc compare-modes")
    along = args.along or [f.inputs[0]]
    unknown = [k for k in along if k not in f.inputs]
    if unknown:
        raise UsageError(f"--along {unknown[0]}: not an input; the inputs are {list(f.inputs)}")
    ones = {k: np.ones(np.shape(inputs.get(k, 0.0))) for k in along}
    tangents = {k: (float(t) if t.shape == () else t) for k, t in ones.items()}
    picture = f.compare_modes(tangents=tangents, digits=args.digits, theme=args.theme, **inputs)
    _write_picture(picture, args, fmt)


def _explore(args) -> None:
    from .draw.compare import compare

    inputs = _inputs(args)
    if args.output != "-" and Path(args.output).suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"the explorer writes an HTML page; end {args.output!r} in .html")
    if args.compare:
        _reserved(inputs, ("rules", "level", "repeat", "quiz", "fit"), "graphc explore --compare")
        f = _load(args.source)
        _check_inputs(f, inputs)
        comparison = compare(f, level=args.level or "patterns", repeat=1, **inputs)
        page = comparison.explore(quiz=args.quiz, fit=args.fit)
    else:
        f = _function(args)
        _reserved(inputs, ("quiz", "fit"), "graphc explore")
        _check_inputs(f, inputs)
        page = f.explore(quiz=args.quiz, fit=args.fit, **inputs)
    if args.output == "-":
        sys.stdout.write(page.html)
    else:
        print(page.save(args.output))


def _demo(args) -> None:
    if args.output == "-":
        raise UsageError("the demo writes a folder; name one with -o, e.g. -o graphc-demo")
    for path in write_demo(Path(args.output), args.repeat, args.gallery):
        print(path, flush=True)


# ---------------------------------------------------------------- functions and inputs


def _function(args):
    f = _load(args.source)
    if args.fuse or args.level:
        f = f.fused(level=args.level or "patterns")
    return f


_NAME = r"[A-Za-z_]\w*"
_MODULE_REFERENCE = re.compile(rf"({_NAME}(?:\.{_NAME})*):({_NAME})")
_FILE_REFERENCE = re.compile(rf"(.+\.py):({_NAME})")


def _load(source: str):
    """A Function from an expression string ("-": read from standard input), from
    MODULE:NAME, or from FILE.py:NAME."""
    from .front.parse import parse
    from .function import Function

    if source == "-":
        source = sys.stdin.read()
        if not source.strip():
            raise UsageError("the expression is read from standard input (-), which was empty")
    source = source.strip()
    found = _FILE_REFERENCE.fullmatch(source)
    if found is not None:
        return load_from_file(found[1], found[2])
    found = _MODULE_REFERENCE.fullmatch(source)
    if found is not None:
        return load_from_module(found[1], found[2])
    if source.endswith(".py") or os.path.isfile(source):
        raise UsageError(
            f"{source} is a file; name the function in it, as {source}:NAME "
            "(an expression is written out, such as '(x + y) * z')"
        )
    return Function(parse(source))


def load_from_file(path: str, name: str):
    """The function `name` of the user's Python file at `path` (the file is run to define it)."""
    import importlib.util

    if not os.path.isfile(path):
        raise UsageError(f"no such file: {path!r} (from {path}:{name})")
    stem = re.sub(r"\W", "_", Path(path).stem)
    spec = importlib.util.spec_from_file_location(stem, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot load {path!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    folder = os.path.dirname(os.path.abspath(path))
    sys.path.insert(0, folder)  # the file may import its neighbours
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as e:  # the user's file: reported with its file and line
        raise UserCodeError(f"running {path} failed") from e
    finally:
        if sys.path and sys.path[0] == folder:
            del sys.path[0]
    return _function_in(module, name, path)


def load_from_module(dotted: str, name: str):
    """The function `name` of the module `dotted`, imported as `python -c "import ..."` would
    (the working folder first on the path): graphc.lectures:neuron, mypackage.losses:hinge."""
    import importlib

    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(dotted)
    except ModuleNotFoundError as e:
        if e.name is not None and dotted.startswith(e.name):  # the module itself is missing
            raise UsageError(
                f"no module named {e.name!r} (from {dotted}:{name}); name a module Python can "
                "import, or a file, as FILE.py:NAME"
            ) from None
        raise UserCodeError(f"importing {dotted} failed") from e
    except (Exception, SystemExit) as e:
        raise UserCodeError(f"importing {dotted} failed") from e
    finally:
        if sys.path and sys.path[0] == os.getcwd():
            del sys.path[0]
    return _function_in(module, name, dotted)


def _function_in(module, name: str, where: str):
    """`module.name` as a Function (a plain Python function is traced)."""
    from .function import Function, function

    obj = getattr(module, name, None)
    if obj is None:
        defined = sorted(
            k
            for k, v in vars(module).items()
            if not k.startswith("_") and (isinstance(v, Function) or _is_own_function(v, module))
        )
        raise UsageError(
            f"{where} defines no {name!r}; functions there: {', '.join(defined) or 'none'}"
        )
    if isinstance(obj, Function):
        return obj
    if not callable(obj):
        raise UsageError(f"{where}:{name} is a {type(obj).__name__}, not a function")
    try:
        return function(obj)
    except GraphcError:
        raise
    except Exception as e:  # an error in the user's function while it was traced
        raise UserCodeError(f"tracing {where}:{name} failed") from e


def _is_own_function(v, module) -> bool:
    return callable(v) and getattr(v, "__module__", None) == module.__name__


def _check_inputs(f, inputs: dict) -> None:
    """--at names every input of `f` and nothing else (or nothing at all, where allowed)."""
    if not inputs:
        return
    missing = [k for k in f.inputs if k not in inputs]
    unknown = [k for k in inputs if k not in f.inputs]
    if unknown:
        raise UsageError(
            f"--at gives {unknown[0]!r}, which is not an input of {f.__name__}; its inputs are "
            f"{', '.join(f.inputs) or 'none'}"
        )
    if missing:
        raise UsageError(
            f"--at gives no value for {', '.join(map(repr, missing))}; {f.__name__} takes "
            f"{', '.join(f.inputs)}"
        )


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


_SPECIAL = {"inf": float("inf"), "+inf": float("inf"), "-inf": float("-inf"), "nan": float("nan")}


def _at_value(name: str, text: str):
    import ast

    import numpy as np

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


def _picture_format(args) -> str:
    """The picture format: --format, else OUT's suffix (.gv is DOT), else svg for -o -.
    Checked before any work, so a bad name costs nothing."""
    if args.format is not None:
        return args.format
    if args.output == "-":
        return "svg"
    suffix = Path(args.output).suffix.lower()
    if suffix not in PICTURE_SUFFIXES:
        raise UsageError(
            f"cannot tell the picture format of {args.output!r}; end it in "
            f"{', '.join(PICTURE_SUFFIXES)}, or give --format {'|'.join(PICTURE_FORMATS)}"
        )
    return "dot" if suffix == ".gv" else suffix[1:]


def _write_picture(picture, args, fmt: str) -> None:
    from .files import write_picture

    write_picture(picture, args.output, fmt=fmt, dpi=args.dpi)
    if args.output != "-":
        print(args.output)


def _folder(path: str | Path, what: str) -> Path:
    """`path` as the folder a command writes into; a UsageError if a file is in the way."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} is a file; {what}")
    return folder


def write_demo(folder: Path, repeat: int = 3, gallery: bool = False):
    """Draw and compile every lecture circuit into `folder`, yielding each path as it is written
    (the files are made by `draw.gallery`; see there for the page and the gallery)."""
    from .draw.gallery import Circuit, Picture, demo_files
    from .files import write_files
    from .function import function
    from .lectures import LECTURES, SLIDES

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
