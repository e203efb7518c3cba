"""Headless Chromium for the explorer's tests: open a page, read the DOM after its script ran.

Debian's `chromium` (scripts/setup-env.sh installs it with GRAPHC_NEED_CHROMIUM=1). A page is
opened from `file://` with a fresh profile and no network services, run for a few seconds of
virtual time, and its DOM dumped (`--dump-dom`); the page's console messages come from
Chromium's own log (`--enable-logging=stderr`), one `CONSOLE` line each.
"""

from __future__ import annotations

import html.parser
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--enable-logging=stderr", "--v=0", "--virtual-time-budget=3000",
]  # fmt: skip


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run(path: Path, fragment: str, action: list[str]) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        url = Path(path).resolve().as_uri() + (f"#{fragment}" if fragment else "")
        command = [chromium(), *FLAGS, f"--user-data-dir={profile}", *action, url]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@dataclass
class Opened:
    dom: str
    console: list[str]  # the page's console messages (errors included), as Chromium logs them


def open_page(path: Path, fragment: str = "") -> Opened:
    """The DOM of the page at `path` (opened at `#fragment`) after its script ran."""
    done = _run(path, fragment, ["--dump-dom"])
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return Opened(done.stdout, console)


def screenshot(path: Path, fragment: str, png: Path, size: str = "1280,800") -> None:
    _run(path, fragment, ["--hide-scrollbars", f"--window-size={size}", f"--screenshot={png}"])


# ---------------------------------------------------------------- reading the DOM


@dataclass
class Element:
    tag: str
    attrs: dict
    text: str = ""
    children: list = field(default_factory=list)
    parent: Element | None = None

    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def find(self, tag: str) -> list[Element]:
        found, stack = [], list(self.children)
        while stack:
            e = stack.pop(0)
            if e.tag == tag:
                found.append(e)
            stack[0:0] = e.children
        return found

    def all_text(self) -> str:
        return self.text + "".join(c.all_text() for c in self.children)


VOID = {"meta", "input", "br", "img", "link", "hr", "path", "polygon", "ellipse", "polyline"}


class _Tree(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Element("root", {})
        self.at = self.root

    def handle_starttag(self, tag, attrs):
        e = Element(tag, dict(attrs), parent=self.at)
        self.at.children.append(e)
        if tag not in VOID:
            self.at = e

    def handle_startendtag(self, tag, attrs):
        self.at.children.append(Element(tag, dict(attrs), parent=self.at))

    def handle_endtag(self, tag):
        e = self.at
        while e is not None and e.tag != tag:
            e = e.parent
        if e is not None and e.parent is not None:
            self.at = e.parent

    def handle_data(self, data):
        if self.at.children:  # text after a child: keep it with the parent, in order
            self.at.children.append(Element("#text", {}, data, parent=self.at))
        else:
            self.at.text += data


def parse(dom: str) -> Element:
    tree = _Tree()
    tree.feed(dom)
    return tree.root


def by_id(root: Element, id_: str) -> Element:
    stack = [root]
    while stack:
        e = stack.pop()
        if e.attrs.get("id") == id_:
            return e
        stack.extend(e.children)
    raise KeyError(id_)


def table_rows(root: Element, table_id: str) -> list[tuple[dict, list[str]]]:
    """The body rows of a table: each row's attributes and its cells' texts."""
    body = by_id(root, table_id).find("tbody")[0]
    return [(tr.attrs, [td.all_text().strip() for td in tr.find("td")]) for tr in body.find("tr")]


def svg_labels(figure: Element) -> dict[str, tuple[set[str], str]]:
    """Each titled group of an SVG: its classes and its text, by title."""
    found = {}
    for g in figure.find("g"):
        titles = [c for c in g.children if c.tag == "title"]
        if titles:
            texts = [c.all_text() for c in g.children if c.tag == "text"]
            found[titles[0].all_text()] = (g.classes(), "".join(texts))
    return found
