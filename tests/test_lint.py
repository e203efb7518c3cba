"""Part 6 of the fusion issue: `gc.lint` finds inputs where an unfused spelling overflows.

Oracle: NumPy evaluating the naive spelling at the reported witness (it must overflow there,
and at every smaller probe it must not), and the lint's own contract: the gate that failed, the
witness input, and the fusion rule that cures it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import graphc as gc
from graphc.passes.lint import Finding, LintReport


def naive_overflows(fn, *args) -> bool:
    """Whether evaluating `fn` with NumPy warns of overflow or gives inf/NaN."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args)
    return any(issubclass(w.category, RuntimeWarning) for w in caught) or not np.all(
        np.isfinite(out)
    )


def one_input(expr_of):
    x = gc.symbols("x")
    return gc.function(expr_of(x), inputs=[x], name="f")


SMALLER = [1.0, -1.0, 10.0, -10.0, 40.0, -40.0, 100.0, -100.0]  # probes tried before +-800


@pytest.mark.parametrize(
    ("spelling", "naive", "witness", "cure"),
    [
        (lambda x: 1 / (1 + gc.exp(-x)), lambda x: np.exp(-x), -800.0, "sigmoid"),
        (lambda x: gc.log(1 + gc.exp(x)), lambda x: np.exp(x), 800.0, "softplus"),
        (lambda x: -gc.log(1 + gc.exp(-x)), lambda x: np.exp(-x), -800.0, "log_sigmoid"),
        (
            lambda x: (gc.exp(x) - gc.exp(-x)) / (gc.exp(x) + gc.exp(-x)),
            lambda x: np.exp(x) + np.exp(-x),
            800.0,
            "tanh",
        ),
    ],
    ids=["sigmoid", "softplus", "log_sigmoid", "tanh"],
)
def test_lint_finds_the_witness_and_the_cure(spelling, naive, witness, cure):
    report = gc.lint(one_input(spelling))
    assert isinstance(report, LintReport)
    assert all(isinstance(f, Finding) for f in report)
    matching = [f for f in report if f.cure == cure]
    assert matching, f"no finding cured by {cure!r}: {list(report)}"
    finding = matching[0]
    assert finding.gate == "exp"
    assert finding.witness == {"x": witness}
    assert finding.what in ("value", "gradient")
    assert cure in finding.rewrite and "->" in finding.rewrite
    # independent check: the naive spelling does overflow at the witness, and not before it
    assert naive_overflows(naive, np.float64(witness))
    assert not any(naive_overflows(naive, np.float64(v)) for v in SMALLER)
    text = str(report)
    assert "exp" in text and f"x={witness:g}" in text and finding.rewrite in text


def test_sigmoid_witness_is_x_minus_800_exactly():
    report = gc.lint(one_input(lambda x: 1 / (1 + gc.exp(-x))))
    (finding,) = [f for f in report if f.cure == "sigmoid"]
    assert finding.witness["x"] == -800.0
    header, row = str(report).splitlines()  # a table: the header, one row per finding
    assert header.split() == ["gate", "variable", "not", "finite", "at", "cure"]
    assert row.split()[:4] == ["exp", finding.variable, finding.what, "x=-800"]
    assert row.endswith("fuse: 1/(1+exp(-x)) -> sigmoid(x)")
    assert "sigmoid" in str(finding)


def test_softplus_witness_is_x_800_exactly():
    report = gc.lint(one_input(lambda x: gc.log(1 + gc.exp(x))))
    (finding,) = [f for f in report if f.cure == "softplus"]
    assert finding.witness["x"] == 800.0
    assert "log(1+exp(x)) -> softplus(x)" in str(finding)


@gc.function
def neuron(w0, x0, w1, x1, w2):
    return 1 / (1 + gc.exp(-(w0 * x0 + w1 * x1 + w2)))


