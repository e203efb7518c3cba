"""Where graphc's compile time goes, stage by stage, on the unrolled recurrence.

    .venv/bin/python -m benchmarks.profile_compile                  # T = 1,000 and 10,000
    .venv/bin/python -m benchmarks.profile_compile --T 1000 5000 --top 15

For each T: the wall time of each stage (trace, fuse, shapes, backward, schedule, codegen,
load = Python's compile of the generated module, first call) in a plain run, then the same
stages again under cProfile, listing the functions with the most cumulative and the most own
time. With two or more T, a last table compares each stage's time per gate across T: a ratio
well above 1 means the stage is super-linear. The stage split mirrors
`graphc.compiler._compile`; should graphc's internals move, the compile is profiled as one
stage instead.
"""

# ruff: noqa: N803, N806  (T is the recurrence length, as in the issue)

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time

from .compile_scaling import ARGS, inputs, recurrence
from .harness import table


def stages_of(fn):
    """The pipeline as a list of (stage, callable of the previous result) for `fn`."""
    import graphc as gc

    try:
        from graphc import __version__
        from graphc.emit.codegen import emit_module, load_module
        from graphc.ir.shapes import infer_shapes
        from graphc.passes.autodiff import backward
        from graphc.passes.schedule import sanitize, schedule
    except ImportError:
        return [
            ("trace", lambda _: gc.function(fn)),
            ("fuse", lambda f: f.fused()),
            ("compile + first call", lambda f: f.value_and_grad(*ARGS)),
        ]

    def title(g):
        return f"{g.graph['name']}({', '.join(g.nodes[i]['name'] for i in g.graph['inputs'])})"

    state = {}

    def shapes(f):
        state["g"] = f.graph
        return infer_shapes(f.graph, {k: () for k in f.inputs})

    def codegen(program):
        state["program"] = program
        return emit_module(program, title(state["g"]), __version__)

    return [
        ("trace", lambda _: gc.function(fn)),
        ("fuse", lambda f: f.fused()),
        ("shapes", shapes),
        ("backward", lambda g: backward(g, None)),
        ("schedule", schedule),
        ("codegen", codegen),
        ("load (Python compile)", lambda src: load_module(src, sanitize(state["g"].graph["name"]))),
        ("first call", lambda m: m.value_and_grad(*ARGS)),
    ]


def _paused():
    try:
        from graphc.compiler import gc_paused

        return gc_paused()
    except ImportError:
        import contextlib

        return contextlib.nullcontext()


def wall_times(T: int) -> tuple[dict[str, float], int]:
    """Each stage's wall time (no profiler), and the number of gates traced."""
    fn = recurrence(inputs(T), __import__("graphc").tanh)
    times, value, gates = {}, None, 0
    for name, step in stages_of(fn):
        with _paused():
            start = time.perf_counter()
            value = step(value)
            times[name] = time.perf_counter() - start
        if name == "trace":
            gates = sum(1 for _, op in value.graph.nodes(data="op") if op not in ("input", "const"))
    return times, gates


def profiles(T: int) -> dict[str, pstats.Stats]:
    fn = recurrence(inputs(T), __import__("graphc").tanh)
    out, value = {}, None
    for name, step in stages_of(fn):
        prof = cProfile.Profile()
        with _paused():
            prof.enable()
            value = step(value)
            prof.disable()
        out[name] = pstats.Stats(prof)
    return out


def _where(key) -> str:
    file, line, func = key
    if file == "~":
        return func  # a built-in
    parts = file.replace(os.sep, "/").split("/")
    if "site-packages" in parts:
        parts = parts[parts.index("site-packages") + 1 :]
    else:
        parts = parts[-2:]
    return f"{'/'.join(parts)}:{line} {func}"


def top(stats: pstats.Stats, n: int, gates: int, by: str) -> list[list[str]]:
    """The n functions with the most cumulative (`by="ct"`) or own (`"tt"`) time."""
    rows = []
    entries = stats.stats.items()  # key -> (primitive calls, calls, own, cumulative, callers)
    index = 3 if by == "ct" else 2
    for key, (_, calls, own, cum, _) in sorted(entries, key=lambda kv: -kv[1][index]):
        if "<lambda>" in key[2] or key[2] in ("shapes", "codegen", "step"):
            continue  # this module's stage wrappers
        if "_lsprof" in key[2] or "disable" in key[2]:
            continue
        rows.append([_where(key), f"{calls:,}", f"{calls / gates:.1f}", f"{own:.3f}", f"{cum:.3f}"])
        if len(rows) == n:
            break
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--T", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--no-profile", action="store_true", help="wall times per stage only")
    args = p.parse_args(argv)
    per_gate: dict[int, dict[str, float]] = {}
    for T in args.T:
        times, gates = wall_times(T)
        per_gate[T] = {k: v / gates for k, v in times.items()}
        total = sum(times.values())
        print(f"\n## T = {T:,}: {gates:,} gates, {total:.2f} s from function to first gradient\n")
        rows = [
            [k, f"{v:.3f} s", f"{v / gates * 1e6:.1f} us", f"{v / total * 100:.0f}%"]
            for k, v in times.items()
        ]
        print(table(["stage", "wall time", "per gate", "share"], rows))
        if args.no_profile:
            continue
        for stage, stats in profiles(T).items():
            if stats.total_tt < 0.01 * total:
                continue  # a stage under 1% of the total: not where the time goes
            print(f"\n### T = {T:,}, stage {stage}: {stats.total_tt:.2f} s under cProfile\n")
            header = ["function", "calls", "calls/gate", "own s", "cumulative s"]
            print("By cumulative time:\n")
            print(table(header, top(stats, args.top, gates, "ct")))
            print("\nBy own time:\n")
            print(table(header, top(stats, args.top, gates, "tt")))
    if len(args.T) > 1:
        first = args.T[0]
        print(f"\n## Time per gate, relative to T = {first:,} (above ~1.3: super-linear)\n")
        header = ["stage"] + [f"T = {T:,}" for T in args.T]
        rows = [
            [stage] + [f"{per_gate[T][stage] / per_gate[first][stage]:.2f}x" for T in args.T]
            for stage in per_gate[first]
        ]
        total = {T: sum(per_gate[T].values()) for T in args.T}
        rows.append(["total"] + [f"{total[T] / total[first]:.2f}x" for T in args.T])
        print(table(header, rows))


if __name__ == "__main__":
    main()
