"""The graph: a networkx DAG with an op on every node, and validation of hand-built graphs."""

import networkx as nx
import numpy as np
import pytest

import graphc as gc
from graphc.ir import ops

GATE_NAMES = {g.name for g in ops.TABLE}


@gc.function
def neuron(w0, x0, w1, x1, w2):
    return 1 / (1 + gc.exp(-(w0 * x0 + w1 * x1 + w2)))


@gc.function
def layer(X, W, b):
    return gc.sum(gc.relu(X @ W + b), axis=1).mean()


@pytest.mark.parametrize("f", [neuron, layer], ids=lambda f: f.__name__)
def test_graph_is_a_dag_with_an_op_on_every_node(f):
    g = f.graph
    assert isinstance(g, nx.DiGraph)
    assert nx.is_directed_acyclic_graph(g)
    for n, data in g.nodes(data=True):
        assert "op" in data, n
        assert data["op"] in {"input", "const"} | GATE_NAMES, data["op"]
    assert [g.nodes[i]["name"] for i in g.graph["inputs"]] == list(f.inputs)
    assert all(g.nodes[i]["op"] == "input" for i in g.graph["inputs"])
    assert g.graph["output"] in g
    assert g.out_degree(g.graph["output"]) == 0
    assert g.graph["name"] == f.__name__


def test_neuron_graph_has_one_node_per_input_constant_and_gate():
    ops_count = {}
    for _, op in neuron.graph.nodes(data="op"):
        ops_count[op] = ops_count.get(op, 0) + 1
    # the two 1s of 1 / (1 + ...) are two constants
    assert ops_count == {"input": 5, "const": 2, "mul": 2, "add": 3, "neg": 1, "exp": 1, "div": 1}


def test_edges_carry_argument_positions():
    @gc.function
    def f(x, y):
        return x / y + x * x

    g = f.graph
    x, y = g.graph["inputs"]
    (div,) = [n for n, op in g.nodes(data="op") if op == "div"]
    (mul,) = [n for n, op in g.nodes(data="op") if op == "mul"]
    assert g.edges[x, div]["pos"] == (0,)
    assert g.edges[y, div]["pos"] == (1,)
    assert g.edges[x, mul]["pos"] == (0, 1)  # x*x: one edge filling both positions
    for u, v, pos in g.edges(data="pos"):
        assert isinstance(pos, tuple) and pos, (u, v)


def test_every_gate_node_has_its_arity_in_edges():
    for f in (neuron, layer):
        g = f.graph
        for n, op in g.nodes(data="op"):
            filled = sorted(p for _, _, pos in g.in_edges(n, data="pos") for p in pos)
            want = 0 if op in ("input", "const") else ops.GATES[op].arity
            assert filled == list(range(want)), (n, op)


def test_constants_hold_their_values():
    @gc.function
    def f(x):
        return 2.5 * x + np.array([1.0, 2.0])

    values = [d["value"] for _, d in f.graph.nodes(data=True) if d["op"] == "const"]
    assert any(np.ndim(v) == 0 and v == 2.5 for v in values)
    assert any(np.ndim(v) == 1 and list(v) == [1.0, 2.0] for v in values)


def test_graph_is_read_only():
    with pytest.raises(nx.NetworkXError):
        neuron.graph.add_node(10_000, op="input", name="q")


def test_graph_is_the_same_for_function_and_symbols():
    x, y = gc.symbols("x y")
    by_symbols = gc.function(x * y + x)

    @gc.function
    def by_tracing(x, y):
        return x * y + x

    def shape_of(g):
        return sorted(
            (g.nodes[u]["op"], g.nodes[v]["op"], pos) for u, v, pos in g.edges(data="pos")
        )

    assert shape_of(by_symbols.graph) == shape_of(by_tracing.graph)


def test_tracing_does_not_duplicate_a_shared_value():
    @gc.function
    def f(x):
        e = gc.exp(x)
        return e * e + e

    ops_ = [op for _, op in f.graph.nodes(data="op")]
    assert ops_.count("exp") == 1


# ---------------------------------------------------------------- hand-built graphs


