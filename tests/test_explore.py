"""The backprop explorer in a real browser: headless Chromium opens the generated pages.

Oracles: PyTorch autograd evaluates every circuit node by node (its own ops, float64), with
each wire's use of a value (each argument position: x*x has two) as a tensor of its own, so
the gradient flowing along each wire is PyTorch's, and a fork's total the sum of its branches';
`value_and_grad` for the inputs' totals; forward mode's tangents against central differences
of PyTorch's node values. What is checked is what the page shows
after its script ran (`--dump-dom`): the wire and input tables, the SVG labels shown and
hidden at several `#step=K`, the explanation lines, the inspector; plus no console messages
and no http(s) address anywhere in the file. Skipped, saying why, where Chromium is absent.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
from graphc.ir.graph import args_of, topo_order
from graphc.lectures import LECTURES
from tests import browser

torch = pytest.importorskip("torch", reason="the explorer tests' oracle is PyTorch")
needs_chromium = pytest.mark.skipif(
    browser.chromium() is None,
    reason="no chromium: install Debian's chromium (apt-get install chromium, or "
    "GRAPHC_NEED_CHROMIUM=1 scripts/setup-env.sh) to open the explorer in a browser",
)

RTOL = 2e-4  # the page shows five significant digits


# ---------------------------------------------------------------- the oracle


def _op(op: str, data: dict, a: list):
    p = data.get("params") or {}
    axis, keep = p.get("axis"), p.get("keepdims", False)
    dims = tuple(range(a[0].dim())) if axis is None else axis
    table = {
        "add": lambda: a[0] + a[1],
        "sub": lambda: a[0] - a[1],
        "mul": lambda: a[0] * a[1],
        "div": lambda: a[0] / a[1],
        "neg": lambda: -a[0],
        "exp": lambda: torch.exp(a[0]),
        "log": lambda: torch.log(a[0]),
        "sigmoid": lambda: torch.sigmoid(a[0]),
        "relu": lambda: torch.relu(a[0]),
        "maximum": lambda: torch.maximum(a[0], a[1]),
        "matmul": lambda: a[0] @ a[1],
        "sum": lambda: torch.sum(a[0], dim=dims, keepdim=keep),
        "mean": lambda: torch.mean(a[0], dim=dims, keepdim=keep),
        "max": lambda: torch.amax(a[0], dim=dims, keepdim=keep),
    }
    return table[op]()


def torch_wires(f, inputs: dict):
    """PyTorch's value of every node, and the gradient along every wire (gate, argument
    position): after the broadcast for an argument broadcast by an elementwise gate, and
    summed back."""
    g = f.graph
    value, uses, spread = {}, {}, {}
    inputs = {k: torch.tensor(np.asarray(v, dtype=float)) for k, v in inputs.items()}
    for n in topo_order(g):
        data = g.nodes[n]
        if data["op"] == "input":
            value[n] = inputs[data["name"]].clone().requires_grad_(True)
            continue
        if data["op"] == "const":
            value[n] = torch.tensor(np.asarray(data["value"], dtype=float))
            continue
        args = args_of(g, n)
        elementwise = data["op"] not in ("matmul", "sum", "mean", "max")
        shape = torch.broadcast_shapes(*(value[a].shape for a in args)) if elementwise else None
        operands = []
        for i, a in enumerate(args):
            use = value[a] * 1.0  # this wire's own tensor: its gradient is the wire's
            use.retain_grad() if use.requires_grad else None
            uses[(n, i)] = use
            if elementwise and use.shape != shape:
                spread[(n, i)] = torch.broadcast_to(use, shape)
                spread[(n, i)].retain_grad() if use.requires_grad else None
            operands.append(spread.get((n, i), use))
        value[n] = _op(data["op"], data, operands)
    out = value[g.graph["output"]]
    out.backward(torch.ones_like(out))
    grad = {k: (None if u.grad is None else u.grad.numpy()) for k, u in uses.items()}
    before = {k: s.grad.numpy() for k, s in spread.items() if s.grad is not None}
    inputs_grad = {g.nodes[i]["name"]: value[i].grad.numpy() for i in g.graph["inputs"]}
    return {n: v.detach().numpy() for n, v in value.items()}, grad, before, inputs_grad


def central_tangents(f, inputs: dict, name: str, h: float = 1e-6) -> dict:
    """Every node's derivative along d name = 1 (ones for an array), by central differences
    of PyTorch's node values."""
    up, down = dict(inputs), dict(inputs)
    up[name] = np.asarray(inputs[name], dtype=float) + h
    down[name] = np.asarray(inputs[name], dtype=float) - h
    plus, minus = torch_wires(f, up)[0], torch_wires(f, down)[0]
    return {n: (plus[n] - minus[n]) / (2 * h) for n in plus}


