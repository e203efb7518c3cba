"""Where the MLP's time goes inside graphc's generated code, statement by statement.

    .venv/bin/python -m benchmarks.profile_generated                 # float64 and float32
    .venv/bin/python -m benchmarks.profile_generated --dtype float32 --variant fused

Runs each statement of the generated `forward` and `backward` (and of the hand-written
reference) on its own, timing it, and lists the costliest statements with the dtype and shape
of what each produces. A statement whose result has a wider dtype than the inputs, or a
temporary the reference does not make, shows up here. Threads: one per library unless
`--threads` says otherwise.
"""

# ruff: noqa: N803, N806

from __future__ import annotations

import argparse
import ast
import inspect
import statistics
import sys
import textwrap
import time

from .threads import limit_threads

if __name__ == "__main__":
    limit_threads(sys.argv[1:])

import numpy as np  # noqa: E402

from . import mlp  # noqa: E402
from .harness import table  # noqa: E402


def statement_times(body: list[ast.stmt], env: dict, repeats: int) -> list[tuple[str, float, str]]:
    """(statement, median seconds, what it produced) for each statement, run in order."""
    codes = [(ast.unparse(s), compile(ast.Module([s], []), "<statement>", "exec")) for s in body]
    times: dict[str, list[float]] = {src: [] for src, _ in codes}
    produced: dict[str, str] = {}
    for _ in range(repeats):
        scope = dict(env)
        for src, code in codes:
            start = time.perf_counter()
            exec(code, scope)
            times[src].append(time.perf_counter() - start)
            target = src.split("=", 1)[0].strip() if "=" in src else ""
            value = scope.get(target.split("[")[0]) if target.isidentifier() else None
            if value is not None:
                produced[src] = f"{getattr(value, 'dtype', type(value).__name__)} {np.shape(value)}"
    return [(src, statistics.median(times[src]), produced.get(src, "")) for src, _ in codes]


def graphc_statements(d, variant: str):
    import graphc as gc

    f = gc.function(mlp.net).wrt(*mlp.GRADS)
    if variant == "fused":
        f = f.fused()
    elif variant == "fused-fast":
        f = f.fused(readable=False)
    args = (d["X"], d["y"], d["W1"], d["b1"], d["W2"], d["b2"], d["reg"])  # integer labels
    compiled = f.compiled_for(*args)
    tree = ast.parse(compiled.source)
    fns = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    names = [a.arg for a in fns["forward"].args.args]
    # The seed, as the generated value_and_grad computes it from forward's output.
    out_name = fns["value_and_grad"].body[0].targets[0].elts[0].id
    out_expr = ast.unparse(fns["forward"].body[-1].value.elts[0])
    calls = [n for n in ast.walk(fns["value_and_grad"]) if isinstance(n, ast.Call)]
    call = next(c for c in calls if isinstance(c.func, ast.Name) and c.func.id == "backward")
    seed = f"{fns['backward'].args.args[0].arg} = {ast.unparse(call.args[0])}"
    body = [
        *fns["forward"].body[:-1],  # no return
        *ast.parse(f"{out_name} = {out_expr}\n{seed}").body,
        *fns["backward"].body[1:-1],  # no unpacking of the cache, no return
    ]
    env = dict(vars(compiled.module))
    env.update(zip(names, args))
    return body, env


def reference_statements(d):
    tree = ast.parse(textwrap.dedent(inspect.getsource(mlp.reference)))
    fn = tree.body[0]
    body = [s for s in fn.body if not isinstance(s, (ast.Expr, ast.Return))]
    env = {"np": np, **{k: d[k] for k in ("X", "y", *mlp.GRADS, "reg")}}
    return body, env


def report(dtype: str, variant: str, top: int, repeats: int) -> None:
    d = mlp.make_data(dtype, **mlp.FULL)
    for label, (body, env) in (
        (f"graphc ({variant})", graphc_statements(d, variant)),
        ("hand-written reference", reference_statements(d)),
    ):
        rows = statement_times(body, env, repeats)
        total = sum(t for _, t, _ in rows)
        print(f"\n### {dtype}, {label}: {total * 1e3:.2f} ms in {len(rows)} statements\n")
        wider = [src for src, _, made in rows if dtype != "float64" and made.startswith("float64")]
        if wider:
            print(f"First statement producing float64 from {dtype} inputs: `{wider[0]}`\n")
        best = sorted(rows, key=lambda r: -r[1])[:top]
        print(
            table(
                ["statement", "median", "share", "produces"],
                [
                    [
                        f"`{s if len(s) <= 70 else s[:67] + '...'}`",
                        f"{t * 1e3:.3f} ms",
                        f"{t / total * 100:.0f}%",
                        p,
                    ]
                    for s, t, p in best
                ],
                "lrrl",
            )  # fmt: skip
        )


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dtype", nargs="+", default=["float64", "float32"])
    p.add_argument("--variant", default="plain", choices=["plain", "fused", "fused-fast"])
    p.add_argument("--top", type=int, default=8)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--threads", type=int, default=1, help="applied before NumPy loads")
    args = p.parse_args(argv)
    for dtype in args.dtype:
        report(dtype, args.variant, args.top, args.repeats)


if __name__ == "__main__":
    main()