def hand_built():
    """(a + b) * c with string node ids, as a user would build it."""
    g = nx.DiGraph(name="hand")
    g.add_node("a", op="input", name="a")
    g.add_node("b", op="input", name="b")
    g.add_node("c", op="input", name="c")
    g.add_node("q", op="add")
    g.add_node("f", op="mul")
    g.add_edge("a", "q", pos=(0,))
    g.add_edge("b", "q", pos=(1,))
    g.add_edge("q", "f", pos=(0,))
    g.add_edge("c", "f", pos=(1,))
    g.graph.update(inputs=["a", "b", "c"], output="f")
    return g


def test_a_valid_hand_built_graph_compiles_and_is_correct():
    f = gc.from_graph(hand_built())
    assert tuple(f.inputs) == ("a", "b", "c")
    value, grads = f.value_and_grad(a=-2.0, b=5.0, c=-4.0)
    assert value == -12.0
    assert grads == {"a": -4.0, "b": -4.0, "c": 3.0}
    assert nx.is_directed_acyclic_graph(f.graph)


def test_a_hand_built_graph_with_integer_positions_and_constants():
    g = nx.DiGraph()
    g.add_node(0, op="input", name="x")
    g.add_node(1, op="const", value=3.0)
    g.add_node(2, op="pow")
    g.add_node(3, op="exp")
    g.add_edge(0, 2, pos=0)
    g.add_edge(1, 2, pos=1)
    g.add_edge(2, 3, pos=0)
    g.graph.update(inputs=[0], output=3)
    f = gc.from_graph(g)
    x = 0.7
    value, grads = f.value_and_grad(x=x)
    assert value == pytest.approx(np.exp(x**3), rel=1e-14)
    assert grads["x"] == pytest.approx(3 * x**2 * np.exp(x**3), rel=1e-13)


def test_from_graph_does_not_change_the_users_graph():
    g = hand_built()
    before = (dict(g.nodes(data=True)), list(g.edges(data=True)), dict(g.graph))
    gc.from_graph(g)
    assert (dict(g.nodes(data=True)), list(g.edges(data=True)), dict(g.graph)) == before


def test_from_graph_rejects_a_cycle():
    g = hand_built()
    g.add_edge("f", "q", pos=(2,))
    with pytest.raises(gc.GraphError, match="cycle"):
        gc.from_graph(g)


def test_from_graph_rejects_a_self_loop():
    g = hand_built()
    g.add_edge("f", "f", pos=(2,))
    with pytest.raises(gc.GraphError, match="cycle"):
        gc.from_graph(g)


def test_from_graph_rejects_an_unknown_op():
    g = hand_built()
    g.nodes["f"]["op"] = "frobnicate"
    with pytest.raises(gc.GraphError, match="frobnicate") as info:
        gc.from_graph(g)
    assert "unknown op" in str(info.value)
    assert "'f'" in str(info.value)  # names the node


def test_from_graph_rejects_too_few_arguments():
    g = hand_built()
    g.remove_edge("c", "f")
    with pytest.raises(gc.GraphError, match="mul") as info:
        gc.from_graph(g)
    assert "2 argument" in str(info.value)


def test_from_graph_rejects_too_many_arguments():
    g = hand_built()
    g.add_node("d", op="input", name="d")
    g.add_edge("d", "f", pos=(2,))
    g.graph["inputs"].append("d")
    with pytest.raises(gc.GraphError, match="mul") as info:
        gc.from_graph(g)
    assert "2 argument" in str(info.value)


def test_from_graph_rejects_an_argument_to_an_input():
    g = hand_built()
    g.add_edge("b", "a", pos=(0,))
    with pytest.raises(gc.GraphError, match="0 argument"):
        gc.from_graph(g)


def test_from_graph_rejects_a_node_without_op():
    g = hand_built()
    del g.nodes["q"]["op"]
    with pytest.raises(gc.GraphError, match="'op'"):
        gc.from_graph(g)


def test_from_graph_rejects_an_edge_without_position():
    g = hand_built()
    del g.edges["c", "f"]["pos"]
    with pytest.raises(gc.GraphError, match="pos"):
        gc.from_graph(g)


def test_from_graph_rejects_a_missing_output_and_bad_inputs():
    g = hand_built()
    g.graph["output"] = "nowhere"
    with pytest.raises(gc.GraphError, match="output"):
        gc.from_graph(g)
    g = hand_built()
    g.graph["inputs"] = ["a", "b"]  # forgets c
    with pytest.raises(gc.GraphError, match="input"):
        gc.from_graph(g)


