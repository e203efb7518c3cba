"""Workload 4, compile scaling: an unrolled recurrence, from the Python function to a gradient.

h_t = tanh(w h_{t-1} + u x_t + b) for t = 1..T (five gates a step: two mul, two add, tanh), the
x_t fixed numbers, loss = h_T; gradients of w, u, b and h_0. For each T every candidate runs in
its own process with a time limit (`--timeout`, default 120 s) and reports "over N s" when it
is exceeded; a candidate over the limit is not tried on larger T.

- graphc: `gc.function(fn)` (trace), `.fused()` (fuse), first `value_and_grad` (shapes,
  backward, schedule, generate, load, run): the time to a ready callable and its first result.
- JAX: `jit(value_and_grad)`: trace and lower, XLA compile, first call.
- PyTensor: build the graph, `pytensor.grad`, `pytensor.function`, first call.
- PyTorch eager: nothing to compile; every call records the graph again.

Later calls of each are timed interleaved with a hand-written Python loop with manual backprop,
in the same process. `python -m benchmarks.profile_compile` profiles graphc's stages.
"""

# ruff: noqa: N803, N806  (T is the recurrence length, as in the issue)

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .harness import (
    Section,
    Target,
    fmt_ratio,
    fmt_time,
    have,
    import_jax,
    interleave,
    select_peers,
    selected_peers,
    table,
)

ROOT = Path(__file__).resolve().parent.parent
ARGS = (0.5, 0.3, 0.1, 0.2)  # w, u, b, h0
NAMES = ("w", "u", "b", "h0")
CANDIDATES = {  # name -> peer module (None: always)
    "graphc": None,
    "JAX jit(value_and_grad)": "jax",
    "PyTensor": "pytensor",
    "PyTorch eager": "torch",
}


def inputs(T: int) -> list[float]:
    """The x_t: fixed Python floats, the same for every candidate."""
    return (np.random.default_rng(0).standard_normal(T) * 0.5).tolist()


def recurrence(xs, tanh):
    """The Python function every tracing candidate is given, with its own tanh."""

    def rnn(w, u, b, h0):
        h = h0
        for x in xs:
            h = tanh(w * h + u * x + b)
        return h

    return rnn


def hand_loop(w, u, b, h0, xs):
    """The reference: forward keeping every h, then backward through time by hand."""
    hs = [h0]
    h = h0
    for x in xs:
        h = math.tanh(w * h + u * x + b)
        hs.append(h)
    dw = du = db = 0.0
    dh = 1.0
    for t in range(len(xs) - 1, -1, -1):
        da = dh * (1.0 - hs[t + 1] ** 2)  # tanh: local gradient 1 - out^2
        dw += da * hs[t]
        du += da * xs[t]
        db += da
        dh = da * w
    return h, {"w": dw, "u": du, "b": db, "h0": dh}


# ---------------------------------------------------------------- one candidate, one T (child)


def _graphc(xs, stages):
    import graphc as gc

    t = time.perf_counter()
    f = gc.function(recurrence(xs, gc.tanh))
    stages["trace"] = time.perf_counter() - t
    t = time.perf_counter()
    fused = f.fused()
    stages["fuse"] = time.perf_counter() - t
    stages["gates"] = sum(1 for _, op in f.graph.nodes(data="op") if op not in ("input", "const"))
    stages["gates_fused"] = sum(
        1 for _, op in fused.graph.nodes(data="op") if op not in ("input", "const")
    )
    t = time.perf_counter()
    first = fused.value_and_grad(*ARGS)
    stages["compile + first call"] = time.perf_counter() - t
    return first, lambda: fused.value_and_grad(*ARGS)


def _jax(xs, stages):
    jax = import_jax()
    fn = jax.jit(jax.value_and_grad(recurrence(xs, jax.numpy.tanh), argnums=(0, 1, 2, 3)))
    t = time.perf_counter()
    lowered = fn.lower(*ARGS)
    stages["trace + lower"] = time.perf_counter() - t
    t = time.perf_counter()
    compiled = lowered.compile()
    stages["XLA compile"] = time.perf_counter() - t

    def call():
        value, grads = jax.block_until_ready(compiled(*ARGS))
        return float(value), {k: float(g) for k, g in zip(NAMES, grads)}

    t = time.perf_counter()
    first = call()
    stages["first call"] = time.perf_counter() - t
    return first, call


