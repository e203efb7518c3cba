"""Workload 3, elementwise: the sigmoid neuron's forward and backward over 10^6-element arrays.

f = 1 / (1 + exp(-(w0 x0 + w1 x1 + w2))) elementwise over five float64 arrays; every candidate
returns f and the five gradients of sum(f) (dout = ones). Reference: hand-written fused NumPy
(exp of -|dot| once, e cached for the gradient); hand-written unfused NumPy (gate by gate, as
on the slides) is the second yardstick, since the issue's peer figures are relative to it. With
numba installed (whatever --peers selects: it is no peer here), a hand-written numba single loop
is the stretch target's yardstick, timed beside graphc's numba backend (`backend="numba"`).
(This workload replaces the old `benchmarks/fusion_elementwise.py`, which now runs it.)
"""

from __future__ import annotations

import importlib.util

import numpy as np

import graphc as gc

from .harness import (
    Candidate,
    Section,
    Target,
    agreeing,
    have,
    import_jax,
    interleave,
    skipped_note,
    table,
)

NAMES = ("w0", "x0", "w1", "x1", "w2")
REFERENCE = "hand-written fused NumPy (reference)"
UNFUSED = "hand-written unfused NumPy"
LOOP = "numba single loop (hand-written)"
COMPILED = "graphc fused, backend='numba'"


def neuron(w0, x0, w1, x1, w2):
    return 1 / (1 + gc.exp(-(w0 * x0 + w1 * x1 + w2)))


def hand_unfused(w0, x0, w1, x1, w2):
    """Gate by gate, as on the slides (no care for overflow)."""
    a, b = w0 * x0, w1 * x1
    dot = a + b + w2
    e = np.exp(-dot)
    d = 1.0 + e
    f = 1.0 / d
    dd = -1.0 / d**2  # the 1/x gate
    ddot = -(dd * e)  # through exp and the negation
    return f, dict(zip(NAMES, (x0 * ddot, w0 * ddot, x1 * ddot, w1 * ddot, ddot)))


def hand_fused(w0, x0, w1, x1, w2):
    """A careful fused sigmoid: exp of -|dot| only, e cached for the gradient."""
    dot = w0 * x0 + w1 * x1 + w2
    e = np.exp(-np.abs(dot))
    f = np.where(dot >= 0, 1.0, e) / (1.0 + e)
    ddot = e / (1.0 + e) ** 2
    return f, dict(zip(NAMES, (x0 * ddot, w0 * ddot, x1 * ddot, w1 * ddot, ddot)))


# ---------------------------------------------------------------- optional candidates


def _numba(inputs):
    import numba

    @numba.njit(cache=False)
    def loop(w0, x0, w1, x1, w2, f, g0, g1, g2, g3, g4):
        for i in range(w0.size):
            dot = w0[i] * x0[i] + w1[i] * x1[i] + w2[i]
            e = np.exp(-abs(dot))  # the careful sigmoid, written without a branch to predict
            r = 1.0 / (1.0 + e)
            f[i] = (1.0 if dot >= 0 else e) * r
            ddot = e * r * r
            g0[i] = x0[i] * ddot
            g1[i] = w0[i] * ddot
            g2[i] = x1[i] * ddot
            g3[i] = w1[i] * ddot
            g4[i] = ddot

    def call():
        outs = [np.empty_like(inputs[0]) for _ in range(6)]
        loop(*inputs, *outs)
        return outs[0], dict(zip(NAMES, outs[1:]))

    return call


def _torch(inputs, builtin: bool):
    import torch

    ts = [torch.from_numpy(a).requires_grad_() for a in inputs]

    def call():
        w0, x0, w1, x1, w2 = ts
        dot = w0 * x0 + w1 * x1 + w2
        f = torch.sigmoid(dot) if builtin else 1 / (1 + torch.exp(-dot))
        grads = torch.autograd.grad(f, ts, grad_outputs=torch.ones_like(f))
        return f, dict(zip(NAMES, grads))

    return call


def _jax(inputs):
    jax = import_jax()
    jnp = jax.numpy

    def forward(w0, x0, w1, x1, w2):
        return 1 / (1 + jnp.exp(-(w0 * x0 + w1 * x1 + w2)))

    @jax.jit
    def value_and_grads(*args):
        f, vjp = jax.vjp(forward, *args)
        return f, vjp(jnp.ones_like(f))

    args = [jax.device_put(a) for a in inputs]

    def call():
        f, grads = jax.block_until_ready(value_and_grads(*args))
        return f, dict(zip(NAMES, grads))

    return call


def _pytensor(inputs):
    import pytensor
    import pytensor.tensor as pt

    vs = [pt.dvector(k) for k in NAMES]
    w0, x0, w1, x1, w2 = vs
    f = 1 / (1 + pt.exp(-(w0 * x0 + w1 * x1 + w2)))
    grads = pytensor.grad(None, vs, known_grads={f: pt.ones_like(f)})
    compiled = pytensor.function(vs, [f, *grads])

    def call():
        out, *gs = compiled(*inputs)
        return out, dict(zip(NAMES, gs))

    return call


