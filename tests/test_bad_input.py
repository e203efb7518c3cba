"""The bad-input catalogue (docs/errors.md): what graphc does with each kind of bad input.

Each test here is named by an entry of docs/errors.md. Errors graphc raises on purpose are
checked in test_errors.py (argument names, refused types, shapes, tracing, gate definitions) and
test_graph.py (hand-built networkx graphs); this file covers the rest: values NumPy has an
answer for (NaN, inf, division by zero, empty arrays), the subgradients graphc chooses at
kinks, graphs loaded from a saved file, integer and other numeric types, and deep graphs.
"""

import json
import os
import stat
import warnings
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from node_link import edge_list

import graphc as gc


@pytest.fixture(autouse=True)
def quiet_numpy():
    """NumPy's RuntimeWarnings (divide by zero, ...) are part of NumPy semantics, not failures."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with np.errstate(all="ignore"):
            yield


def at_level(f, level: str):
    """The function unfused ("none") or fused at `level`."""
    return f if level == "none" else f.fused(level=level)


# ---------------------------------------------------------------- non-finite inputs


@gc.function
def smooth(x, y):
    return x * y + gc.exp(x) - gc.tanh(y) / (1 + x * x)


def smooth_reference(x, y):
    """smooth and its gradient, written out in NumPy."""
    value = x * y + np.exp(x) - np.tanh(y) / (1 + x * x)
    dx = y + np.exp(x) + np.tanh(y) * 2 * x / (1 + x * x) ** 2
    dy = x - (1 - np.tanh(y) ** 2) / (1 + x * x)
    return value, dx, dy


@pytest.mark.parametrize("level", ["none", "patterns", "elementwise"])
def test_nan_and_inf_propagate_as_numpy_does(level):
    x = np.array([np.nan, np.inf, -np.inf, 0.5, 1.0])
    y = np.array([1.0, 2.0, 0.5, np.nan, np.inf])
    f = at_level(smooth, level)
    value, grads = f.value_and_grad(x=x, y=y)
    want, dx, dy = smooth_reference(x, y)
    np.testing.assert_array_equal(np.isnan(value), np.isnan(want))
    np.testing.assert_allclose(value, want, rtol=1e-12)  # equal_nan, infs equal
    np.testing.assert_array_equal(np.isnan(grads["x"]), np.isnan(dx))
    np.testing.assert_array_equal(np.isnan(grads["y"]), np.isnan(dy))
    finite = np.isfinite(dx) & np.isfinite(dy)
    np.testing.assert_allclose(grads["x"][finite], dx[finite], rtol=1e-12)
    np.testing.assert_allclose(grads["y"][finite], dy[finite], rtol=1e-12)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_scalars_do_not_crash_the_compiler(value):
    out, grads = smooth.value_and_grad(x=value, y=1.0)
    want, dx, dy = smooth_reference(np.float64(value), np.float64(1.0))
    np.testing.assert_allclose([out, grads["x"], grads["y"]], [want, dx, dy], rtol=1e-12)


@pytest.mark.parametrize("level", ["none", "patterns", "elementwise"])
def test_non_finite_constants_compile_and_propagate(level):
    f = at_level(gc.function(lambda x: x * np.inf + gc.exp(x) * np.nan), level)
    out, grads = f.value_and_grad(x=np.array([1.0, -1.0]))
    assert np.shape(out) == (2,) and np.all(np.isnan(out))
    assert np.all(np.isnan(grads["x"]))
    g = at_level(gc.function(lambda x: gc.exp(x) * np.inf + 1.0), level)
    np.testing.assert_array_equal(g.grad(x=np.array([0.0, 1.0]))["x"], [np.inf, np.inf])


def test_a_constant_bound_may_be_infinite():
    g = gc.function(lambda x: gc.maximum(x, -np.inf))
    assert g.value_and_grad(x=2.0) == (2.0, {"x": 1.0})


def test_check_grad_at_nan_is_not_reported_as_a_pass():
    assert not gc.check_grad(smooth, x=np.nan, y=1.0) < 1e-6


def test_drawing_a_function_at_nan_does_not_crash():
    svg = gc.function(lambda x, y: x * y + x).svg(x=np.nan, y=1.0)
    assert "nan" in svg.lower()


# ---------------------------------------------------------------- division by zero


def test_division_by_zero_in_arrays_follows_numpy():
    f = gc.function(lambda x, y: x / y)
    x, y = np.array([1.0, -1.0, 0.0]), np.zeros(3)
    value, grads = f.value_and_grad(x=x, y=y)
    np.testing.assert_array_equal(value, x / y)  # inf, -inf, nan
    np.testing.assert_array_equal(grads["x"], 1 / y)
    np.testing.assert_array_equal(grads["y"], -x / y**2)


@pytest.mark.parametrize(
    ("fn", "at"),
    [
        (lambda x, y: x / y, dict(x=1.0, y=0.0)),
        (lambda x, y: x / y, dict(x=0.0, y=0.0)),
        (lambda x, y: gc.log(x) * y, dict(x=0.0, y=1.0)),
        (lambda x, y: x**-1 + y, dict(x=0.0, y=1.0)),
        (lambda x, y: x**0.5 * y, dict(x=0.0, y=1.0)),
        (lambda x, y: x**2 + y, dict(x=1e200, y=1.0)),
    ],
    ids=["1/0", "0/0", "log(0)", "0**-1", "sqrt-pow(0)", "pow-overflow"],
)
def test_division_by_zero_and_overflow_with_python_floats_follow_numpy(fn, at):
    f = gc.function(fn)
    as_floats = f.value_and_grad(**at)  # no ZeroDivisionError or OverflowError from Python floats
    as_numpy = f.value_and_grad(**{k: np.float64(v) for k, v in at.items()})
    np.testing.assert_array_equal(as_floats[0], as_numpy[0])
    for k in at:
        np.testing.assert_array_equal(as_floats[1][k], as_numpy[1][k])


# ---------------------------------------------------------------- integer and other number types


def test_integer_inputs_are_promoted_to_float64():
    f = gc.function(lambda x, y: x / y + x * y)
    value, grads = f.value_and_grad(x=3, y=2)
    assert value == 7.5 and isinstance(value, float)
    assert grads == {"x": 2.5, "y": 2.25}
    value, grads = f.value_and_grad(x=np.array([3, 4]), y=np.array([2, 2], dtype=np.uint8))
    assert value.dtype == np.float64 and grads["x"].dtype == grads["y"].dtype == np.float64
    np.testing.assert_array_equal(value, [7.5, 10.0])


def test_integer_numpy_scalars_give_scalar_results():
    value, grads = gc.function(lambda x: x * x).value_and_grad(x=np.int32(3))
    assert value == 9.0 and grads["x"] == 6.0
    assert np.ndim(grads["x"]) == 0 and not isinstance(grads["x"], np.ndarray)


def test_a_python_int_too_large_for_a_float_is_an_input_error():
    with pytest.raises(gc.InputError, match="'x'"):
        gc.function(lambda x: x * 2).value_and_grad(x=10**400)


def test_other_float_dtypes_are_kept():
    f = gc.function(lambda x: gc.sum(x * x))
    for dtype in (np.float32, np.float16):
        value, grads = f.value_and_grad(x=np.array([1.5, 2.0], dtype=dtype))
        assert grads["x"].dtype == dtype
        np.testing.assert_allclose(grads["x"], [3.0, 4.0])


def test_lists_and_fractions_are_numbers():
    from fractions import Fraction

    f = gc.function(lambda x: gc.sum(x * 2.0))
    assert f.grad(x=[1.0, 2.0])["x"].tolist() == [2.0, 2.0]
    assert f.grad(x=Fraction(1, 3))["x"] == 2.0


@pytest.mark.parametrize(
    "value",
    [np.array([1.0, None]), [[1.0], [1.0, 2.0]], __import__("decimal").Decimal("1.5")],
    ids=["object-array", "ragged-list", "decimal"],
)
def test_non_numeric_containers_are_refused(value):
    with pytest.raises(gc.InputError, match="'x'"):
        gc.function(lambda x: x * 2.0).value_and_grad(x=value)


# ---------------------------------------------------------------- complex numbers


def test_complex_constants_are_refused_everywhere():
    with pytest.raises(gc.TraceError, match="complex"):
        gc.function(lambda x: x * 1j)
    import sympy

    with pytest.raises(gc.InputError, match="cannot convert"):
        gc.from_sympy(sympy.Symbol("x") * sympy.I)
    g = nx.DiGraph()
    g.add_node(0, op="input", name="x")
    g.add_node(1, op="const", value=1j)
    g.add_node(2, op="mul")
    g.add_edge(0, 2, pos=(0,))
    g.add_edge(1, 2, pos=(1,))
    g.graph.update(inputs=[0], output=2)
    with pytest.raises(gc.GraphError, match="real"):
        gc.from_graph(g)


# ---------------------------------------------------------------- kinks: the subgradients chosen


@pytest.mark.parametrize("level", ["none", "patterns", "elementwise"])
def test_relu_and_abs_have_zero_gradient_at_zero(level):
    x = np.array([-1.0, -0.0, 0.0, 1.0])
    relu = at_level(gc.function(lambda x: gc.relu(x) * 2.0 + 1.0), level)
    absolute = at_level(gc.function(lambda x: gc.abs(x) * 2.0 + 1.0), level)
    np.testing.assert_array_equal(relu.grad(x=x)["x"], [0.0, 0.0, 0.0, 2.0])
    np.testing.assert_array_equal(absolute.grad(x=x)["x"], [-2.0, 0.0, 0.0, 2.0])


@pytest.mark.parametrize("level", ["none", "patterns", "elementwise"])
def test_maximum_and_minimum_give_a_tie_to_the_first_argument(level):
    for gate, want_a in ((gc.maximum, [2.0, 0.0]), (gc.minimum, [2.0, 2.0])):
        a, b = gc.symbols("a b")
        f = at_level(gc.function(gate(a, b) * 2.0 + 1.0), level)
        assert f.grad(a=1.0, b=1.0) == {"a": 2.0, "b": 0.0}
        grads = f.grad(a=np.array([1.0, 2.0]), b=np.array([1.0, 3.0]))
        np.testing.assert_array_equal(grads["a"], want_a)


@pytest.mark.parametrize("level", ["none", "patterns", "elementwise"])
def test_max_reduction_gives_the_gradient_to_the_first_largest_entry(level):
    f = at_level(gc.function(lambda x: gc.max(x) * 2.0), level)
    np.testing.assert_array_equal(f.grad(x=np.array([1.0, 3.0, 3.0]))["x"], [0.0, 2.0, 0.0])
    rows = at_level(gc.function(lambda x: gc.sum(gc.max(x, axis=1, keepdims=True))), level)
    got = rows.grad(x=np.array([[2.0, 2.0, 0.0], [0.0, 5.0, 5.0]]))["x"]
    np.testing.assert_array_equal(got, [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def test_leaky_relu_has_its_slope_at_zero_and_where_follows_its_mask():
    leaky = gc.function(lambda x: gc.maximum(0.1 * x, x)).fused()
    assert [op for _, op in leaky.graph.nodes(data="op")].count("leaky_relu") == 1
    assert leaky.grad(x=0.0)["x"] == pytest.approx(0.1)
    assert gc.function(lambda x: gc.where(x > 0, x, -x)).grad(x=0.0)["x"] == -1.0
    assert gc.function(lambda x: gc.where(x >= 0, x, -x)).grad(x=0.0)["x"] == 1.0


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: gc.maximum(x, 0.0),
        lambda x: gc.maximum(0.0, x),
        lambda x: gc.where(x > 0, x, 0.0),
        lambda x: gc.where(x >= 0, x, 0.0),
        lambda x: gc.where(x < 0, 0.0, x),
    ],
    ids=["maximum(x,0)", "maximum(0,x)", "where(x>0)", "where(x>=0)", "where(x<0)"],
)
def test_fusing_a_spelled_relu_keeps_the_gradient_at_its_kink(fn):
    f = gc.function(fn)
    unfused = f.grad(x=np.array([-1.0, 0.0, 1.0]))["x"]
    fused = f.fused(level="patterns").grad(x=np.array([-1.0, 0.0, 1.0]))["x"]
    np.testing.assert_array_equal(fused, unfused)


def test_sqrt_and_log_at_zero_follow_numpy():
    value, grads = gc.function(lambda x: gc.sqrt(x) + gc.log(x)).value_and_grad(x=np.zeros(1))
    assert value[0] == -np.inf and grads["x"][0] == np.inf


# ---------------------------------------------------------------- empty arrays


@pytest.mark.parametrize("level", ["none", "patterns", "elementwise"])
def test_empty_arrays_flow_through_elementwise_gates_sums_and_matmul(level):
    f = at_level(gc.function(lambda x, y: gc.sum(gc.exp(x) * y + gc.tanh(x))), level)
    value, grads = f.value_and_grad(x=np.zeros(0), y=np.zeros(0))
    assert value == 0.0 and grads["x"].shape == (0,) and grads["y"].shape == (0,)
    g = at_level(gc.function(lambda A, B: gc.sum(A @ B)), level)
    value, grads = g.value_and_grad(A=np.ones((2, 0)), B=np.ones((0, 3)))
    assert value == 0.0 and grads["A"].shape == (2, 0) and grads["B"].shape == (0, 3)
    h = at_level(gc.function(lambda x: gc.sum(gc.exp(x), axis=1)), level)
    value, grads = h.value_and_grad(x=np.zeros((0, 3)))
    assert value.shape == (0,) and grads["x"].shape == (0, 3)


def test_mean_of_an_empty_array_is_nan_as_in_numpy():
    f = gc.function(lambda x: gc.mean(x))
    value, grads = f.value_and_grad(x=np.zeros(0))
    assert np.isnan(value) and grads["x"].shape == (0,)
    value, grads = gc.function(lambda x: gc.sum(gc.mean(x, axis=0))).value_and_grad(
        x=np.zeros((0, 2))
    )
    assert grads["x"].shape == (0, 2)


def test_max_over_an_empty_axis_is_a_shape_error():
    with pytest.raises(gc.ShapeError, match="empty axis"):
        gc.function(lambda x: gc.max(x)).value_and_grad(x=np.zeros(0))


# ---------------------------------------------------------------- shapes


def test_a_second_call_with_shapes_that_cannot_broadcast_names_the_gate():
    f = gc.function(lambda x, y: gc.sum(x * y))
    assert f.value_and_grad(x=np.ones(3), y=np.ones(3))[0] == 3.0
    with pytest.raises(gc.ShapeError, match="'mul'"):
        f.value_and_grad(x=np.ones(3), y=np.ones(4))
    assert f.value_and_grad(x=np.ones(3), y=2.0)[0] == 6.0  # the first specialisation still works


def test_a_mask_that_cannot_broadcast_names_the_gate():
    f = gc.function(lambda x, y: gc.where(x > 0, x, y))
    with pytest.raises(gc.ShapeError, match="'where'|'gt'"):
        f(x=np.ones(3), y=np.ones(2))


# ---------------------------------------------------------------- graphs from a saved file


EDGE_LIST = edge_list("edges")  # the files here call the edge list "edges"


def save(g: nx.DiGraph, path) -> None:
    """A graph as networkx node-link JSON (arrays as lists), as a user would save it."""
    data = nx.node_link_data(nx.DiGraph(g), **EDGE_LIST)
    path.write_text(json.dumps(data, default=lambda o: o.tolist()), encoding="utf-8")


def load(path) -> gc.Function:
    data = json.loads(path.read_text(encoding="utf-8"))
    return gc.from_graph(nx.node_link_graph(data, directed=True, multigraph=False, **EDGE_LIST))


def saved(tmp_path, nodes, edges, inputs, output):
    """A hand-written node-link file: nodes as (id, attrs), edges as (source, target, pos)."""
    data = {
        "directed": True,
        "multigraph": False,
        "graph": {"name": "saved", "inputs": inputs, "output": output},
        "nodes": [{"id": n, **attrs} for n, attrs in nodes],
        "edges": [{"source": u, "target": v, "pos": pos} for u, v, pos in edges],
    }
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@gc.function
def layer(X, w, b):
    h = gc.tanh(X @ w + b) * np.array([1.0, 2.0])
    return gc.sum(h, axis=0) + gc.max(X, axis=1).mean() + gc.sum(gc.reshape(X, (3, 2)).T * 0.5)


def test_a_saved_graph_loads_back_and_computes_the_same(tmp_path):
    path = tmp_path / "layer.json"
    save(layer.graph, path)
    loaded = load(path)
    X, w, b = np.arange(6.0).reshape(2, 3) / 7, np.array([0.1, -0.2, 0.3]), 0.5
    value, grads = loaded.value_and_grad(X=X, w=w, b=b)
    want_value, want = layer.value_and_grad(X=X, w=w, b=b)
    np.testing.assert_array_equal(value, want_value)
    for k in want:
        np.testing.assert_array_equal(grads[k], want[k])


X_NODE = (0, {"op": "input", "name": "x"})


def test_a_saved_graph_with_a_cycle_is_a_graph_error(tmp_path):
    path = saved(
        tmp_path,
        [X_NODE, (1, {"op": "add"}), (2, {"op": "exp"})],
        [(0, 1, [0]), (2, 1, [1]), (1, 2, [0])],
        [0],
        2,
    )
    with pytest.raises(gc.GraphError, match="cycle"):
        load(path)


def test_a_saved_graph_with_an_unknown_op_is_a_graph_error(tmp_path):
    path = saved(tmp_path, [X_NODE, (1, {"op": "sinh"})], [(0, 1, [0])], [0], 1)
    with pytest.raises(gc.GraphError, match="unknown op 'sinh'"):
        load(path)


@pytest.mark.parametrize(
    ("edges", "filled"),
    [([(0, 1, [0])], r"\[0\]"), ([(0, 1, [0, 1, 2])], r"\[0, 1, 2\]"), ([(0, 1, [3])], r"\[3\]")],
    ids=["too-few", "too-many", "wrong-position"],
)
def test_a_saved_graph_with_the_wrong_arity_is_a_graph_error(tmp_path, edges, filled):
    path = saved(tmp_path, [X_NODE, (1, {"op": "mul"})], edges, [0], 1)
    with pytest.raises(gc.GraphError, match=rf"takes 2 argument\(s\).*{filled}"):
        load(path)


@pytest.mark.parametrize(
    ("op", "params"),
    [
        ("sum", None),
        ("sum", {"axis": "rows", "keepdims": False}),
        ("reshape", None),
        ("reshape", {"shape": "wide"}),
        ("max", {"axis": 0}),
    ],
    ids=[
        "sum-no-params",
        "sum-axis-str",
        "reshape-no-shape",
        "reshape-shape-str",
        "max-no-keepdims",
    ],
)
def test_a_saved_tensor_gate_with_missing_or_bad_params_is_a_graph_error(tmp_path, op, params):
    attrs = {"op": op} if params is None else {"op": op, "params": params}
    path = saved(tmp_path, [X_NODE, (1, attrs)], [(0, 1, [0])], [0], 1)
    with pytest.raises(gc.GraphError, match=op):
        load(path).value_and_grad(x=np.ones((2, 3)))


def test_a_saved_reduction_over_a_list_of_axes_works(tmp_path):
    """JSON has no tuples: axis=(0, 1) comes back as the list [0, 1]."""
    path = saved(
        tmp_path,
        [X_NODE, (1, {"op": "sum", "params": {"axis": [0, 1], "keepdims": False}})],
        [(0, 1, [0])],
        [0],
        1,
    )
    value, grads = load(path).value_and_grad(x=np.ones((2, 3)))
    assert value == 6.0 and grads["x"].tolist() == [[1.0] * 3] * 2


@pytest.mark.parametrize(
    ("nodes", "edges"),
    [
        (
            [X_NODE, (1, {"op": "const", "value": 1.0}), (2, {"op": "gt"})],
            [(0, 2, [0]), (1, 2, [1])],
        ),
        (
            [X_NODE, (1, {"op": "const", "value": 1.0}), (3, {"op": "gt"}), (2, {"op": "add"})],
            [(0, 3, [0]), (1, 3, [1]), (3, 2, [0]), (0, 2, [1])],
        ),
        ([X_NODE, (2, {"op": "where"})], [(0, 2, [0, 1, 2])]),
    ],
    ids=["returns-a-mask", "adds-a-mask", "where-without-mask"],
)
def test_a_saved_graph_misusing_masks_is_a_graph_error(tmp_path, nodes, edges):
    """What tracing refuses (a mask as a number, a number as a mask) a file cannot smuggle in."""
    path = saved(tmp_path, nodes, edges, [0], 2)
    with pytest.raises(gc.GraphError, match="mask"):
        load(path)


# ---------------------------------------------------------------- very deep graphs

STEPS = 16_667  # three gates a step: 50,001 chained gates


def deep_chain():
    @gc.function
    def chain(x):
        for _ in range(STEPS):
            x = gc.tanh(x) * 1e-4 + x
        return x

    return chain


def deep_reference(x: float):
    derivative = 1.0
    for _ in range(STEPS):
        t = np.tanh(x)
        derivative *= 1 + 1e-4 * (1 - t**2)
        x = x + 1e-4 * t
    return x, derivative


def test_fifty_thousand_gates_fuse_without_hitting_the_recursion_limit():
    chain = deep_chain()
    assert len(chain.graph) > 50_000
    patterns = gc.fuse(chain.graph, level="patterns")
    assert len(patterns) == len(chain.graph)  # nothing to rewrite, but every node was visited
    fused = chain.fused(level="elementwise")
    value, grads = fused.value_and_grad(x=0.3)
    want, derivative = deep_reference(0.3)
    assert value == pytest.approx(want, rel=1e-12)
    assert grads["x"] == pytest.approx(derivative, rel=1e-10)


def test_a_deep_graph_round_trips_through_a_saved_file(tmp_path):
    chain = deep_chain()
    path = tmp_path / "deep.json"
    save(chain.graph, path)
    loaded = load(path)
    assert len(loaded.graph) == len(chain.graph)
    ops_in = sorted(op for _, op in chain.graph.nodes(data="op"))
    assert sorted(op for _, op in loaded.graph.nodes(data="op")) == ops_in


# ---------------------------------------------------------------- files graphc writes


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_written_files_get_the_usual_permissions(tmp_path):
    from graphc.files import write_atomic, write_picture

    def mode(path):
        return stat.S_IMODE(Path(path).stat().st_mode)

    f = gc.function(lambda x: x * 2.0)
    old = os.umask(0o022)
    try:
        assert mode(f.save_source(tmp_path / "f.py")) == 0o644  # as open() would make it
        write_picture(f.svg(x=1.0), tmp_path / "f.svg")
        assert mode(tmp_path / "f.svg") == 0o644
        os.umask(0o077)
        write_atomic(tmp_path / "private.txt", "x")
        assert mode(tmp_path / "private.txt") == 0o600
        (tmp_path / "f.py").chmod(0o664)  # replacing a file keeps its mode
        f.save_source(tmp_path / "f.py")
        assert mode(tmp_path / "f.py") == 0o664
    finally:
        os.umask(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.py", "f.svg", "private.txt"]


# ---------------------------------------------------------------- the catalogue itself


def test_every_catalogue_entry_names_tests_that_exist_and_every_test_here_is_listed():
    import ast
    import re

    root = Path(__file__).resolve().parent.parent
    text = (root / "docs" / "errors.md").read_text(encoding="utf-8")
    named = re.findall(r"`(tests/test_\w+\.py)::(\w+)`", text)
    assert named
    defined = {}
    for path in {p for p, _ in named} | {"tests/test_bad_input.py"}:
        tree = ast.parse((root / path).read_text(encoding="utf-8"))
        defined[path] = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    missing = [f"{p}::{t}" for p, t in named if t not in defined[p]]
    assert not missing, f"docs/errors.md names tests that do not exist: {missing}"
    listed = {t for p, t in named if p == "tests/test_bad_input.py"}
    unlisted = sorted(t for t in defined["tests/test_bad_input.py"] if t.startswith("test_"))
    unlisted = [t for t in unlisted if t not in listed and "catalogue" not in t]
    assert not unlisted, f"tests not in docs/errors.md: {unlisted}"
