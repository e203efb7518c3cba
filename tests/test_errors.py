"""Bad input: each case raises graphc's own error, of the right kind, saying what is wrong.

"Never a traceback from deep inside": every error here is a `GraphcError` subclass whose message
names the culprit, and it is raised without a chained internal exception being shown.
"""

import numpy as np
import pytest
import sympy

import graphc as gc


@gc.function
def f(x, y):
    return x * y + x


def raises(kind, fn, *needles):
    """Call fn; check it raises `kind` whose message contains every needle; return the error."""
    with pytest.raises(kind) as info:
        fn()
    error = info.value
    assert isinstance(error, gc.GraphcError)
    message = str(error)
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    # no "During handling of the above exception, another exception occurred" noise
    assert error.__context__ is None or error.__suppress_context__, repr(error.__context__)
    return error


# ---------------------------------------------------------------- argument names


def test_missing_argument_is_named():
    raises(gc.InputError, lambda: f(x=1.0), "missing", "'y'")
    raises(gc.InputError, lambda: f(1.0), "'y'")
    raises(gc.InputError, lambda: f.grad(y=1.0), "'x'")
    raises(gc.InputError, lambda: f.value_and_grad(), "'x'", "'y'")


def test_unexpected_argument_is_named():
    raises(gc.InputError, lambda: f(x=1.0, y=2.0, z=3.0), "unexpected", "'z'")
    raises(gc.InputError, lambda: f.value_and_grad(x=1.0, y=2.0, w=3.0), "'w'")


def test_misnamed_argument_names_both_the_stranger_and_the_inputs():
    error = raises(gc.InputError, lambda: f(x=1.0, Y=2.0), "'Y'")
    assert "'y'" in str(error) or "y" in str(error)


def test_too_many_positional_arguments_and_duplicates():
    raises(gc.InputError, lambda: f(1.0, 2.0, 3.0), "2", "3")
    raises(gc.InputError, lambda: f(1.0, x=2.0), "'x'")


def test_argument_errors_are_also_type_errors():
    with pytest.raises(TypeError):
        f(x=1.0)


def test_check_grad_reports_argument_errors_too():
    raises(gc.InputError, lambda: gc.check_grad(f, x=1.0), "'y'")
    raises(gc.InputError, lambda: gc.check_grad(f, x=1.0, y=1.0, q=1.0), "'q'")


@gc.function
def clashing(self, digits, theme, show_local, repeat):
    """Inputs named like the parameters of Function's methods and of the drawing options."""
    return self * digits + theme * show_local - repeat


CLASHING = dict(self=1.0, digits=2.0, theme=3.0, show_local=4.0, repeat=5.0)


def test_inputs_named_like_method_parameters_pass_by_name():
    grads = {"self": 2.0, "digits": 1.0, "theme": 4.0, "show_local": 3.0, "repeat": -1.0}
    assert clashing(**CLASHING) == 9.0
    assert clashing.value_and_grad(**CLASHING) == (9.0, grads)
    assert clashing.grad(1.0, 2.0, theme=3.0, show_local=4.0, repeat=5.0) == grads
    source = clashing.source_for(**CLASHING)
    assert "def forward(self, digits, theme, show_local, repeat)" in source
    assert clashing.compiled_for(**CLASHING).module.forward(1.0, 2.0, 3.0, 4.0, 5.0)[0] == 9.0


def test_an_input_named_like_a_drawing_option_goes_by_position():
    by_position = clashing.svg(1.0, 2.0, 3.0, 4.0, 5.0, digits=3, theme="dark")
    assert "9.000" in by_position  # the output wire, at 3 digits
    assert by_position == clashing.svg(1.0, 2.0, 3.0, 4.0, repeat=5.0, digits=3, theme="dark")
    frames = clashing.render_steps(1.0, 2.0, 3.0, 4.0, repeat=5.0, digits=3)
    assert frames[-1] == clashing.svg(1.0, 2.0, 3.0, 4.0, 5.0, digits=3)
    for method in (clashing.render, clashing.svg, clashing.render_steps):
        error = raises(gc.InputError, lambda m=method: m(**CLASHING), "'digits'", "by position")
        assert f"{method.__name__}()" in str(error)
    raises(gc.InputError, lambda: clashing.svg(1.0, 2.0, show_local=4.0, theme=3.0), "'theme'")
    assert "<svg" in clashing.svg(theme="dark")  # no inputs: the structure, options as options
    g = gc.function(lambda x, y: x * y)
    assert g.svg(2.0, y=3.0, digits=1) == g.svg(x=2.0, y=3.0, digits=1)


