"""The README and the user guide run as shown: every ```python block is executed in order, in one
namespace per file, and its output must equal the ```text block that follows it."""

import contextlib
import importlib.util
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ["README.md", "docs/index.md", "docs/fusion.md", "docs/modes.md"]


def blocks(path: Path):
    return re.findall(r"```(\w*)\n(.*?)```", path.read_text(encoding="utf-8"), re.S)


@pytest.mark.parametrize("name", DOCS)
def test_snippets_print_what_the_docs_show(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # snippets that save files write them here
    found = blocks(ROOT / name)
    namespace = {"__name__": "__docs__"}
    checked = 0
    for i, (lang, body) in enumerate(found):
        if lang != "python":
            continue
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(body, f"{name} block {i}", "exec"), namespace)
        following = found[i + 1] if i + 1 < len(found) else None
        if following and following[0] == "text":
            assert out.getvalue().strip() == following[1].strip(), f"{name} block {i}"
            checked += 1
    assert checked > 0, f"{name} has no python block with its output shown"


def test_fusion_guide_lists_every_rule():
    from graphc.passes.fusion import RULE_NAMES

    text = (ROOT / "docs" / "fusion.md").read_text(encoding="utf-8")
    missing = [name for name in RULE_NAMES if f"`{name}`" not in text]
    assert not missing, f"docs/fusion.md does not describe rules {missing}"


def test_relative_links_and_pictures_point_at_files():
    """Every link and picture in the README and docs/ that is not a web address exists."""
    broken = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            path = target.split("#")[0]
            if path and "://" not in path and not (page.parent / path).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken


def test_readme_names_the_floors_that_ci_tests():
    """The README's supported versions are the pins scripts/test-floors installs."""
    spec = importlib.util.spec_from_file_location("floors", ROOT / "scripts" / "floors.py")
    floors = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(floors)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Supported versions", 1)[1].split("\n## ", 1)[0]
    assert f"Python {floors.oldest_python()}+" in section
    missing = [pin for pin in floors.pins() if f"`{pin}`" not in section]
    assert not missing, f"the README's supported versions do not name {missing}"
