"""Workload 2, the lecture's CIFAR-sized 2-layer net: loss and gradients, time and peak memory.

loss = mean softmax cross-entropy of relu(X @ W1 + b1) @ W2 + b2, plus 0.5 reg (|W1|^2 + |W2|^2),
with N=256, D=3072, H=100, C=10; gradients of W1, b1, W2, b2; float64 and float32. Reference:
careful hand-written NumPy (integer labels, in-place updates where they are free, as in the
CS231n assignment). graphc is called as the README calls it, with keyword arguments; its headline
rows take the integer labels too (`log_probs[gc.arange(N), y]`, the gather gate), and the rows
"one-hot labels" the labels as a one-hot matrix Y, as the lecture's loss writes them.

The tables run with the thread setting of the suite (`--threads`, one thread by default); a
child process (`python -m benchmarks.mlp --timing`) times graphc and the reference again with
the other setting (each library's default threads where the suite pins one, and the reverse),
so that both settings are in one report.

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
import dataclasses
import gc as pygc
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

if __name__ == "__main__" and os.environ.get(CPUS := "GRAPHC_BENCH_CPUS"):
    # the timing child's CPUs (see `timed_in_child`), set before NumPy loads its BLAS
    os.sched_setaffinity(0, [int(c) for c in os.environ[CPUS].split(",")])

import numpy as np  # noqa: E402

import graphc as gc  # noqa: E402

from .harness import (  # noqa: E402
    Candidate,
    Section,
    Target,
    Timing,
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


def net(X, y, W1, b1, W2, b2, reg):
    """The loss over integer labels y, as the reference takes them."""
    h = gc.relu(X @ W1 + b1)
    scores = h @ W2 + b2
    shifted = scores - gc.max(scores, axis=1, keepdims=True)
    log_probs = shifted - gc.log(gc.sum(gc.exp(shifted), axis=1, keepdims=True))
    data_loss = -gc.mean(log_probs[gc.arange(X.shape[0]), y])
    return data_loss + 0.5 * reg * (gc.sum(W1 * W1) + gc.sum(W2 * W2))


def net_one_hot(X, Y, W1, b1, W2, b2, reg):
    """The same loss over one-hot labels Y, as the lecture's `sum(Y * log_probs)` writes it."""
    h = gc.relu(X @ W1 + b1)
    scores = h @ W2 + b2
    shifted = scores - gc.max(scores, axis=1, keepdims=True)
    log_probs = shifted - gc.log(gc.sum(gc.exp(shifted), axis=1, keepdims=True))
    data_loss = -gc.mean(gc.sum(Y * log_probs, axis=1))
    return data_loss + 0.5 * reg * (gc.sum(W1 * W1) + gc.sum(W2 * W2))


def _graphc(variant: str, labels: str = "y"):
    def make(d):
        f = gc.function(net if labels == "y" else net_one_hot).wrt(*GRADS)
        if variant == "fused":
            f = f.fused()
        elif variant == "fused-fast":
            f = f.fused(readable=False)
        kw = {k: d[k] for k in ("X", labels, *GRADS, "reg")}
        return lambda: f.value_and_grad(**kw)  # keyword arguments, as the README calls it

    return make


def graphc_source(d) -> str:
    """The generated module graphc runs for these inputs (default options)."""
    f = gc.function(net).wrt(*GRADS)
    return f.source_for(**{k: d[k] for k in ("X", "y", *GRADS, "reg")})


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
    "graphc, one-hot labels": (None, _graphc("plain", "Y")),
    "graphc fused, one-hot labels": (None, _graphc("fused", "Y")),
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