def test_check_grad_and_compare_take_inputs_named_like_their_options_by_position():
    @gc.function
    def g(samples, repeat):
        return samples * repeat

    assert gc.check_grad(g, 2.0, 3.0, samples=None) < 1e-8
    raises(gc.InputError, lambda: gc.check_grad(g, samples=2.0, repeat=3.0), "'samples'")
    report = gc.compare(g, 2.0, 3.0, repeat=1)
    assert report.inputs == {"samples": 2.0, "repeat": 3.0} and report.value_diff == 0
    raises(gc.InputError, lambda: gc.compare(g, 2.0, repeat=3.0), "'repeat'", "by position")


# ---------------------------------------------------------------- refused input types


@pytest.mark.parametrize(
    "value",
    [
        1 + 2j,
        np.complex128(1 + 1j),
        np.array([1.0 + 1j, 2.0]),
    ],
    ids=["complex", "np.complex128", "complex-array"],
)
def test_complex_inputs_are_refused(value):
    raises(gc.InputError, lambda: f(x=value, y=1.0), "'x'", "complex")


@pytest.mark.parametrize(
    "value", [True, np.bool_(False), np.array([True, False])], ids=["bool", "np.bool_", "array"]
)
def test_boolean_inputs_are_refused(value):
    raises(gc.InputError, lambda: f(x=1.0, y=value), "'y'", "boolean")


@pytest.mark.parametrize("value", ["3", None, object(), np.array(["a"])])
def test_non_numeric_inputs_are_refused(value):
    raises(gc.InputError, lambda: f(x=value, y=1.0), "'x'")


# ---------------------------------------------------------------- shapes


def test_shapes_that_cannot_broadcast_name_the_gate_and_both_shapes():
    g = gc.function(lambda a, b: gc.exp(a) * gc.tanh(b))
    error = raises(gc.ShapeError, lambda: g(np.ones((2, 3)), np.ones((3, 2))), "'mul'")
    assert "(2, 3)" in str(error) and "(3, 2)" in str(error)
    assert isinstance(error, ValueError)


def test_bias_of_the_wrong_length_names_the_add_gate():
    g = gc.function(lambda X, b: X + b)
    error = raises(gc.ShapeError, lambda: g(np.ones((4, 3)), np.ones(4)), "'add'")
    assert "(4, 3)" in str(error) and "(4,)" in str(error)


def test_matrices_that_cannot_multiply_name_matmul_and_both_shapes():
    g = gc.function(lambda A, B: A @ B)
    error = raises(gc.ShapeError, lambda: g(np.ones((2, 3)), np.ones((2, 3))), "'matmul'")
    assert str(error).count("(2, 3)") >= 2
    error = raises(gc.ShapeError, lambda: g(np.ones(3), np.ones(4)), "'matmul'")
    assert "(3,)" in str(error) and "(4,)" in str(error)
    error = raises(gc.ShapeError, lambda: g(1.0, np.ones(3)), "'matmul'")
    assert "()" in str(error) and "(3,)" in str(error)


def test_shape_errors_deep_in_a_function_name_the_failing_gate():
    @gc.function
    def g(X, W1, W2):
        h = gc.relu(X @ W1)
        return gc.sum(h @ W2)

    error = raises(
        gc.ShapeError, lambda: g(np.ones((5, 3)), np.ones((3, 4)), np.ones((5, 2))), "'matmul'"
    )
    assert "(5, 4)" in str(error) and "(5, 2)" in str(error)


def test_reductions_and_reshapes_with_impossible_shapes():
    raises(
        gc.ShapeError,
        lambda: gc.function(lambda x: gc.sum(x, axis=2))(np.ones((2, 3))),
        "'sum'",
        "axis 2",
    )
    raises(
        gc.ShapeError,
        lambda: gc.function(lambda x: gc.reshape(x, (4,)))(np.ones((2, 3))),
        "'reshape'",
        "(2, 3)",
        "(4,)",
    )


# ---------------------------------------------------------------- tracing


def test_branching_on_a_traced_value_explains_and_suggests_gates():
    def relu_by_hand(x):
        if x > 0:
            return x
        return 0.0

    error = raises(gc.TraceError, lambda: gc.function(relu_by_hand), "gc.maximum", "gc.where")
    assert "branch" in str(error)


@pytest.mark.parametrize(
    "fn",
    [
        lambda x, y: x and y,
        lambda x, y: x if y else x,
        lambda x, y: max(x, y),
        lambda x, y: float(x) * y,
    ],
    ids=["and", "ternary", "builtin-max", "float"],
)
def test_other_value_dependent_python_is_a_trace_error(fn):
    raises(gc.TraceError, lambda: gc.function(fn), "gc.where")


def test_while_loop_on_a_traced_value_is_a_trace_error():
    def g(x):
        while x < 10:
            x = x * 2
        return x

    raises(gc.TraceError, lambda: gc.function(g), "gc.where")


