"""The array API backend's figures for docs/arrays.md: a benchmark, not a timed test.

    .venv/bin/python -m benchmarks.array_api                 # both parts, the documented sizes
    .venv/bin/python -m benchmarks.array_api --rows 200000   # a smaller Dask data set

1. The same MLP loss and gradients, the array-API module against the NumPy module, both on
   NumPy arrays (one BLAS thread), interleaved rounds, the median per call.
2. One pass (loss and gradients) of examples/dask_training.py's net over its data set of Dask
   chunks, on a LocalCluster of 1 worker and of 2 workers (one thread each), best of a few
   passes; both results checked against each other.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before NumPy loads: one BLAS thread, as the suite runs

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import graphc as gc  # noqa: E402

from . import harness  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "dask_training.py"


def example():
    spec = importlib.util.spec_from_file_location("dask_training", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def modules_on_numpy(batch: int, rounds: int) -> list[list[str]]:
    """Median seconds per value_and_grad call, NumPy module against array-API module."""
    ex = example()
    x, y = ex.make_chunk(0, batch)
    params = ex.initial_params()
    numpy_f = gc.function(ex.loss).fused()
    api_f = numpy_f.fused(level="none", backend="array_api")
    args = {"X": x, "Y": y, **params, "reg": np.asarray(ex.REG)}
    want = numpy_f.value_and_grad(**args)
    got = api_f.value_and_grad(**args)
    error = harness.max_rel_error(got, want)
    timings = harness.interleave(
        {
            "NumPy module": lambda: numpy_f.value_and_grad(**args),
            "array API module": lambda: api_f.value_and_grad(**args),
        },
        rounds,
        0.05,
    )
    base = timings["NumPy module"].median
    return [
        [name, harness.fmt_time(t.median), f"{t.spread:.0%}", harness.fmt_ratio(t.median / base)]
        for name, t in timings.items()
    ] + [["largest relative difference of the gradients", f"{error:.1e}", "", ""]]


def dask_workers(rows: int, chunk_rows: int, passes: int) -> list[list[str]]:
    """Seconds per pass on 1 worker and on 2, and whether the results agree."""
    import dask
    import dask.array as da
    from dask.distributed import Client, LocalCluster

    ex = example()
    x, y = ex.dataset(rows, chunk_rows)
    params = {k: da.from_array(v) for k, v in ex.initial_params().items()}
    f = gc.function(ex.loss).fused(backend="array_api")
    lazy = f.value_and_grad(X=x, Y=y, **params, reg=da.from_array(np.asarray(ex.REG)))
    rows_out, results = [], []
    for workers in (1, 2):
        with (
            LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0") as c,
            Client(c) as client,
        ):
            times = []
            for _ in range(passes):
                start = time.perf_counter()
                results.append(dask.compute(*lazy, scheduler=client.get))
                times.append(time.perf_counter() - start)
        rows_out.append([f"{workers} worker{'s' * (workers > 1)}", harness.fmt_time(min(times))])
    value_1, value_2 = float(results[0][0]), float(results[-1][0])
    rows_out.append(["loss (1 worker, 2 workers)", f"{value_1:.15g}, {value_2:.15g}"])
    return rows_out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.array_api", description=__doc__)
    p.add_argument("--batch", type=int, default=4096, help="rows of the NumPy comparison")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--rows", type=int, default=2_000_000, help="rows of the Dask data set")
    p.add_argument("--chunk-rows", type=int, default=20_000)
    p.add_argument("--passes", type=int, default=3)
    args = p.parse_args(argv)
    print(harness.table(["what", "value"], [list(r) for r in harness.machine()]))
    print(f"\n## Array API module vs NumPy module, on NumPy ({args.batch} rows)\n")
    rows = modules_on_numpy(args.batch, args.rounds)
    print(harness.table(["module", "median per call", "spread (IQR)", "vs NumPy"], rows))
    print(f"\n## One pass over {args.rows:,} rows of Dask chunks ({args.chunk_rows:,} rows each)\n")
    print(harness.table(["LocalCluster", "best of passes"], dask_workers(
        args.rows, args.chunk_rows, args.passes
    )))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
