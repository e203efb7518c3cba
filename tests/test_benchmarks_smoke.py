"""The benchmark suite's smoke mode: tiny sizes, no timing, every candidate checked.

`python -m benchmarks --smoke` checks that each candidate of every workload (graphc in each
form, the hand-written references and the installed peers) gives the reference's value and
gradients. The first test runs graphc and the references alone, in a few seconds; the second
adds the peers of the `bench` extra and is skipped when none is installed.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PEERS = ("torch", "jax", "autograd", "micrograd", "pytensor", "numba")


def run_smoke(peers: str) -> str:
    p = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--peers", peers],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, f"smoke mode failed:\n{p.stdout}\n{p.stderr[-3000:]}"
    assert "smoke: all candidates agree with the references" in p.stdout
    return p.stdout


def test_smoke_graphc_and_references_agree():
    out = run_smoke("none")
    workloads = ("Scalar circuits", "MLP", "Per-call overhead", "Elementwise", "Compile scaling")
    for workload in workloads:
        assert workload in out


def test_smoke_installed_peers_agree():
    installed = [name for name in PEERS if importlib.util.find_spec(name) is not None]
    if not installed:
        pytest.skip("no peer installed (pip install -e '.[bench]')")
    run_smoke(",".join(installed))
