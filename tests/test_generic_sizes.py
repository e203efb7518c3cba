"""Size-generic code (issue 14): the module reads every size from its arguments, a Function
compiles once per size pattern, and a saved module runs without graphc at other batch sizes.

Oracles: PyTorch (batch norm, the 2-layer net's loss) and central differences; the saved module
runs in a fresh Python process in which `import graphc` fails.
"""

# ruff: noqa: N803, N806  (the lecture's X, W1, ...)

import ast
import importlib
import json
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import assert_grads_close, central_diff_all

import graphc as gc

torch = pytest.importorskip("torch")

FUNCTION = importlib.import_module("graphc.function")  # the module, not gc.function


@gc.function
def batchnorm(x, gamma, beta):
    mu = gc.mean(x, axis=0)
    xc = x - mu
    var = gc.mean(xc * xc, axis=0)
    xhat = xc / gc.sqrt(var + 1e-5)
    return gamma * xhat + beta


def net_loss(X, Y, W1, b1, W2, b2):
    """The 2-layer net's mean softmax cross-entropy against one-hot labels Y, plus 0.5 |W|^2."""
    hidden = gc.relu(X @ W1 + b1)
    scores = hidden @ W2 + b2
    shifted = scores - gc.max(scores, axis=1, keepdims=True)
    log_probs = shifted - gc.log(gc.sum(gc.exp(shifted), axis=1, keepdims=True))
    return -gc.mean(gc.sum(Y * log_probs, axis=1)) + 0.5e-3 * (gc.sum(W1 * W1) + gc.sum(W2 * W2))


loss = gc.function(net_loss)


def net_inputs(rng, N, D=13, H=11, C=7):
    labels = rng.integers(0, C, N)
    return {
        "X": rng.standard_normal((N, D)),
        "Y": np.eye(C)[labels],
        "W1": 0.3 * rng.standard_normal((D, H)),
        "b1": 0.1 * rng.standard_normal(H),
        "W2": 0.3 * rng.standard_normal((H, C)),
        "b2": 0.1 * rng.standard_normal(C),
    }


def torch_net(inputs):
    t = {k: torch.tensor(v, requires_grad=k != "Y") for k, v in inputs.items()}
    hidden = torch.relu(t["X"] @ t["W1"] + t["b1"])
    scores = hidden @ t["W2"] + t["b2"]
    data = -(t["Y"] * torch.log_softmax(scores, dim=1)).sum(dim=1).mean()
    value = data + 0.5e-3 * ((t["W1"] ** 2).sum() + (t["W2"] ** 2).sum())
    value.backward()
    return value.item(), {k: v.grad.numpy() for k, v in t.items() if k != "Y"}


def torch_batchnorm(x, gamma, beta, dout):
    t = [torch.tensor(v, requires_grad=True) for v in (x, gamma, beta)]
    out = torch.nn.functional.batch_norm(t[0], None, None, t[1], t[2], training=True, eps=1e-5)
    (out * torch.tensor(dout)).sum().backward()
    return out.detach().numpy(), [v.grad.numpy() for v in t]


def code_lines(source: str) -> list[str]:
    """The statements of forward and backward, comments dropped."""
    tree = ast.parse(source)
    return [
        ast.unparse(node) for fn in tree.body if isinstance(fn, ast.FunctionDef) for node in fn.body
    ]


def test_no_size_is_baked_in(rng):
    x = rng.standard_normal((13, 7))
    source = batchnorm.source_for(x, rng.standard_normal(7), rng.standard_normal(7))
    code = "\n".join(code_lines(source))
    assert not re.search(r"\b(13|7)\b", code), code
    assert "shape" in code  # the sizes are read: np.broadcast_to(dadd / dout.shape[0], ...)
    assert "x: (N, D), gamma: (D,), beta: (D,), for any N and D" in " ".join(source.split())
    source = loss.source_for(**net_inputs(rng, 17))
    code = "\n".join(code_lines(source))
    assert not re.search(r"\b(17|13|11)\b", code), code
    assert "X: (N, D), Y: (N, C), W1: (D, H), b1: (H,), W2: (H, C), b2: (C,)" in " ".join(
        source.split()
    )


def test_a_loop_over_batches_compiles_once(rng, monkeypatch):
    compiled = []
    real = FUNCTION.compile_graph

    def counting(*args, **kwargs):
        compiled.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(FUNCTION, "compile_graph", counting)
    f = gc.function(net_loss)
    for N in (64, 64, 64, 37):
        inputs = net_inputs(rng, N)
        value, grads = f.value_and_grad(**inputs)
        grads.pop("Y")
        want, want_grads = torch_net(inputs)
        assert value == pytest.approx(want, rel=1e-12)
        assert_grads_close(grads, want_grads, rtol=1e-9, atol=1e-12)
    assert len(compiled) == 1
    # a new pattern compiles again: a size of 1 broadcasts, and equal sizes are one size
    for N in (1, 11):  # N=1 is a size 1; N=11 equals H
        inputs = net_inputs(rng, N)
        grads = {k: g for k, g in f.grad(**inputs).items() if k != "Y"}
        assert_grads_close(grads, torch_net(inputs)[1], rtol=1e-9, atol=1e-12)
    assert len(compiled) == 3


