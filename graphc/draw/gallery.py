"""The gallery: every lecture circuit's pictures, code, comparison and page, as files to write.

Stage: draw (compiled lecture circuits -> the files of `graphc demo`). Imports `compare`; works on
`Function` objects it is given (it compiles nothing itself) and writes nothing: `demo_files`
yields each file's name and content, and the command line writes them (`graphc.files`).

`graphc demo` writes the files into a folder with the page as its README.md; `graphc demo
--gallery -o docs/gallery` writes the docs' checked-in gallery, with the page beside the folder
(docs/gallery.md) and no timings, so the same versions of graphc, NumPy and Graphviz write
byte-identical files on every run (tests/test_gallery.py regenerates and compares them).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .compare import Comparison, compare

GALLERY_COMMAND = "graphc demo --gallery -o docs/gallery"  # run from the repository's root
TIMING_ROW = "forward+backward time"


@dataclass(frozen=True)
class File:
    """One file of the demo: its path relative to the demo's folder, and what it holds (text, or
    for a folder of step frames the frames' SVG texts, written as frame-01.svg, ...)."""

    path: str
    content: str | list[str]


@dataclass(frozen=True)
class Circuit:
    """A lecture circuit, compiled: unfused and fused functions and where they are drawn."""

    name: str
    title: str
    inputs: dict
    unfused: object  # graphc.Function
    fused: object


class _Untimed(Comparison):
    """A comparison without its timing row, which varies from run to run (the gallery's)."""

    def rows(self) -> list[tuple[str, str, str]]:
        return [row for row in super().rows() if row[0] != TIMING_ROW]


def frame_names(count: int) -> list[str]:
    """frame-01.svg, frame-02.svg, ... (as many digits as the count needs, at least two)."""
    width = max(2, len(str(count)))
    return [f"frame-{i:0{width}d}.svg" for i in range(1, count + 1)]


@dataclass(frozen=True)
class Picture:
    """One more picture for the page: a function drawn at inputs with drawing options."""

    name: str
    title: str
    function: object  # graphc.Function
    inputs: dict
    options: dict


def demo_files(
    circuits: Iterable[Circuit],
    folder_name: str,
    version: str,
    repeat: int = 3,
    gallery: bool = False,
    pictures: Iterable[Picture] = (),
) -> Iterator[File]:
    """The demo's files, one circuit after the other (each as soon as it is made), then the
    further `pictures`, then its page: README.md in the folder, or with `gallery`
    `../<folder_name>.md` beside it."""
    page = _page_header(gallery, version)
    link = f"{folder_name}/" if gallery else ""
    for k, circuit in enumerate(circuits):
        made = _made(circuit, repeat, gallery, steps=k == 0)
        for file, content in (*made.pictures.items(), *made.code.items()):
            yield File(file, content)
        if made.frames:
            yield File(f"{circuit.name}-steps", made.frames)
        page += _section(circuit, made, link)
    if pictures:
        page += ["", "## More slides", ""]
    for p in pictures:
        file = f"{p.name}.svg"
        yield File(file, p.function.svg(**p.options, **p.inputs))
        shown = ", ".join(f"{k}={v!r}" for k, v in p.options.items())
        page += [f"{p.title} ([{file}]({link}{file}){', ' + shown if shown else ''}):", ""]
        page += [f"![{p.name}]({link}{file})", ""]
    yield File(f"../{folder_name}.md" if gallery else "README.md", "\n".join(page) + "\n")


@dataclass
class _Made:
    """What was made for one lecture circuit (file name -> content), for its page section."""

    pictures: dict[str, str]
    code: dict[str, str]
    table: list[tuple[str, str, str]]
    frames: list[str]