def test_from_graph_rejects_a_const_without_value_and_a_bad_input_name():
    g = hand_built()
    g.nodes["c"].update(op="const")
    g.graph["inputs"] = ["a", "b"]
    with pytest.raises(gc.GraphError, match="value"):
        gc.from_graph(g)
    g = hand_built()
    g.nodes["a"]["name"] = "not a name"
    with pytest.raises(gc.GraphError, match="not a name"):
        gc.from_graph(g)


def test_from_graph_rejects_things_that_are_not_digraphs():
    with pytest.raises(gc.GraphError):
        gc.from_graph(nx.Graph())
    with pytest.raises(gc.GraphError):
        gc.from_graph(nx.MultiDiGraph())


# ---------------------------------------------------------------- tensor params and masks


@gc.function
def classifier(X, W, Y):
    """Every tensor gate with params, and (fused) logsumexp / cross-entropy / sum_squares."""
    s = X @ W
    lse = gc.log(gc.sum(gc.exp(s), axis=1, keepdims=True))
    ce = -gc.sum(Y * (s - lse), axis=1)
    folded = gc.transpose(gc.reshape(W, (2, 3, 3)), (2, 0, 1))
    relu = gc.where(s > 0, s, 0.0)
    return gc.mean(ce) + gc.sum(W * W) + gc.sum(folded * 0.5) + gc.max(X, axis=0).mean() + relu


@pytest.mark.parametrize("level", ["none", "patterns", "elementwise"])
def test_from_graph_accepts_graphcs_own_graphs_at_every_fusion_level(level, rng):
    f = classifier if level == "none" else classifier.fused(level=level)
    X, W, Y = rng.normal(size=(4, 6)), rng.normal(size=(6, 3)), np.eye(3)[[0, 1, 2, 0]]
    value, grads = gc.from_graph(f.graph).value_and_grad(X, W, Y)
    want_value, want = f.value_and_grad(X, W, Y)
    np.testing.assert_array_equal(value, want_value)
    for k in want:
        np.testing.assert_array_equal(grads[k], want[k])


def test_every_tensor_gate_param_has_a_kind_from_graph_can_check():
    from graphc.ir import tensor

    for gate in ops.TABLE:
        for name in gate.params if gate.kind == ops.TENSOR else ():
            assert name in tensor.PARAM_KINDS or (gate.name, name) in tensor.GATE_PARAM_KINDS


def tensor_graph(op, params):
    """x -> op(x) with `params` (left out if None) -> sum: a one-gate hand-built graph."""
    g = nx.DiGraph(name="t", inputs=["x"], output="s")
    g.add_node("x", op="input", name="x")
    g.add_node("t", op=op, **({} if params is None else {"params": params}))
    g.add_node("s", op="sum", params={"axis": None, "keepdims": False})
    g.add_edge("x", "t", pos=0)
    g.add_edge("t", "s", pos=0)
    return g


def test_from_graph_reads_params_given_as_lists_and_leaves_the_users_graph_alone():
    x = np.arange(6.0).reshape(2, 3)
    cases = [
        ("reshape", {"shape": [3, -1]}, np.reshape(x, (3, 2))),
        ("transpose", {"axes": [1, 0]}, x.T),
        ("sum", {"axis": [0, 1], "keepdims": True}, np.sum(x, keepdims=True)),
        ("mean", {"axis": [np.int64(1)], "keepdims": False}, np.mean(x, axis=1)),
        ("max", {"axis": -1, "keepdims": np.bool_(True)}, np.max(x, axis=-1, keepdims=True)),
    ]
    for op, params, want in cases:
        g = tensor_graph(op, params)
        f = gc.from_graph(g)
        assert f(x) == pytest.approx(np.sum(want)), op
        assert g.nodes["t"]["params"] is params and not any(
            isinstance(v, tuple) for v in params.values()
        )  # the user's lists stay lists
        loaded = next(d for _, d in f.graph.nodes(data=True) if d["op"] == op)
        assert all(not isinstance(v, list) for v in loaded["params"].values())


