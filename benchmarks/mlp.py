"""Workload 2, the lecture's CIFAR-sized 2-layer net: loss and gradients, time and peak memory.

loss = mean softmax cross-entropy of relu(X @ W1 + b1) @ W2 + b2, plus 0.5 reg (|W1|^2 + |W2|^2),
with N=256, D=3072, H=100, C=10; gradients of W1, b1, W2, b2; float64 and float32. Reference:
careful hand-written NumPy (integer labels, in-place updates where they are free, as in the
CS231n assignment). graphc takes the labels one-hot, since it has no gather gate.

Peak memory is measured per candidate in a separate process (`python -m benchmarks.mlp
--memory NAME --dtype D`): after warm-up calls, the peak resident set size is reset
(/proc/self/clear_refs) and one call's peak above the resting size is read from VmHWM; glibc is
told to give large blocks back at once (MALLOC_MMAP_THRESHOLD_) so freed arrays leave the
resident set. tracemalloc's peak (what NumPy allocates) is given too.
"""

# ruff: noqa: N803, N806, N812  (the lecture's X, W1, ...; torch's F)

from __future__ import annotations

import argparse
import ast
import gc as pygc
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np

import graphc as gc

from .harness import (
    Candidate,
    Section,
    Target,
    agreeing,
    ahead_of_every_peer,
    have,
    import_jax,
    interleave,
    selected_peers,
    skipped_note,
    table,
    timing_rows,
)

FULL = {"N": 256, "D": 3072, "H": 100, "C": 10}
SMOKE = {"N": 8, "D": 12, "H": 5, "C": 3}
REG = 1e-3
GRADS = ("W1", "b1", "W2", "b2")
REFERENCE = "hand-written NumPy (reference)"
ROOT = Path(__file__).resolve().parent.parent


