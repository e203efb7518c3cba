"""Thread limits for the libraries being compared; imported before any of them loads.

Imports nothing but `os`, so `python -m benchmarks` and the child processes can apply it first.
"""

from __future__ import annotations

import os


def limit_threads(argv: list[str]) -> int:
    """Apply `--threads N` (default 1; 0 = each library's default) before any library loads.

    Thread pools are set up when NumPy's BLAS, PyTorch's OpenMP or XLA load, so this reads
    argv itself and sets their environment variables; child processes inherit them. One
    thread each is the default because on a small shared machine the pools of several runtimes
    in one process spin-wait and steal each other's cores (a 2-thread OpenBLAS `vdot` of 300k
    elements took 16 ms here under load, 0.05 ms on one thread). The process is also pinned to
    N CPUs (children inherit it), the one limit XLA obeys.
    """
    n = 1
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            n = int(argv[i + 1])
        elif a.startswith("--threads="):
            n = int(a.split("=", 1)[1])
    if n > 0:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(n)
        os.environ["NUMBA_NUM_THREADS"] = str(n)
        # XLA ignores thread flags on the CPU (measured: 1.65 cores busy with
        # intra_op_parallelism_threads=1) but sizes its pools to the CPUs it may run on.
        if hasattr(os, "sched_setaffinity"):
            allowed = sorted(os.sched_getaffinity(0))
            if n < len(allowed):
                os.sched_setaffinity(0, allowed[:n])
    return n
