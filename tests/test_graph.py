"""The graph: a networkx DAG with an op on every node, and validation of hand-built graphs."""

import networkx as nx
import numpy as np
import pytest

import graphc as gc
from graphc import ops

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


def test_graph_errors_are_graphc_errors():
    assert issubclass(gc.GraphError, gc.GraphcError)
    for cls in (gc.InputError, gc.TraceError, gc.ShapeError, gc.GateError):
        assert issubclass(cls, gc.GraphcError)
