"""Per-call overhead: a Function's value_and_grad against its generated module's own, at N=8.

The 2-layer net of `graphc.lectures` at N=8, D=5, H=10, C=3, unfused and fused, called as the
README calls it (keyword arguments); the module is called on the same prepared arguments.
Interleaved rounds, medians; the difference is what the Function adds above its module.

    .venv/bin/python benchmarks/call_overhead.py [--rounds R] [--calls C]
"""

import argparse
import statistics
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script, not -m

from benchmarks.threads import limit_threads  # noqa: E402  (before NumPy loads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    limit_threads(["--threads", "1"])
    import numpy as np

    import graphc as gc
    from graphc.lectures import two_layer_net

    rng = np.random.default_rng(0)
    n, d, h, c = 8, 5, 10, 3
    inputs = dict(
        X=rng.normal(size=(n, d)),
        Y=np.eye(c)[rng.integers(0, c, n)],
        W1=rng.normal(size=(d, h)),
        b1=np.zeros(h),
        W2=rng.normal(size=(h, c)),
        b2=np.zeros(c),
        reg=1e-3,
    )
    for label, f in (("unfused", gc.function(two_layer_net)), ("fused", two_layer_fused(gc))):
        whole_us, alone_us, over = measure(f, inputs, args.rounds, args.calls)
        print(f"{label}: Function {whole_us:.1f} us, module {alone_us:.1f} us, over {over:.1f} us")


def measure(f, inputs: dict, rounds: int, calls: int) -> tuple[float, float, float]:
    """Medians over interleaved rounds (us per call): the Function, its module, the difference."""
    f.value_and_grad(**inputs)
    compiled = f.compiled_for(**inputs)
    module, values = compiled.module, list(inputs.values())
    times = []
    for _ in range(rounds):
        whole = timeit.timeit(lambda: f.value_and_grad(**inputs), number=calls)
        alone = timeit.timeit(
            lambda: module.value_and_grad(*compiled.prepared(values)), number=calls
        )
        times.append((whole / calls * 1e6, alone / calls * 1e6))
    return (
        statistics.median(w for w, _ in times),
        statistics.median(a for _, a in times),
        statistics.median(w - a for w, a in times),
    )


def two_layer_fused(gc):
    from graphc.lectures import two_layer_net

    return gc.function(two_layer_net).fused()


if __name__ == "__main__":
    main()