def _pytensor(xs, stages):
    import pytensor
    import pytensor.tensor as pt

    t = time.perf_counter()
    vs = [pt.dscalar(k) for k in NAMES]
    out = recurrence(xs, pt.tanh)(*vs)
    stages["graph"] = time.perf_counter() - t
    t = time.perf_counter()
    grads = pytensor.grad(out, vs)
    stages["grad"] = time.perf_counter() - t
    t = time.perf_counter()
    compiled = pytensor.function(vs, [out, *grads])
    stages["compile"] = time.perf_counter() - t

    def call():
        value, *gs = compiled(*ARGS)
        return float(value), {k: float(g) for k, g in zip(NAMES, gs)}

    t = time.perf_counter()
    first = call()
    stages["first call"] = time.perf_counter() - t
    return first, call


def _torch(xs, stages):
    import torch

    rnn = recurrence(xs, torch.tanh)

    def call():
        ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in ARGS]
        out = rnn(*ts)
        grads = torch.autograd.grad(out, ts)
        return out.item(), {k: g.item() for k, g in zip(NAMES, grads)}

    t = time.perf_counter()
    first = call()
    stages["first call"] = time.perf_counter() - t
    return first, call


MAKERS = {"graphc": _graphc, "JAX jit(value_and_grad)": _jax, "PyTensor": _pytensor}
MAKERS["PyTorch eager"] = _torch
PREPARE = {
    "graphc": lambda: __import__("graphc").function,  # the API loads on first use (lazy start-up)
    "JAX jit(value_and_grad)": import_jax,
    "PyTensor": lambda: __import__("pytensor.tensor"),
    "PyTorch eager": lambda: __import__("torch"),
}


def child(name: str, T: int, rounds: int) -> dict:
    """Build, first call, check against the hand loop, then later calls interleaved with it."""
    from .harness import max_rel_error

    xs = inputs(T)
    stages: dict = {}
    PREPARE[name]()  # imports are not compile time
    start = time.perf_counter()
    first, call = MAKERS[name](xs, stages)
    ready = time.perf_counter() - start
    want = hand_loop(*ARGS, xs)
    result = {"T": T, "ready": ready, "stages": stages, "error": max_rel_error(first, want)}
    if rounds:
        timings = interleave(
            {name: call, "hand": lambda: hand_loop(*ARGS, xs)}, rounds, min_sample=0.05
        )
        result["call"] = timings[name].median
        result["hand"] = timings["hand"].median
    return result


