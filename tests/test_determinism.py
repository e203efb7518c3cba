"""Determinism: the same input gives byte-identical code, drawings and fused graphs, always.

Within one process (compiling twice, in a different order) and across processes started with
different PYTHONHASHSEED values, so no set order, dict-of-hash order or `id()` leaks into names,
statement order, common subexpressions or fusion.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import graphc

ROOT = Path(graphc.__file__).resolve().parent.parent  # the graphc this process tests
TESTS = Path(__file__).resolve().parent

# Programs of several kinds; each is compiled unfused, fused at both levels and as fast code.
PROGRAMS = r'''
import numpy as np
import sympy
import graphc as gc
from strategies import Case


def neuron(w0, x0, w1, x1, w2):
    return 1 / (1 + gc.exp(-(w0 * x0 + w1 * x1 + w2)))


def two_layer(X, W1, b1, W2, Y):
    h = gc.maximum(0, X @ W1 + b1)
    s = h @ W2
    logp = s - gc.log(gc.sum(gc.exp(s), axis=1, keepdims=True))
    return -gc.mean(gc.sum(Y * logp, axis=1)) + 0.01 * gc.sum(W1 * W1)


def fan_out(x, y):
    a = x * y
    b = gc.tanh(a) + a * a
    c = gc.where(a > 0.5, b, -a) + gc.log(1 + gc.exp(b))
    return gc.sqrt(c * c + 1) / (1 + gc.abs(a)) + gc.minimum(b, c)


def reserved_names(np, print, lambda_, cache):
    return np * print + gc.exp(lambda_) * cache


RANDOM = Case.from_text("""
def f(x0, x1, x2):
    v0 = ops.exp(x0 * 0.5)
    v1 = ops.where(v0 > (x1 + 0.3), v0, x2)
    v2 = ops.log(1 + ops.exp(v1)) @ ops.transpose(x1)
    v3 = ops.max(v1 + ops.array([[0.0, 0.37], [0.74, 1.11]]), axis=1)
    return ops.sum(v2) + ops.mean(v3)

inputs = {'x0': np.array([[0.5, -1.0], [2.0, 0.25]]), 'x1': np.array([[1.0, -0.5], [0.2, 0.4]]),
          'x2': 0.75}
""")

R = np.random.default_rng(7)
CASES = {
    "neuron": (gc.function(neuron), dict(w0=2.0, x0=-1.0, w1=-3.0, x1=-2.0, w2=-3.0)),
    "two_layer": (
        gc.function(two_layer),
        dict(X=R.normal(size=(4, 3)), W1=R.normal(size=(3, 5)), b1=R.normal(size=5),
             W2=R.normal(size=(5, 2)), Y=np.eye(2)[[0, 1, 1, 0]]),
    ),
    "fan_out": (gc.function(fan_out), dict(x=np.array([0.3, -1.2, 2.0]), y=0.7)),
    "reserved": (gc.function(reserved_names), dict(np=1.0, print=2.0, lambda_=0.5, cache=3.0)),
    "from_sympy": (
        gc.from_sympy(sympy.sympify("x**2 + 2*x*y**2 + y**3 + exp(-x)*y")),
        dict(x=1.0, y=2.0),
    ),
    "random": (RANDOM.graphc(), RANDOM.inputs),
}


def fused_graph(g):
    """A graph's whole content as text: nodes with attributes, edges, rewrites."""
    nodes = [(n, sorted((k, repr(v)) for k, v in d.items())) for n, d in sorted(g.nodes(data=True))]
    edges = sorted((u, v, repr(p)) for u, v, p in g.edges(data="pos"))
    rewrites = [(r[0].name, r[1], repr(r[2])) for r in g.graph.get("rewrites", [])]
    return repr((nodes, edges, rewrites, g.graph["inputs"], g.graph["output"]))


def everything(order):
    out = {}
    for name in order:
        f, inputs = CASES[name]
        variants = {
            "none": f,
            "patterns": f.fused(level="patterns"),
            "elementwise": f.fused(level="elementwise"),
            "fast": f.fused(level="patterns", readable=False),
        }
        for level, g in variants.items():
            out[f"{name}/{level}/source"] = g.source_for(**inputs)
            out[f"{name}/{level}/graph"] = fused_graph(g.graph)
            out[f"{name}/{level}/dot"] = g.render(**inputs).source
    return out
'''


def _namespace() -> dict:
    ns: dict = {}
    exec(PROGRAMS, ns)
    return ns


HASH_SEEDS = ("0", "4242", "random")


def _start(hashseed: str) -> subprocess.Popen:
    script = PROGRAMS + "\nimport json, sys\njson.dump(everything(sorted(CASES)), sys.stdout)\n"
    env = {
        **os.environ,
        "PYTHONHASHSEED": hashseed,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)]),
    }
    return subprocess.Popen(
        [sys.executable, "-c", script],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def there() -> dict:
    """One process per hash seed, started at once; `_result` waits for one."""
    running = {seed: _start(seed) for seed in HASH_SEEDS}
    yield running
    for process in running.values():
        if process.poll() is None:
            process.kill()


def _result(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out)


def _first_difference(a: dict, b: dict) -> str:
    assert a.keys() == b.keys()
    for key in a:
        if a[key] != b[key]:
            la, lb = a[key].splitlines(), b[key].splitlines()
            for i, (x, y) in enumerate(zip(la, lb)):
                if x != y:
                    return f"{key}, line {i + 1}:\n  {x}\n  {y}"
            return f"{key}: lengths {len(la)} and {len(lb)}"
    return ""


@pytest.fixture(scope="module")
def here(there) -> dict:  # computed while the other processes run
    return _namespace()["everything"](sorted(_namespace()["CASES"]))


def test_compiling_twice_in_one_process_gives_the_same_bytes(here):
    ns = _namespace()  # fresh functions, compiled in the reverse order
    again = ns["everything"](sorted(ns["CASES"], reverse=True))
    assert again == here, _first_difference(here, again)


@pytest.mark.parametrize("hashseed", HASH_SEEDS)
def test_source_drawings_and_fusion_are_identical_across_processes_and_hash_seeds(
    here, there, hashseed
):
    theirs = _result(there[hashseed])
    assert theirs == here, _first_difference(here, theirs)


def test_the_cases_cover_every_level_and_reserved_names_are_renamed(here):
    assert len(here) == 6 * 4 * 3
    src = here["reserved/none/source"]
    assert "def forward(np_, print_, lambda_, cache_):" in src
    assert "rewrites" not in here["neuron/none/graph"]
    assert "'sigmoid'" in here["neuron/patterns/graph"]


def test_fusion_of_the_same_graph_is_the_same_graph():
    gc = graphc
    ns = _namespace()
    for f, _ in ns["CASES"].values():
        for level in ("patterns", "elementwise"):
            one = ns["fused_graph"](gc.fuse(f.graph, level=level))
            two = ns["fused_graph"](gc.fuse(f.graph.copy(), level=level))
            assert one == two