# ---------------------------------------------------------------- reading what is shown


def _numbers(text: str, like, atol: float = 1e-9) -> None:
    """Assert the page's text for a value equals `like` (a summary for larger arrays)."""
    like = np.asarray(like, dtype=float)
    if like.size <= 4:
        got = [float(t) for t in re.findall(r"-?[\d.]+(?:e[-+]?\d+)?|-?inf|nan", text)]
        np.testing.assert_allclose(got, like.ravel(), rtol=RTOL, atol=atol, err_msg=text)
        return
    shape, span = text.split(": ")
    assert shape == "×".join(map(str, like.shape)), text
    low, high = (float(t) for t in span.split(" … "))
    np.testing.assert_allclose([low, high], [like.min(), like.max()], rtol=RTOL, atol=atol)


def _open(f, inputs, tmp_path, fragment, **options):
    """The page of `f` at `inputs` opened at `#fragment`: no console message, the script ran."""
    page = f.explore(**inputs, **options)
    path = page.save(tmp_path / "page.html")
    opened = browser.open_page(path, fragment)
    assert opened.console == [], opened.console  # no errors, no messages at all
    root = browser.parse(opened.dom)
    assert browser.by_id(root, "graphc-data") is not None
    assert 'data-ready="true"' in opened.dom, "the page's script did not finish"
    return page, root


def _gates(f):
    return [n for n in topo_order(f.graph) if f.graph.nodes[n]["op"] not in ("input", "const")]


def _head(attrs) -> int | None:
    return None if attrs["data-head"] in ("output", "") else int(attrs["data-head"])


def check_step(f, inputs, tmp_path, step: int, **options) -> None:
    """At `#step=step`: every value and gradient shown is PyTorch's; those shown are the ones
    computed by then (forward: the first gates in order; backward: from the output back; a
    fork's total once all its branches have theirs)."""
    value, grad, before, input_grads = torch_wires(f, inputs)
    gates = _gates(f)
    done_forward = set(gates[:step])  # step k computes gate k (1-based), in forward order
    done_backward = set(gates[::-1][: max(0, step - len(gates) - 1)])  # then seed, then back
    _, root = _open(f, inputs, tmp_path, f"step={step}", **options)
    counter = browser.by_id(root, "counter").all_text()
    assert counter == f"step {step} of {2 * len(gates) + 1}"
    rows = browser.table_rows(root, "wires")
    assert rows, "no wires listed"
    seeded = step >= len(gates) + 1
    for attrs, (_, _, shown_value, shown_grad, _) in rows:
        tail, head = int(attrs["data-tail"]), _head(attrs)
        computed = f.graph.nodes[tail]["op"] in ("input", "const") or tail in done_forward
        assert bool(shown_value) == computed, (attrs, step)
        if computed:
            _numbers(shown_value, value[tail])
        if attrs["data-piece"] == "stem":  # to a fork point: the total of its branches
            branches = [
                (_head(a), int(a["data-position"]))
                for a, _ in rows
                if a["data-fork"] == attrs["data-fork"] and a["data-piece"] != "stem"
            ]
            assert len(branches) >= 2, attrs
            reached = seeded and all(h in done_backward for h, _ in branches)
            shares = [grad.get(b) for b in branches]
            expected = None if any(x is None for x in shares) else sum(shares)
        else:
            reached = seeded and (head is None or head in done_backward)
            if head is None:
                expected = np.ones_like(value[tail])
            elif attrs["data-piece"] == "from-sum":  # between the summation and the gate
                expected = before.get((head, int(attrs["data-position"])))
            else:
                expected = grad.get((head, int(attrs["data-position"])))
        assert bool(shown_grad) == (reached and expected is not None), (attrs, step)
        if shown_grad:
            _numbers(shown_grad, expected)
    totals = dict(browser.table_rows(root, "inputs")[i][1][::2] for i in range(len(f.inputs)))
    _, by_graphc = f.value_and_grad(**inputs)
    for name, shown in totals.items():
        if shown:
            _numbers(shown, input_grads[name])
            _numbers(shown, by_graphc[name])


