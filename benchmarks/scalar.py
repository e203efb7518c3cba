"""Workload 1, scalar circuits: value and every gradient of the lecture circuits on Python floats.

Circuits: (x + y) z at (-2, 5, -4) and the sigmoid neuron 1 / (1 + exp(-(w0 x0 + w1 x1 + w2)))
at (2, -1, -3, -2, -3). Reference: hand-written straight-line Python (the lecture's staged
backprop) returning the value and a dict of gradients, the same result graphc's
`value_and_grad` gives, called by position. Every candidate takes Python floats and gives back
numbers.

graphc is timed in every call style: by name (as the README and the docs call it: the headline
row "graphc"), by position, mixed (the first two by position, the rest by name), with the loss
wrapped in `gc.sum` or `gc.mean` (the identity on a scalar, as many losses end), and fused.
Each style must stay within 2x the reference.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import graphc as gc
from graphc.lectures import circuit, neuron  # the lecture circuits, as graphc draws them

from .harness import (
    Candidate,
    Section,
    Target,
    agreeing,
    ahead_of_every_peer,
    have,
    import_jax,
    interleave,
    skipped_note,
    table,
    timing_rows,
)

# -------------------------------------------- the circuits by hand (graphc traces graphc.lectures)


def circuit_reference(x, y, z):
    """Forward, then backward in reverse, one line per gate."""
    q = x + y
    f = q * z
    dq = z  # mul: local gradient z
    dz = q
    return f, {"x": dq, "y": dq, "z": dz}


def neuron_reference(w0, x0, w1, x1, w2):
    dot = w0 * x0 + w1 * x1 + w2
    f = 1.0 / (1.0 + math.exp(-dot))  # sigmoid
    ddot = (1.0 - f) * f  # sigmoid: local gradient (1 - f) f
    return f, {"w0": x0 * ddot, "x0": w0 * ddot, "w1": x1 * ddot, "x1": w1 * ddot, "w2": ddot}


CIRCUITS = {
    "(x + y) z": (circuit, circuit_reference, ("x", "y", "z"), (-2.0, 5.0, -4.0)),
    "sigmoid neuron": (
        neuron,
        neuron_reference,
        ("w0", "x0", "w1", "x1", "w2"),
        (2.0, -1.0, -3.0, -2.0, -3.0),
    ),
}


def _same_circuit(fn, exp):
    """The circuit with `exp` standing for gc.exp (each peer brings its own)."""
    if fn is circuit:
        return circuit

    def neuron_with(w0, x0, w1, x1, w2):
        dot = w0 * x0 + w1 * x1 + w2
        return 1 / (1 + exp(-dot))

    return neuron_with


# ---------------------------------------------------------------- peers


def _torch(fn, names, args):
    import torch

    f = _same_circuit(fn, torch.exp)

    def call():
        ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in args]
        out = f(*ts)
        grads = torch.autograd.grad(out, ts)
        return out.item(), {k: g.item() for k, g in zip(names, grads)}

    return call


def _jax(fn, names, args):
    jax = import_jax()
    f = jax.jit(jax.value_and_grad(_same_circuit(fn, jax.numpy.exp), argnums=range(len(args))))

    def call():
        value, grads = f(*args)
        return float(value), {k: float(g) for k, g in zip(names, grads)}

    return call


def _autograd(fn, names, args):
    import autograd
    import autograd.numpy as anp

    f = _same_circuit(fn, anp.exp)
    vg = autograd.value_and_grad(lambda a: f(*a))

    def call():
        value, grads = vg(args)
        return value, {k: float(g) for k, g in zip(names, grads)}

    return call


def micrograd_exp(v):
    """exp for micrograd's Value, as the lecture adds it (micrograd itself has no exp)."""
    from micrograd.engine import Value

    out = Value(math.exp(v.data), (v,), "exp")

    def _backward():
        v.grad += out.data * out.grad

    out._backward = _backward
    return out


def _micrograd(fn, names, args):
    from micrograd.engine import Value

    f = _same_circuit(fn, micrograd_exp)

    def call():
        vs = [Value(a) for a in args]
        out = f(*vs)
        out.backward()
        return out.data, {k: v.grad for k, v in zip(names, vs)}

    return call


def _pytensor(fn, names, args):
    import pytensor
    import pytensor.tensor as pt

    vs = [pt.dscalar(k) for k in names]
    out = _same_circuit(fn, pt.exp)(*vs)
    compiled = pytensor.function(vs, [out, *pytensor.grad(out, vs)])

    def call():
        value, *grads = compiled(*args)
        return float(value), {k: float(g) for k, g in zip(names, grads)}

    return call


