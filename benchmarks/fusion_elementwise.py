"""Fused vs unfused: the sigmoid neuron's forward+backward over arrays of 10^6 float64 elements.

Run: `.venv/bin/python benchmarks/fusion_elementwise.py [--size N] [--rounds R]`. Every candidate
runs once per round, in the same process, interleaved; the table gives each one's median time
and its ratio to the hand-written fused NumPy reference. The machine is shared and noisy: only
ratios from one run are meaningful.
"""

import argparse
import platform
import statistics
import time

import numpy as np

import graphc as gc


@gc.function
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
    return f, (x0 * ddot, w0 * ddot, x1 * ddot, w1 * ddot, ddot)


def hand_fused(w0, x0, w1, x1, w2):
    """A careful fused sigmoid: exp of -|dot| only, e cached for the gradient."""
    dot = w0 * x0 + w1 * x1 + w2
    e = np.exp(-np.abs(dot))
    f = np.where(dot >= 0, 1.0, e) / (1.0 + e)
    ddot = e / (1.0 + e) ** 2
    return f, (x0 * ddot, w0 * ddot, x1 * ddot, w1 * ddot, ddot)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10**6)
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    inputs = [rng.normal(size=args.size) for _ in range(5)]
    fused = neuron.fused()
    candidates = {
        "graphc unfused": neuron,
        "graphc fused (patterns)": fused,
        "graphc fused, readable=False": neuron.fused(readable=False),
        "graphc fused (elementwise)": neuron.fused(level="elementwise"),
        "hand-written unfused NumPy": None,
        "hand-written fused NumPy": None,
    }
    run = {
        k: (lambda f=f: f.value_and_grad(*inputs)) if f is not None else None
        for k, f in candidates.items()
    }
    run["hand-written unfused NumPy"] = lambda: hand_unfused(*inputs)
    run["hand-written fused NumPy"] = lambda: hand_fused(*inputs)
    reference = run["hand-written fused NumPy"]()
    for name, call in run.items():  # warm up, and check every candidate computes the same
        value, grads = call()
        grads = grads.values() if isinstance(grads, dict) else grads
        assert np.allclose(value, reference[0]), name
        assert all(np.allclose(g, r) for g, r in zip(grads, reference[1])), name
    times = {k: [] for k in run}
    for _ in range(args.rounds):
        for name, call in run.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    median = {k: statistics.median(v) for k, v in times.items()}
    ref = median["hand-written fused NumPy"]
    unfused = median["graphc unfused"]
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, numpy {np.__version__}")
    print(f"size {args.size}, {args.rounds} interleaved rounds, medians\n")
    print("| candidate | median ms | / hand-written fused | graphc unfused / this |")
    print("|---|---:|---:|---:|")
    for name, t in median.items():
        print(f"| {name} | {t * 1e3:.1f} | {t / ref:.2f}x | {unfused / t:.2f}x |")


if __name__ == "__main__":
    main()