# ---------------------------------------------------------------- the lecture circuits


@needs_chromium
@pytest.mark.parametrize("lecture", LECTURES, ids=[c.name for c in LECTURES])
def test_lecture_pages_show_torch_values_and_gradients_step_by_step(lecture, tmp_path):
    f = gc.function(lecture.fn)
    last = 2 * len(_gates(f)) + 1
    for step in sorted({0, 1, len(_gates(f)), len(_gates(f)) + 1, len(_gates(f)) + 2, last}):
        check_step(f, lecture.inputs, tmp_path, step)


@needs_chromium
def test_the_last_step_shows_every_gradient_and_the_fork_total(tmp_path):
    f = gc.function(lambda x: x * x + x)  # the fork: 6 + 1 = 7 at x = 3
    page, root = _open(f, dict(x=3.0), tmp_path, "step=99")  # past the end: the last step
    assert browser.by_id(root, "counter").all_text() == "step 5 of 5"
    ((_, (name, value, gradient, parts)),) = browser.table_rows(root, "inputs")
    # x forks into three reads (both of x*x, and +): 3 + 3 + 1
    assert (name, float(value), float(gradient), parts) == ("x", 3.0, 7.0, "3 + 3 + 1")
    lines = [li.all_text() for li in browser.by_id(root, "step-lines").find("li")]
    # x*x: each read its own wire, its local gradient the other read, x = 3
    assert lines == ["upstream = 1"] + 2 * ["to x: upstream × local = gradient: 1 × 3 = 3 "
                                            "(∂/∂x = x)"]  # fmt: skip
    figure = browser.by_id(root, "figures").find("figure")[0]
    labels = browser.svg_labels(figure)
    grads = {t: c for t, c in labels.items() if re.fullmatch(r"p0_w\d+g", t)}
    assert len(grads) == 5 and all("off" not in classes for classes, _ in grads.values())
    (total,) = [(c, text) for t, (c, text) in labels.items() if re.fullmatch(r"p0_w\d+t", t)]
    assert "off" not in total[0] and total[1] == "Σ 7.00"  # the fork's total, drawn


@needs_chromium
def test_a_backward_step_explains_upstream_times_local(tmp_path):
    lecture = LECTURES[1]  # the neuron: 8 gates, the seed at step 9, then 1/x, +1, exp
    f = gc.function(lecture.fn)
    _, root = _open(f, lecture.inputs, tmp_path, "step=12")
    title = browser.by_id(root, "step-title").all_text()
    lines = [li.all_text() for li in browser.by_id(root, "step-lines").find("li")]
    assert title == "Backward: the exp gate"
    # upstream d(1/x)/dx at x = 1 + e^-1, times exp's local gradient e^-1
    s = 1 / (1 + np.exp(-1.0))
    upstream, local = -(s**2), np.exp(-1.0)
    assert lines[0] == f"upstream = {upstream:.4g}"
    assert lines[1].startswith(f"to *-1 (neg): upstream × local = gradient: {upstream:.4g} × ")
    assert lines[1].endswith(f"{local:.4g} = {upstream * local:.4g} (∂/∂u = e^u)")
    active = [g for g in browser.by_id(root, "figures").find("g") if "active" in g.classes()]
    assert len(active) == 1 and active[0].all_text().strip().endswith("exp")


@needs_chromium
def test_values_appear_gate_by_gate_and_labels_hide_until_then(tmp_path):
    lecture = LECTURES[0]  # (x + y) z: + then *; seed at step 3; * then + backward
    f = gc.function(lecture.fn)
    for step, values, grads in ((0, 3, 0), (1, 4, 0), (2, 5, 0), (3, 5, 1), (4, 5, 3), (5, 5, 5)):
        _, root = _open(f, lecture.inputs, tmp_path, f"step={step}")
        labels = browser.svg_labels(browser.by_id(root, "figures"))
        shown = {t for t, (classes, _) in labels.items() if "off" not in classes}
        assert len({t for t in shown if re.fullmatch(r"p0_w\d+v", t)}) == values, step
        assert len({t for t in shown if re.fullmatch(r"p0_w\d+g", t)}) == grads, step