def make_data(dtype: str, N: int, D: int, H: int, C: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    y = rng.integers(0, C, N)
    return {
        "X": rng.standard_normal((N, D)).astype(dt),
        "y": y,
        "Y": np.eye(C, dtype=dt)[y],
        "W1": (rng.standard_normal((D, H)) * np.sqrt(2.0 / D)).astype(dt),
        "b1": (rng.standard_normal(H) * 0.1).astype(dt),  # nonzero: kinks are off the grid
        "W2": (rng.standard_normal((H, C)) * np.sqrt(2.0 / H)).astype(dt),
        "b2": (rng.standard_normal(C) * 0.1).astype(dt),
        "reg": dt.type(REG),  # in the data's precision, as a careful user passes it
    }


# ---------------------------------------------------------------- the reference


def reference(X, y, W1, b1, W2, b2, reg):
    """Forward and backward by hand: the softmax gradient is probs - onehot, computed in place."""
    N = X.shape[0]
    rows = np.arange(N)
    hidden = X @ W1
    hidden += b1
    np.maximum(hidden, 0, out=hidden)  # relu, in place
    scores = hidden @ W2
    scores += b2
    scores -= scores.max(axis=1, keepdims=True)  # shift: exp never overflows
    probs = np.exp(scores)
    sums = probs.sum(axis=1, keepdims=True)
    data_loss = (np.log(sums).sum() - scores[rows, y].sum()) / N
    loss = data_loss + 0.5 * reg * (np.vdot(W1, W1) + np.vdot(W2, W2))
    dscores = probs
    dscores /= sums  # softmax
    dscores[rows, y] -= 1
    dscores /= N
    dW2 = hidden.T @ dscores
    dW2 += reg * W2
    db2 = dscores.sum(axis=0)
    dhidden = dscores @ W2.T
    dhidden *= hidden > 0  # relu backward
    dW1 = X.T @ dhidden
    dW1 += reg * W1
    db1 = dhidden.sum(axis=0)
    return loss, {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


# ---------------------------------------------------------------- graphc


def net(X, Y, W1, b1, W2, b2, reg):
    h = gc.relu(X @ W1 + b1)
    scores = h @ W2 + b2
    shifted = scores - gc.max(scores, axis=1, keepdims=True)
    log_probs = shifted - gc.log(gc.sum(gc.exp(shifted), axis=1, keepdims=True))
    data_loss = -gc.mean(gc.sum(Y * log_probs, axis=1))
    return data_loss + 0.5 * reg * (gc.sum(W1 * W1) + gc.sum(W2 * W2))


def _graphc(variant: str):
    def make(d):
        f = gc.function(net).wrt(*GRADS)
        if variant == "fused":
            f = f.fused()
        elif variant == "fused-fast":
            f = f.fused(readable=False)
        args = (d["X"], d["Y"], d["W1"], d["b1"], d["W2"], d["b2"], d["reg"])
        return lambda: f.value_and_grad(*args)

    return make


def graphc_source(d) -> str:
    """The generated module graphc runs for these inputs (default options)."""
    f = gc.function(net).wrt(*GRADS)
    return f.source_for(d["X"], d["Y"], d["W1"], d["b1"], d["W2"], d["b2"], d["reg"])


def unread_cache(source: str) -> list[str]:
    """Names forward puts in its cache that backward never reads (should be none)."""
    tree = ast.parse(source)
    fns = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    ret = [n for n in ast.walk(fns["forward"]) if isinstance(n, ast.Return)][-1].value
    cached = [e.id for e in ret.elts[1].elts] if isinstance(ret.elts[1], ast.Tuple) else []
    body = fns["backward"].body[1:]  # past `a, b, ... = cache`
    read = {n.id for stmt in body for n in ast.walk(stmt) if isinstance(n, ast.Name)}
    return [k for k in cached if k not in read]


# ---------------------------------------------------------------- peers


def _torch(d):
    import torch
    import torch.nn.functional as F

    X, y = torch.from_numpy(d["X"]), torch.from_numpy(d["y"])
    params = [torch.from_numpy(d[k].copy()).requires_grad_() for k in GRADS]
    W1, b1, W2, b2 = params
    reg = float(d["reg"])

    def call():
        scores = torch.relu(X @ W1 + b1) @ W2 + b2
        loss = F.cross_entropy(scores, y) + 0.5 * reg * ((W1 * W1).sum() + (W2 * W2).sum())
        grads = torch.autograd.grad(loss, params)
        return loss, dict(zip(GRADS, grads))

    return call


def _jax(d):
    jax = import_jax()
    jnp = jax.numpy

    def loss(W1, b1, W2, b2, X, y, reg):
        scores = jnp.maximum(X @ W1 + b1, 0) @ W2 + b2
        logp = jax.nn.log_softmax(scores, axis=1)
        data_loss = -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))
        return data_loss + 0.5 * reg * (jnp.sum(W1 * W1) + jnp.sum(W2 * W2))

    f = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3)))
    args = [jax.device_put(d[k]) for k in (*GRADS, "X", "y", "reg")]

    def call():
        value, grads = jax.block_until_ready(f(*args))
        return value, dict(zip(GRADS, grads))

    return call


def _autograd(d):
    import autograd
    import autograd.numpy as anp

    X, y, reg = d["X"], d["y"], d["reg"]
    rows = np.arange(X.shape[0])

    def loss(params):
        W1, b1, W2, b2 = params
        scores = anp.maximum(anp.dot(X, W1) + b1, 0) @ W2 + b2
        shifted = scores - anp.max(scores, axis=1, keepdims=True)
        logp = shifted - anp.log(anp.sum(anp.exp(shifted), axis=1, keepdims=True))
        return -anp.mean(logp[rows, y]) + 0.5 * reg * (anp.sum(W1 * W1) + anp.sum(W2 * W2))

    vg = autograd.value_and_grad(loss)
    params = tuple(d[k] for k in GRADS)

    def call():
        value, grads = vg(params)
        return value, dict(zip(GRADS, grads))

    return call