def test_saved_module_runs_without_graphc_at_other_batch_sizes(rng, tmp_path):
    batchnorm(rng.standard_normal((5, 4)), rng.standard_normal(4), rng.standard_normal(4))
    path = tmp_path / "batchnorm_layer.py"
    batchnorm.save_source(path)
    loss(**net_inputs(rng, 8))
    loss.save_source(tmp_path / "net.py")
    cases = []
    for N in (2, 7, 64):
        x, gamma, beta = rng.standard_normal((N, 4)), rng.standard_normal(4), rng.standard_normal(4)
        cases.append({"x": x.tolist(), "gamma": gamma.tolist(), "beta": beta.tolist()})
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.modules["graphc"] = None  # `import graphc` fails: the module must not need it
        sys.path.insert(0, {str(tmp_path)!r})
        import numpy as np
        import batchnorm_layer
        results = []
        for case in json.loads(sys.stdin.read()):
            x, gamma, beta = (np.array(case[k]) for k in ("x", "gamma", "beta"))
            dout = np.cos(np.arange(x.size)).reshape(x.shape)
            out, cache = batchnorm_layer.forward(x, gamma, beta)
            dx, dgamma, dbeta = batchnorm_layer.backward(dout, cache)
            results.append([a.tolist() for a in (out, dx, dgamma, dbeta)])
        print(json.dumps(results))
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    for case, got in zip(cases, json.loads(run.stdout)):
        x = np.array(case["x"])
        dout = np.cos(np.arange(x.size)).reshape(x.shape)
        want_out, want = torch_batchnorm(x, np.array(case["gamma"]), np.array(case["beta"]), dout)
        np.testing.assert_allclose(got[0], want_out, rtol=1e-10, atol=1e-12)
        for g, w in zip(got[1:], want):
            np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12)


def test_saved_net_module_matches_pytorch_at_other_batch_sizes(rng, tmp_path):
    loss(**net_inputs(rng, 8))
    path = loss.save_source(tmp_path / "net_module.py")
    namespace = {}
    with open(path) as file:
        exec(compile(file.read(), str(path), "exec"), namespace)  # plain Python, no graphc
    for N in (3, 50):
        inputs = net_inputs(rng, N)
        value, grads = namespace["value_and_grad"](**inputs)
        want, want_grads = torch_net(inputs)
        assert value == pytest.approx(want, rel=1e-12)
        got = {k: g for k, g in zip(loss.inputs, grads) if k != "Y"}
        assert_grads_close(got, want_grads, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "fn",
    [
        lambda x, w: gc.mean(gc.tanh(x @ w), axis=(0, 1)),
        lambda x, w: gc.sum(gc.mean(x, axis=0, keepdims=True) * x) * gc.sum(w),
        lambda x, w: gc.mean(gc.transpose(x) @ gc.exp(x @ w)),
        lambda x, w: gc.sum(gc.reshape(x, (-1,)) ** 2) + gc.mean(w),
    ],
)
def test_generic_modules_match_central_differences_at_other_sizes(fn, rng):
    f = gc.function(fn)
    f(rng.standard_normal((6, 3)), rng.standard_normal((3, 5)))
    for shape_x, shape_w in (((9, 4), (4, 2)), ((2, 3), (3, 3))):
        inputs = {"x": rng.standard_normal(shape_x), "w": rng.standard_normal(shape_w)}
        assert_grads_close(f.grad(**inputs), central_diff_all(f, inputs), rtol=1e-6, atol=1e-8)


def test_a_fixed_size_the_user_wrote_keeps_the_module_specialised(rng):
    f = gc.function(lambda x: gc.sum(gc.reshape(x, (3, 4)) ** 2))
    x = rng.standard_normal((4, 3))
    source = f.source_for(x)
    assert "Specialised to inputs shaped x: (4, 3)" in " ".join(source.split())
    assert_grads_close(f.grad(x=x), central_diff_all(f, {"x": x}))
    y = rng.standard_normal((2, 6))  # the same pattern, another module: still right
    assert_grads_close(f.grad(x=y), central_diff_all(f, {"x": y}))


def test_a_number_the_user_wrote_is_never_read_as_a_size(rng):
    from graphc.ir.shapes import PROBE_SHIFT

    probe = (3 << PROBE_SHIFT) | 2  # what a size of 3 is probed as
    f = gc.function(lambda x: gc.sum(x * probe))
    for n in (3, 5):
        x = rng.standard_normal(n)
        np.testing.assert_array_equal(f.grad(x=x)["x"], np.full(n, float(probe)))
        assert str(probe) in f.source


def test_a_cancelled_input_gets_a_zero_gradient_of_each_calls_shape():
    # x - x reaches the output but its gradient cancels to a constant zero array: no probe can
    # stand for the call's shape there (the random generator found it allocating petabytes)
    f = gc.function(lambda x0: x0 - x0)
    for shape in [(2, 3), (4, 3), (7,)]:
        x = np.random.default_rng(0).normal(size=shape)
        value, grads = f.value_and_grad(x0=x)
        np.testing.assert_array_equal(value, np.zeros(shape))
        assert_grads_close(grads, central_diff_all(lambda x0: x0 - x0, {"x0": x}))