def test_masks_only_select():
    raises(gc.TraceError, lambda: gc.function(lambda x: (x > 0) * x), "mask", "gc.where")
    raises(gc.TraceError, lambda: gc.function(lambda x: gc.where(x, x, x)), "comparison")
    raises(gc.TraceError, lambda: gc.function(lambda x: x > 0), "mask")


def test_unsupported_python_on_traced_values():
    raises(gc.TraceError, lambda: gc.function(lambda x: x[x > 0]), "boolean-mask", "gc.where")

    def assigns(x):
        x[0] = 1.0  # traced values are never changed in place (indexing x[0] itself works)
        return x

    raises(gc.TraceError, lambda: gc.function(assigns), "assignment", "gc.where")
    raises(gc.TraceError, lambda: gc.function(lambda x: [v for v in x]), "iterate")
    raises(gc.TraceError, lambda: gc.function(lambda x: np.sin(x)), "np.sin")
    raises(gc.TraceError, lambda: gc.function(lambda x: x + "a"), "str")
    raises(gc.TraceError, lambda: gc.function(lambda x: (x, x)), "one value")


def test_unsupported_parameter_kinds():
    raises(gc.TraceError, lambda: gc.function(lambda *xs: xs[0]), "xs")
    raises(gc.TraceError, lambda: gc.function(lambda x, *, y: x * y), "'y'")


# ---------------------------------------------------------------- names


@pytest.mark.parametrize("names", ["x-1", "1x", "x y-z", "a.b"])
def test_symbols_with_invalid_identifiers(names):
    bad = [n for n in names.split() if not n.isidentifier()][0]
    raises(gc.InputError, lambda: gc.symbols(names), repr(bad), "identifier")


def test_symbols_with_a_repeated_name_or_none():
    raises(gc.InputError, lambda: gc.symbols("x x"), "repeat")
    raises(gc.InputError, lambda: gc.symbols(""))


def test_from_sympy_with_an_invalid_symbol_name():
    expr = sympy.Symbol("x-1") * 2 + sympy.Symbol("y")
    raises(gc.InputError, lambda: gc.from_sympy(expr), "'x-1'", "identifier")


def test_from_sympy_with_an_unsupported_function():
    x = sympy.Symbol("x")
    raises(gc.InputError, lambda: gc.from_sympy(sympy.sin(x)), "sin")
    raises(gc.InputError, lambda: gc.from_sympy("x + 1"), "SymPy")


def test_an_expression_using_a_symbol_not_in_inputs():
    p, q = gc.symbols("p q")
    raises(gc.TraceError, lambda: gc.function(p * q, inputs=[p]), "'q'")


# ---------------------------------------------------------------- gc.gate


def test_gate_formula_sympy_cannot_differentiate():
    error = raises(
        gc.GateError, lambda: gc.gate("opaque_f", lambda a: sympy.Function("f")(a)), "opaque_f"
    )
    assert "differentiate" in str(error)
    assert isinstance(error, ValueError)


def test_gate_formula_undifferentiable_in_its_second_argument():
    error = raises(
        gc.GateError,
        lambda: gc.gate("opaque_h", lambda a, b: a * sympy.Function("h")(b)),
        "opaque_h",
        "argument 1",
    )
    assert "differentiate" in str(error)


def test_a_failed_gate_definition_leaves_no_gate_behind():
    with pytest.raises(gc.GateError):
        gc.gate("never_defined", lambda a: sympy.Function("g")(a))
    g = __import__("networkx").DiGraph()
    g.add_node(0, op="input", name="x")
    g.add_node(1, op="never_defined")
    g.add_edge(0, 1, pos=(0,))
    g.graph.update(inputs=[0], output=1)
    with pytest.raises(gc.GraphError, match="never_defined"):
        gc.from_graph(g)


@pytest.mark.parametrize(
    ("name", "formula", "needle"),
    [
        ("bad-name", lambda a: a, "identifier"),
        ("strayq", lambda a: a + sympy.Symbol("q"), "'q'"),
        ("notexpr", lambda a: "text", "SymPy expression"),
        ("crashes", lambda a: 1 / 0, "failed"),
        ("varargs", lambda *a: a[0], "number"),
        ("sigmoid", lambda a: a, "built-in"),
    ],
)
def test_other_bad_gate_definitions(name, formula, needle):
    raises(gc.GateError, lambda: gc.gate(name, formula), needle)


def test_calling_a_user_gate_with_the_wrong_number_of_arguments():
    square = gc.gate("square_arity", lambda a: a**2)
    raises(gc.TraceError, lambda: gc.function(lambda x, y: square(x, y)), "square_arity")


def test_gc_function_of_something_else():
    raises(gc.InputError, lambda: gc.function("x + 1"), "str")
    raises(gc.InputError, lambda: gc.function(None))
