"""Text is data (issue 11): hostile text in every field, Unicode names, and names the generated
modules use for themselves.

Oracles: PyTorch's autograd and central differences for the numbers; Python's own tokenizer
for what in a generated module is code (comments and docstrings are not); the SVG's XML for
what a drawing shows; the file system and a sentinel in `builtins` for whether anything ran.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import importlib.util
import inspect
import io
import json
import keyword
import tokenize
import types
import xml.etree.ElementTree as ET

import networkx as nx
import numpy as np
import pytest
import sympy
from conftest import central_diff_all
from node_link import edge_list

import graphc as gc
from graphc.emit import numba_backend
from graphc.ir import text
from graphc.passes import schedule

try:
    import torch
except ImportError:  # the dependency floors install no PyTorch: central differences then
    torch = None

SENTINEL = "graphc_pwned"
RUN = f'__import__("builtins").{SENTINEL} = 1'  # what every payload tries to do
TOUCH = 'open("PWNED", "w")'

# Strings that try to end a comment, a string, a docstring, a DOT string or label, or an SVG
# element, to look like another name once normalised, or to be no text at all.
HOSTILE = [
    f'f"""\n{RUN}\n"""',
    f"x\n{RUN}",
    f"x\r{RUN}",
    f"x\r\n{TOUCH}",
    f"x\u2028{RUN}",
    f"x\x0c{RUN}",
    f"x\x00{RUN}",
    f"x\x85{RUN}",
    f"'; {RUN}; '",
    f'"; {RUN}; "',
    f"np.__dict__[{RUN}]",
    "__import__('os').system('touch PWNED')",
    '"""',
    "'''",
    "\\",
    "x\\",
    "\\N{",
    "\\x",
    "\\u12",
    "a\\nb\\lc\\N\\G",
    "{0}{out}{}",
    "%s%d",
    '<<TABLE><TR><TD HREF="javascript:alert(1)">x</TD></TR></TABLE>>',
    "<<B>bold</B>>",
    "<script>alert(1)</script>",
    '"]; evil [URL="javascript:alert(1)"]; x ["',
    '\\" ] ; n [URL="javascript:alert(1)" label="',
    "&amp;&lt;&#0;",
    "]]><x>",
    "x # y",
    "x\u202ey",
    "\ud800",
    "x\udfff",
    "ｏｕｔ",
    "ℌ",
    "ﬁ",
    "x₁",
    "e\u0301",
    "",
    " ",
    "1x",
    "a-b",
    "a.b",
    "x" * 5000,
]


@pytest.fixture
def clean(tmp_path, monkeypatch):
    """Runs the test in an empty folder; afterwards nothing may have been created or run."""
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    assert list(tmp_path.iterdir()) == [], "a payload created a file"
    assert not hasattr(builtins, SENTINEL), "a payload ran"


# ---------------------------------------------------------------- what the outputs may contain


def code_of(source: str) -> str:
    """The module's code with its comments and docstrings taken out (Python's tokenizer)."""
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    kept, previous = [], None
    for tok in tokens:
        docstring = tok.type == tokenize.STRING and previous in (
            None,
            tokenize.INDENT,
            tokenize.NEWLINE,
        )
        if tok.type != tokenize.COMMENT and not docstring:
            kept.append((tok.type, tok.string))
        if tok.type not in (tokenize.NL, tokenize.COMMENT):
            previous = tok.type
    return tokenize.untokenize(kept)


def assert_text_stays_text(source: str, hostile: str) -> None:
    """The module parses, defines only its own names, and the text is nowhere in its code."""
    tree = ast.parse(source)
    top = {n.name for n in tree.body if hasattr(n, "name")}
    assert top <= {"forward", "backward", "value_and_grad", *schedule.OWN_NAMES["module"]}
    body = code_of(source)
    for piece in (hostile, text.line(hostile), text.quoted(hostile)):
        if len(piece) > 3 and not piece.isidentifier():
            assert piece not in body


def svg_texts(svg: str) -> list[str]:
    """The texts an SVG shows; it must be XML with no link and no script anywhere."""
    root = ET.fromstring(svg)
    for el in root.iter():
        assert el.tag.split("}")[-1] not in ("a", "script", "foreignObject")
        for key, value in el.attrib.items():
            assert "javascript" not in value.lower(), (key, value)
            assert "href" not in key.lower(), key
    return [el.text or "" for el in root.iter() if el.tag.endswith("}text")]


