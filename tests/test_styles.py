"""Styles (issue 14): style="accurate" (default), "textbook" (the lecture's formulas) and
"layer" (CS231n's layer functions and a gate class) compute the same numbers.

Oracles: central differences and PyTorch for the gradients; mpmath for where the textbook form
loses accuracy; a fresh Python process without graphc for the layer module.
"""

import ast
import json
import subprocess
import sys
import textwrap

import mpmath
import numpy as np
import pytest
from conftest import assert_grads_close, central_diff_all

import graphc as gc

STYLES = ("accurate", "textbook", "layer")


def unit(w, x, b):
    dot = w * x + b
    f = gc.sigmoid(dot)
    t = gc.tanh(f * x)
    soft = gc.log(1 + gc.exp(t))  # fused into softplus
    return gc.sum(soft * f)


def batchnorm(x, gamma, beta):
    mu = gc.mean(x, axis=0)
    xc = x - mu
    var = gc.mean(xc * xc, axis=0)
    xhat = xc / gc.sqrt(var + 1e-5)
    return gamma * xhat + beta


def inputs_for(rng, fn, n=5):
    if fn is batchnorm:
        return {
            "x": rng.standard_normal((n, 3)),
            "gamma": rng.standard_normal(3),
            "beta": rng.normal(size=3),
        }
    return {"w": rng.standard_normal(n), "x": rng.standard_normal(n), "b": 0.3}


def forward_names(source: str, function: str) -> list[str]:
    tree = ast.parse(source)
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function)
    return [
        t.id
        for s in fn.body
        if isinstance(s, ast.Assign)
        for t in s.targets
        if isinstance(t, ast.Name)
    ]


@pytest.mark.parametrize("fn", [unit, batchnorm])
@pytest.mark.parametrize("level", ["none", "patterns", "elementwise"])
def test_every_style_computes_what_the_default_computes(fn, level, rng):
    base = gc.function(fn).fused(level=level)
    inputs = inputs_for(rng, fn)
    value, grads = base.value_and_grad(**inputs)
    want = central_diff_all(base, inputs)
    for style in STYLES[1:]:
        f = gc.function(fn, style=style).fused(level=level)
        assert f.style == style
        other, other_grads = f.value_and_grad(**inputs)
        np.testing.assert_allclose(other, value, rtol=1e-13)
        assert_grads_close(other_grads, grads, rtol=1e-12, atol=1e-14)
        assert_grads_close(other_grads, want, rtol=1e-6, atol=1e-8)
        # a batch of another size runs the same module (sizes read from the arguments)
        more = inputs_for(rng, fn, n=9)
        assert_grads_close(f.grad(**more), base.grad(**more), rtol=1e-12, atol=1e-14)


def test_the_textbook_style_prints_the_lecture_formulas():
    f = gc.function(unit, style="textbook").fused()
    source = f.source_for(np.ones(3), np.ones(3), 0.5)
    code = " ".join(source.split())
    assert "f = 1 / (1 + np.exp(-dot))" in code
    assert "(1 - f)" in code and "1 - t ** 2" in code and "np.log(1 + np.exp(t))" in code
    for helper in ("sigmoid", "softplus", "sech2"):  # the lecture's spellings call NumPy alone
        assert f"def {helper}" not in source
    assert "rounds to 0 beyond x = 37" in code  # the docstring says where it loses accuracy
    accurate = gc.function(unit).fused().source_for(np.ones(3), np.ones(3), 0.5)
    assert "sigmoid(-dot)" in accurate and "(1 - f)" not in accurate
    assert (
        gc.function(unit).fused().source_for(np.ones(3), np.ones(3), 0.5, style="textbook")
        == source
    )


def test_the_textbook_sigmoid_loses_what_the_docstring_says():
    x = 40.0
    exact = float(mpmath.diff(lambda t: 1 / (1 + mpmath.exp(-t)), mpmath.mpf(x)))
    accurate = gc.function(lambda x: gc.sigmoid(x)).grad(x=x)["x"]
    textbook = gc.function(lambda x: gc.sigmoid(x), style="textbook").grad(x=np.array([x]))["x"][0]
    assert accurate == pytest.approx(exact, rel=1e-12)
    assert textbook == 0.0 and exact == pytest.approx(4.25e-18, rel=1e-2)
    t = gc.function(lambda x: gc.tanh(x), style="textbook").grad(x=np.array([20.0]))["x"][0]
    assert t == 0.0  # 1 - t**2 with t rounded to 1; the true value is 1.7e-17
    assert float(mpmath.sech(20) ** 2) == pytest.approx(1.7e-17, rel=1e-1)


def test_lint_says_where_the_textbook_form_loses_accuracy():
    report = gc.lint(gc.function(unit, style="textbook").fused(), w=1.0, x=1.0, b=0.5)
    text = str(report)
    assert "sigmoid (f): textbook style: sigmoid' = (1 - s) * s rounds to 0 beyond x = 37" in text
    assert "tanh (t): textbook style" in text and "softplus" in text
    assert not [
        f for f in gc.lint(gc.function(unit).fused(), w=1.0, x=1.0, b=0.5) if "textbook" in str(f)
    ]


@pytest.mark.parametrize("level", ["none", "patterns", "elementwise"])
def test_named_intermediates_keep_their_names_in_every_style(level):
    names = {}
    for style in STYLES:
        f = gc.function(batchnorm, style=style).fused(level=level)
        source = f.source_for(np.ones((4, 3)), np.ones(3), np.ones(3))
        entry = "batchnorm_forward" if style == "layer" else "forward"
        names[style] = forward_names(source, entry)
        assert {"mu", "xc", "var", "xhat"} <= set(names[style])
    assert names["accurate"] == names["textbook"] == names["layer"]