# ---------------------------------------------------------------- forward mode


def check_tangents(f, inputs, tmp_path, name: str, step: int, **options) -> None:
    """At `#step=step&mode=forward&along=name`: forward mode seeded d name = 1; every value
    shown is PyTorch's and every tangent the central difference of PyTorch's node values, on
    the wires computed by then (step 0: the seed, the inputs' wires; step k: gate k's)."""
    value = torch_wires(f, inputs)[0]
    tangent = central_tangents(f, inputs, name)
    gates = _gates(f)
    done = set(gates[:step])
    page, root = _open(f, inputs, tmp_path, f"step={step}&mode=forward&along={name}", **options)
    assert browser.by_id(root, "counter").all_text() == f"step {step} of {len(gates)}"
    assert browser.by_id(root, "below").all_text() == "tangent"
    data = json.loads(re.search(r'id="graphc-data">(.*?)</script>', page.html, re.S).group(1))
    wires = data["views"][0]["wires"]
    figure = browser.by_id(root, "figures")
    rows = browser.table_rows(root, "wires")
    assert len(rows) == len(wires)
    for (attrs, (_, _, shown_value, shown_tangent, _)), w in zip(rows, wires):
        tail = int(attrs["data-tail"])
        computed = f.graph.nodes[tail]["op"] in ("input", "const") or tail in done
        assert bool(shown_value) == computed == bool(shown_tangent), (attrs, step)
        if computed:
            _numbers(shown_value, value[tail])
            _numbers(shown_tangent, tangent[tail], atol=1e-6)
        try:
            label = browser.by_id(figure, "v0-" + w["handles"]["grad"])
        except KeyError:
            continue  # a wire drawn without a label under it
        assert ("off" in label.classes()) != computed, (w, step)
        if computed and np.ndim(tangent[tail]) == 0:
            assert "tangent" in label.classes()
            text = label.find("text")[0].all_text()
            assert abs(float(text) - tangent[tail]) <= 0.005 + 1e-6, (text, tangent[tail])
    seeds = {cells[0]: cells[2] for _, cells in browser.table_rows(root, "inputs")}
    assert seeds == {k: ("1" if k == name else "0") for k in f.inputs}


@needs_chromium
@pytest.mark.parametrize("lecture", LECTURES, ids=[c.name for c in LECTURES])
def test_forward_mode_shows_tangents_gate_by_gate(lecture, tmp_path):
    f = gc.function(lecture.fn)
    gates = len(_gates(f))
    for name in f.inputs:
        for step in sorted({0, 1, gates}):
            check_tangents(f, lecture.inputs, tmp_path, name, step)


@needs_chromium
def test_forward_mode_explains_a_gate_and_the_toggle_is_there(tmp_path):
    lecture = LECTURES[0]  # (x + y) z at x=-2, y=5, z=-4: along x, q = x + y has tangent 1
    f = gc.function(lecture.fn)
    _, root = _open(f, lecture.inputs, tmp_path, "step=2&mode=forward&along=x")
    lines = [li.all_text() for li in browser.by_id(root, "step-lines").find("li")]
    assert lines == ["*(3, -4) = -12", "tangent = -4 × 1 + 3 × 0 = -4"]
    radios = browser.by_id(root, "modes").find("input")
    checked = [r.attrs["value"] for r in radios if "checked" in r.attrs]
    assert [r.attrs["value"] for r in radios] == ["reverse", "forward"]
    options = [o.all_text() for o in browser.by_id(root, "along").find("option")]
    assert options == list(f.inputs)
    assert browser.by_id(root, "along").attrs.get("aria-label")
    assert checked == ["forward"]


# ---------------------------------------------------------------- arrays, fusion, quiz


def _net():
    from circuit_corpus import two_layer_net  # the slides' corpus: the same net and inputs

    return two_layer_net()


@needs_chromium
def test_the_two_layer_net_page_shows_torch_arrays(tmp_path):
    loss, at = _net()
    gates = len(_gates(loss))
    for step in (gates, gates + 6, 2 * gates + 1):
        check_step(loss, at, tmp_path, step)


