"""Workload 5, per-call overhead: the lecture's 2-layer net at N=8, where the call costs count.

The 2-layer net of `graphc.lectures` (softmax cross-entropy of relu(X @ W1 + b1) @ W2 + b2,
plus 0.5 reg (|W1|^2 + |W2|^2)) at N=8, D=5, H=10, C=3, with one-hot labels Y (as the lecture
writes it) and with integer labels y (`log_probs[gc.arange(N), y]`). graphc is called as the
README calls it: `f.value_and_grad(X=X, Y=Y, ...)`, every input by keyword, every gradient
returned; unfused and fused. Beside each, the generated module alone on the same prepared
arguments (`module.value_and_grad(*compiled.prepared(values))`, a diagnostic, not a way users
call graphc): the difference is what the Function adds above its module. The reference is the
suite's hand-written NumPy (`benchmarks.mlp.reference`), for scale.

    .venv/bin/python -m benchmarks --only overhead --rounds 31
    .venv/bin/python -m benchmarks.overhead --size 256,3072,100,10   # any size, outside the suite
"""

# ruff: noqa: N803, N806  (the lecture's X, W1, ...)

from __future__ import annotations

import argparse
import gc as pygc
import statistics
import sys
import time
from collections.abc import Callable

from .threads import limit_threads  # noqa: E402  (before anything loads NumPy)

if __name__ == "__main__":
    limit_threads(sys.argv[1:])

import graphc as gc  # noqa: E402
from graphc.lectures import two_layer_net  # noqa: E402

from .harness import (  # noqa: E402
    Candidate,
    Section,
    Target,
    agreeing,
    interleave,
    table,
    timing_rows,
)
from .mlp import make_data, reference  # noqa: E402

SIZES = {"N": 8, "D": 5, "H": 10, "C": 3}
REFERENCE = "hand-written NumPy (reference)"
LIMIT_US = 5.0  # the target for what a Function adds above its module, per call


def two_layer_net_labels(X, y, W1, b1, W2, b2, reg):
    """`two_layer_net` with integer labels y (N,): the log-probability of each row's label."""
    hidden = gc.relu(X @ W1 + b1)
    scores = hidden @ W2 + b2
    shifted = scores - gc.max(scores, axis=1, keepdims=True)  # exp never overflows
    log_probs = shifted - gc.log(gc.sum(gc.exp(shifted), axis=1, keepdims=True))
    data_loss = -gc.mean(log_probs[gc.arange(X.shape[0]), y])
    reg_loss = 0.5 * reg * (gc.sum(W1 * W1) + gc.sum(W2 * W2))
    return data_loss + reg_loss


# labels -> (the function, the name of its label input)
NETS = {"one-hot labels": (two_layer_net, "Y"), "integer labels": (two_layer_net_labels, "y")}


def by_keywords(f, d: dict, labels: str) -> Callable[[], tuple]:
    """`f.value_and_grad(X=X, Y=Y, ...)`, written out as a user writes the call."""
    X, L, W1, b1, W2, b2, reg = (d[k] for k in ("X", labels, "W1", "b1", "W2", "b2", "reg"))
    if labels == "Y":
        return lambda: f.value_and_grad(X=X, Y=L, W1=W1, b1=b1, W2=W2, b2=b2, reg=reg)
    return lambda: f.value_and_grad(X=X, y=L, W1=W1, b1=b1, W2=W2, b2=b2, reg=reg)


def module_alone(f, d: dict, labels: str) -> tuple[Callable[[], tuple], Callable[[], tuple]]:
    """The generated module on prepared arguments: (the timed call, the same as (value, grads)
    by name, to check)."""
    names = ("X", labels, "W1", "b1", "W2", "b2", "reg")
    values = [d[k] for k in names]
    compiled = f.compiled_for(*values)
    module = compiled.module
    wrt = [k for k in names if k != "y"]  # no gradient flows into integer labels

    def call():
        return module.value_and_grad(*compiled.prepared(values))

    def named():
        value, grads = call()
        return value, dict(zip(wrt, grads))

    return call, named