def _pytensor(d):
    import pytensor
    import pytensor.tensor as pt

    dt = str(d["X"].dtype)
    X, W1, W2 = (pt.matrix(k, dtype=dt) for k in ("X", "W1", "W2"))
    b1, b2 = (pt.vector(k, dtype=dt) for k in ("b1", "b2"))
    y = pt.vector("y", dtype="int64")
    reg = pt.scalar("reg", dtype=dt)
    scores = pt.maximum(X @ W1 + b1, 0) @ W2 + b2
    shifted = scores - pt.max(scores, axis=1, keepdims=True)
    logp = shifted - pt.log(pt.sum(pt.exp(shifted), axis=1, keepdims=True))
    rows = pt.arange(X.shape[0])
    loss = -pt.mean(logp[rows, y]) + 0.5 * reg * (pt.sum(W1 * W1) + pt.sum(W2 * W2))
    params = [W1, b1, W2, b2]
    f = pytensor.function([X, y, *params, reg], [loss, *pytensor.grad(loss, params)])
    args = [d[k] for k in ("X", "y", *GRADS, "reg")]

    def call():
        value, *grads = f(*args)
        return value, dict(zip(GRADS, grads))

    return call


# name -> (peer module or None, maker taking the data and returning a zero-argument call)
MAKERS = {
    REFERENCE: (None, lambda d: lambda: reference(*(d[k] for k in ("X", "y", *GRADS, "reg")))),
    "graphc": (None, _graphc("plain")),
    "graphc fused": (None, _graphc("fused")),
    "graphc fused, readable=False": (None, _graphc("fused-fast")),
    "PyTorch eager": ("torch", _torch),
    "JAX jit(value_and_grad)": ("jax", _jax),
    "HIPS autograd": ("autograd", _autograd),
    "PyTensor": ("pytensor", _pytensor),
}
KINDS = {REFERENCE: "reference", "PyTorch eager": "peer", "JAX jit(value_and_grad)": "peer"}
KINDS |= {"HIPS autograd": "peer", "PyTensor": "peer"}


def build(d) -> tuple[list[Candidate], dict[str, str]]:
    out, skipped = [], {}
    for name, (module, make) in MAKERS.items():
        if module is not None and not have(module):
            skipped[name] = "not installed or not selected"
            continue
        try:
            out.append(Candidate(name, make(d), KINDS.get(name, "graphc")))
        except Exception as e:
            skipped[name] = f"failed to build: {type(e).__name__}: {e}"
    return out, skipped


# ---------------------------------------------------------------- peak memory (child process)