GENERATED = "graphc's generated module alone (diagnostic)"

PEER_MAKERS = {
    "PyTorch eager": ("torch", _torch),
    "JAX jit(value_and_grad)": ("jax", _jax),
    "HIPS autograd": ("autograd", _autograd),
    "micrograd (+ the lecture's exp)": ("micrograd", _micrograd),
    "PyTensor": ("pytensor", _pytensor),
}

# ---------------------------------------------------------------- the workload


def by_keywords(f, names, args, by_position: int = 0) -> Callable[[], tuple]:
    """`lambda: f.value_and_grad(a0, ..., name=a_k, ...)`: the first `by_position` inputs by
    position, the rest by name, written out as a user writes the call (not `**kwargs`, which
    copies a dict)."""
    values = [f"_{i}=_args[{i}]" for i in range(len(args))]
    given = [f"_{i}" if i < by_position else f"{k}=_{i}" for i, k in enumerate(names)]
    call = f"lambda {', '.join(values)}: _f.value_and_grad({', '.join(given)})"
    return eval(call, {"_f": f, "_args": args})  # our own names and indices


def _reduced(fn, reduction):
    """`fn` with its value wrapped in a reduction: the identity on a scalar."""

    def loss(*args):
        return reduction(fn(*args))

    loss.__signature__ = inspect.signature(fn)  # graphc names the inputs after fn's parameters
    return loss


def candidates(fn, reference, names, args) -> tuple[list[Candidate], dict[str, str]]:
    """graphc in every call style, the reference, and every installed peer."""
    as_written = gc.function(fn)
    summed = gc.function(_reduced(fn, gc.sum), name=fn.__name__)
    averaged = gc.function(_reduced(fn, gc.mean), name=fn.__name__)
    out = [
        Candidate("hand-written Python (reference)", lambda: reference(*args), "reference"),
        Candidate("graphc", by_keywords(as_written, names, args)),
        Candidate("graphc by position", lambda: as_written.value_and_grad(*args)),
        Candidate("graphc mixed", by_keywords(as_written, names, args, 2)),
        Candidate("graphc, gc.sum of it", by_keywords(summed, names, args)),
        Candidate("graphc, gc.mean of it", by_keywords(averaged, names, args)),
    ]
    if fn is neuron:
        fused = as_written.fused()
        out.append(Candidate("graphc fused (sigmoid gate)", by_keywords(fused, names, args)))
    # Not a way users call graphc: the generated module alone, without the Function's argument
    # checks and conversions, to show what the wrapper costs.
    generated_module = as_written.compiled_for(*args).module

    def generated():
        value, grads = generated_module.value_and_grad(*args)
        return value, dict(zip(names, grads))

    out.append(Candidate(GENERATED, generated, "diagnostic"))
    skipped = {}
    for label, (module, make) in PEER_MAKERS.items():
        if not have(module):
            skipped[label] = "not installed or not selected"
            continue
        try:
            out.append(Candidate(label, make(fn, names, args), "peer"))
        except Exception as e:
            skipped[label] = f"failed to build: {type(e).__name__}: {e}"
    return out, skipped


def run(rounds: int, smoke: bool = False) -> Section:
    texts, targets, failures = [], [], []
    for title, (fn, reference, names, args) in CIRCUITS.items():
        cands, skipped = candidates(fn, reference, names, args)
        want = reference(*args)
        ok = agreeing(cands, want, 1e-12, f"scalar {title}", failures)
        if smoke:
            texts.append(f"{title}: {len(ok)} candidates agree with the reference")
            continue
        timings = interleave({c.name: c.call for c in ok}, rounds, min_sample=0.02)
        ref = "hand-written Python (reference)"
        rows = timing_rows(timings, ref)
        texts.append(
            f"### {title}\n\n"
            + '"graphc" is called by name, as the docs call it.\n\n'
            + table(["candidate", "median per call", "/ reference", "spread (IQR)"], rows)
            + "\n"
            + skipped_note(skipped)
        )
        ref_t = timings[ref].median
        for c in ok:
            if c.kind == "graphc":
                ratio = timings[c.name].median / ref_t
                style = "by name" if c.name == "graphc" else c.name.removeprefix("graphc")
                goal = f"scalar {title}: graphc ({style.strip(' ,')}) <= 2x hand-written Python"
                targets.append(Target(goal, f"{ratio:.2f}x", ratio <= 2))
        targets += ahead_of_every_peer(f"scalar {title}", timings, ok, ref_t)
    return Section("Scalar circuits", "\n\n".join(texts), targets, failures)
