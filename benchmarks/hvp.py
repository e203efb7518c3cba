"""Second order: the cost of one Hessian-vector product relative to one value_and_grad.

`python -m benchmarks.hvp` (from the repository root) prints a Markdown table; `--smoke` runs
tiny sizes and checks the numbers only. The workload is the MLP loss of docs/modes.md,
mean((tanh(X @ W1 + b1) @ W2 - Y)**2) with N=256, D=100, H=50, C=10 in float64, and v a
random direction in (W1, b1, W2, b2). Candidates, timed in interleaved rounds:

- graphc `value_and_grad` (the reference: one forward and one backward pass);
- graphc `hvp` (forward mode over graphc's own backward graph: one pass of the tangent code of
  the gradient, which computes the forward values, the gradient and both their tangents);
- graphc `jvp` along v (one forward-mode pass of the loss);
- PyTorch's `torch.func.jvp` of `torch.func.grad` (forward over reverse) and
  `torch.autograd.functional.hvp`, when PyTorch is installed.

Only ratios from one run mean anything on a shared machine (see docs/performance.md).
"""

# ruff: noqa: N803, N806  (the lecture's X, W1, ...)

from __future__ import annotations

import argparse
import sys

from .threads import limit_threads

THREADS = limit_threads(sys.argv[1:]) if __name__ == "__main__" else 0

import numpy as np  # noqa: E402

import graphc as gc  # noqa: E402

from .harness import fmt_ratio, fmt_time, have, interleave, max_rel_error, table  # noqa: E402

FULL = {"N": 256, "D": 100, "H": 50, "C": 10}
SMOKE = {"N": 8, "D": 5, "H": 4, "C": 3}
PARAMS = ("W1", "b1", "W2", "b2")


def loss_fn(X, Y, W1, b1, W2, b2):
    h = gc.tanh(X @ W1 + b1)
    return gc.mean((h @ W2 - Y) ** 2)


def make_data(N: int, D: int, H: int, C: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    data = {
        "X": rng.standard_normal((N, D)),
        "Y": rng.standard_normal((N, C)),
        "W1": rng.standard_normal((D, H)) / np.sqrt(D),
        "b1": rng.standard_normal(H) * 0.1,
        "W2": rng.standard_normal((H, C)) / np.sqrt(H),
        "b2": rng.standard_normal(C) * 0.1,
    }
    v = {k: rng.standard_normal(data[k].shape) for k in PARAMS}
    return data, v


def torch_calls(data: dict, v: dict) -> dict:
    import torch

    X, Y = (torch.tensor(data[k]) for k in ("X", "Y"))
    params = tuple(torch.tensor(data[k]) for k in PARAMS)
    vs = tuple(torch.tensor(v[k]) for k in PARAMS)

    def loss(W1, b1, W2, b2):
        return torch.mean((torch.tanh(X @ W1 + b1) @ W2 - Y) ** 2)

    grad = torch.func.grad(loss, argnums=(0, 1, 2, 3))
    return {
        "torch.func.jvp(grad)": lambda: torch.func.jvp(lambda *p: grad(*p), params, vs)[1],
        "torch.autograd.functional.hvp": lambda: torch.autograd.functional.hvp(loss, params, vs)[1],
    }


def run(smoke: bool = False, rounds: int = 15) -> int:
    sizes = SMOKE if smoke else FULL
    data, v = make_data(**sizes)
    f = gc.function(loss_fn).wrt(*PARAMS)
    hvp = f.hvp(data, v)
    calls = {
        "graphc value_and_grad (reference)": lambda: f.value_and_grad(**data),
        "graphc hvp": lambda: f.hvp(data, v),
        "graphc jvp along v": lambda: f.jvp(data, v),
    }
    failures = []
    if have("torch"):
        extra = torch_calls(data, v)
        for name, call in extra.items():
            got = {k: np.asarray(t) for k, t in zip(PARAMS, call())}
            if max_rel_error((0.0, hvp), (0.0, got)) > 1e-9:
                failures.append(name)
        calls.update(extra)
    if failures:
        print(f"hvp: graphc and {failures} disagree", file=sys.stderr)
        return 1
    if smoke:
        print("smoke: graphc's hvp agrees with PyTorch's" if have("torch") else "smoke: ran")
        return 0
    timings = interleave(calls, rounds, min_sample=0.05)
    ref = timings["graphc value_and_grad (reference)"].median
    rows = [
        [name, fmt_time(t.median), fmt_ratio(t.median / ref), f"{t.spread * 100:.0f}%"]
        for name, t in timings.items()
    ]
    print(
        f"MLP loss, N={sizes['N']} D={sizes['D']} H={sizes['H']} C={sizes['C']}, float64, ", end=""
    )
    print(f"{THREADS or 'default'} thread(s), {rounds} interleaved rounds\n")
    print(table(["candidate", "median", "vs value_and_grad", "spread"], rows))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.hvp", description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes, correctness only")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1; 0: theirs)")
    args = p.parse_args(argv)
    return run(args.smoke, args.rounds)


if __name__ == "__main__":
    sys.exit(main())
