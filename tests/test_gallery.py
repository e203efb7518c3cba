"""The checked-in gallery (docs/gallery.md and docs/gallery/) is what `graphc demo --gallery` makes.

The gallery is regenerated into a temporary folder by the command itself (`main([...])`) and
compared byte for byte with the checked-in files, so it cannot go stale: change a gate, a
drawing or the code printer and this test names the files to regenerate. Timings are the one
thing that varies from run to run; the gallery leaves them out, and to keep that so (and the test
fast), the timer here returns NaN: a timing that crept into a table or picture would show as
"nan" and differ from the checked-in file.
"""

import contextlib
import importlib
import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from graphc.cli import GALLERY_COMMAND, main
from graphc.lectures import LECTURES

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")


def graphviz_version(text: str) -> str | None:
    found = re.search(r"graphviz version (\S+)", text)
    return found[1] if found else None


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    """A fresh gallery, made by the documented command, in a folder named like the docs' one."""
    checked_in = graphviz_version((DOCS / "gallery" / "circuit.svg").read_text(encoding="utf-8"))
    dot = subprocess.run(["dot", "-V"], capture_output=True, text=True).stderr
    if graphviz_version(dot) != checked_in:
        pytest.skip(f"the gallery was drawn by Graphviz {checked_in}, not {dot.strip()}")
    timing = importlib.import_module("graphc.draw.compare")
    patch = pytest.MonkeyPatch()
    patch.setattr(timing, "_median_seconds", lambda *args: float("nan"))
    root = tmp_path_factory.mktemp("docs")
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            code = main(["demo", "--gallery", "-o", str(root / "gallery")])
    finally:
        patch.undo()
    assert code == 0
    assert out.getvalue().split()[-1] == str(root / "gallery.md")
    return root


def test_the_gallery_is_up_to_date(regenerated):
    fresh = {"gallery.md": (regenerated / "gallery.md").read_bytes()}
    fresh |= {f"gallery/{k}": v for k, v in files(regenerated / "gallery").items()}
    kept = {"gallery.md": (DOCS / "gallery.md").read_bytes()}
    kept |= {f"gallery/{k}": v for k, v in files(DOCS / "gallery").items()}
    stale = sorted(k for k in fresh.keys() & kept.keys() if fresh[k] != kept[k])
    advice = f"regenerate it from the repository root: {GALLERY_COMMAND}"
    assert not stale, f"docs/ gallery files {stale} are out of date; {advice}"
    assert sorted(fresh.keys() - kept.keys()) == [], f"files missing from docs/; {advice}"
    assert sorted(kept.keys() - fresh.keys()) == [], "files in docs/gallery/ no command makes"


def test_the_gallery_shows_every_lecture_circuit():
    page = (DOCS / "gallery.md").read_text(encoding="utf-8")
    for lecture in LECTURES:
        assert f"## {lecture.title}\n" in page
        assert f"![{lecture.name}](gallery/{lecture.name}.svg)" in page
        assert f"[{lecture.name}.py](gallery/{lecture.name}.py)" in page
        assert f"[{lecture.name}-compare.svg](gallery/{lecture.name}-compare.svg)" in page
    assert "![neuron, fused](gallery/neuron-fused.svg)" in page  # a circuit fusion changes
    assert page.count("```python\n") == len(LECTURES) + 1  # the fused neuron's code too
    assert "| gates | 8 | 5 |" in page  # the neuron's comparison table
    targets = re.findall(r"\]\((gallery/[^)]+)\)", page)
    assert targets and all((DOCS / t).exists() for t in targets)


def test_the_gallery_tables_leave_out_the_timing():
    page = (DOCS / "gallery.md").read_text(encoding="utf-8")
    rows = [line for line in page.splitlines() if line.startswith("| ")]
    assert rows and not any("time" in row or " us " in row or " ms " in row for row in rows)
    for lecture in LECTURES:
        svg = (DOCS / "gallery" / f"{lecture.name}-compare.svg").read_text(encoding="utf-8")
        assert "gates" in svg and "time" not in svg


def test_the_readme_picture_is_from_the_gallery():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert pictures == ["docs/gallery/neuron.svg"]
    assert (ROOT / pictures[0]).is_file()
    top = readme.split("\n## ")[0]  # before the first section
    assert pictures[0] in top and "(docs/gallery.md)" in top


def test_the_gallery_shows_the_slides_of_issue_13():
    from graphc.lectures import SLIDES

    page = (DOCS / "gallery.md").read_text(encoding="utf-8")
    assert "## More slides" in page
    for slide in SLIDES:
        assert f"![{slide.name}](gallery/{slide.name}.svg)" in page
        assert (DOCS / "gallery" / f"{slide.name}.svg").is_file()
    assert "![fanout](gallery/fanout.svg)" in page  # the other fork circuit, x*x + x
    fitted = (DOCS / "gallery" / "two_layer_net-16x9.svg").read_text(encoding="utf-8")
    size = re.search(r'width="([\d.]+)pt" height="([\d.]+)pt"', fitted)
    width, height = float(size[1]), float(size[2])
    assert width <= 1920 and height <= 1080 and (width == 1920 or height == 1080)  # fills 16:9
    local = (DOCS / "gallery" / "max_gate-local.svg").read_text(encoding="utf-8")
    assert "[z ≥ w]" in local
    frames = sorted((DOCS / "gallery" / "circuit-steps").glob("frame-*.svg"))
    assert len(frames) == 5  # values, seed, two gates, the full picture
