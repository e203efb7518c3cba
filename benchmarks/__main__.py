"""`python -m benchmarks`: run the suite and print a Markdown report (see docs/performance.md).

    .venv/bin/python -m benchmarks                  # every workload, peers when installed
    .venv/bin/python -m benchmarks --smoke          # tiny sizes, correctness only (CI)
    .venv/bin/python -m benchmarks --only mlp,scalar --rounds 31 --peers torch,jax
    .venv/bin/python -m benchmarks --only overhead --rounds 31   # the MLP at N=8, per call
    .venv/bin/python -m benchmarks --markdown results.md

Exit status 1 if any candidate's value or gradients disagree with its reference.
"""

from __future__ import annotations

import argparse
import sys
import time

from .threads import limit_threads  # noqa: E402  (before anything loads NumPy)

THREADS = limit_threads(sys.argv[1:]) if __name__ == "__main__" else 0

from . import compile_scaling, elementwise, harness, mlp, overhead, scalar  # noqa: E402

WORKLOADS = ("scalar", "mlp", "overhead", "elementwise", "compile")


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="graphc against hand-written references and the peers, interleaved.",
    )
    p.add_argument("--smoke", action="store_true", help="tiny sizes, correctness only")
    p.add_argument(
        "--only", default=",".join(WORKLOADS), help=f"comma-separated, of {','.join(WORKLOADS)}"
    )
    p.add_argument("--rounds", type=int, default=15, help="interleaved rounds per workload")
    p.add_argument(
        "--peers",
        default="all",
        help="all, none, or a comma-separated list of " + ",".join(harness.PEERS),
    )
    p.add_argument("--no-memory", action="store_true", help="skip the MLP peak-memory processes")
    p.add_argument(
        "--sizes",
        default="100,1000,10000,20000",
        help="compile scaling: the recurrence lengths T",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="compile scaling: seconds per size and candidate",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads per library (BLAS, OpenMP, XLA); 0 keeps each library's default",
    )
    p.add_argument("--markdown", help="also write the report to this file")
    args = p.parse_args(argv)
    args.only = [w.strip() for w in args.only.split(",") if w.strip()]
    bad = set(args.only) - set(WORKLOADS)
    if bad:
        p.error(f"unknown workload(s) {sorted(bad)}; choose from {', '.join(WORKLOADS)}")
    args.sizes = [int(t) for t in args.sizes.split(",")]
    return args


def main(argv=None) -> int:
    args = parse(argv)
    harness.select_peers(args.peers)
    start = time.perf_counter()
    sections = []
    for workload in args.only:
        t0 = time.perf_counter()
        if workload == "scalar":
            section = scalar.run(args.rounds, args.smoke)
        elif workload == "mlp":
            section = mlp.run(args.rounds, args.smoke, memory=not args.no_memory, threads=THREADS)
        elif workload == "overhead":
            section = overhead.run(args.rounds, args.smoke)
        elif workload == "elementwise":
            section = elementwise.run(args.rounds, args.smoke)
        else:
            section = compile_scaling.run(args.rounds, args.smoke, args.sizes, args.timeout)
        sections.append(section)
        print(f"[{workload}: {time.perf_counter() - t0:.1f} s]", file=sys.stderr, flush=True)
    failures = [f for s in sections for f in s.failures]
    if args.smoke:
        for s in sections:
            print(s.markdown())
        for f in failures:
            print(f"FAILED {f}")
        print("smoke: " + ("FAILED" if failures else "all candidates agree with the references"))
        return 1 if failures else 0
    report = render(sections, args, time.perf_counter() - start)
    print(report)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(report)
    return 1 if failures else 0


def render(sections, args, seconds: float) -> str:
    """The whole report: machine, command, one section per workload, the targets."""
    command = "python -m benchmarks " + " ".join(sys.argv[1:])
    parts = [
        "# graphc benchmark run\n",
        harness.table(["", ""], [[k, v] for k, v in harness.machine()], "ll"),
        f"\nCommand: `{command.strip()}`; {args.rounds} interleaved rounds per timing table; "
        f"threads per library: {args.threads or 'library defaults'}; "
        f"the whole run took {seconds:.0f} s. Times are medians; ratios are to the reference "
        "of the same table, in the same process; spread is the interquartile range over the "
        "rounds relative to the median.\n",
    ]
    parts += [s.markdown() for s in sections]
    targets = [t for s in sections for t in s.targets]
    rows = [[t.goal, t.measured, t.verdict] for t in targets]
    parts.append("## Targets\n\n" + harness.table(["target", "measured", "verdict"], rows, "lll"))
    failures = [f for s in sections for f in s.failures]
    if failures:
        parts.append("## Disagreements\n\n" + "\n".join(f"- {f}" for f in failures))
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    sys.exit(main())