def test_the_neurons_finding_names_exp_and_the_sigmoid_cure():
    report = gc.lint(neuron)
    assert report, "the unfused neuron overflows at w0*x0 = -800 but lint found nothing"
    finding = report[0]
    assert finding.gate == "exp"
    assert finding.cure == "sigmoid"
    assert set(finding.witness) == {"w0", "x0", "w1", "x1", "w2"}
    w = finding.witness
    dot = w["w0"] * w["x0"] + w["w1"] * w["x1"] + w["w2"]
    assert naive_overflows(lambda d: np.exp(-d), np.float64(dot))
    # the fused neuron is finite at the same witness, value and gradients
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value, grads = neuron.fused().value_and_grad(**w)
    assert np.isfinite(value) and all(np.isfinite(g) for g in grads.values())


def test_lint_uses_the_given_examples_for_the_inputs_not_probed():
    point = dict(w0=2.0, x0=-1.0, w1=-3.0, x1=-2.0, w2=-3.0)
    report = gc.lint(neuron, **point)
    assert report and report[0].gate == "exp" and report[0].cure == "sigmoid"
    w = report[0].witness
    assert [k for k in point if w[k] != point[k]] == ["w0"], w
    # w0 = 800 makes the dot product -797: exp(797) overflows; at w0 = +-100 nothing did
    assert w["w0"] == 800.0
    dot = w["w0"] * w["x0"] + w["w1"] * w["x1"] + w["w2"]
    assert naive_overflows(lambda d: np.exp(-d), np.float64(dot))
    for v in SMALLER:
        d = v * point["x0"] + point["w1"] * point["x1"] + point["w2"]
        assert not naive_overflows(lambda d: np.exp(-d), np.float64(d))


@pytest.mark.parametrize(
    "spelling",
    [lambda x: x * x, lambda x: gc.sigmoid(x), lambda x: gc.tanh(x) + 1, lambda x: gc.relu(x)],
    ids=["square", "sigmoid-gate", "tanh", "relu"],
)
def test_a_stable_function_gives_an_empty_report(spelling):
    report = gc.lint(one_input(spelling))
    assert list(report) == []
    assert not report
    assert "no unstable" in str(report)


def test_an_already_fused_function_is_stable():
    unfused = one_input(lambda x: 1 / (1 + gc.exp(-x)))
    assert gc.lint(unfused)
    assert list(gc.lint(unfused.fused())) == []
    assert list(gc.lint(neuron.fused())) == []


def test_a_function_that_truly_overflows_is_not_reported():
    # exp(800) is infinite in float64 whatever the spelling: no fusion can cure it
    assert list(gc.lint(one_input(lambda x: gc.exp(x)))) == []


def test_lint_with_array_examples_probes_whole_arrays():
    report = gc.lint(one_input(lambda x: 1 / (1 + gc.exp(-x))), x=np.zeros(3))
    (finding,) = [f for f in report if f.cure == "sigmoid"]
    witness = finding.witness["x"]
    assert isinstance(witness, np.ndarray) and witness.shape == (3,)
    assert np.all(witness == -800.0)
    assert "full((3,), -800)" in str(finding)


def test_lint_on_a_row_wise_cross_entropy_names_the_cure():
    x, y = gc.symbols("x y")
    logp = x - gc.log(gc.sum(gc.exp(x), axis=1, keepdims=True))
    f = gc.function(-gc.sum(y * logp, axis=1), inputs=[x, y], name="ce")
    report = gc.lint(f, x=np.zeros((2, 3)), y=np.eye(3)[:2])
    assert report
    assert {finding.cure for finding in report} == {"softmax_cross_entropy"}
    for finding in report:
        assert finding.witness["x"].shape == (2, 3)
        assert np.array_equal(finding.witness["y"], np.eye(3)[:2])  # labels are not probed


@pytest.mark.parametrize("bad", [{"z": 1.0}, {"X": 0.0}, {"x": 1.0, "y": 2.0}])
def test_an_unknown_example_name_raises_input_error(bad):
    f = one_input(lambda x: 1 / (1 + gc.exp(-x)))
    with pytest.raises(gc.InputError):
        gc.lint(f, **bad)