def run(rounds: int, smoke: bool = False, memory: bool = True, threads: int = 1) -> Section:
    """`threads`: the suite's setting (1 pinned, 0 the libraries' defaults, N); the graphc rows
    are timed again in a child process with the other (see `other_threads`)."""
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
        label, other = other_threads(threads)
        found = timed_in_child(dtype, rounds, other)
        if isinstance(found, str):
            failures.append(f"mlp {dtype}, {label}: the child process failed: {found}")
            continue
        rows = timing_rows(found, REFERENCE)
        texts.append(f"### {dtype}, {label}\n\n" + table(header[:4], rows))
        targets.append(_headline(f"MLP {dtype}, {label.split(' (')[0]}", found))
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


def _headline(label: str, timings: dict) -> Target:
    """graphc (integer labels, default options) against the reference, with its other forms."""
    ref = timings[REFERENCE].median
    ratio = timings["graphc"].median / ref
    best = min((n for n in timings if n.startswith("graphc")), key=lambda n: timings[n].median)
    return Target(
        f"{label}: graphc forward+backward <= 1.02x hand-written NumPy",
        f"{ratio:.2f}x (best graphc form: {best}, {timings[best].median / ref:.2f}x)",
        ratio <= 1.02,
    )


# ---------------------------------------------------------------- the other thread setting


def other_threads(threads: int) -> tuple[str, int]:
    """The setting the child process times with, and its label: the libraries' default
    threads where the suite pins them, one pinned thread otherwise."""
    if threads == 0:
        return "pinned to one thread", 1
    return f"the libraries' default threads ({os.cpu_count()} CPUs)", 0


def timed_in_child(dtype: str, rounds: int, threads: int) -> dict | str:
    """graphc's forms and the reference timed in a fresh process with `threads` (0: the
    libraries' defaults on every CPU; N: N threads on N CPUs); their Timings, or why not."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    cpus = list(range(os.cpu_count() or 1))
    if threads > 0:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
        cpus = cpus[:threads]
    cmd = [sys.executable, "-m", "benchmarks.mlp", "--timing", "--dtype", dtype]
    cmd += ["--rounds", str(rounds), "--peers", "none"]
    if hasattr(os, "sched_setaffinity"):  # set by the child itself: no preexec_fn, no fork
        env["GRAPHC_BENCH_CPUS"] = ",".join(map(str, cpus))
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return "timed out"
    lines = p.stdout.strip().splitlines()
    if p.returncode != 0 or not lines:
        return (p.stderr or p.stdout)[-300:]
    return {name: Timing(*fields) for name, fields in json.loads(lines[-1]).items()}


def timing_child(dtype: str, rounds: int) -> dict:
    """In the child: the reference and graphc's forms, checked, then timed interleaved."""
    d = make_data(dtype, **FULL)
    want = MAKERS[REFERENCE][1](d)()
    cands = [c for c in build(d)[0] if c.kind in ("reference", "graphc")]
    failures: list[str] = []
    ok = agreeing(cands, want, 1e-9 if dtype == "float64" else 5e-4, "mlp", failures)
    if failures:
        raise SystemExit("; ".join(failures))
    timings = interleave({c.name: c.call for c in ok}, rounds, min_sample=0.0)
    return {name: dataclasses.astuple(t) for name, t in timings.items()}


def _targets(dtype, timings, ok, mem) -> list[Target]:
    ref = timings[REFERENCE].median
    ratio = timings["graphc"].median / ref
    out = [_headline(f"MLP {dtype}", timings)]
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
    p = argparse.ArgumentParser(
        description="the suite's child processes: one MLP candidate's peak memory (--memory), "
        "or graphc and the reference timed with this process's threads (--timing)"
    )
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--memory", choices=list(MAKERS))
    mode.add_argument("--timing", action="store_true")
    p.add_argument("--dtype", default="float64")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--peers", default="all")
    args = p.parse_args()
    from .harness import select_peers

    select_peers(args.peers)
    if args.timing:
        print(json.dumps(timing_child(args.dtype, args.rounds)))
    else:
        print(json.dumps(memory_child(args.memory, args.dtype)))


if __name__ == "__main__":
    main()
