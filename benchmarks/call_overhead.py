"""Per-call overhead: a Function's value_and_grad against its generated module's own, at N=8.

Kept as a script; the measurement is the suite's workload `overhead` (benchmarks/overhead.py):
the 2-layer net of `graphc.lectures` at N=8, D=5, H=10, C=3, one-hot and integer labels,
unfused and fused, called as the README calls it (keyword arguments), the module called on
the same prepared arguments. Interleaved rounds, medians.

    .venv/bin/python benchmarks/call_overhead.py [--rounds R] [--size N,D,H,C]
"""

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script, not -m
    runpy.run_module("benchmarks.overhead", run_name="__main__")
