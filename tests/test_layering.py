"""The wings: every graphc module's imports, read with `ast`, obey the layout's rules.

    ir -> front | passes -> emit -> draw -> the top (compiler, function, check, cli, ...)

A module lives in a wing (a subpackage of `graphc`) or at the top. A wing may import only the
wings WINGS gives it; nothing in a wing imports a top-level module (`function`, `cli`, ...); no
two modules import each other, directly or round a longer loop; only the modules of
FILE_TOUCHERS touch files or processes. Imports inside functions count too. A new wing must be
given a row in WINGS, so nobody adds one without deciding what it may import.
"""

import ast
from pathlib import Path

import networkx as nx
import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "graphc"

# wing -> the wings its modules may import (their own included)
WINGS = {
    "ir": {"ir"},
    "front": {"ir", "front"},
    "passes": {"ir", "passes"},
    "emit": {"ir", "passes", "emit"},
    "draw": {"ir", "passes", "emit", "draw"},
}

# Touching files and processes is the top's business: `files` writes atomically, `cli` and
# `__main__` are the command line. Every wing, and the rest of the top, stays pure.
FILE_TOUCHERS = {"files", "cli", "__main__"}
FILE_MODULES = {"os", "pathlib", "shutil", "tempfile", "subprocess", "glob", "io", "socket"}
FILE_CALLS = {"open"}


def modules() -> list[str]:
    """Every module by its dotted name under graphc: "ir.ops", "function", "draw.__init__"."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        found.append(".".join(parts))
    return found


def wing(module: str) -> str | None:
    """The wing a module lives in; None at the top."""
    return module.split(".")[0] if "." in module else None


def parse(module: str) -> ast.Module:
    path = PACKAGE.joinpath(*module.split(".")).with_suffix(".py")
    return ast.parse(path.read_text(encoding="utf-8"))


def resolve(name: str) -> str | None:
    """The module a dotted name under graphc names ("ir.ops"; "ir" is "ir.__init__")."""
    known = set(modules())
    if name in known:
        return name
    if f"{name}.__init__" in known:
        return f"{name}.__init__"
    return None


def graphc_imports(module: str) -> set[str]:
    """The graphc modules `module` imports (relative or absolute, anywhere in the file)."""
    package = module.split(".")[:-1]
    if module.endswith("__init__"):
        package = module.split(".")[:-1]
    found: set[str] = set()

    def add(base: list[str], names) -> None:
        target = ".".join(base)
        for alias in names:  # `from .ir import ops`: ops may be a module
            sub = resolve(f"{target}.{alias}" if target else alias)
            if sub:
                found.add(sub)
        if target and resolve(target):
            found.add(resolve(target))

    for node in ast.walk(parse(module)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "graphc" and len(parts) > 1:
                    found.add(resolve(".".join(parts[1:])) or ".".join(parts[1:]))
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if not (node.module or "").startswith("graphc"):
                    continue
                base = (node.module or "").split(".")[1:]
            else:
                up = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                base = up + ((node.module or "").split(".") if node.module else [])
            add(base, [a.name for a in node.names])
    return {m for m in found if m} - {module, "__init__"}


def stdlib_imports(module: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(parse(module)):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def calls(module: str) -> set[str]:
    return {
        n.func.id
        for n in ast.walk(parse(module))
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }


def test_the_import_reader_sees_real_imports():
    """Guards the guard: known edges of the pipeline are found, however they are spelled."""
    assert "ir.errors" in graphc_imports("ir.ops")  # from .errors import ...
    assert {"ir.ops", "ir.graph"} <= graphc_imports("ir.shapes")
    assert "function" in graphc_imports("__init__")  # from .function import ...
    assert "ir.text" in graphc_imports("front.trace")  # from ..ir import text
    assert "front.params" in graphc_imports("front.trace")  # from . import params
    assert "passes.rewrite" in graphc_imports("passes.fusion")
    assert "passes.autodiff" in graphc_imports("draw.render")  # imported inside a function


def test_every_wing_has_its_rules():
    wings = {wing(m) for m in modules()} - {None}
    assert wings == set(WINGS), f"give each wing a row in WINGS: {sorted(wings - set(WINGS))}"


@pytest.mark.parametrize("name", sorted(WINGS))
def test_wings_import_only_what_they_may(name):
    broken = {}
    for m in modules():
        if wing(m) != name:
            continue
        bad = sorted(i for i in graphc_imports(m) if wing(i) not in WINGS[name])
        if bad:
            broken[m] = bad
    assert not broken, f"{name} may import only {sorted(WINGS[name])}: {broken}"


def test_nothing_in_a_wing_imports_the_top():
    """`function`, `cli`, `compiler` and the rest of the top sit above every wing."""
    broken = {m: sorted(i for i in graphc_imports(m) if wing(i) is None) for m in modules()}
    broken = {m: bad for m, bad in broken.items() if wing(m) is not None and bad}
    assert not broken


def test_only_the_top_imports_function_and_cli():
    users = sorted(
        m for m in modules() if {"function", "cli"} & graphc_imports(m) and wing(m) is not None
    )
    assert not users


def test_no_import_cycles():
    g = nx.DiGraph()
    for m in modules():
        g.add_node(m)
        g.add_edges_from((m, i) for i in graphc_imports(m) if not i.endswith("__init__"))
    cycles = list(nx.simple_cycles(g))
    assert not cycles, f"modules that import each other: {cycles}"


def test_only_file_touchers_touch_files_and_processes():
    broken = {}
    for m in modules():
        if m in FILE_TOUCHERS:
            continue
        bad = sorted((stdlib_imports(m) & FILE_MODULES) | (calls(m) & FILE_CALLS))
        if bad:
            broken[m] = bad
    assert not broken, f"only {sorted(FILE_TOUCHERS)} may touch files or processes: {broken}"


def test_every_module_opens_with_a_docstring():
    missing = [m for m in modules() if not ast.get_docstring(parse(m))]
    assert not missing


def test_module_docstrings_name_their_wing():
    """A module that states its stage ("Stage: passes (graph -> graph). ...") states its wing."""
    wrong = {}
    for m in modules():
        lines = (ast.get_docstring(parse(m)) or "").splitlines()
        stated = [ln for ln in lines if ln.startswith("Stage:")]
        if stated and wing(m) and not stated[0].startswith(f"Stage: {wing(m)}"):
            wrong[m] = stated[0]
    assert not wrong


@pytest.mark.parametrize("name", sorted(WINGS))
def test_wing_docstrings_say_what_they_hold(name):
    """Each wing's __init__ says what it does, what it may import, and lists its modules in
    pipeline order: a module is listed after every module of its wing it imports."""
    doc = ast.get_docstring(parse(f"{name}.__init__")) or ""
    assert "May import:" in doc
    allowed = doc.split("May import:")[1].split("\n\n")[0]
    for other in WINGS[name] - {name}:
        assert f"graphc.{other}" in allowed, f"{name}: say that it may import graphc.{other}"
    listing = doc.split("Modules")[1]
    members = [m for m in modules() if wing(m) == name and not m.endswith("__init__")]
    order = {}
    for m in members:
        short = m.split(".")[1]
        words = listing.replace("->", " ").replace("|", " ").replace("(", " ").split()
        assert short in words, f"{name}/__init__ does not list {short}"
        order[m] = words.index(short)
    for m in members:
        for i in graphc_imports(m):
            if wing(i) == name and i in order:
                assert order[i] < order[m], f"{name}: list {i} before {m}"
