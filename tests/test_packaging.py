"""The package as a package index and pip see it: the built sdist and wheel, and their metadata.

Builds both once (`python -m build --no-isolation`, as scripts/test-sdist does) into a temporary
folder. Oracles: the archives' own file lists, the metadata read back with the standard
library's email parser (the format of PKG-INFO), `packaging`'s requirement parser where it is
installed, and the repository's files (every file the tests import is in the sdist).
scripts/test-sdist goes further: it unpacks the sdist and runs its tests from there (.ci/run).
"""

import email
import importlib.util
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REPOSITORY = "https://github.com/graphc/graphc"


def _can_build() -> bool:
    if importlib.util.find_spec("build") is None:
        return False
    import setuptools

    return int(setuptools.__version__.split(".")[0]) >= 77


pytestmark = pytest.mark.skipif(
    not _can_build(), reason="needs the build package and setuptools 77+ (the dev extra)"
)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (sdist,) = out.glob("graphc-*.tar.gz")
    (wheel,) = out.glob("graphc-*.whl")
    with tarfile.open(sdist) as tar:
        names = [n.split("/", 1)[1] for n in tar.getnames() if "/" in n]
        top = tar.getnames()[0].split("/")[0]
        pkg_info = tar.extractfile(f"{top}/PKG-INFO").read().decode()
    with zipfile.ZipFile(wheel) as whl:
        wheel_names = whl.namelist()
    return {"sdist": set(names), "wheel": set(wheel_names), "metadata": pkg_info}


def test_the_sdist_holds_what_its_tests_docs_and_examples_need(built):
    sdist = built["sdist"]
    for name in (
        "LICENSE", "README.md", "pyproject.toml", "setup.py", "graphc/py.typed",
        "tests/conftest.py", "tests/strategies.py", "tests/node_link.py",
        "docs/index.md", "docs/gallery.md", "docs/gallery/neuron.svg",
        "examples/lecture.py", "examples/two_layer_net.py", "scripts/test", "scripts/test-sdist",
    ):  # fmt: skip
        assert name in sdist, name
    tracked = subprocess.run(
        ["git", "ls-files", "tests", "docs", "examples", "graphc"],
        capture_output=True, text=True, cwd=ROOT,
    ).stdout.split()  # fmt: skip
    if tracked:  # a checkout (not itself an unpacked sdist): every tracked file is packed
        assert sorted(set(tracked) - sdist) == []
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in sdist)


def test_the_wheel_is_the_package_typed(built):
    wheel = built["wheel"]
    assert "graphc/py.typed" in wheel and "graphc/cli.py" in wheel
    assert any(n.endswith("licenses/LICENSE") for n in wheel)
    assert not any(n.startswith(("tests/", "docs/", "examples/")) for n in wheel)


def test_the_metadata_names_licence_authors_classifiers_addresses_and_keywords(built):
    meta = email.message_from_string(built["metadata"])
    assert meta["License-Expression"] == "MIT"
    assert meta["Author"] and meta["Maintainer"]
    classifiers = meta.get_all("Classifier")
    assert (
        "Typing :: Typed" in classifiers and "Programming Language :: Python :: 3.10" in classifiers
    )
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert urls["Repository"] == REPOSITORY and urls["Issues"].startswith(REPOSITORY)
    assert "backpropagation" in meta["Keywords"]


def test_no_requirement_is_pinned_exactly(built):
    meta = email.message_from_string(built["metadata"])
    requirements = meta.get_all("Requires-Dist")
    assert any(r.startswith("torch>=") for r in requirements)  # the optional oracle, a floor
    assert not [r for r in requirements if "==" in r.split(";")[0]]  # not in `extra == "dev"`


def test_the_index_description_has_absolute_links_and_the_readme_keeps_relative_ones(built):
    description = email.message_from_string(built["metadata"]).get_payload()
    readme = (ROOT / "README.md").read_text()
    link = re.compile(r"(!?)\[[^\]]*\]\(([^)\s]+)\)")
    shown = link.findall(description)
    assert len(shown) == len(link.findall(readme)) > 5
    for _, target in shown:
        assert target.startswith(("https://", "#")), target
    pictures = [t for bang, t in shown if bang]
    assert f"{REPOSITORY}/raw/main/docs/gallery/neuron.svg" in pictures
    assert f"({REPOSITORY}/blob/main/docs/index.md)" in description
    assert "](docs/index.md)" in readme  # the repository's README reads the files beside it
