"""The 2-layer net over a Dask array on a dask.distributed LocalCluster and on threads.

One graphc Function (`backend="array_api"`) computes the loss and the gradients of the lecture's
2-layer net over a data set of Dask chunks made lazily (examples/dask_training.py), on a
LocalCluster of 2 worker processes and on Dask's threaded scheduler. Oracle: the NumPy
backend's module on the same rows computed into memory (a sample that fits), to 1e-12 relative:
only the order of the chunked sums differs. In CI the data set has 24,000 rows in 6 chunks; with
`pytest --slow` (GRAPHC_SLOW=1) 2,000,000 rows in 100. The example itself is run at a small size.
Skipped without dask.distributed (the arrays extra).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from strategies import slow_mode

import graphc as gc

pytest.importorskip("array_api_compat", reason="array-api-compat is not installed")
da = pytest.importorskip("dask.array", reason="dask is not installed")
distributed = pytest.importorskip("dask.distributed", reason="dask.distributed is not installed")
import dask  # noqa: E402 - after the skip

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "dask_training.py"
ROWS, CHUNK_ROWS = (2_000_000, 20_000) if slow_mode() else (24_000, 4_000)


def example():
    spec = importlib.util.spec_from_file_location("dask_training", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def assert_close(got, want, rtol=1e-12):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    scale = np.max(np.abs(want), initial=0.0)
    assert np.max(np.abs(got - want), initial=0.0) <= rtol * scale


def test_the_net_on_a_local_cluster_and_on_threads_gives_the_numpy_results(client):
    ex = example()
    X, Y = ex.dataset(ROWS, CHUNK_ROWS)
    assert X.numblocks[0] == ROWS // CHUNK_ROWS
    params = ex.initial_params()
    lazy = {k: da.from_array(v) for k, v in params.items()}
    reg = da.from_array(np.asarray(ex.REG))
    f = gc.function(ex.loss).fused(backend="array_api")
    value, grads = f.value_and_grad(X=X, Y=Y, **lazy, reg=reg)

    assert len(client.cluster.workers) == 2
    on_cluster = dask.compute(value, grads, scheduler=client.get)
    on_threads = dask.compute(value, grads, scheduler="threads")

    Xn, Yn = dask.compute(X, Y, scheduler="threads")  # the sample, in memory
    want_value, want_grads = (
        gc.function(ex.loss).fused().value_and_grad(X=Xn, Y=Yn, **params, reg=ex.REG)
    )
    for got_value, got_grads in (on_cluster, on_threads):
        assert_close(got_value, want_value)
        assert list(got_grads) == list(want_grads)
        for k in want_grads:
            assert_close(got_grads[k], want_grads[k])


def test_the_example_trains_chunk_by_chunk(client, capsys):
    ex = example()
    X, Y = ex.dataset(8_000, 2_000)
    lines = []
    losses = ex.train(X, Y, ex.initial_params(), steps=2, scheduler=client.get, say=lines.append)
    assert len(losses) == 3 and losses[2] < losses[1] < losses[0]
    assert lines[0].startswith("step   0/2: loss ") and "8,000 rows in 4 chunks" in lines[0]
    # and from the command line, on threads
    assert (
        ex.main(
            ["--rows", "6000", "--chunk-rows", "2000", "--steps", "2", "--scheduler", "threads"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "data: 6,000 rows" in out and "memory cap 512 MiB" in out and "in 2 steps" in out