# ---------------------------------------------------------------- graph fields, from a file

X = np.array([0.5, -1.0, 2.0])


def saved_graph() -> dict:
    """x -> m = x * 2 -> e = exp(m) -> s = sum(e), as networkx node-link data."""
    return {
        "directed": True,
        "multigraph": False,
        "graph": {"name": "g", "inputs": ["x"], "output": "s"},
        "nodes": [
            {"id": "x", "op": "input", "name": "x"},
            {"id": "c", "op": "const", "value": 2.0},
            {"id": "m", "op": "mul", "hint": "m"},
            {"id": "e", "op": "exp"},
            {"id": "s", "op": "sum", "params": {"axis": None, "keepdims": False}},
        ],
        "links": [
            {"source": "x", "target": "m", "pos": 0},
            {"source": "c", "target": "m", "pos": 1},
            {"source": "m", "target": "e", "pos": 0},
            {"source": "e", "target": "s", "pos": 0},
        ],
    }


LINKS = edge_list("links")


def node(data: dict, key: str) -> dict:
    return next(n for n in data["nodes"] if n["id"] == key)


def loaded(data: dict) -> nx.DiGraph:
    """Through JSON text and back, as a saved file is."""
    return nx.node_link_graph(json.loads(json.dumps(data)), **LINKS)


# field -> (how to put the text there, the words the error names, or None: the text is only
# ever text, and the graph loads)
GRAPH_FIELDS = {
    "graph name": (lambda d, s: d["graph"].update(name=s), "the graph's 'name'"),
    "input name": (lambda d, s: node(d, "x").update(name=s), "input node 'x': its 'name'"),
    "hint": (lambda d, s: node(d, "m").update(hint=s), "node 'm' (mul): its 'hint'"),
    "const hint": (lambda d, s: node(d, "c").update(hint=s), "node 'c' (const): its 'hint'"),
    "op": (lambda d, s: node(d, "e").update(op=s), "node 'e' has unknown op"),
    "value": (lambda d, s: node(d, "c").update(value=s), "const node 'c' holds"),
    "pos": (lambda d, s: d["links"][2].update(pos=s), "'m' -> 'e': its 'pos'"),
    "inputs": (lambda d, s: d["graph"].update(inputs=[s]), "g.graph['inputs']"),
    "output": (lambda d, s: d["graph"].update(output=s), "g.graph['output']"),
    "formula as text": (
        lambda d, s: node(d, "e").update(op="expr", formula=s),
        "node 'e' (expr) holds its formula as text",
    ),
    "gate": (lambda d, s: node(d, "m").update(gate=s), None),
    "comment": (lambda d, s: node(d, "e").update(comment=s), None),
    "symbol": (lambda d, s: node(d, "e").update(symbol=s), None),
    "input hint": (lambda d, s: node(d, "x").update(hint=s, comment=s, gate=s), "its 'hint'"),
    "edge comment": (lambda d, s: d["links"][0].update(comment=s), None),
    "graph comment": (lambda d, s: d["graph"].update(comment=s, title=s), None),
}


NAME_FIELDS = ("graph name", "input name", "hint", "const hint", "input hint")


def check_loads_and_computes(f: gc.Function, hostile: str) -> None:
    value, grads = f.value_and_grad(X)
    np.testing.assert_allclose(value, np.sum(np.exp(2 * X)), rtol=1e-14)
    np.testing.assert_allclose(grads[f.inputs[0]], 2 * np.exp(2 * X), rtol=1e-14)
    assert f(1.0) == pytest.approx(np.exp(2.0), rel=1e-15)  # the Python-float path too
    for source in (f.source_for(X), f.source_for(1.0), f.fused(level="elementwise").source):
        assert_text_stays_text(source, hostile)
    svg_texts(f.svg(X))


@pytest.mark.parametrize("field", GRAPH_FIELDS)
def test_hostile_text_in_every_field_of_a_saved_graph(field, clean):
    put, refusal = GRAPH_FIELDS[field]
    for hostile in HOSTILE:
        data = saved_graph()
        put(data, hostile)
        graph = loaded(data)
        if refusal is None or (field in NAME_FIELDS and text.is_name(hostile)):
            check_loads_and_computes(gc.from_graph(graph), hostile)
            continue
        with pytest.raises(gc.GraphError) as info:
            gc.from_graph(graph).value_and_grad(X)
        assert refusal in str(info.value), (field, hostile, str(info.value))