def _status_kib(key: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def memory_child(name: str, dtype: str) -> dict:
    """In a fresh process: one call's peak memory above the resting size, in bytes."""
    d = make_data(dtype, **FULL)
    module, make = MAKERS[name]
    call = make(d)
    for _ in range(2):  # compile, warm up BLAS and allocator pools
        result = call()
    del result
    pygc.collect()
    base = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak resident set size to the current one
    result = call()
    rss = (_status_kib("VmHWM") - base) * 1024
    del result
    pygc.collect()
    tracemalloc.start()
    result = call()
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del result  # held until now: the returned gradients count in the peak
    return {"rss": rss, "traced": traced}


def measure_memory(names: list[str], dtype: str) -> dict[str, dict | str]:
    """Run `memory_child` for each candidate in its own process."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    out = {}
    for name in names:
        cmd = [sys.executable, "-m", "benchmarks.mlp", "--memory", name, "--dtype", dtype]
        cmd += ["--peers", selected_peers()]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
            lines = p.stdout.strip().splitlines()
            out[name] = json.loads(lines[-1]) if p.returncode == 0 and lines else p.stderr[-300:]
        except subprocess.TimeoutExpired:
            out[name] = "timed out"
    return out


# ---------------------------------------------------------------- the workload


def run(rounds: int, smoke: bool = False, memory: bool = True) -> Section:
    texts, targets, failures = [], [], []
    sizes = SMOKE if smoke else FULL
    for dtype in ("float64", "float32"):
        d = make_data(dtype, **sizes)
        want = MAKERS[REFERENCE][1](d)()
        cands, skipped = build(d)
        tol = 1e-9 if dtype == "float64" else 5e-4
        ok = agreeing(cands, want, tol, f"mlp {dtype}", failures)
        if smoke:
            texts.append(f"{dtype}: {len(ok)} candidates agree with the reference")
            continue
        timings = interleave({c.name: c.call for c in ok}, rounds, min_sample=0.0)
        rows = timing_rows(timings, REFERENCE)
        mem = _memory_rows(_run_memory([c.name for c in ok], dtype)) if memory else {}
        header = ["candidate", "median", "/ reference", "spread (IQR)"]
        if mem:
            header += ["peak memory (RSS)", "/ reference", "tracemalloc peak"]
            rows = [r + mem.get(r[0], ["-", "-", "-"]) for r in rows]
        texts.append(f"### {dtype}\n\n" + table(header, rows) + "\n" + skipped_note(skipped))
        targets += _targets(dtype, timings, ok, mem)
    if not smoke:
        d = make_data("float64", **FULL)
        unread = unread_cache(graphc_source(d))
        targets.append(
            Target(
                "MLP: the forward cache holds nothing backward does not read",
                f"unread: {', '.join(unread)}" if unread else "every cached value is read",
                not unread,
            )
        )
    else:
        d = make_data("float64", **SMOKE)
        unread = unread_cache(graphc_source(d))
        if unread:
            failures.append(f"mlp: graphc caches values backward never reads: {unread}")
    title = "MLP ({})".format(", ".join(f"{k}={v}" for k, v in sizes.items()))
    return Section(title, "\n\n".join(texts), targets, failures)


_MEMORY: dict = {}


def _run_memory(names, dtype):
    _MEMORY[dtype] = measure_memory(names, dtype)
    return _MEMORY[dtype]


def _memory_rows(results: dict) -> dict[str, list[str]]:
    ref = results.get(REFERENCE)
    rows = {}
    for name, r in results.items():
        if not isinstance(r, dict):
            rows[name] = ["failed", "-", "-"]
            continue
        ratio = r["rss"] / ref["rss"] if isinstance(ref, dict) and ref["rss"] else None
        traced = f"{r['traced'] / 2**20:.1f} MiB" if r["traced"] > 2**20 else "-"
        rows[name] = [f"{r['rss'] / 2**20:.1f} MiB", f"{ratio:.2f}x" if ratio else "-", traced]
    return rows


def _targets(dtype, timings, ok, mem) -> list[Target]:
    ref = timings[REFERENCE].median
    ratio = timings["graphc"].median / ref
    best = min((n for n in timings if n.startswith("graphc")), key=lambda n: timings[n].median)
    out = [
        Target(
            f"MLP {dtype}: graphc forward+backward <= 1.02x hand-written NumPy",
            f"{ratio:.2f}x (best graphc form: {best}, {timings[best].median / ref:.2f}x)",
            ratio <= 1.02,
        )
    ]
    jax = "JAX jit(value_and_grad)"
    if jax in timings:
        out.append(
            Target(
                f"MLP {dtype}: graphc faster than JAX jit",
                f"graphc {ratio:.2f}x, JAX {timings[jax].median / ref:.2f}x",
                timings["graphc"].median < timings[jax].median,
            )
        )
    out += ahead_of_every_peer(f"MLP {dtype}", timings, ok, ref)
    raw = _MEMORY.get(dtype, {})
    if isinstance(raw.get("graphc"), dict) and isinstance(raw.get(REFERENCE), dict):
        m = raw["graphc"]["rss"] / raw[REFERENCE]["rss"]
        out.append(Target(f"MLP {dtype}: peak memory <= 1.1x the reference", f"{m:.2f}x", m <= 1.1))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description="one MLP candidate's peak memory (a child process)")
    p.add_argument("--memory", required=True, choices=list(MAKERS))
    p.add_argument("--dtype", default="float64")
    p.add_argument("--peers", default="all")
    args = p.parse_args()
    from .harness import select_peers

    select_peers(args.peers)
    print(json.dumps(memory_child(args.memory, args.dtype)))


if __name__ == "__main__":
    main()