@needs_chromium
def test_the_two_layer_net_fitted_as_the_slides_fit_it(tmp_path):
    """fit="16:9": the page's picture is the one the slides draw in one piece (`fitted` with
    wrap=False: the direction whose text is larger; the page scrolls where a slide would wrap
    onto rows), and its numbers PyTorch's in both modes."""
    from graphc.draw import render

    loss, at = _net()
    gates = len(_gates(loss))
    for step in (gates + 2, 2 * gates + 1):
        check_step(loss, at, tmp_path, step, fit="16:9")
    check_tangents(loss, at, tmp_path, "b1", gates, fit="16:9")
    page = loss.explore(**at, fit="16:9")
    slide = render.svg_text(render.fitted(loss, at, render.Style(fit="16:9"), wrap=False))

    def ratio(svg: str) -> float:
        box = [float(v) for v in re.search(r'viewBox="([^"]+)"', svg).group(1).split()]
        return box[2] / box[3]

    assert ratio(page.html) == pytest.approx(ratio(slide), rel=0.02)
    with pytest.raises(gc.InputError, match="fit"):
        loss.explore(**at, fit="3:2")


@needs_chromium
def test_inspecting_an_array_wire_shows_its_table_and_rule(tmp_path):
    loss, at = _net()
    page = loss.explore(**at)
    data = json.loads(re.search(r'id="graphc-data">(.*?)</script>', page.html, re.S).group(1))
    wires = data["views"][0]["wires"]
    k = next(w["k"] for w in wires if w["from"] == "W1" and w["to"].startswith("@"))  # X @ W1
    _, root = _open(loss, at, tmp_path, f"step=99&wire={k}")
    inspector = browser.by_id(root, "inspect-body")
    texts = [p.all_text() for p in inspector.find("p")]
    assert "shape: 2×5" in texts
    cells = [[float(td.all_text()) for td in tr.find("td")] for tr in inspector.find("tr")]
    _, grad, _, _ = torch_wires(loss, at)
    head = next(n for n in loss.graph.nodes if loss.graph.nodes[n]["op"] == "matmul")
    np.testing.assert_allclose(cells[:2], at["W1"], rtol=RTOL)
    np.testing.assert_allclose(cells[2:], grad[(head, 1)], rtol=RTOL, atol=1e-9)
    assert any(t.startswith("local gradient of @") for t in texts), texts


@needs_chromium
def test_the_comparison_page_toggles_to_the_fused_circuit(tmp_path):
    lecture = LECTURES[1]
    f = gc.function(lecture.fn)
    page = gc.compare(f, **lecture.inputs, repeat=1).explore()
    path = page.save(tmp_path / "compare.html")
    opened = browser.open_page(path, "step=99&view=1")
    assert opened.console == []
    root = browser.parse(opened.dom)
    figures = browser.by_id(root, "figures").find("figure")
    assert ["hidden" in fig.classes() for fig in figures] == [True, False]
    assert browser.by_id(root, "counter").all_text() == "step 11 of 11"  # 5 gates fused
    radios = [e for e in browser.by_id(root, "views").find("input")]
    assert [r.attrs.get("value") for r in radios] == ["0", "1"]
    totals = {r[1][0]: float(r[1][2]) for r in browser.table_rows(root, "inputs")}
    _, _, _, expected = torch_wires(f, lecture.inputs)
    for name, g in expected.items():
        np.testing.assert_allclose(totals[name], g, rtol=RTOL)


@needs_chromium
def test_quiz_hides_gradients_until_clicked(tmp_path):
    lecture = LECTURES[0]
    f = gc.function(lecture.fn)
    page = f.explore(**lecture.inputs, quiz=True)
    clicked = page.html.replace(
        "</body>", "<script>document.querySelector('button.reveal').click();</script></body>"
    )
    for text, hidden in ((page.html, 4), (clicked, 3)):
        path = tmp_path / "quiz.html"
        path.write_text(text, encoding="utf-8")
        opened = browser.open_page(path, "step=5")
        assert opened.console == []
        root = browser.parse(opened.dom)
        grads = [cells[3] for _, cells in browser.table_rows(root, "wires")]
        assert grads.count("?") == hidden, grads
        labels = browser.svg_labels(browser.by_id(root, "figures"))
        marks = [t for t, (_, s) in labels.items() if re.fullmatch(r"p0_w\d+g", t) and s == "?"]
        assert len(marks) == hidden
        totals = [cells[2] for _, cells in browser.table_rows(root, "inputs")]
        assert totals.count("?") >= hidden - 1  # the output wire's seed is no input's