# ---------------------------------------------------------------- graph fields, in memory


def fused_graph() -> nx.DiGraph:
    """exp(x) * 2 + x fused into one `expr` node, whose `gate` label is drawn in its circle."""
    f = gc.function(lambda x: gc.exp(x) * 2.0 + x, name="fused_expr")
    return nx.DiGraph(f.fused(level="elementwise").graph)


def test_hostile_gate_labels_of_fused_nodes_are_drawn_as_literal_text(clean):
    base = fused_graph()
    (n,) = [n for n, op in base.nodes(data="op") if op == "expr"]
    x = np.array([0.5, -1.0])
    for hostile in HOSTILE:
        g = base.copy()
        g.nodes[n]["gate"] = hostile
        f = gc.from_graph(g)
        value, grads = f.value_and_grad(x)
        np.testing.assert_allclose(value, np.exp(x) * 2 + x, rtol=1e-15)
        np.testing.assert_allclose(grads["x"], np.exp(x) * 2 + 1, rtol=1e-15)
        assert_text_stays_text(f.source_for(x), hostile)
        assert_text_stays_text(f.source_for(0.5), hostile)
        shown = [s.strip() for s in svg_texts(f.svg(x, show_local=True))]
        if hostile.strip():  # Graphviz writes no empty text
            assert text.line(hostile).strip() in shown, hostile


def test_formulas_calling_unknown_functions_are_refused(clean):
    base = fused_graph()
    (n,) = [n for n, op in base.nodes(data="op") if op == "expr"]
    tried = 0
    for hostile in HOSTILE:
        try:
            call = sympy.Function(hostile)
        except Exception:  # SymPy itself takes no such name
            continue
        g = base.copy()
        g.nodes[n]["formula"] = call(sympy.Symbol("a0", real=True))
        with pytest.raises(gc.GraphError, match="no functions graphc knows"):
            gc.from_graph(g)
        tried += 1
    assert tried > 20


# ---------------------------------------------------------------- names and text from the API


def symbol_parts(hostile: str) -> list[str]:
    return hostile.replace(",", " ").split()