def run_child(name: str, T: int, rounds: int, timeout: float) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.compile_scaling", "--child", name, "--T", str(T)]
    cmd += ["--rounds", str(rounds), "--peers", selected_peers()]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
    except subprocess.TimeoutExpired:
        return {"T": T, "over": timeout}
    lines = p.stdout.strip().splitlines()
    if p.returncode != 0 or not lines:
        return {"T": T, "failed": (p.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(lines[-1])


# ---------------------------------------------------------------- the workload


def run(rounds: int, smoke: bool = False, sizes=(100, 1000, 10000, 20000), timeout=120.0):
    names = [k for k, module in CANDIDATES.items() if module is None or have(module)]
    skipped = [k for k in CANDIDATES if k not in names]
    if smoke:  # in this process, tiny T, correctness only
        failures = []
        for name in names:
            r = child(name, 20 if name == "graphc" else 5, rounds=0)
            if r["error"] > 1e-9:
                failures.append(f"compile scaling: {name} disagrees (max rel error {r['error']})")
        return Section("Compile scaling", f"{len(names)} candidates checked", [], failures)
    results: dict[str, dict[int, dict]] = {name: {} for name in names}
    failures = []
    for T in sizes:
        for name in names:
            over = [r for r in results[name].values() if "over" in r or "failed" in r]
            if over:
                results[name][T] = {"T": T, "not run": over[0]}
                continue
            r = run_child(name, T, max(3, rounds // 3), timeout)
            results[name][T] = r
            print(f"  compile {name} T={T}: {_ready_text(r)}", file=sys.stderr, flush=True)
            if "error" in r and r["error"] > 1e-9:
                failures.append(f"compile scaling T={T}: {name}: max rel error {r['error']:.1e}")
    text = _tables(results, sizes) + (
        f"\nNot measured: {', '.join(skipped)} (not installed or not selected).\n"
        if skipped
        else ""
    )
    return Section("Compile scaling (unrolled tanh recurrence)", text, _targets(results), failures)


def _ready_text(r: dict) -> str:
    if "over" in r:
        return f"over {r['over']:.0f} s"
    if "failed" in r:
        return f"failed: {r['failed']}"
    if "not run" in r:
        prior = r["not run"]
        why = f"over {prior['over']:.0f} s" if "over" in prior else "failed"
        return f"not run ({why} at T={prior['T']:,})"
    return fmt_time(r["ready"])


def _tables(results, sizes) -> str:
    rows = []
    for T in sizes:
        for name, by_t in results.items():
            r = by_t.get(T, {})
            if "ready" in r:
                gates = results.get("graphc", {}).get(T, {}).get("stages", {}).get("gates")
                gates = gates or 5 * T
                per_gate = f"{r['ready'] / gates * 1e6:.1f} us" if name != "PyTorch eager" else "-"
                ready = _ready_text(r) if name != "PyTorch eager" else "(no compile)"
                stages = ", ".join(
                    f"{k} {fmt_time(v)}" for k, v in r["stages"].items() if not k.startswith("gat")
                )
                rows.append(
                    [
                        f"{T:,}",
                        name,
                        ready,
                        per_gate,
                        stages,
                        fmt_time(r.get("call", math.nan)),
                        fmt_time(r.get("hand", math.nan)),
                        fmt_ratio(r["call"] / r["hand"] if "call" in r else None),
                    ]
                )
            else:
                rows.append([f"{T:,}", name, _ready_text(r), "-", "", "-", "-", "-"])
    header = [
        "T",
        "candidate",
        "function -> first gradient",
        "per gate",
        "stages",
        "later call",
        "hand loop",
        "/ hand loop",
    ]
    return table(header, rows, "rlrrlrrr")


def _targets(results) -> list[Target]:
    g = results.get("graphc", {})
    out = []
    big, small = g.get(20000, {}), g.get(1000, {})
    if "ready" in big:
        out.append(
            Target(
                "compile: T=20,000 (~100k gates) ready in <= 5 s",
                fmt_time(big["ready"]),
                big["ready"] <= 5,
            )
        )
    elif big:
        out.append(Target("compile: T=20,000 ready in <= 5 s", _ready_text(big), False))
    if "ready" in big and "ready" in small:
        growth = (big["ready"] / big["stages"]["gates"]) / (
            small["ready"] / small["stages"]["gates"]
        )
        out.append(
            Target(
                "compile: time per gate at T=20,000 <= 1.2x that at T=1,000",
                f"{growth:.2f}x",
                growth <= 1.2,
            )
        )
    calls = {T: r["call"] / r["hand"] for T, r in g.items() if "call" in r}
    if calls:
        worst = max(calls, key=calls.get)
        out.append(
            Target(
                "compile: later calls <= 2x a hand-written Python loop with manual backprop",
                ", ".join(f"T={T:,}: {x:.2f}x" for T, x in calls.items()),
                calls[worst] <= 2,
            )
        )
    for peer in ("JAX jit(value_and_grad)", "PyTensor"):
        if peer not in results:
            continue
        both = [T for T, r in results[peer].items() if "ready" in r and "ready" in g.get(T, {})]
        lost = [T for T in both if results[peer][T]["ready"] <= g[T]["ready"]]
        over = [T for T, r in results[peer].items() if "ready" not in r and "ready" in g.get(T, {})]
        text = ", ".join(
            f"T={T:,}: graphc {fmt_time(g[T]['ready'])} vs {fmt_time(results[peer][T]['ready'])}"
            for T in both
        )
        if over:
            text += "; " if text else ""
            text += f"{peer} over the limit or not run at T={', '.join(f'{T:,}' for T in over)}"
        out.append(Target(f"compile: graphc ready before {peer}", text, not lost))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description="one compile-scaling candidate at one T (child)")
    p.add_argument("--child", required=True, choices=list(MAKERS))
    p.add_argument("--T", type=int, required=True)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--peers", default="all")
    args = p.parse_args()
    select_peers(args.peers)
    print(json.dumps(child(args.child, args.T, args.rounds)))


if __name__ == "__main__":
    main()
