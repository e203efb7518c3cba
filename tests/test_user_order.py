"""The user's order (issue 14): forward statements in the order they were written, a fused
region where its last statement was; the backward sweep the reverse of that; named
intermediates keep their names at every fusion level.

The oracle for the order is the function's own text: the order of its assignments, read with
`ast`; values are checked against central differences.
"""

import ast

import numpy as np
import pytest
from conftest import assert_grads_close, central_diff_all
from hypothesis import given
from strategies import broadcast_programs, examples, vector_programs
from test_styles import batchnorm

import graphc as gc
from graphc.ir.graph import user_order

LEVELS = ("none", "patterns", "elementwise")


def neuron_then_other(w, x, b):
    dot = w * x + b
    f = 1 / (1 + gc.exp(-dot))  # fused into one sigmoid, made after `other`'s gates exist
    other = gc.exp(x) * 2.0
    both = f * other
    return both + dot


def written_names(fn) -> list[str]:
    """The names the function assigns, in the order it assigns them (from its source)."""
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    return [t.id for node in ast.walk(tree) if isinstance(node, ast.Assign) for t in node.targets]


def assigned(source: str, function: str) -> list[str]:
    tree = ast.parse(source)
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function)
    return [  # a tuple's names too: `f, f_neg = sigmoid_pair(dot)` assigns f
        name.id
        for node in fn.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        for name in (t.elts if isinstance(t, ast.Tuple) else [t])
        if isinstance(name, ast.Name)
    ]


@pytest.mark.parametrize("level", LEVELS)
def test_forward_statements_follow_the_order_written(level):
    f = gc.function(neuron_then_other).fused(level=level)
    order = [
        n
        for n in assigned(f.source_for(0.5, -1.5, 2.0), "forward")
        if n in written_names(neuron_then_other)
    ]
    assert order == written_names(neuron_then_other)


def test_a_fused_region_stands_where_its_last_statement_was():
    f = gc.function(neuron_then_other).fused()
    g = f.graph
    order = [g.nodes[n].get("hint") for n in user_order(g) if g.nodes[n].get("hint")]
    assert order == ["dot", "f", "other", "both"]
    sigmoid = next(n for n in g.nodes if g.nodes[n]["op"] == "sigmoid")
    exp_of_x = next(n for n in g.nodes if g.nodes[n]["op"] == "exp")
    assert sigmoid > exp_of_x  # made later, yet written before: the order is the user's
    assert user_order(g).index(sigmoid) < user_order(g).index(exp_of_x)


@pytest.mark.parametrize("level", LEVELS)
def test_backward_sweeps_the_gates_in_reverse(level):
    f = gc.function(neuron_then_other).fused(level=level)
    compiled = f.compiled_for(0.5, -1.5, 2.0)
    g = compiled.program.graph
    program = compiled.program  # a forward gate is a statement or written into one (fused)
    forward = [
        n
        for n in user_order(g)
        if g.nodes[n].get("role") is None and (n in program.forward or n in program.inline)
    ]
    # the gradient nodes were made gate by gate in the sweep: their gates, in order of creation
    swept = []
    for n in sorted(g.nodes):
        gate = g.nodes[n].get("grad_gate")
        if gate is not None and gate not in swept:
            swept.append(gate)
    assert swept == [n for n in reversed(forward) if n in swept]


@pytest.mark.parametrize("level", LEVELS)
def test_named_intermediates_keep_their_names(level):
    f = gc.function(neuron_then_other).fused(level=level)
    source = f.source_for(np.array([0.5, 1.0]), np.array([-1.5, 0.2]), 2.0)
    forward, backward = assigned(source, "forward"), assigned(source, "backward")
    for name in ("dot", "f", "other", "both"):
        assert name in forward
    for name in ("ddot", "df", "dother"):
        assert name in backward


@pytest.mark.parametrize("level", LEVELS)
def test_reordered_code_computes_the_same_gradients(level):
    f = gc.function(neuron_then_other).fused(level=level)
    inputs = {"w": np.array([0.5, -2.0]), "x": np.array([-1.5, 0.3]), "b": 2.0}
    assert_grads_close(f.grad(**inputs), central_diff_all(f, inputs), rtol=1e-6, atol=1e-8)


def _printed_sweep(f, *args, **kwargs) -> list[int]:
    """The gates whose backward step each printed backward statement belongs to, in print order,
    and the forward order of the gates, as the user wrote them."""
    from graphc.passes.shortcuts import shortcuts

    compiled = f.compiled_for(*args, **kwargs)
    program = compiled.program
    g = program.graph
    plan = shortcuts(program, "float64")
    position = {n: k for k, n in enumerate(user_order(g))}
    return [position[g.nodes[s]["swept"]] for s in plan.backward if "swept" in g.nodes[s]]


def _net_inputs():
    from graphc.lectures import NET_INPUTS

    return NET_INPUTS


@pytest.mark.parametrize("level", LEVELS)
def test_printed_backward_is_the_exact_reverse_of_forward(level):
    # the printed statements, as emitted (shortcuts included): each belongs to a gate's step of
    # the sweep, and those steps come in the reverse of the order the user wrote the gates. The
    # 2-layer net's regulariser is the case a memory shortcut once moved (dW = 2 * dreg * W
    # printed just before the matmul's dW = dW + X.T @ dh)
    from graphc.lectures import neuron, two_layer_net

    rng = np.random.default_rng(3)
    cases = [
        (gc.function(neuron_then_other), (0.5, -1.5, 2.0), {}),
        (gc.function(neuron), (2.0, -1.0, -3.0, -2.0, -3.0), {}),
        (gc.function(two_layer_net), (), _net_inputs()),
        (gc.function(batchnorm), (rng.normal(size=(5, 3)), rng.normal(size=3), 0.1), {}),
    ]
    for f, args, kwargs in cases:
        sweep = _printed_sweep(f.fused(level=level), *args, **kwargs)
        assert sweep, f.__name__
        assert sweep == sorted(sweep, reverse=True), f"{f.__name__}: {sweep}"


def test_the_regulariser_gradient_is_printed_where_its_gate_is_swept():
    from graphc.lectures import two_layer_net

    source = gc.function(two_layer_net).source_for(**_net_inputs())
    backward = assigned(source, "backward")
    # the reverse of forward: reg_loss's mul, then sum(W2 * W2), sum(W1 * W1), 0.5 * reg, ...
    assert backward.index("dW2") < backward.index("dW1") < backward.index("dreg")
    assert backward.index("dreg") < backward.index("dscores")


@examples(ci=40, slow=400)
@given(vector_programs() | broadcast_programs())
def test_random_programs_print_backward_in_the_exact_reverse(case):
    for level, f in case.versions(fast=True).items():
        with np.errstate(all="ignore"):
            sweep = _printed_sweep(f, **case.inputs)
        assert sweep == sorted(sweep, reverse=True), f"{level}: {sweep}"
