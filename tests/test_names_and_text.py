"""Text is data (issue 11): hostile text in every field, Unicode names, and names the generated
modules use for themselves.

Oracles: PyTorch's autograd and central differences for the numbers; Python's own tokenizer
for what in a generated module is code (comments and docstrings are not); the SVG's XML for
what a drawing shows; the file system and a sentinel in `builtins` for whether anything ran.
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
import inspect
import io
import json
import keyword
import tokenize
import xml.etree.ElementTree as ET

import networkx as nx
import numpy as np
import pytest
import sympy
import torch
from conftest import central_diff

import graphc as gc
from graphc import numba_backend, schedule, text

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
    f"__import__('os').system('touch PWNED')",
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
    '<<B>bold</B>>',
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


def node(data: dict, key: str) -> dict:
    return next(n for n in data["nodes"] if n["id"] == key)


def loaded(data: dict) -> nx.DiGraph:
    """Through JSON text and back, as a saved file is."""
    return nx.node_link_graph(json.loads(json.dumps(data)), edges="links")


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
