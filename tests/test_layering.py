"""The pipeline flows one way: every graphc module's imports, read with `ast`, obey the rule table.

    vocabulary (gate table) -> graph -> front-end | passes -> backends -> surfaces

To add a module, give it a stage in STAGES; to add a rule, add a row to RULES. A module that is
not in STAGES fails `test_every_module_has_a_stage`, so nobody adds one without deciding where it
belongs. Imports inside functions count too.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "graphc"

# Every module of graphc (present or planned in DESIGN.md), by pipeline stage.
STAGES = {
    "errors": "vocabulary",
    "ops": "vocabulary",  # the gate table
    "special": "vocabulary",  # SymPy functions and helpers the table uses (part of the table)
    "tensor": "vocabulary",  # the tensor gates' rows (part of the table)
    "text": "vocabulary",  # text is data: the one rule for names and text in code and drawings
    "graph": "graph",
    "trace": "front-end",
    "gates": "front-end",
    "parse": "front-end",
    "shapes": "pass",
    "dtypes": "pass",  # the dtype NumPy gives each value (NEP 50)
    "autodiff": "pass",
    "schedule": "pass",
    "rewrite": "pass",
    "fusion": "pass",
    "lower": "pass",
    "codegen": "backend",
    "numba_backend": "backend",  # optional: one compiled loop for elementwise programs
    "shortcuts": "backend",  # how the generated module spells steps in fewer passes
    "render": "backend",
    "scalar": "backend",  # the Python-float path: the module's statements on floats
    "function": "surface",
    "check": "surface",
    "lint": "surface",
    "compare": "surface",
    "lectures": "surface",  # the lecture circuits, defined once
    "cli": "surface",
    "__main__": "surface",
    "__init__": "surface",
}


def stage(*names: str) -> set[str]:
    """All modules of the named stages."""
    return {m for m, s in STAGES.items() if s in names}


VOCABULARY = stage("vocabulary")
BELOW_PASSES = VOCABULARY | stage("graph")

# (rule, modules it applies to, the only graphc modules they may import)
RULES = [
    ("the error hierarchy is a leaf", {"errors"}, set()),
    ("the gate table imports only the gate table", VOCABULARY, VOCABULARY),
    ("the graph imports only the gate table", {"graph"}, VOCABULARY),
    ("the front-end builds graphs", stage("front-end"), BELOW_PASSES | stage("front-end")),
    ("passes import no front-end, backend or surface", stage("pass"), BELOW_PASSES | stage("pass")),
    ("backends import no surface", stage("backend"), BELOW_PASSES | stage("pass", "backend")),
]

# The function object is the top of the pipeline: only these may import it.
FUNCTION_IMPORTERS = {"__init__", "check", "cli"}

# Touching files and processes is the surfaces' business. `function` writes `save_source`'s file
# (issue 2) and pictures (`write_picture`, used by the CLI); everything else stays pure.
FILE_TOUCHERS = {"cli", "__main__", "function"}
FILE_MODULES = {"os", "pathlib", "shutil", "tempfile", "subprocess", "glob", "io", "socket"}
FILE_CALLS = {"open"}


def modules() -> list[str]:
    return sorted(p.stem for p in PACKAGE.glob("*.py"))


def parse(module: str) -> ast.Module:
    return ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))


def graphc_imports(module: str) -> set[str]:
    """The graphc modules `module` imports (relative or absolute, anywhere in the file)."""
    found: set[str] = set()
    for node in ast.walk(parse(module)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "graphc" and len(parts) > 1:
                    found.add(parts[1])
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and not (node.module or "").startswith("graphc"):
                continue
            path = (node.module or "").split(".")
            path = path[1:] if node.level == 0 else path
            if path and path[0]:
                found.add(path[0])
            else:  # `from . import x` / `from graphc import x`: x may be a module
                found.update(a.name for a in node.names if a.name in STAGES)
    return found - {module}


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
    """Guards the guard: known edges of the pipeline are found."""
    assert "errors" in graphc_imports("ops")
    assert {"ops", "graph"} <= graphc_imports("shapes")
    assert "function" in graphc_imports("__init__")
    assert "gates" in graphc_imports("trace")  # imported inside methods


def test_every_module_has_a_stage():
    unknown = [m for m in modules() if m not in STAGES]
    assert not unknown, f"give these modules a stage in STAGES: {unknown}"


@pytest.mark.parametrize(("rule", "members", "allowed"), RULES, ids=[r[0] for r in RULES])
def test_imports_follow_the_pipeline(rule, members, allowed):
    present = [m for m in modules() if m in members]
    broken = {m: sorted(graphc_imports(m) - allowed) for m in present}
    broken = {m: bad for m, bad in broken.items() if bad}
    assert not broken, f"{rule}: {broken}"


def test_nothing_below_the_surface_imports_function():
    users = sorted(m for m in modules() if "function" in graphc_imports(m))
    assert set(users) <= FUNCTION_IMPORTERS, (
        f"only {sorted(FUNCTION_IMPORTERS)} may import function"
    )


def test_only_surfaces_touch_files_and_processes():
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


# how a module's docstring names its stage ("Stage: pass (graph -> graph). ...")
STAGE_WORDS = {
    "vocabulary": "vocabulary",
    "graph": "IR",
    "front-end": "front-end",
    "pass": "pass",
    "backend": "backend",
    "surface": "surface",
}


def test_docstring_stages_agree_with_the_table():
    """A module that states its stage states the one this table gives it."""
    wrong = {}
    for m in modules():
        lines = [ln for ln in (ast.get_docstring(parse(m)) or "").splitlines()]
        stated = [ln for ln in lines if ln.startswith("Stage:")]
        if m in STAGES and stated and STAGE_WORDS[STAGES[m]] not in stated[0].split(".")[0]:
            wrong[m] = (STAGES[m], stated[0])
    assert not wrong