@needs_chromium
def test_quiz_hides_a_forks_total_with_its_branches(tmp_path):
    f = gc.function(lambda x: x * x + x)  # x forks three ways; the total 7 is an answer too
    _, root = _open(f, dict(x=3.0), tmp_path, "step=5", quiz=True)
    rows = browser.table_rows(root, "wires")
    pieces = [(attrs["data-piece"], cells[3]) for attrs, cells in rows]
    assert ("stem", "?") in pieces
    assert [g for p, g in pieces].count("?") == len(rows) - 1  # all but the seed's
    labels = browser.svg_labels(browser.by_id(root, "figures"))
    (total,) = [text for t, (_, text) in labels.items() if re.fullmatch(r"p0_w\d+t", t)]
    assert total == "?"
    ((_, cells),) = browser.table_rows(root, "inputs")
    assert cells == ["x", "3", "?", ""]  # neither the total nor its parts


@needs_chromium
def test_keys_step_and_the_fragment_follows(tmp_path):
    lecture = LECTURES[0]
    f = gc.function(lecture.fn)
    page = f.explore(**lecture.inputs)
    keys = "".join(
        f"document.dispatchEvent(new KeyboardEvent('keydown', {{key: '{k}'}}));"
        for k in ("ArrowRight", "ArrowRight", "ArrowRight", "ArrowLeft")
    )
    path = tmp_path / "keys.html"
    path.write_text(
        page.html.replace(
            "</body>", f"<script>{keys}document.body.dataset.hash = location.hash;</script></body>"
        ),
        encoding="utf-8",
    )
    root = browser.parse(browser.open_page(path, "step=1").dom)
    assert browser.by_id(root, "counter").all_text() == "step 3 of 5"
    assert root.find("body")[0].attrs["data-hash"] == "#step=3"


@needs_chromium
def test_every_wire_is_focusable_with_a_text_alternative(tmp_path):
    lecture = LECTURES[1]
    f = gc.function(lecture.fn)
    _, root = _open(f, lecture.inputs, tmp_path, "step=9")
    every = [g for g in browser.by_id(root, "figures").find("g") if "edge" in g.classes()]
    edges = [g for g in every if re.fullmatch(r"v0-p0_w\d+", g.attrs["id"])]  # a wire's first piece
    assert len(edges) == len(browser.table_rows(root, "wires")) >= 8
    for g in edges:
        assert g.attrs.get("tabindex") == "0" and g.attrs.get("role") == "button"
        assert g.attrs["aria-label"].startswith("wire from ")
    out = [g for g in edges if g.attrs["aria-label"].startswith("wire from 1/x (out) to out")]
    assert out and "gradient 1" in out[0].attrs["aria-label"]
    controls = [browser.by_id(root, k) for k in ("first", "prev", "slider", "next", "last")]
    assert all(c.attrs.get("aria-label") for c in controls)


@needs_chromium
def test_hovering_any_piece_of_a_bent_wire_inspects_it(tmp_path):
    f = gc.function(lambda x: x * x + x)  # both reads of x*x are bent wires (two pieces each)
    page = f.explore(x=3.0)
    hover = "new MouseEvent('mouseenter')"
    path = tmp_path / "hover.html"
    path.write_text(
        page.html.replace(
            "</body>",
            f"<script>document.getElementById('v0-p0_w1-end').dispatchEvent({hover});</script>"
            "</body>",
        ),
        encoding="utf-8",
    )
    opened = browser.open_page(path, "step=5")
    assert opened.console == []
    root = browser.parse(opened.dom)
    texts = [p.all_text() for p in browser.by_id(root, "inspect-body").find("p")]
    # the first read of x*x: value x = 3, its gradient upstream 1 times the other read, 3
    assert texts == [
        "shape: scalar",
        "value: 3",
        "gradient: 3",
        "local gradient of * (mul): ∂/∂x = x",
    ]
    pieces = [g for g in root.find("g") if g.attrs.get("id") in ("v0-p0_w1", "v0-p0_w1-end")]
    assert len(pieces) == 2 and all("hover" in g.classes() for g in pieces)


