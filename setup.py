"""The package index's long description: the README with its links made absolute.

Everything else is in pyproject.toml. The README links to docs/ and examples/ relatively, so
that it reads right in the repository and in an unpacked sdist (tests/test_docs.py checks every
such link points at a file); a package index shows the README away from those files, so the
description it gets has each relative link and picture rewritten to an address under the
project's Repository URL (tests/test_packaging.py checks the built metadata).
"""

import re
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent


def repository() -> str:
    """[project.urls] Repository of pyproject.toml (read with a pattern: Python 3.10 has no
    tomllib, and setup.py runs before any dependency is installed)."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    return re.search(r'^Repository\s*=\s*"([^"]+)"', text, re.M).group(1).rstrip("/")


def absolute_links(markdown: str, base: str) -> str:
    """`[text](docs/x.md)` -> `[text](BASE/blob/main/docs/x.md)`; pictures `![..](p.svg)` ->
    `BASE/raw/main/p.svg`, so the index can show them; web addresses and #anchors stay."""

    def absolute(found: re.Match) -> str:
        bang, text, target = found.groups()
        if re.match(r"[a-z][a-z0-9+.-]*:|#", target):
            return found.group(0)
        kind = "raw" if bang else "blob"
        return f"{bang}[{text}]({base}/{kind}/main/{target})"

    return re.sub(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)", absolute, markdown)


setup(
    long_description=absolute_links((ROOT / "README.md").read_text(encoding="utf-8"), repository()),
    long_description_content_type="text/markdown",
)