@pytest.mark.parametrize(
    ("op", "params", "needles"),
    [
        ("sum", {"axis": 0}, ["'keepdims'", "missing"]),
        ("sum", {"axis": 0, "keepdims": False, "keep_dims": True}, ["'keep_dims'", "unknown"]),
        ("sum", {"axis": True, "keepdims": False}, ["'axis'", "True"]),
        ("sum", {"axis": [], "keepdims": False}, ["'axis'", "list of ints"]),
        ("mean", {"axis": 0, "keepdims": "yes"}, ["'keepdims'", "bool"]),
        ("max", {"axis": [0, 1], "keepdims": False}, ["'axis'", "one axis"]),
        ("reshape", {"shape": [2, -2]}, ["'shape'", "-1"]),
        ("transpose", {"axes": "reverse"}, ["'axes'"]),
        ("transpose", [1, 0], ["'params'", "dict"]),
        ("matmul", {"axis": 0}, ["no params"]),
        ("log_softmax", {"axis": None}, ["'axis'", "one axis"]),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_from_graph_rejects_missing_unknown_and_malformed_params(op, params, needles):
    g = tensor_graph(op, params)
    if op == "matmul":
        g.add_edge("x", "t", pos=(0, 1))
    with pytest.raises(gc.GraphError) as info:
        gc.from_graph(g)
    message = str(info.value)
    for needle in [f"node 't' ({op})", *needles]:
        assert needle in message, f"{needle!r} not in {message!r}"


def where_graph(cond_op, arg_ops=("input", "input")):
    """where(cond, a, b) over x, the cond node computing `cond_op` of x and 0."""
    g = nx.DiGraph(name="w", inputs=["x"], output="w")
    g.add_node("x", op="input", name="x")
    g.add_node("zero", op="const", value=0.0)
    g.add_node("c", op=cond_op)
    g.add_node("w", op="where")
    g.add_edge("x", "c", pos=0)
    g.add_edge("zero", "c", pos=1)
    g.add_edge("c", "w", pos=0)
    g.add_edge("x", "w", pos=1)
    g.add_edge("zero", "w", pos=2)
    return g


def test_from_graph_checks_that_masks_only_select():
    assert gc.from_graph(where_graph("gt")).grad(x=np.array([-1.0, 2.0]))["x"].tolist() == [0, 1]
    with pytest.raises(gc.GraphError, match=r"node 'w' \(where\) needs a comparison mask"):
        gc.from_graph(where_graph("sub"))  # a number as a mask
    g = where_graph("gt")
    g.remove_edge("x", "w")
    g.add_edge("c", "w", pos=(0, 1))  # the mask also as a value
    with pytest.raises(gc.GraphError, match=r"node 'c' \(gt\) is a comparison mask.*'where'"):
        gc.from_graph(g)
    g = where_graph("gt")
    g.graph["output"] = "c"
    with pytest.raises(gc.GraphError, match="the output, node 'c' \\(gt\\), is a comparison mask"):
        gc.from_graph(g)


def test_from_graph_checks_fused_expr_nodes():
    import sympy

    fused = gc.function(lambda x, y: gc.where(x > 0, x * y, gc.exp(y))).fused(level="elementwise")
    g = nx.DiGraph(fused.graph)
    expr = next(n for n, op in g.nodes(data="op") if op == "expr")
    assert "m2" in str(g.nodes[expr]["formula"])  # the mask is its argument 2
    assert gc.from_graph(g).grad(x=1.0, y=2.0) == fused.grad(x=1.0, y=2.0)
    g.nodes[expr]["formula"] = str(g.nodes[expr]["formula"])  # as a JSON file would hold it
    with pytest.raises(gc.GraphError, match="as text"):
        gc.from_graph(g)
    g.nodes[expr]["formula"] = sympy.Symbol("a0") + sympy.Symbol("a7")
    with pytest.raises(gc.GraphError, match=r"\['a7'\]"):
        gc.from_graph(g)
    g.nodes[expr]["formula"] = sympy.Symbol("a0") * sympy.Symbol("a2")
    with pytest.raises(gc.GraphError, match="comparison mask"):
        gc.from_graph(g)  # argument 2 is a mask, but the formula uses it as a number
    a0, a1, m2 = sympy.symbols("a0 a1 m2")  # written by hand, without graphc's assumptions
    g.nodes[expr]["formula"] = sympy.Piecewise((a0 * a1, m2), (sympy.exp(a1), True))
    assert gc.from_graph(g).grad(x=1.0, y=2.0) == fused.grad(x=1.0, y=2.0)


def test_graph_errors_are_graphc_errors():
    assert issubclass(gc.GraphError, gc.GraphcError)
    for cls in (gc.InputError, gc.TraceError, gc.ShapeError, gc.GateError):
        assert issubclass(cls, gc.GraphcError)