def measure(d: dict, labels: str, rounds: int, smoke: bool, failures: list, title: str):
    """The timings of one label kind (None in smoke mode), after checking every candidate."""
    fn, name = NETS[labels]
    unfused, fused = gc.function(fn), gc.function(fn).fused()
    calls = {"graphc": by_keywords(unfused, d, name), "graphc fused": by_keywords(fused, d, name)}
    for call in calls.values():
        call()  # compiles
    module_unfused, named_unfused = module_alone(unfused, d, name)
    module_fused, named_fused = module_alone(fused, d, name)
    args = [d[k] for k in ("X", "y", "W1", "b1", "W2", "b2", "reg")]
    cands = [
        Candidate(REFERENCE, lambda: reference(*args), "reference"),
        Candidate("graphc", calls["graphc"]),
        Candidate("graphc fused", calls["graphc fused"]),
        Candidate("module alone, unfused (diagnostic)", named_unfused, "diagnostic"),
        Candidate("module alone, fused (diagnostic)", named_fused, "diagnostic"),
    ]
    ok = agreeing(cands, cands[0].call(), 1e-9, f"overhead {title}", failures)
    if smoke or len(ok) < len(cands):
        return None, len(ok)
    timed = {c.name: c.call for c in cands}
    timed["module alone, unfused (diagnostic)"] = module_unfused
    timed["module alone, fused (diagnostic)"] = module_fused
    timings = interleave(timed, rounds, min_sample=0.01)
    pairs = PAIRS_PER_ROUND * rounds
    over = {
        "unfused": alternating(timed["graphc"], module_unfused, pairs),
        "fused": alternating(timed["graphc fused"], module_fused, pairs),
    }
    return (timings, over, alternating(timed["graphc fused"], timed["graphc"], pairs)), len(ok)


PAIRS_PER_ROUND = 100


def alternating(a: Callable, b: Callable, pairs: int) -> tuple[float, float]:
    """(median of a - b in seconds, median of a / b) over `pairs` pairs of single calls, a
    and b one after the other, the first alternating: on a shared machine a pause hits one
    call of a pair, and the medians of the pairs leave it out."""
    diffs, ratios = [], []
    clock = time.perf_counter
    was = pygc.isenabled()
    pygc.disable()
    try:
        for k in range(pairs):
            first, second = (a, b) if k % 2 == 0 else (b, a)
            t0 = clock()
            first()
            t1 = clock()
            second()
            t2 = clock()
            ta, tb = (t1 - t0, t2 - t1) if k % 2 == 0 else (t2 - t1, t1 - t0)
            diffs.append(ta - tb)
            ratios.append(ta / tb)
    finally:
        if was:
            pygc.enable()
    return statistics.median(diffs), statistics.median(ratios)


def run(rounds: int, smoke: bool = False, sizes: dict | None = None) -> Section:
    sizes = sizes or SIZES
    d = make_data("float64", **sizes)
    texts, failures = [], []
    over: dict[str, float] = {}  # "unfused, one-hot labels" -> us above the module
    slower: dict[str, float] = {}  # labels -> fused / unfused
    for labels in NETS:
        measured, agree = measure(d, labels, rounds, smoke, failures, labels)
        if measured is None:
            texts.append(f"{labels}: {agree} candidates agree with the reference")
            continue
        timings, above, (_, ratio) = measured
        for form, (diff, _) in above.items():
            over[f"{form}, {labels}"] = diff * 1e6
        slower[labels] = ratio
        rows = timing_rows(timings, REFERENCE)
        header = ["candidate", "median per call", "/ reference", "spread (IQR)"]
        texts.append(f"### {labels}\n\n" + table(header, rows) + "\n")
    size = ", ".join(f"{k}={v}" for k, v in sizes.items())
    title = f"Per-call overhead (the 2-layer net at {size})"
    if smoke or not over:
        return Section(title, "\n\n".join(texts), [], failures)
    intro = (
        '"graphc" is called by name, as the README calls it, and returns every gradient; the '
        "module alone runs the generated `value_and_grad` on the same prepared arguments. The "
        f"targets time single calls in {PAIRS_PER_ROUND} pairs per round, the two candidates "
        "one after the other, and take the medians of the pairs' differences and ratios.\n\n"
    )
    worst = max(over, key=over.get)
    at = f"N={sizes['N']}"
    targets = [
        Target(
            f"MLP {at}: Function overhead above its module <= {LIMIT_US:g} us",
            f"worst {over[worst]:.1f} us ({worst}); "
            + ", ".join(f"{k}: {v:.1f}" for k, v in over.items() if k != worst),
            over[worst] <= LIMIT_US,
        ),
        Target(
            f"MLP {at}: fused no slower than unfused",
            ", ".join(f"{k}: fused {v:.2f}x unfused" for k, v in slower.items()),
            all(v <= 1.0 for v in slower.values()),
        ),
    ]
    return Section(title, intro + "\n\n".join(texts), targets, failures)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=31)
    p.add_argument("--size", default="8,5,10,3", help="N,D,H,C")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads; 0: library defaults")
    args = p.parse_args()
    sizes = dict(zip(SIZES, (int(v) for v in args.size.split(","))))
    section = run(args.rounds, sizes=sizes)
    print(section.markdown())
    print(table(["target", "measured", "verdict"], [[t.goal, t.measured, t.verdict] for t in
                                                    section.targets], "lll"))  # fmt: skip
    for f in section.failures:
        print(f"FAILED {f}")


if __name__ == "__main__":
    main()
