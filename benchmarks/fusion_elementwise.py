"""Fused vs unfused: the sigmoid neuron's forward+backward over arrays of 10^6 float64 elements.

This workload is now part of the benchmark suite (`benchmarks/elementwise.py`, run with
`.venv/bin/python -m benchmarks --only elementwise`), with the peers and a numba single loop
beside graphc and hand-written NumPy. This script still runs it alone:
`.venv/bin/python benchmarks/fusion_elementwise.py [--size N] [--rounds R] [--threads T]`.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script, not -m

from benchmarks.threads import limit_threads  # noqa: E402  (before NumPy loads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10**6)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--threads", type=int, default=1, help="0: the libraries' defaults")
    parser.add_argument("--peers", default="all", help="all, none or a comma-separated list")
    args = parser.parse_args()
    limit_threads(["--threads", str(args.threads)])
    from benchmarks import elementwise, harness

    harness.select_peers(args.peers)
    section = elementwise.run(args.rounds, size=args.size)
    print(section.markdown())
    for t in section.targets:
        print(f"- {t.goal}: {t.measured} ({t.verdict})")
    for f in section.failures:
        print(f"FAILED {f}")
    sys.exit(1 if section.failures else 0)


if __name__ == "__main__":
    main()