@pytest.mark.parametrize("hostile", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_names_are_refused_by_every_front_end(hostile, clean):
    named = text.is_name(hostile)
    x = gc.symbols("x")

    def expect(make, error, words):
        if named:
            make()
            return
        with pytest.raises(error) as info:
            make()
        assert words in str(info.value), str(info.value)

    expect(lambda: gc.function(x * 2, name=hostile), gc.InputError, "gc.function(name=...)")
    expect(lambda: gc.function(lambda x: x * 2, name=hostile), gc.InputError, "name=")
    expect(lambda: gc.gate(hostile, lambda a: a * a), gc.GateError, "gate name")
    expect(lambda: gc.from_sympy(sympy.Symbol("x") * 2, name=hostile), gc.InputError, "name=")
    try:
        symbol = sympy.Symbol(hostile)
    except Exception:
        symbol = None
    if symbol is not None and hostile.strip():
        expect(lambda: gc.from_sympy(symbol * 2), gc.InputError, "SymPy symbol")
    parts = symbol_parts(hostile)
    if parts and not all(text.is_name(p) for p in parts):
        with pytest.raises(gc.InputError, match="input name"):
            gc.symbols(hostile)
    if hostile.isidentifier() and not keyword.iskeyword(hostile):  # what inspect allows
        expect(lambda: gc.function(with_parameter(hostile)), gc.InputError, "input name")


def with_parameter(name: str):
    """A function whose one parameter is called `name` (which Python source could not spell)."""

    def fn(*args):
        return args[0] * 2.0

    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    fn.__signature__ = inspect.Signature([inspect.Parameter(name, kind)])
    return fn


@pytest.mark.parametrize("hostile", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_gate_symbols_are_drawn_as_literal_text(hostile, clean):
    k = HOSTILE.index(hostile)
    square = gc.gate(f"hostile_symbol_{k}", lambda a: a * a + 1, symbol=hostile)
    f = gc.function(lambda x: square(x) * 3.0)
    assert f.grad(2.0)["x"] == pytest.approx(12.0, rel=1e-15)
    assert_text_stays_text(f.source_for(np.array([2.0])), hostile)
    shown = [s.strip() for s in svg_texts(f.svg(2.0, show_local=True))]
    if hostile.strip():  # an empty symbol: the gate's name is drawn
        assert text.line(hostile).strip() in shown
    svg_texts(f.svg())  # the structure alone


def test_a_comparison_draws_hostile_text_as_text(clean):
    # its panels draw the symbol; its table (the one HTML-like label) holds names and numbers
    hostile = "".join(h for h in HOSTILE if "<" in h or "&" in h or '"' in h)
    square = gc.gate("hostile_comparison", lambda a: a * a + 1, symbol=hostile)
    f = gc.function(lambda x: square(x) * 3.0)
    shown = [s.strip() for s in svg_texts(gc.compare(f, 2.0, repeat=1).svg)]
    assert text.line(hostile).strip() in shown


def test_a_gate_symbol_that_is_not_text_is_refused():
    with pytest.raises(gc.GateError, match="symbol must be a string"):
        gc.gate("not_text_symbol", lambda a: a, symbol=["<b>"])


def test_the_hostile_table_is_large():
    # the counts docs/verification.md reports
    assert len(HOSTILE) >= 40
    assert len(GRAPH_FIELDS) >= 15


# ---------------------------------------------------------------- names the modules use themselves

# Every fixed name a generated module uses for itself, the names its printers make up (numba's
# loop index and arrays, the values module's temporaries, the float path's `_np_exp`), names of
# the program's own (`out`, `dout`, `dx`, constants `C1`), builtins, keywords and soft keywords,
# the same with an underscore, and the drawing and check options.
OWN = sorted({name for names in schedule.OWN_NAMES.values() for name in names})
MADE_UP = [
    "i", "i_2", "j", "out", "out_2", "dout", "dout_2", "dx", "dx_2", "x_2", "C1", "C2", "_v0",
    "_v1", "_v2", "_v3", "_v4", "_v7", "_np_exp", "_np_", "__np_exp", "_np_sigmoid", "shape",
    "dtype", "ones", "forward_loop", "backward_loop", "dx_sum", "dx_total", "dx_block",
    "e", "t", "shared", "mul", "add", "exp", "a0", "m0", "dnp", "dvalues", "dcache",
]  # fmt: skip
PYTHON = [
    "math", "numba_", "np_", "cache_", "values_", "lambda_", "class_", "None_", "sum", "max",
    "abs", "float", "type", "len", "print", "range", "isinstance", "__debug__", "__builtins__",
    "__name__", "__import__", "__file__", "__doc__", "__class__", "lambda", "class", "None",
    "True", "import", "return", "match", "case", "_", "__", "self", "rules", "digits", "theme",
    "show_local", "samples", "per_gate", "level", "repeat", "f", "examples", "inputs", "args",
    "kwargs",
]  # fmt: skip
SWEEP = sorted(set(OWN) | set(MADE_UP) | set(PYTHON))
NUMBA_SWEEP = sorted(  # the names the numba module uses or makes up, and a few more
    {*schedule.OWN_NAMES["numba"], "i", "i_2", "out", "dout", "shape", "dtype", "ones", "np"}
    | {"forward_loop", "backward_loop", "dx_sum", "dx_total", "dx_block", "dx", "sigmoid"}
    | {"values", "_v1", "lambda", "cache"}
)
A, XS = 0.3, np.array([0.5, -1.0, 2.0])


def reference(fn, given: dict) -> tuple[np.ndarray, dict, float]:
    """`fn(ops, **given)` and the gradients of its sum by PyTorch's autograd (`ops` has
    `sigmoid` and `exp`), or, without PyTorch, by central differences of it in NumPy; and the
    relative error the oracle allows."""
    if torch is not None:
        tensors = {
            n: torch.tensor(v, dtype=torch.float64, requires_grad=True) for n, v in given.items()
        }
        out = fn(TORCH_OPS, **tensors)
        out.sum().backward()
        return out.detach().numpy(), {n: t.grad.numpy() for n, t in tensors.items()}, 1e-12

    def numpy_fn(**values):
        return fn(NUMPY_OPS, **values)

    return numpy_fn(**given), central_diff_all(numpy_fn, given), 1e-6


NUMPY_OPS = types.SimpleNamespace(sigmoid=lambda v: 1 / (1 + np.exp(-v)), exp=np.exp)
TORCH_OPS = types.SimpleNamespace(sigmoid=torch.sigmoid, exp=torch.exp) if torch else None


def oracle(a, x) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """sigmoid(a*x) + a - x*x + exp(a) (the sweep's function), its gradient's sums, tolerance."""
    value, grads, rtol = reference(
        lambda ops, a, x: ops.sigmoid(a * x) + a - x * x + ops.exp(a), {"a": a, "x": x}
    )
    return value, grads["a"], grads["x"], rtol


def swept(name: str, **options) -> gc.Function:
    a, x = gc.symbols(f"{name} x")
    return gc.function(gc.sigmoid(a * x) + a - x * x + gc.exp(a), **options)


def assert_right(got, a, x, name: str = "") -> None:
    value, grads = got
    want, da, dx, rtol = oracle(a, x)
    np.testing.assert_allclose(value, want, rtol=1e-13, err_msg=name)
    np.testing.assert_allclose(grads[0], da, rtol=rtol, atol=rtol * 1e-3, err_msg=name)
    np.testing.assert_allclose(grads[1], dx, rtol=rtol, atol=rtol * 1e-3, err_msg=name)


def by_name(f: gc.Function, result):
    value, grads = result
    return value, [grads[k] for k in f.inputs]


@pytest.mark.parametrize("name", SWEEP)
def test_an_input_of_any_name_works_in_every_api(name, tmp_path):
    f = swept(name)
    assert f.inputs == (name, "x")
    assert f(A, 0.7) == pytest.approx(float(oracle(A, 0.7)[0]), rel=1e-14)
    assert_right(by_name(f, f.value_and_grad(A, 0.7)), A, 0.7, name)  # the float path
    assert_right(by_name(f, f.value_and_grad(A, XS)), A, XS, name)
    assert_right(by_name(f, f.value_and_grad(**{name: XS, "x": XS})), XS, XS, name)
    assert_right((f(A, XS), [f.grad(A, XS)[k] for k in f.inputs]), A, XS, name)
    for g in (f.fused(), f.fused(level="elementwise"), swept(name, readable=False)):
        assert_right(by_name(g, g.value_and_grad(A, XS)), A, XS, name)
        assert_right(by_name(g, g.value_and_grad(A, 0.7)), A, 0.7, name)
    # save_source, then import the file as a module of one's own
    path = tmp_path / "saved.py"
    f.compiled_for(A, XS)
    f.save_source(path)
    spec = importlib.util.spec_from_file_location("saved_module", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert_right(module.value_and_grad(A, XS), A, XS, name)
    # pictures, the lint and the per-gate check read the values module
    texts = svg_texts(f.svg(A, XS))
    assert name in texts  # the input's label: the user's name, as given
    assert f.render(A, XS).source
    # the forward values, the seed, one frame per gate, the full picture (issue 13)
    assert len(f.render_steps(A, XS)) == 3 + sum(
        op not in ("input", "const") for _, op in f.graph.nodes(data="op")
    )
    gc.lint(f)
    gc.lint(f, **({} if name == "rules" else {name: A}), x=XS)  # `rules=` is lint's option
    report = gc.check_grad(f, A, XS, per_gate=True)
    assert report.error < 1e-6 and all(row.error < 1e-6 for row in report.rows), str(report)


@pytest.mark.parametrize(
    "name", [n for n in SWEEP if not keyword.iskeyword(n) and n != "__debug__"]
)
def test_a_local_variable_of_any_name_works(name):
    # a traced function's local names become the variables of the generated code
    namespace = {"gc": gc}
    exec(  # a test's own source: the local variable is the name swept
        f"def fn(a, x):\n    {name} = a * x\n    return gc.sigmoid({name}) + a - x * x + gc.exp(a)",
        namespace,
    )
    f = gc.function(namespace["fn"])
    for x in (0.7, XS):
        assert_right(by_name(f, f.value_and_grad(A, x)), A, x, name)
    svg_texts(f.svg(A, XS))
    gc.check_grad(f, A, XS, per_gate=True)


def test_inputs_of_all_those_names_together_work_on_the_numba_backend():
    # one function with an input of each name (numba compiles each module once: a second a
    # module), every layout: arrays read at [i], one-element inputs summed in the loop
    pytest.importorskip("numba")
    names = [n for n in NUMBA_SWEEP if n != "x"]
    *inputs, x = gc.symbols(" ".join([*names, "x"]))
    out = -x * x
    for v in inputs:
        out = out + gc.sigmoid(v * x) + gc.exp(v) * v
    f = gc.function(out, backend="numba")
    rng = np.random.default_rng(0)
    for layout in ("arrays", "mixed"):
        given = {n: rng.uniform(-1, 1, 3) for n in names}
        if layout == "mixed":  # every other input one element: its gradient is summed in the loop
            given = {n: float(v[0]) if k % 2 else v for k, (n, v) in enumerate(given.items())}
        given["x"] = rng.uniform(-1, 1, 3)

        def fn(ops, **v):
            terms = [ops.sigmoid(v[n] * v["x"]) + ops.exp(v[n]) * v[n] for n in names]
            return sum(terms) - v["x"] * v["x"]

        want, want_grads, rtol = reference(fn, given)
        for g in (f, f.fused(level="elementwise")) if layout == "mixed" else (f,):
            value, grads = g.value_and_grad(**given)
            np.testing.assert_allclose(value, want, rtol=1e-13)
            for n in given:
                np.testing.assert_allclose(grads[n], want_grads[n], rtol=rtol, err_msg=n)


def test_generated_modules_define_only_names_the_scheduler_keeps_from_users():
    # every global a generated module defines is a name no user's variable can take
    f = gc.function(lambda x, y: gc.sigmoid(x * y) + gc.log(gc.exp(x) + 1) * np.array([1.0, 2.0]))
    sources = [f.source_for(XS[:2], 0.5), f.fused(level="elementwise").source_for(XS[:2], 0.5)]
    if numba_backend.available():
        n = gc.function(lambda x, y: gc.sigmoid(x * y) + gc.log(gc.exp(x) + 1), backend="numba")
        sources.append(n.source_for(XS, 0.5))
    for source in sources:
        tree = ast.parse(source)
        defined = {d.name for d in tree.body if isinstance(d, ast.FunctionDef)}
        defined |= {
            a.asname or a.name for d in tree.body if isinstance(d, ast.Import) for a in d.names
        }
        constants = {
            t.id for d in tree.body if isinstance(d, ast.Assign) for t in d.targets
        }  # C1, C2, ...: named by the scheduler among the program's names
        assert {c[0] for c in constants} <= {"C"}
        assert defined <= schedule.RESERVED | {"forward_loop", "backward_loop"}, defined


# ---------------------------------------------------------------- Unicode names (NFKC)


@pytest.mark.parametrize(
    ("names", "nfkc"), [("ｏｕｔ a", "out"), ("ℌ H", "H"), ("ﬁ fi", "fi"), ("x₁ x1", "x1")]
)
def test_names_python_would_normalise_are_refused_with_the_name_to_use(names, nfkc):
    with pytest.raises(gc.InputError, match=f"write '{nfkc}'"):
        gc.symbols(names)
    with pytest.raises(gc.InputError, match="SymPy symbol"):
        gc.from_sympy(sympy.Symbol(names.split()[0]) * sympy.Symbol(names.split()[1]))
    if names.split()[0].isidentifier():  # what inspect takes as a parameter's name
        with pytest.raises(gc.InputError, match="input name"):
            gc.function(with_parameter(names.split()[0]))
    with pytest.raises(gc.InputError, match=r"name=\.\.\."):
        gc.function(lambda x: x, name=names.split()[0])
    with pytest.raises(gc.GateError, match="gate name"):
        gc.gate(names.split()[0], lambda a: a * a)
    for field, put in [
        ("the graph's 'name'", lambda d: d["graph"].update(name=names.split()[0])),
        ("its 'name'", lambda d: node(d, "x").update(name=names.split()[0])),
        ("its 'hint'", lambda d: node(d, "m").update(hint=names.split()[0])),
    ]:
        data = saved_graph()
        put(data)
        with pytest.raises(gc.GraphError, match=f"{field}.*write '{nfkc}'"):
            gc.from_graph(loaded(data))


def test_a_gate_named_like_an_input_once_normalised_cannot_overwrite_it():
    with pytest.raises(gc.GateError, match="write 'x'"):
        gc.gate("ｘ", lambda a: a * a)
    square = gc.gate("x_squared_gate", lambda a: a * a)
    f = gc.function(lambda x, y: square(y) * x)  # a gate whose name is no input's
    assert f.grad(3.0, 2.0) == {"x": 4.0, "y": 12.0}


def test_names_in_nfkc_form_work_whatever_their_script():
    # NFKC-stable names are distinct variables: numbers against PyTorch
    names = ["α", "β", "é", "Ω", "δx", "x_α", "ñ", "ж"]
    symbols = gc.symbols(" ".join(names))
    out = 0.0
    for k, v in enumerate(symbols, start=1):
        out = out + k * v * v + gc.exp(v)
    f = gc.function(out)
    given = {n: 0.1 * k for k, n in enumerate(names, start=1)}
    want, want_grads, rtol = reference(
        lambda ops, **v: sum(k * v[n] * v[n] + ops.exp(v[n]) for k, n in enumerate(names, 1)),
        given,
    )
    value, grads = f.value_and_grad(**given)
    assert value == pytest.approx(float(want), rel=1e-14)
    for n in names:
        assert grads[n] == pytest.approx(float(want_grads[n]), rel=rtol), n
    assert f.fused(level="elementwise").grad(**given) == pytest.approx(grads, rel=1e-14)
    svg_texts(f.svg(**given))
    with pytest.raises(gc.InputError, match="write 'Ω'"):  # the ohm sign is Omega once normalised
        gc.symbols("\u2126")
    with pytest.raises(gc.InputError, match="write 'é'"):  # e and a combining accent: é
        gc.symbols("e\u0301")


# ---------------------------------------------------------------- malformed saved graphs

# Each field of a saved graph, with the node (or edge) and the field an error must name, and
# which values are well formed there (those load; the rest are a GraphError)
MALFORMED_VARIANTS = [
    None, True, False, 0, 1, -1, 2, 1.5, float("nan"), float("inf"), float("-inf"), "", "x",
    "exp", "\ud800", "x\ud800", "ｘ", "1x", [], [0], [1], [0, 0], [[0]], [0, [1]], ["a"], [None],
    [True], {}, {"a": 1}, {"axis": None}, 10**30, 2**70, -(10**400), [1, [2, 3]], [[1, 2], [3]],
    [[1.0, 2.0], [3.0, 4.0]], [float("nan")], [2**70],
]  # fmt: skip


def _real(v) -> bool:
    if type(v) is int:  # an integer of any size is a float64 constant (10**400 is inf)
        return True
    try:
        arr = np.asarray(v)
    except ValueError:
        return False
    return arr.dtype.kind in "iuf"


def _position(v, p: int) -> bool:
    return (type(v) is int and v == p) or (type(v) is list and v == [p] and type(v[0]) is int)


MALFORMED_FIELDS = {
    # field: (put it, words the error names, well formed?)
    "graph name": (lambda d, v: d["graph"].update(name=v), ["the graph's 'name'"], text.is_name),
    "inputs": (lambda d, v: d["graph"].update(inputs=v), ["g.graph['inputs']"], lambda v: False),
    "output": (
        lambda d, v: d["graph"].update(output=v),
        ["g.graph['output']"],
        lambda v: v == "x",  # the input itself is a function too
    ),
    "op": (  # "node 'm' has unknown op", "node 'm': its 'op' must be", "node 'm' (exp) takes"
        lambda d, v: node(d, "m").update(op=v),
        ["node 'm'"],
        lambda v: False,
    ),
    "missing op": (lambda d, v: node(d, "m").pop("op"), ["node 'm'", "'op'"], lambda v: False),
    "input name": (lambda d, v: node(d, "x").update(name=v), ["node 'x'", "'name'"], text.is_name),
    "hint": (lambda d, v: node(d, "m").update(hint=v), ["node 'm'", "'hint'"], text.is_name),
    "const hint": (lambda d, v: node(d, "c").update(hint=v), ["node 'c'", "'hint'"], text.is_name),
    "gate": (
        lambda d, v: node(d, "m").update(gate=v),
        ["node 'm'", "'gate'"],
        lambda v: isinstance(v, str),
    ),
    "value": (lambda d, v: node(d, "c").update(value=v), ["node 'c'", "'value'"], _real),
    "pos": (
        lambda d, v: d["links"][0].update(pos=v),
        ["'m'", "'pos'"],
        lambda v: _position(v, 0),
    ),
    "second pos": (
        lambda d, v: d["links"][1].update(pos=v),
        ["'m'", "'pos'"],
        lambda v: _position(v, 1),
    ),
    "params": (lambda d, v: node(d, "s").update(params=v), ["node 's'", "param"], lambda v: False),
    "axis": (
        lambda d, v: node(d, "s")["params"].update(axis=v),
        ["node 's'", "'axis'"],
        lambda v: (
            v is None
            or (isinstance(v, int) and not isinstance(v, bool))
            or (isinstance(v, list) and v and all(type(a) is int for a in v))
        ),
    ),
    "keepdims": (
        lambda d, v: node(d, "s")["params"].update(keepdims=v),
        ["node 's'", "'keepdims'"],
        lambda v: isinstance(v, bool),
    ),
    "formula": (
        lambda d, v: node(d, "e").update(op="expr", formula=v),
        ["node 'e'", "formula"],
        lambda v: False,
    ),
}


def fuzzed(field: str, v) -> nx.DiGraph | None:
    data = saved_graph()
    MALFORMED_FIELDS[field][0](data, v)
    try:
        saved = json.dumps(data)
    except ValueError:  # JSON has no such value (a float too large): nothing to load
        return None
    return nx.node_link_graph(json.loads(saved), **LINKS)


@pytest.mark.parametrize("field", MALFORMED_FIELDS)
@np.errstate(all="ignore")  # a NaN constant computes NaN, as NumPy would
def test_malformed_saved_graphs_are_graph_errors_naming_the_node_and_field(field, clean):
    _, words, well_formed = MALFORMED_FIELDS[field]
    for v in MALFORMED_VARIANTS:
        graph = fuzzed(field, v)
        if graph is None:
            continue
        if well_formed(v):
            f = gc.from_graph(graph)
            with contextlib.suppress(gc.ShapeError):  # well formed, not for X (axis 1 of it)
                f.value_and_grad(X)
            continue
        with pytest.raises(gc.GraphError) as info:
            gc.from_graph(graph).value_and_grad(X)
        message = str(info.value)
        assert all(w in message for w in words), (field, v, message)


# Values a graph built in Python (not loaded from JSON) may hold
PYTHON_VARIANTS = [
    b"x", (0,), frozenset({0}), object(), np.float64(1.5), np.int64(0), np.array([0]),
    np.array(["a"]), np.bool_(True), complex(1, 2), sympy.Symbol("a0"), sympy.Integer(0),
    sympy.Function("f")(sympy.Symbol("a0", real=True)), range(2), type,
]  # fmt: skip


@pytest.mark.parametrize("field", MALFORMED_FIELDS)
@np.errstate(all="ignore")
def test_malformed_graphs_built_in_python_are_graph_errors(field, clean):
    _, words, _ = MALFORMED_FIELDS[field]
    for v in PYTHON_VARIANTS:
        data = saved_graph()
        MALFORMED_FIELDS[field][0](data, v)
        graph = nx.node_link_graph(data, **LINKS)
        try:
            gc.from_graph(graph).value_and_grad(X)
        except gc.GraphError as e:
            assert all(w in str(e) for w in words), (field, v, str(e))
        except gc.ShapeError:
            pass  # well formed (np.int64(0) as a position, an axis)


def test_malformed_node_ids_are_named_in_the_error(clean):
    for key in [
        True,
        1.5,
        float("nan"),
        "",
        "\ud800",
        "x\ud800",
        10**30,
        "ｍ",
        -1,
    ]:  # networkx: no None
        data = saved_graph()
        node(data, "m")["id"] = key
        for link in data["links"]:
            link.update({k: key for k in ("source", "target") if link[k] == "m"})
        node(data, "x")["name"] = "\ud800"  # and a malformed field on another node
        graph = nx.node_link_graph(json.loads(json.dumps(data)), **LINKS)
        with pytest.raises(gc.GraphError, match="input node 'x': its 'name'"):
            gc.from_graph(graph)
        node(data, "x")["name"] = "x"
        graph = nx.node_link_graph(json.loads(json.dumps(data)), **LINKS)
        value, grads = gc.from_graph(graph).value_and_grad(X)  # any hashable id is a node id
        np.testing.assert_allclose(grads["x"], 2 * np.exp(2 * X), rtol=1e-14)


def test_the_malformed_graph_table_is_large():
    assert len(MALFORMED_VARIANTS) * len(MALFORMED_FIELDS) >= 500
