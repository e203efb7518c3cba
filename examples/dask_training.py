"""The lecture's 2-layer net trained on more data than the workers' memory holds, with Dask.

The data set is never in memory whole: each chunk of rows (spiral points with noise features,
and their one-hot labels) is made where it is used, from its own seed, and every gradient step is
one pass over all the chunks on a dask.distributed LocalCluster of 2 worker processes, each
capped at half of MEMORY_CAP. The loss is one graphc Function compiled with
`backend="array_api"`: its module runs on the Dask arrays unchanged, so forward and backward of
each chunk run on the worker that holds it, and only the weights' gradients (a few kB) come
back. Nothing is computed until `dask.compute` asks for the loss and the gradients.

    PYTHONPATH=. python3 examples/dask_training.py             # 2,000,000 rows, 10 steps
    PYTHONPATH=. python3 examples/dask_training.py --rows 40000 --steps 3 --scheduler threads

Exits with status 1 if the loss does not go down.
"""

import argparse
import sys
import time

import dask
import dask.array as da
import numpy as np

import graphc as gc

FEATURES, CLASSES, HIDDEN = 8, 3, 32
STEP_SIZE, REG = 1.0, 1e-3
MEMORY_CAP = 512 * 2**20  # bytes, both workers together


def loss(X, Y, W1, b1, W2, b2, reg):
    """Mean softmax cross-entropy of the scores against one-hot labels Y, plus 0.5 reg |W|^2."""
    hidden = gc.relu(X @ W1 + b1)
    scores = hidden @ W2 + b2
    shifted = scores - gc.max(scores, axis=1, keepdims=True)  # exp never overflows
    log_probs = shifted - gc.log(gc.sum(gc.exp(shifted), axis=1, keepdims=True))
    data_loss = -gc.mean(gc.sum(Y * log_probs, axis=1))
    reg_loss = 0.5 * reg * (gc.sum(W1 * W1) + gc.sum(W2 * W2))
    return data_loss + reg_loss


def make_chunk(block_id, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the data set, the same for the same block: points on one of CLASSES noisy
    spiral arms (the first two features; the others noise) and their one-hot labels."""
    rng = np.random.default_rng(1000 + block_id)
    label = rng.integers(0, CLASSES, size=rows)
    radius = rng.uniform(0.0, 1.0, size=rows)
    theta = 4.0 * (label + radius) + 0.2 * rng.standard_normal(rows)
    X = 0.1 * rng.standard_normal((rows, FEATURES))
    X[:, 0] += radius * np.sin(theta)
    X[:, 1] += radius * np.cos(theta)
    return X, np.eye(CLASSES)[label]


def dataset(rows: int, chunk_rows: int) -> tuple[da.Array, da.Array]:
    """The data set as Dask arrays of `chunk_rows` rows per chunk, made lazily, chunk by chunk."""
    sizes = [chunk_rows] * (rows // chunk_rows) + ([rows % chunk_rows] if rows % chunk_rows else [])

    def part(i, n, which):
        return dask.delayed(lambda: make_chunk(i, n)[which])()

    X = da.concatenate(
        [da.from_delayed(part(i, n, 0), (n, FEATURES), np.float64) for i, n in enumerate(sizes)]
    )
    Y = da.concatenate(
        [da.from_delayed(part(i, n, 1), (n, CLASSES), np.float64) for i, n in enumerate(sizes)]
    )
    return X, Y


def initial_params(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "W1": 0.5 * rng.standard_normal((FEATURES, HIDDEN)),
        "b1": np.zeros(HIDDEN),
        "W2": 0.5 * rng.standard_normal((HIDDEN, CLASSES)),
        "b2": np.zeros(CLASSES),
    }


def train(X, Y, params: dict, steps: int, scheduler=None, say=print) -> list[float]:
    """Full-batch gradient descent; each step one lazy graph, computed by `scheduler`."""
    f = gc.function(loss).fused(backend="array_api").wrt(*params)
    losses = []
    for step in range(steps + 1):
        start = time.perf_counter()
        weights = {k: da.from_array(v) for k, v in params.items()}  # one chunk each
        value, grads = f.value_and_grad(X=X, Y=Y, **weights, reg=da.from_array(np.asarray(REG)))
        value, grads = dask.compute(value, grads, scheduler=scheduler)  # the one pass
        losses.append(float(value))
        say(
            f"step {step:3d}/{steps}: loss {float(value):.6f} over {X.shape[0]:,} rows in "
            f"{X.numblocks[0]} chunks ({time.perf_counter() - start:.1f} s)"
        )
        if step < steps:
            for k in params:
                params[k] = params[k] - STEP_SIZE * grads[k]
    return losses


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--scheduler", choices=["cluster", "threads"], default="cluster")
    args = parser.parse_args(argv)

    X, Y = dataset(args.rows, args.chunk_rows)
    data = X.nbytes + Y.nbytes
    activations = args.rows * HIDDEN * 8  # one array of hidden units, of which a pass makes several
    print(
        f"data: {args.rows:,} rows, {data / 2**20:.0f} MiB, and {activations / 2**20:.0f} MiB per "
        f"hidden-layer array of one pass; memory cap {MEMORY_CAP / 2**20:.0f} MiB "
        f"({'2 workers' if args.scheduler == 'cluster' else 'threads'}), "
        f"chunks of {args.chunk_rows:,} rows"
    )
    params = initial_params()
    if args.scheduler == "threads":
        losses = train(X, Y, params, args.steps, scheduler="threads")
    else:
        from dask.distributed import Client, LocalCluster

        with (
            LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                memory_limit=MEMORY_CAP // 2,
                dashboard_address=":0",
            ) as cluster,
            Client(cluster) as client,
        ):
            losses = train(X, Y, params, args.steps, scheduler=client.get)
    if not losses[-1] < losses[0]:
        print("FAILED: the loss should go down", file=sys.stderr)
        return 1
    print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f} in {args.steps} steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
