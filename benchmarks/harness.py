"""What every workload shares: interleaved timing, correctness checks, peers, tables, the machine.

A workload builds `Candidate`s (a name and a zero-argument call returning `(value, grads)`),
checks each against its reference with `check`, times them with `interleave` and reports a
`Section`: a Markdown table of medians and ratios, and the issue's targets, each met or not.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

# ---------------------------------------------------------------- peers

# The optional peers (the `bench` extra): import name -> what the tables call it.
PEERS = {
    "torch": "PyTorch",
    "jax": "JAX",
    "autograd": "HIPS autograd",
    "micrograd": "micrograd",
    "pytensor": "PyTensor",
    "numba": "numba",  # no peer: elementwise times its loops whenever it is installed
}

_selected: set[str] = set(PEERS)


def select_peers(spec: str) -> None:
    """`all`, `none` or a comma-separated list of import names (torch,jax,...)."""
    global _selected
    if spec == "all":
        _selected = set(PEERS)
    elif spec == "none":
        _selected = set()
    else:
        names = {s.strip() for s in spec.split(",") if s.strip()}
        unknown = names - set(PEERS)
        if unknown:
            raise SystemExit(f"unknown peer(s) {sorted(unknown)}; choose from {sorted(PEERS)}")
        _selected = names


def selected_peers() -> str:
    """The selection as `select_peers` takes it (passed on to child processes)."""
    return ",".join(sorted(_selected)) or "none"


def have(name: str) -> bool:
    """Is this peer selected and installed? (Found without importing it.)"""
    return name in _selected and importlib.util.find_spec(name) is not None


def peer_versions() -> dict[str, str]:
    """Installed peers and their versions (imports each; used once for the report)."""
    found = {}
    for name in PEERS:
        if importlib.util.find_spec(name) is None:
            continue
        try:
            from importlib.metadata import version

            found[name] = version(name)
        except Exception:
            found[name] = "installed"
    return found


def import_jax():
    """JAX on the CPU with float64 enabled (float32 arrays stay float32)."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    jax = importlib.import_module("jax")
    jax.config.update("jax_enable_x64", True)
    return jax


# ---------------------------------------------------------------- candidates and checks


@dataclass
class Candidate:
    """One implementation of a workload: `call()` returns `(value, {input name: gradient})`."""

    name: str
    call: Callable[[], tuple]
    kind: str = "graphc"  # "graphc", "reference" or "peer"


def to_numpy(x) -> np.ndarray:
    """A NumPy array from a float, a NumPy, PyTorch or JAX array."""
    if hasattr(x, "detach"):  # torch
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def max_rel_error(got, want) -> float:
    """max |got - want| / (|want|_max + tiny), over value and every gradient."""
    got_value, got_grads = got
    want_value, want_grads = want
    pairs = [(got_value, want_value)] + [(got_grads[k], want_grads[k]) for k in want_grads]
    worst = 0.0
    for g, w in pairs:
        g, w = to_numpy(g).astype(np.float64), to_numpy(w).astype(np.float64)
        if g.shape != w.shape:
            return math.inf
        scale = float(np.max(np.abs(w), initial=0.0)) + 1e-30
        worst = max(worst, float(np.max(np.abs(g - w), initial=0.0)) / scale)
    return worst if math.isfinite(worst) else math.inf


def check(candidate: Candidate, want, tol: float) -> str | None:
    """None if the candidate's value and gradients agree with `want`, else what is wrong."""
    try:
        got = candidate.call()
        missing = set(want[1]) - set(got[1])
        if missing:
            return f"no gradient for {sorted(missing)}"
        err = max_rel_error(got, want)
    except Exception as e:  # a peer that fails is reported, not fatal
        return f"{type(e).__name__}: {e}"
    return None if err <= tol else f"disagrees with the reference (max relative error {err:.1e})"


def agreeing(cands: list[Candidate], want, tol: float, label: str, failures: list) -> list:
    """The candidates that agree with `want` (see `check`); a line in `failures` for each other."""
    ok = []
    for c in cands:
        problem = check(c, want, tol)
        if problem:
            failures.append(f"{label}: {c.name}: {problem}")
        else:
            ok.append(c)
    return ok


# ---------------------------------------------------------------- timing