PEERS = {
    "PyTorch eager": ("torch", lambda a: _torch(a, False), "peer"),
    "PyTorch eager, torch.sigmoid": ("torch", lambda a: _torch(a, True), "peer"),
    "JAX jit(vjp)": ("jax", _jax, "peer"),
    "PyTensor": ("pytensor", _pytensor, "peer"),
}


def build(inputs) -> tuple[list[Candidate], dict[str, str]]:
    f = gc.function(neuron)
    graphc = {
        "graphc unfused": f,
        "graphc fused": f.fused(),
        "graphc fused, readable=False": f.fused(readable=False),
        "graphc fused (elementwise)": f.fused(level="elementwise"),
    }
    out = [Candidate(k, lambda g=g: g.value_and_grad(*inputs)) for k, g in graphc.items()]
    out += [
        Candidate(UNFUSED, lambda: hand_unfused(*inputs), "reference"),
        Candidate(REFERENCE, lambda: hand_fused(*inputs), "reference"),
    ]
    skipped = {}
    if importlib.util.find_spec("numba") is not None:  # one loop: by hand, and graphc's backend
        loops = {
            COMPILED: f.fused(backend="numba"),
            "graphc fused (elementwise), backend='numba'": f.fused(
                level="elementwise", backend="numba"
            ),
            "graphc unfused, backend='numba'": gc.function(neuron, backend="numba"),
        }
        out.append(Candidate(LOOP, _numba(inputs), "reference"))
        out += [Candidate(k, lambda g=g: g.value_and_grad(*inputs)) for k, g in loops.items()]
    else:
        skipped[LOOP] = "numba not installed (pip install 'graphc[numba]')"
    for name, (module, make, kind) in PEERS.items():
        if not have(module):
            skipped[name] = "not installed or not selected"
            continue
        try:
            out.append(Candidate(name, make(inputs), kind))
        except Exception as e:
            skipped[name] = f"failed to build: {type(e).__name__}: {e}"
    return out, skipped


def run(rounds: int, smoke: bool = False, size: int | None = None) -> Section:
    size = size or (1000 if smoke else 10**6)
    rng = np.random.default_rng(0)
    inputs = [rng.normal(size=size) for _ in NAMES]
    want = hand_fused(*inputs)
    cands, skipped = build(inputs)
    failures = []
    ok = agreeing(cands, want, 1e-12, "elementwise", failures)
    title = f"Elementwise sigmoid neuron ({size:,} float64 elements)"
    if smoke:
        return Section(title, f"{len(ok)} candidates agree with the reference", [], failures)
    timings = interleave({c.name: c.call for c in ok}, rounds, min_sample=0.0)
    ref, unfused = timings[REFERENCE].median, timings[UNFUSED].median
    rows = [
        [
            name,
            f"{t.median * 1e3:.2f} ms",
            f"{t.median / ref:.2f}x",
            f"{t.median / unfused:.2f}x",
            f"{t.spread * 100:.0f}%",
        ]
        for name, t in timings.items()
    ]
    header = ["candidate", "median", "/ hand fused (reference)", "/ hand unfused", "spread"]
    text = table(header, rows) + "\n" + skipped_note(skipped)
    fused = timings["graphc fused"].median / ref
    fast = timings["graphc fused, readable=False"].median / ref
    speedup = timings["graphc unfused"].median / timings["graphc fused"].median
    level = timings["graphc fused (elementwise)"].median / timings["graphc fused"].median
    targets = [
        Target(
            "elementwise: graphc fused <= 1.1x hand-written fused NumPy",
            f"{fused:.2f}x (readable=False: {fast:.2f}x)",
            fused <= 1.1,
        ),
        Target(
            "elementwise: graphc fused >= 1.15x faster than graphc unfused",
            f"{speedup:.2f}x faster",
            speedup >= 1.15,
        ),
        Target(
            "elementwise: level='elementwise' no slower than level='patterns' (NumPy)",
            f"{level:.2f}x patterns' time",
            level <= 1.0,
        ),
    ]
    numba_level = "graphc fused (elementwise), backend='numba'"
    if numba_level in timings and COMPILED in timings:
        ratio = timings[numba_level].median / timings[COMPILED].median
        targets.append(
            Target(
                "elementwise: level='elementwise' no slower than level='patterns' (numba)",
                f"{ratio:.2f}x patterns' time",
                ratio <= 1.0,
            )
        )
    if LOOP in timings and COMPILED in timings:
        loop, compiled = timings[LOOP].median, timings[COMPILED].median
        targets.append(
            Target(
                "elementwise (stretch): compiled backend <= 1.2x a numba single loop",
                f"{compiled / loop:.2f}x the loop ({compiled / unfused:.2f}x unfused NumPy; "
                f"the loop {loop / unfused:.2f}x)",
                compiled / loop <= 1.2,
            )
        )
    else:
        targets.append(
            Target(
                "elementwise (stretch): compiled backend <= 1.2x a numba single loop",
                "numba not installed (pip install -e '.[numba]')",
                None,
            )
        )
    return Section(title, text, targets, failures)
