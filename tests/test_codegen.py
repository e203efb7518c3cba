"""The generated module: standalone, NumPy-only, readable, minimal cache, deterministic.

The generated source is checked as text and as a Python AST, run from a file in a fresh
interpreter that never imports graphc, and compared across processes with different hash seeds.
"""

import ast
import importlib.util
import io
import os
import subprocess
import sys
import textwrap
import tokenize
from pathlib import Path

import numpy as np
import pytest
import sympy
from conftest import assert_grads_close, central_diff_all

import graphc as gc

ROOT = Path(__file__).resolve().parent.parent


@gc.function
def add_mul(x, y, z):
    return (x + y) * z


@gc.function
def neuron(w0, x0, w1, x1, w2):
    dot = w0 * x0 + w1 * x1 + w2
    return gc.sigmoid(dot)


@gc.function
def layer(X, W, b):
    scores = gc.relu(X @ W + b)
    return gc.mean(gc.sum(scores * scores, axis=1))


def layer_inputs(rng):
    return dict(X=rng.normal(size=(5, 3)), W=rng.normal(size=(3, 4)), b=rng.normal(size=4))


def load_file(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def function_def(source: str, name: str) -> ast.FunctionDef:
    (fn,) = [n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == name]
    return fn


# ---------------------------------------------------------------- a standalone module


def test_saved_source_runs_as_a_module_and_agrees(tmp_path):
    value, grads = add_mul.value_and_grad(x=-2.0, y=5.0, z=-4.0)
    path = tmp_path / "add_mul_grad.py"
    assert add_mul.save_source(path) == str(path)
    assert path.read_text() == add_mul.source
    module = load_file(path, "add_mul_grad")
    out, module_grads = module.value_and_grad(-2.0, 5.0, -4.0)
    assert out == value == -12.0
    assert tuple(module_grads) == (grads["x"], grads["y"], grads["z"]) == (-4.0, -4.0, 3.0)


def test_saved_array_module_agrees_with_central_differences(tmp_path, rng):
    inputs = layer_inputs(rng)
    layer(**inputs)
    path = tmp_path / "layer_grad.py"
    layer.save_source(path)
    module = load_file(path, "layer_grad")
    out, grads = module.value_and_grad(inputs["X"], inputs["W"], inputs["b"])

    def ref(X, W, b):
        s = np.maximum(X @ W + b, 0)
        return np.mean(np.sum(s * s, axis=1))

    assert float(out) == pytest.approx(ref(**inputs), rel=1e-13)
    assert_grads_close(dict(zip(("X", "W", "b"), grads)), central_diff_all(ref, inputs))


def test_generated_source_imports_only_numpy():
    for f, args in [(add_mul, (1.0, 2.0, 3.0)), (neuron, (1.0,) * 5)]:
        f(*args)
        imports = [
            alias.name
            for node in ast.walk(ast.parse(f.source))
            if isinstance(node, ast.Import)
            for alias in node.names
        ]
        assert imports == ["numpy"]
        assert not any(isinstance(n, ast.ImportFrom) for n in ast.walk(ast.parse(f.source)))


def test_saved_module_runs_in_a_fresh_interpreter_without_graphc(tmp_path, rng):
    inputs = layer_inputs(rng)
    value, grads = layer.value_and_grad(**inputs)
    layer.save_source(tmp_path / "gen_layer.py")
    for k, v in inputs.items():
        np.save(tmp_path / f"{k}.npy", v)
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        import gen_layer
        args = [np.load(k + ".npy") for k in ("X", "W", "b")]
        out, grads = gen_layer.value_and_grad(*args)
        np.save("out.npy", out)
        for k, g in zip(("X", "W", "b"), grads):
            np.save("d" + k + ".npy", g)
        assert "graphc" not in sys.modules, sorted(m for m in sys.modules if "graphc" in m)
        assert not any(m in sys.modules for m in ("sympy", "networkx"))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert float(np.load(tmp_path / "out.npy")) == value
    for k in inputs:
        np.testing.assert_array_equal(np.load(tmp_path / f"d{k}.npy"), grads[k])


def test_generated_module_exposes_forward_backward_value_and_grad():
    add_mul(1.0, 2.0, 3.0)
    tree = ast.parse(add_mul.source)
    defs = {
        n.name: [a.arg for a in n.args.args] for n in tree.body if isinstance(n, ast.FunctionDef)
    }
    assert defs["forward"] == ["x", "y", "z"]
    assert defs["value_and_grad"] == ["x", "y", "z"]
    assert len(defs["backward"]) == 2 and defs["backward"][1] == "cache"


# ---------------------------------------------------------------- the cache


def test_add_mul_cache_holds_only_z_and_the_sum(tmp_path):
    add_mul(-2.0, 5.0, -4.0)
    add_mul.save_source(tmp_path / "am.py")
    module = load_file(tmp_path / "am.py", "am")
    out, cache = module.forward(-2.0, 5.0, -4.0)
    assert out == -12.0
    # backward of (x+y)*z reads z and q = x+y only: x and y themselves are not needed
    assert len(cache) == 2
    assert sorted(cache) == [-4.0, 3.0]
    assert len(cache) < add_mul.graph.number_of_nodes()
    assert tuple(module.backward(1.0, cache)) == (-4.0, -4.0, 3.0)
    assert tuple(module.backward(2.0, cache)) == (-8.0, -8.0, 6.0)


def _names_read(fn: ast.FunctionDef) -> set[str]:
    return {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _cache_names(fn: ast.FunctionDef) -> list[str]:
    """The names the backward function unpacks from its cache argument."""
    cache_arg = fn.args.args[1].arg
    for stmt in fn.body:
        if (
            isinstance(stmt, ast.Assign)
            and isinstance(stmt.value, ast.Name)
            and stmt.value.id == cache_arg
        ):
            (target,) = stmt.targets
            elts = target.elts if isinstance(target, ast.Tuple) else [target]
            return [e.id for e in elts]
    return []


@pytest.mark.parametrize("which", ["add_mul", "neuron", "layer", "staged"])
def test_backward_reads_every_cached_value_and_nothing_else_from_forward(which, rng):
    if which == "add_mul":
        f, args = add_mul, (1.0, 2.0, 3.0)
    elif which == "neuron":
        f, args = neuron, (2.0, -1.0, -3.0, -2.0, -3.0)
    elif which == "layer":
        f, args = layer, tuple(layer_inputs(rng).values())
    else:
        w = gc.symbols("w0 x0 w1 x1 w2")
        f = gc.function(1 / (1 + gc.exp(-(w[0] * w[1] + w[2] * w[3] + w[4]))))
        args = (2.0, -1.0, -3.0, -2.0, -3.0)
    f(*args)
    tree = ast.parse(f.source)
    backward = function_def(f.source, "backward")
    forward = function_def(f.source, "forward")
    cached = _cache_names(backward)
    body_reads = set()
    for stmt in backward.body:
        if not (isinstance(stmt, ast.Assign) and getattr(stmt.value, "id", None) == "cache"):
            body_reads |= _names_read(stmt)
    unused = [n for n in cached if n not in body_reads]
    assert not unused, f"cached but never read by backward: {unused}\n{f.source}"
    # whatever else backward reads is its own argument, its own results or module-level names
    stored = {
        n.id for n in ast.walk(backward) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }
    module_level = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    module_level |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets}
    arguments = {a.arg for a in backward.args.args}
    undefined = body_reads - stored - module_level - arguments - {"np"}
    assert not undefined, f"backward reads names it never defines: {undefined}"
    # and the forward's cache tuple has exactly as many entries as backward unpacks
    ret = forward.body[-1]
    assert isinstance(ret, ast.Return) and isinstance(ret.value, ast.Tuple)
    cache_expr = ret.value.elts[1]
    assert isinstance(cache_expr, ast.Tuple) and len(cache_expr.elts) == len(cached)


def test_sigmoid_neuron_cache_is_smaller_than_its_graph():
    neuron(2.0, -1.0, -3.0, -2.0, -3.0)
    cached = _cache_names(function_def(neuron.source, "backward"))
    gates = [n for n, op in neuron.graph.nodes(data="op") if op not in ("input", "const")]
    assert 0 < len(cached) < neuron.graph.number_of_nodes()
    # w2 enters an add only: its gradient needs no forward value
    assert "w2" not in cached
    assert len(gates) == 5  # mul, mul, add, add, sigmoid


# ---------------------------------------------------------------- readable statements


def _statement_lines(source: str, names=("forward", "backward")):
    """(line number, statement) of the assignments inside forward and backward."""
    out = []
    for name in names:
        fn = function_def(source, name)
        for stmt in fn.body:
            if isinstance(stmt, ast.Assign) and getattr(stmt.value, "id", None) != "cache":
                out.append(stmt)
    return out


def _comment_lines(source: str) -> dict[int, str]:
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {t.start[0]: t.string for t in tokens if t.type == tokenize.COMMENT}


@pytest.mark.parametrize("f", [add_mul, neuron, layer], ids=lambda f: f.__name__)
def test_every_statement_has_a_comment_on_its_line(f, rng):
    args = tuple(layer_inputs(rng).values()) if f is layer else (1.5,) * len(f.inputs)
    f(*args)
    comments = _comment_lines(f.source)
    stmts = _statement_lines(f.source)
    assert stmts
    for stmt in stmts:
        assert stmt.lineno == stmt.end_lineno, f"statement spans lines: {ast.unparse(stmt)}"
        assert stmt.lineno in comments, f"no comment on: {ast.unparse(stmt)}"
        assert len(comments[stmt.lineno].strip("# ")) > 0


@pytest.mark.parametrize("f", [add_mul, neuron, layer], ids=lambda f: f.__name__)
def test_one_forward_statement_per_gate(f, rng):
    args = tuple(layer_inputs(rng).values()) if f is layer else (1.5,) * len(f.inputs)
    f(*args)
    gates = [op for _, op in f.graph.nodes(data="op") if op not in ("input", "const")]
    forward = function_def(f.source, "forward")
    assigns = [s for s in forward.body if isinstance(s, ast.Assign)]
    assert len(assigns) == len(gates)
    # each statement's comment names its gate
    comments = _comment_lines(f.source)
    named = sorted(comments[s.lineno].lstrip("# ").split()[0].rstrip(":") for s in assigns)
    assert named == sorted(gates)


def test_comments_name_the_local_gradient():
    add_mul(1.0, 2.0, 3.0)
    backward_comments = [
        c for line, c in _comment_lines(add_mul.source).items()
        if line > function_def(add_mul.source, "backward").lineno
    ]  # fmt: skip
    text = " ".join(backward_comments)
    assert "mul" in text and "local gradient" in text


def test_variables_are_named_after_the_traced_values():
    neuron(2.0, -1.0, -3.0, -2.0, -3.0)
    forward = function_def(neuron.source, "forward")
    stored = [  # a tuple too: `out, out_neg = sigmoid_pair(dot)`
        n.id for n in ast.walk(forward) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    ]
    assert "dot" in stored
    backward = function_def(neuron.source, "backward")
    stored = [
        n.id for n in ast.walk(backward) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    ]
    assert "ddot" in stored
    assert backward.args.args[0].arg.startswith("d")


def test_generated_code_is_vectorized_no_python_loops(rng):
    layer(*layer_inputs(rng).values())
    for name in ("forward", "backward", "value_and_grad"):
        fn = function_def(layer.source, name)
        assert not any(isinstance(n, (ast.For, ast.While, ast.ListComp)) for n in ast.walk(fn))


def test_source_is_specialised_to_the_last_call_and_source_for():
    f = gc.function(lambda a, b: gc.sum(a * b))
    scalar = f.source  # before any call: all-scalar
    compile(scalar, "<scalar>", "exec")
    f(np.ones((2, 3)), np.ones(3))
    assert f.source != scalar
    # the docstring names the sizes (issue 14: the code reads them, it is not specialised to them)
    assert "a: (N, D), b: (D,)" in f.source and "N=2, D=3" in f.source
    other = f.source_for(a=np.ones(4), b=np.ones(4))
    assert "a: (N,), b: (N,)" in other and "N=4" in other
    assert f.source == other


def test_input_names_that_clash_with_generated_names_still_work():
    @gc.function
    def f(np, print, dout, cache):  # noqa: A002 - names the generated module must rename
        return np * print + dout * cache

    value, grads = f.value_and_grad(1.0, 2.0, 3.0, 4.0)
    assert value == 14.0
    assert grads == {"np": 2.0, "print": 1.0, "dout": 4.0, "cache": 3.0}
    compile(f.source, "<clash>", "exec")


# ---------------------------------------------------------------- determinism

DETERMINISM_SCRIPT = """
import numpy as np
import graphc as gc

@gc.function
def add_mul(x, y, z):
    return (x + y) * z

@gc.function
def neuron(w0, x0, w1, x1, w2):
    dot = w0 * x0 + w1 * x1 + w2
    return 1 / (1 + gc.exp(-dot))

@gc.function
def net(X, W1, b1, W2, y):
    h = gc.relu(X @ W1 + b1)
    s = h @ W2
    m = gc.max(s, axis=1, keepdims=True)
    loss = gc.log(gc.sum(gc.exp(s - m), axis=1)) + gc.mean(m) - gc.sum(s * y, axis=1)
    return gc.mean(loss) + 0.5 * gc.sum(W1 * W1) + gc.sigmoid(gc.sum(b1)) * gc.tanh(gc.sum(W2.T))

a, b, c = gc.symbols("a b c")
sym = gc.function(gc.maximum(a * b, c) + gc.where(a > c, b, c) + a * a)

import sympy
p, q = sympy.symbols("p q")
from_sym = gc.from_sympy(p**2 + 2 * p * q**2 + q**3 + sympy.exp(p - q))

add_mul(1.0, 2.0, 3.0)
neuron(1.0, 2.0, 3.0, 4.0, 5.0)
net(np.ones((4, 3)), np.ones((3, 5)), np.ones(5), np.ones((5, 2)), np.ones((4, 2)))
sym(np.ones(3), 1.0, np.ones(3))
from_sym(1.0, 2.0)
for f in (add_mul, neuron, net, sym, from_sym):
    print(f.source)
    print("=" * 40)
"""


def test_generated_source_is_identical_across_hash_seeds():
    outputs = []
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        run = subprocess.run(
            [sys.executable, "-c", DETERMINISM_SCRIPT],
            env=env,
            capture_output=True,
            cwd=ROOT,
        )
        assert run.returncode == 0, run.stderr.decode()
        outputs.append(run.stdout)
    assert outputs[0].count(b"def backward") == 5
    assert outputs[0] == outputs[1] == outputs[2]


def test_compiling_the_same_function_twice_gives_the_same_source():
    def f(x, y):
        q = x * y + gc.exp(x)
        return gc.tanh(q) * q

    one, two = gc.function(f), gc.function(f)
    one(1.0, 2.0)
    two(1.0, 2.0)
    assert one.source == two.source


@pytest.mark.parametrize("shape", [(), (3,)])
def test_division_by_a_constant_zero_compiles_and_follows_numpy(shape):
    # regression: SymPy folded d(x/0)/dx = 1/0 into zoo, which no printer can write, and a
    # Python-float seed raised ZeroDivisionError in backward; NumPy gives inf with a warning
    f = gc.function(lambda x: x / 0.0)
    x = np.full(shape, 2.0) if shape else 2.0
    with np.errstate(divide="ignore"):
        value, grads = f.value_and_grad(x=x)
    assert np.all(np.isposinf(value)) and np.all(np.isposinf(grads["x"]))
    assert np.shape(grads["x"]) == shape
    assert "1 / 0.0" in f.source


# ---------------------------------------------------------------- every NumPy the floor allows

# NumPy names that some NumPy allowed by pyproject.toml (>=1.24) lacks: removed by NumPy 2.0
# (NEP 52), or added after 1.24. Generated code and its helpers must use neither kind.
REMOVED_IN_NUMPY_2 = {
    "Inf", "Infinity", "NaN", "NINF", "PINF", "NZERO", "PZERO", "infty", "float_", "complex_",
    "product", "cumproduct", "sometrue", "alltrue", "round_", "asfarray", "find_common_type",
}  # fmt: skip
NEWER_THAN_1_24 = {
    "exceptions", "bool", "long", "ulong", "vecdot", "concat", "permute_dims", "matrix_transpose",
    "astype", "unstack", "isdtype", "trapezoid", "cumulative_sum", "cumulative_prod", "pow",
}  # fmt: skip


def numpy_names(source: str) -> set[str]:
    """The attributes of `np` that `source` reads."""
    return {
        node.attr
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
        and node.value.id == "np"
    }  # fmt: skip


def test_generated_code_uses_numpy_names_of_every_allowed_numpy():
    from graphc.ir.special import HELPERS
    from graphc.lectures import LECTURES

    sources = list(HELPERS.values())
    for lecture in LECTURES:
        f = gc.function(lecture.fn)
        for level in ("none", "patterns", "elementwise"):
            sources.append(f.fused(level=level).source_for(**lecture.inputs))
    for source in sources:
        assert not numpy_names(source) & (REMOVED_IN_NUMPY_2 | NEWER_THAN_1_24), source


def test_infinities_in_a_formula_print_as_np_inf():
    """SymPy before 1.13 prints oo as np.PINF, which NumPy 2 removed."""
    floor = gc.gate("floor_at_minus_inf", lambda t: sympy.Piecewise((t, t > 0), (-sympy.oo, True)))
    f = gc.function(lambda x: floor(x) + x)
    x = np.array([-1.0, 2.0])
    np.testing.assert_array_equal(f(x), np.where(x > 0, x, -np.inf) + x)
    names = numpy_names(f.source)
    assert "inf" in names and not names & (REMOVED_IN_NUMPY_2 | NEWER_THAN_1_24)