def test_the_layer_module_runs_without_graphc_as_cs231n_layers_do(rng, tmp_path):
    torch = pytest.importorskip("torch")
    f = gc.function(batchnorm, style="layer")
    source = f.source_for(rng.standard_normal((5, 3)), np.ones(3), np.zeros(3))
    assert "def batchnorm_forward(x, gamma, beta):" in source
    assert "def batchnorm_backward(dout, cache):" in source and "class BatchnormGate:" in source
    (tmp_path / "layers.py").write_text(source)
    x, gamma, beta = rng.standard_normal((8, 3)), rng.standard_normal(3), rng.standard_normal(3)
    dout = rng.standard_normal((8, 3))
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.modules["graphc"] = None
        sys.path.insert(0, {str(tmp_path)!r})
        import numpy as np
        from layers import BatchnormGate, batchnorm_backward, batchnorm_forward
        x, gamma, beta, dout = (np.array(v) for v in json.loads(sys.stdin.read()))
        out, cache = batchnorm_forward(x, gamma, beta)
        grads = batchnorm_backward(dout, cache)
        gate = BatchnormGate()
        same = np.array_equal(gate.forward(x, gamma, beta), out)
        same = same and all(np.array_equal(a, b) for a, b in zip(gate.backward(dout), grads))
        print(json.dumps([out.tolist(), [g.tolist() for g in grads], bool(same)]))
        """
    )
    given = json.dumps([x.tolist(), gamma.tolist(), beta.tolist(), dout.tolist()])
    run = subprocess.run(
        [sys.executable, "-c", script], input=given, capture_output=True, text=True, check=True
    )
    out, grads, same = json.loads(run.stdout)
    assert same
    t = [torch.tensor(v, requires_grad=True) for v in (x, gamma, beta)]
    want = torch.nn.functional.batch_norm(t[0], None, None, t[1], t[2], training=True, eps=1e-5)
    (want * torch.tensor(dout)).sum().backward()
    np.testing.assert_allclose(out, want.detach().numpy(), rtol=1e-10, atol=1e-12)
    for g, v in zip(grads, t):
        np.testing.assert_allclose(g, v.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_an_unknown_style_is_a_clear_error():
    with pytest.raises(gc.InputError, match="unknown style 'lecture'"):
        gc.function(unit, style="lecture")
    with pytest.raises(gc.InputError, match="needs backend='numpy'"):
        gc.function(lambda x: gc.sigmoid(x), style="textbook", backend="numba")


# ---------------------------------------------------------------- textbook inside fused gates


def unit_unnamed(w, x, b):
    """`unit` in one expression: no name keeps a statement, level="elementwise" fuses it all."""
    return gc.sum(gc.log(1 + gc.exp(gc.tanh(gc.sigmoid(w * x + b) * x))) * gc.sigmoid(w * x + b))


def test_the_textbook_style_writes_the_lecture_formulas_inside_elementwise_fused_gates():
    # level="elementwise" folds sigmoid, tanh and softplus into one formula: its derivatives are
    # still the lecture's, (1 - s) * s and 1 - t**2, and sigmoid and softplus are written out
    f = gc.function(unit_unnamed, style="textbook").fused(level="elementwise")
    source = f.source_for(np.ones(3), np.ones(3), 0.5)
    code = " ".join(source.split())
    assert "1 / (1 + np.exp(-(w * x + b)))" in code
    assert "np.log(1 + np.exp(" in code and "1 - np.tanh(" in code
    functions = code.split("def forward", 1)[1]  # the docstring names the accurate forms
    assert "sigmoid(" not in functions and "sech2" not in functions
    for helper in ("sigmoid", "softplus", "sech2"):
        assert f"def {helper}" not in source
    assert "rounds to 0 beyond x = 37" in code and "tanh' = 1 - t**2" in code
    lint = str(gc.lint(f, w=1.0, x=1.0, b=0.5))
    assert "sigmoid" in lint and "tanh" in lint and "softplus" in lint


@pytest.mark.parametrize("fn", [unit, unit_unnamed])
@pytest.mark.parametrize("level", ["patterns", "elementwise"])
def test_textbook_fused_gates_compute_the_default_gradients(fn, level, rng):
    inputs = inputs_for(rng, unit, n=6)
    want = central_diff_all(gc.function(fn), inputs)
    for style in STYLES:
        got = gc.function(fn, style=style).fused(level=level).grad(**inputs)
        assert_grads_close(got, want, rtol=1e-6, atol=1e-8)


def test_the_textbook_sigmoid_inside_a_fused_gate_loses_what_the_docstring_says():
    # sigmoid' at 40 is 4.25e-18 (mpmath); (1 - s) * s rounds it to 0, inside a fused gate too
    exact = float(mpmath.diff(lambda t: 2 / (1 + mpmath.exp(-t)), mpmath.mpf(40.0)))
    x = np.array([40.0])
    fused = gc.function(lambda x: 2.0 * gc.sigmoid(x), style="textbook").fused(level="elementwise")
    accurate = gc.function(lambda x: 2.0 * gc.sigmoid(x)).fused(level="elementwise")
    assert fused.grad(x=x)["x"][0] == 0.0
    assert accurate.grad(x=x)["x"][0] == pytest.approx(exact, rel=1e-12)
