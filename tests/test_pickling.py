"""Copies and pickles of Functions: `pickle` and `copy.deepcopy` work at any time.

A Function keeps compiled modules and Python-float entries once called; those are code, not data,
and are left behind: the copy compiles again when first called. Round trips must give the same
numbers bit for bit (the same source is generated), for functions with user gates (whose
formulas are lambdas: the gate travels as its SymPy expression), fused at every level, with
`wrt`, `readable=False` and the numba backend, and in a fresh process where the gate was never
defined.
"""

import copy
import importlib.util
import pickle
import subprocess
import sys

import numpy as np
import pytest
import sympy

import graphc as gc

swish = gc.gate("pickle_swish", lambda t: t / (1 + sympy.exp(-t)))
step = gc.gate("pickle_step", lambda a, b: sympy.Heaviside(a - b) * a + sympy.floor(b))


@gc.function
def net(x, w, b):
    h = gc.tanh(x * w + b)
    s = 1 / (1 + gc.exp(-h))  # fused into a sigmoid gate by the patterns
    return swish(s * 2.0) + step(h, b) + gc.maximum(0.0, x)


@gc.function
def tensor(X, W):
    return gc.sum(swish(X @ W), axis=0).mean() + gc.max(X)


INPUTS = {"x": 0.7, "w": -1.3, "b": 0.25}
ARRAYS = {"x": np.linspace(-2, 2, 5), "w": np.float64(-1.3), "b": np.array([0.25])}

VARIANTS = {
    "as traced": lambda: net,
    "fused": lambda: net.fused(),
    "elementwise": lambda: net.fused(level="elementwise"),
    "readable=False": lambda: net.fused(readable=False),
    "wrt": lambda: net.wrt("w"),
    "fused wrt": lambda: net.fused(level="elementwise").wrt("b", "x"),
}
if importlib.util.find_spec("numba"):
    VARIANTS["numba"] = lambda: gc.function(lambda x, w, b: swish(x * w) + b, backend="numba")

COPIES = {
    "pickle": lambda f: pickle.loads(pickle.dumps(f)),
    "pickle, protocol 2": lambda f: pickle.loads(pickle.dumps(f, protocol=2)),
    "deepcopy": copy.deepcopy,
    "copy": copy.copy,
}


def results(f):
    """Every way of calling: values and gradients on floats, arrays, NumPy scalars."""
    out = [f(**INPUTS), f.value_and_grad(**INPUTS), f.value_and_grad(**ARRAYS)]
    out.append(f.grad(**{k: np.float32(v) for k, v in INPUTS.items()}))
    return out


def same(a, b) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            same(a[k], b[k])
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            same(x, y)
    else:
        assert type(a) is type(b)
        assert np.array_equal(a, b), (a, b)  # bit for bit


@pytest.mark.parametrize("how", COPIES)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("when", ["fresh", "after calls"])
def test_copies_compute_what_the_original_computes(variant, how, when):
    f = VARIANTS[variant]()
    if when == "after calls":
        want = results(f)  # compiled modules and the float entries now exist
    g = COPIES[how](f)
    got = results(g)
    if when == "fresh":
        want = results(f)
    same(got, want)
    assert g.source == f.source  # the module of the last call's shapes, generated again
    assert g.inputs == f.inputs and g.gradient_names == f.gradient_names
    assert repr(g) == repr(f)


def test_a_copy_made_before_any_call_generates_the_same_source():
    f = gc.function(lambda x, y: swish(x) * y)  # never called
    for how in COPIES.values():
        assert how(f).source == f.source  # both for all-scalar inputs


def test_tensor_functions_round_trip(rng):
    X, W = rng.normal(size=(4, 3)), rng.normal(size=(3, 2))
    want = tensor.value_and_grad(X, W)
    for how in COPIES.values():
        same(how(tensor).value_and_grad(X, W), want)
        same(how(tensor.fused(level="elementwise")).value_and_grad(X, W),
             tensor.fused(level="elementwise").value_and_grad(X, W))  # fmt: skip


def test_a_copy_is_independent_of_later_redefinitions():
    name = "pickle_redefined"
    square = gc.gate(name, lambda t: t**2)
    f = gc.function(lambda x: square(x) + x)
    f(3.0)
    data = pickle.dumps(f)
    gc.gate(name, lambda t: t**3)
    assert pickle.loads(data).value_and_grad(3.0) == (12.0, {"x": 7.0})


def test_graphs_gates_and_gate_calls_pickle():
    for graph in (net.graph, net.fused().graph, net.fused(level="elementwise").graph):
        back = pickle.loads(pickle.dumps(graph))
        same(
            gc.from_graph(back).value_and_grad(**INPUTS),
            gc.from_graph(graph).value_and_grad(**INPUTS),
        )
    rules = [rule.name for rule, _, _ in net.fused().graph.graph["rewrites"]]
    assert rules and rules == [r.name for r, _, _ in pickle.loads(pickle.dumps(
        net.fused().graph)).graph["rewrites"]]  # fmt: skip
    again = pickle.loads(pickle.dumps(swish))
    assert again(2.0) == swish(2.0) and again.gate == swish.gate
    x = sympy.Symbol("x")
    e = pickle.loads(pickle.dumps(swish(x) * 2))
    assert gc.from_sympy(e)(x=1.5) == pytest.approx(2 * 1.5 / (1 + np.exp(-1.5)), rel=1e-15)


PROGRAM = """
import pickle, sys
import numpy as np
import graphc as gc
f = pickle.loads(sys.stdin.buffer.read())
value, grads = f.value_and_grad(x=0.7, w=-1.3, b=0.25)
print(repr(value), repr(grads["x"]), repr(grads["w"]), repr(grads["b"]))
"""


def test_a_pickle_loads_in_a_process_where_its_gates_were_never_defined():
    for f in (net, net.fused(level="elementwise")):
        f(**INPUTS)
        done = subprocess.run(
            [sys.executable, "-c", PROGRAM],
            input=pickle.dumps(f),
            capture_output=True,
            check=True,
        )
        value, grads = f.value_and_grad(**INPUTS)
        assert done.stdout.decode().split() == [
            repr(value), repr(grads["x"]), repr(grads["w"]), repr(grads["b"]),
        ]  # fmt: skip