# ---------------------------------------------------------------- the file itself


def test_the_page_is_one_file_with_no_address_to_load(tmp_path):
    lecture = LECTURES[1]
    f = gc.function(lecture.fn)
    for page in (f.explore(**lecture.inputs), gc.compare(f, **lecture.inputs, repeat=1).explore()):
        text = page.html
        assert (
            "http://" not in text
            and "https://" not in text
            and "//" not in re.sub(r"<script>.*?</script>", "", text, flags=re.S)
        )
        assert not re.search(r"<(link|img|iframe)\b|\bsrc=", text)
        assert text.count("<svg") == text.count("</svg>") >= 1
        assert page._repr_html_().startswith("<iframe srcdoc=")
        saved = page.save(tmp_path / "p.html")
        assert Path(saved).read_text(encoding="utf-8") == text


def test_text_from_the_user_cannot_end_the_script(tmp_path):
    square = gc.gate("square_tag", lambda u: u * u, symbol="f</script><b>")
    f = gc.function(lambda x: square(x))
    page = f.explore(x=2.0)
    blob = re.search(r'id="graphc-data">(.*?)</script>', page.html, re.S).group(1)
    assert "</script" not in blob and "f<\\/script><b>" in blob
    assert json.loads(blob)["views"][0]["wires"][0]["to"].startswith("f</script><b>")


def test_bad_quiz_and_option_names_are_refused():
    f = gc.function(lambda x, y: x * y)
    with pytest.raises(gc.InputError, match="quiz"):
        f.explore(x=1.0, y=2.0, quiz=["z"])
    with pytest.raises(gc.InputError, match="quiz"):
        f.explore(x=1.0, y=2.0, quiz="x")
    g = gc.function(lambda quiz, y: quiz * y)
    with pytest.raises(gc.InputError, match="by position"):
        g.explore(quiz=1.0, y=2.0)
    assert g.explore(1.0, 2.0).html.count("<svg") == 1


@needs_chromium
def test_the_console_check_sees_errors(tmp_path):
    """Guards the guard: a page whose script fails is seen failing."""
    path = tmp_path / "bad.html"
    path.write_text("<html><body><script>undefinedName();</script></body></html>")
    assert any("undefinedName" in m for m in browser.open_page(path).console)


def test_the_command_line_writes_the_page(tmp_path, capsys):
    from graphc.cli import main

    out = tmp_path / "neuron.html"
    expr = "1/(1+exp(-(w0*x0+w1*x1+w2)))"
    at = "w0=2,x0=-1,w1=-3,x1=-2,w2=-3"
    assert main(["explore", expr, "--at", at, "--compare", "-o", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="graphc-data">(.*?)</script>', text, re.S).group(1))
    assert [v["title"] for v in data["views"]] == ["unfused", "fused"]
    s = 1 / (1 + np.exp(-1.0))
    assert data["views"][1]["output"] == pytest.approx(s)
    assert main(["explore", "(x+y)*z", "--at", "x=1,y=2,z=3", "-o", str(tmp_path / "a.svg")]) == 2
    assert "HTML page" in capsys.readouterr().err


def test_the_checked_in_page_is_what_graphc_writes(tmp_path):
    """docs/explorer/neuron.html (linked from the README) is regenerated by the command in
    docs/explorer.md; a change to the page or the drawing shows here."""
    from graphc.cli import main

    out = tmp_path / "neuron.html"
    at = "w0=2,x0=-1,w1=-3,x1=-2,w2=-3"
    assert (
        main(["explore", "examples/lecture.py:neuron", "--at", at, "--compare", "-o", str(out)])
        == 0
    )
    checked_in = Path(__file__).resolve().parent.parent / "docs" / "explorer" / "neuron.html"
    assert out.read_text(encoding="utf-8") == checked_in.read_text(encoding="utf-8"), (
        "regenerate it: graphc explore examples/lecture.py:neuron --at w0=2,x0=-1,w1=-3,x1=-2,"
        "w2=-3 --compare -o docs/explorer/neuron.html"
    )