@dataclass
class Timing:
    """Per-call seconds: the median over rounds and the quartiles (the noise)."""

    median: float
    q1: float
    q3: float
    rounds: int
    number: int  # calls per sample

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median."""
        return (self.q3 - self.q1) / self.median if self.median else 0.0


def _sample(call: Callable, number: int) -> float:
    was = gc.isenabled()
    gc.disable()  # as timeit does: no collection in the middle of a sample
    try:
        start = time.perf_counter()
        for _ in range(number):
            call()
        return time.perf_counter() - start
    finally:
        if was:
            gc.enable()


def interleave(calls: dict[str, Callable], rounds: int, min_sample: float) -> dict[str, Timing]:
    """Time every call once per round, interleaved, the first candidate rotating each round.

    Each sample repeats a call `number` times so that it lasts at least `min_sample` seconds
    (fast scalar calls); the result is seconds per call.
    """
    numbers = {}
    for name, call in calls.items():
        once = min(_sample(call, 1) for _ in range(3))
        numbers[name] = max(1, min(10**6, math.ceil(min_sample / max(once, 1e-9))))
    samples: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            samples[name].append(_sample(calls[name], numbers[name]) / numbers[name])
        gc.collect()
    timings = {}
    for name, xs in samples.items():
        q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
        timings[name] = Timing(statistics.median(xs), q[0], q[2], len(xs), numbers[name])
    return timings


# ---------------------------------------------------------------- reporting


def fmt_time(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def fmt_ratio(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.2f}x"


def table(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    """A Markdown table; `align` is one letter per column, l or r (default: first l, rest r)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---" if a == "l" else "---:" for a in align]
    lines = [header, rule, *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


@dataclass
class Target:
    """One of the issue's targets: what it asks, what was measured, and whether it is met."""

    goal: str
    measured: str
    met: bool | None  # None: could not be measured in this run

    @property
    def verdict(self) -> str:
        return {True: "met", False: "**not met**", None: "not measured"}[self.met]


@dataclass
class Section:
    """A workload's report: Markdown text (tables) and its targets."""

    title: str
    text: str
    targets: list[Target] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # candidates that disagreed or crashed

    def markdown(self) -> str:
        return f"## {self.title}\n\n{self.text.strip()}\n"


def timing_rows(
    timings: dict[str, Timing], reference: str, extra: dict[str, str] | None = None
) -> list[list[str]]:
    """Rows: candidate, median, ratio to the reference, spread (and optional notes)."""
    ref = timings[reference].median
    rows = []
    for name, t in timings.items():
        row = [name, fmt_time(t.median), fmt_ratio(t.median / ref), f"{t.spread * 100:.0f}%"]
        if extra is not None:
            row.append(extra.get(name, ""))
        rows.append(row)
    return rows


def skipped_note(skipped: dict[str, str]) -> str:
    if not skipped:
        return ""
    return "\nNot measured: " + "; ".join(f"{k} ({v})" for k, v in skipped.items()) + ".\n"


# ---------------------------------------------------------------- the machine


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory() -> str:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _blas() -> str:
    try:
        deps = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{deps.get('name', '?')} {deps.get('version', '')}".strip()
    except Exception:
        return "unknown"


def machine() -> list[tuple[str, str]]:
    """The machine and software, as (what, value) rows for the report."""
    import graphc

    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    peers = peer_versions()
    return [
        ("CPU", f"{_cpu_model()} ({platform.machine()})"),
        ("cores (nproc)", f"{cores}; this run pinned to {usable} (see --threads)"),
        ("memory", _memory()),
        ("load average at start (1, 5, 15 min)", load),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", f"{platform.python_implementation()} {sys.version.split()[0]}"),
        ("NumPy", f"{np.__version__} (BLAS: {_blas()})"),
        ("graphc", graphc.__version__),
        ("peers installed", ", ".join(f"{k} {v}" for k, v in peers.items()) or "none"),
    ]


def ahead_of_every_peer(label: str, timings: dict, ok: list, ref: float) -> list[Target]:
    """The target "graphc ahead of every peer", if a peer ran; `ref` is the reference median."""
    peers = {c.name: timings[c.name].median for c in ok if c.kind == "peer"}
    if not peers:
        return []
    fastest = min(peers, key=peers.get)
    graphc = timings["graphc"].median
    return [
        Target(
            f"{label}: graphc ahead of every peer",
            f"graphc {graphc / ref:.2f}x, fastest peer {fastest} {peers[fastest] / ref:.2f}x",
            graphc < peers[fastest],
        )
    ]
