"""The lowest versions pyproject.toml allows, as exact pins: what scripts/test-floors installs.

    python3 scripts/floors.py python    # the oldest Python allowed: "3.10" from ">=3.10"
    python3 scripts/floors.py pins      # one pin a line: "numpy>=1.24" becomes "numpy==1.24"
    python scripts/floors.py check      # run by the floors venv: each pin is what is installed

The pins are the project's dependencies and the extras in EXTRAS, read from pyproject.toml, so
the floors tested are the floors declared. Every such requirement must be written `name>=X`
(its floor) or `name==X`; any other form has no floor to test and is refused.
`python` and `pins` need Python 3.11+ (tomllib) or tomli; `check` runs on any Python 3.
"""

import re
import sys
from importlib import metadata
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
# the extras whose floors are tested; ruff and mypy (dev) are the linter and the type checker,
# and build makes the sdist: scripts/test runs them, at their newest, since their rules change
# between versions and are no property of the code's behaviour
EXTRAS = ("dev", "numba")
NOT_PINNED = ("ruff", "mypy", "build")
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(>=|==)\s*([0-9][0-9.]*)\s*$")


def pyproject() -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: pytest's own TOML reader
        import tomli as tomllib

    with PYPROJECT.open("rb") as f:
        return tomllib.load(f)


def oldest_python() -> str:
    """The lower bound of requires-python, which must be written ">=3.N"."""
    spec = pyproject()["project"]["requires-python"]
    found = re.fullmatch(r"\s*>=\s*(3\.[0-9]+)\s*", spec)
    if not found:
        sys.exit(f"floors: requires-python {spec!r} is not of the form '>=3.N'")
    return found.group(1)


def pins() -> list[str]:
    """`name==X` for every `name>=X` (or `name==X`) among the dependencies and EXTRAS."""
    project = pyproject()["project"]
    requirements = list(project["dependencies"])
    for extra in EXTRAS:
        requirements += project["optional-dependencies"][extra]
    out = []
    for requirement in requirements:
        found = REQUIREMENT.match(requirement)
        if not found:
            sys.exit(
                f"floors: {requirement!r} in pyproject.toml has no floor to test; "
                "write it as 'name>=X' (or 'name==X')"
            )
        name, _, version = found.groups()
        if name not in NOT_PINNED:
            out.append(f"{name}=={version}")
    return out


def release(version: str) -> tuple[int, ...]:
    """1.24 and 1.24.0 alike, as PEP 440 compares them."""
    parts = [int(p) for p in version.split(".")]
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def check(lines: list[str]) -> None:
    """Exit non-zero unless every pin (read from `lines`) is the installed version."""
    wrong = []
    for line in filter(None, (s.strip() for s in lines)):
        name, version = line.split("==")
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "missing"
        if installed == "missing" or release(installed) != release(version):
            wrong.append(f"{name}: {installed}, not {version}")
        else:
            print(f"floors: {name} {installed}")
    if wrong:
        sys.exit("floors: not the declared floors: " + "; ".join(wrong))


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "python":
        print(oldest_python())
    elif command == "pins":
        print("\n".join(pins()))
    elif command == "check":
        check(sys.stdin.read().splitlines())
    else:
        sys.exit("usage: floors.py python | pins | check < pins")