def _made(circuit: Circuit, repeat: int, gallery: bool, steps: bool) -> _Made:
    """One circuit's pictures, code and (for the first circuit) step frames."""
    name, inputs, f, fused = circuit.name, circuit.inputs, circuit.unfused, circuit.fused
    comparison = compare(f, repeat=1 if gallery else repeat, **inputs)
    if gallery:
        comparison = _Untimed(
            comparison.unfused, comparison.fused, comparison.sides, comparison.value_diff,
            comparison.grad_diffs, comparison.inputs,
        )  # fmt: skip
    return _Made(
        pictures={
            f"{name}.svg": f.svg(**inputs),
            f"{name}-fused.svg": fused.svg(**inputs),
            f"{name}-compare.svg": comparison.svg,
        },
        code={f"{name}.py": f.source_for(**inputs), f"{name}-fused.py": fused.source_for(**inputs)},
        table=comparison.rows(),
        frames=f.render_steps(**inputs) if steps else [],
    )


def _page_header(gallery: bool, version: str) -> list[str]:
    about = (
        "The circuits of the backpropagation lecture (`graphc/lectures.py`), drawn and compiled "
        f"by graphc {version}: forward values above the wires (green), gradients below "
        "(red), the total gradient of a value read twice at its fork (Σ); each unfused and "
        "fused, with its generated NumPy code and the comparison of the two."
    )
    if not gallery:
        return ["# graphc demo", "", about, "", "Made by `graphc demo`."]
    return [
        "# Gallery",
        "",
        about,
        "",
        f"Made by `{GALLERY_COMMAND}`, which rewrites this page and the files in `gallery/`; "
        "`tests/test_gallery.py` fails when they are out of date. The tables leave out the "
        "forward+backward time, which varies from run to run: `graphc compare` measures it "
        '(for example `graphc compare "1/(1+exp(-(w0*x0+w1*x1+w2)))" '
        "--at w0=2,x0=-1,w1=-3,x1=-2,w2=-3`), and [fusion.md](fusion.md) reports measured "
        "speed-ups.",
    ]


def _section(circuit: Circuit, made: _Made, link: str) -> list[str]:
    """A circuit's part of the page: pictures, comparison table, code; `link` prefixes files."""
    name, inputs = circuit.name, circuit.inputs

    def ref(file: str) -> str:
        return f"[{file}]({link}{file})"

    unfused_svg, fused_svg, compare_svg = made.pictures
    unfused_py, fused_py = made.code
    at = ", ".join(f"{k}={v:g}" for k, v in inputs.items())
    lines = ["", f"## {circuit.title}", "", f"At {at}.", ""]
    lines += [f"Unfused ({ref(unfused_svg)}):", "", f"![{name}]({link}{unfused_svg})", ""]
    if made.pictures[fused_svg] == made.pictures[unfused_svg]:
        lines += [f"Fused ({ref(fused_svg)}): the same circuit, no fusion rule applies.", ""]
    else:
        lines += [f"Fused ({ref(fused_svg)}):", "", f"![{name}, fused]({link}{fused_svg})", ""]
    lines += [f"Unfused and fused compared ({ref(compare_svg)} draws both beside this table):"]
    lines += ["", *_markdown_table(made.table), ""]
    lines += [f"Generated code, unfused ({ref(unfused_py)}):", ""]
    lines += ["```python", made.code[unfused_py].rstrip("\n"), "```", ""]
    if made.code[fused_py] == made.code[unfused_py]:
        lines += [f"Generated code, fused ({ref(fused_py)}): the same."]
    else:
        lines += [f"Generated code, fused ({ref(fused_py)}):", ""]
        lines += ["```python", made.code[fused_py].rstrip("\n"), "```"]
    if made.frames:
        steps = f"{name}-steps/"
        lines += [
            "",
            f"A slide build-up ({ref(steps)}, as `graphc steps` makes it): {len(made.frames)} "
            "frames: the forward values, the seed (the output's gradient alone), one frame per "
            "gate in backward order with its computation written on its input wires, and the "
            "full picture.",
        ]
        for file in frame_names(len(made.frames)):
            stem = file.removesuffix(".svg")
            lines += ["", f"![{name}, {stem}]({link}{steps}{file})"]
    return lines


def _markdown_table(rows) -> list[str]:
    """Rows of cells (the first is the header) as a Markdown table, numbers right-aligned."""

    def cells(row) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |"

    return [cells(rows[0]), "|:--" + "|--:" * (len(rows[0]) - 1) + "|", *map(cells, rows[1:])]
