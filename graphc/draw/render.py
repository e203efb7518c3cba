"""Rendering: circuits drawn the way backprop lectures draw them, for slides.

Stage: draw (graph + values -> graphviz). Imports the `ir` and `emit.codegen`'s printer; it draws
what the generated code computed (values come from `Compiled.values`) and never evaluates
anything; every label is text, drawn as it is (`plain`).

Inputs are labelled wire starts on the left, gates are circles with their symbol, the output is on
the right; on every wire the forward value is written above the line (green) and the gradient
below it (red). Every argument position has a wire of its own; a value read more than once forks
at a point, and the stem to that point carries the total gradient ("Σ 7.00"), the sum of the
branches. The one number drawn that the generated code does not compute as such is the share of
each read of a gate that reads one value twice (x*x: upstream times that position's local
gradient; the code adds the shares in one step).

Layout is two-phase: Graphviz's `dot` places the gates (few crossings), then graphc pins those
positions and puts each label beside its wire, on its side of the line, at the first place along
the wire where its box overlaps no other text or gate, crosses no wire and is nearer its own wire
than any other. The pinned drawing is rendered by `neato`, so the returned `graphviz.Digraph`
renders the same way everywhere (files, Jupyter). Every element is an SVG group whose class says
what it is (see `draw_scene`). Long circuits (an unrolled loop of a thousand gates) are laid out
in seconds: an input used far apart is drawn beside each use, and a drawing `dot` could not lay
out in reasonable time is refused with a message saying what to draw instead (see MAX_SPAN).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field, replace

import graphviz
import networkx as nx
import numpy as np
import sympy

from ..ir import text
from ..ir.errors import GraphcError
from ..ir.graph import args_of, topo_order
from ..ir.ops import gate_of
from ..ir.tensor import index_code
from .notation import computations, local_texts

FONT = "Helvetica"
POINTS = 72.0  # graphviz positions are in points, sizes in inches


@dataclass(frozen=True)
class Theme:
    """Colours of a drawing; the background stays transparent for slides."""

    line: str
    text: str
    value: str
    gradient: str
    warning: str
    active: str


THEMES = {
    "light": Theme("#333333", "#111111", "#2e7d32", "#c62828", "#ef6c00", "#1565c0"),
    "dark": Theme("#d0d0d0", "#f5f5f5", "#81c784", "#ef9a9a", "#ffb74d", "#90caf9"),
}

# forward mode's tangents, under the line in place of the gradients (draw/modes.py)
TANGENT_COLOURS = {THEMES["light"]: "#6a1b9a", THEMES["dark"]: "#ce93d8"}

PAPER = {"light": "#ffffff", "dark": "#2b2b2b"}  # each theme's own background
DIRECTIONS = ("LR", "TB")
FITS = {"16:9": (1920, 1080), "4:3": (1440, 1080)}


@dataclass(frozen=True)
class Style:
    """How a picture is drawn: its numbers (`digits` decimals or `sig` significant figures), its
    colours (`theme`), its `background` (None: the theme's own, opaque; "transparent" or any
    Graphviz colour), its `direction` (LR: left to right, TB: top to bottom) and the slide it is
    to `fit` ("16:9", "4:3" or None: natural size)."""

    digits: int = 2
    sig: int | None = None
    theme: str = "light"
    background: str | None = None
    direction: str = "LR"
    fit: str | None = None

    def __post_init__(self):
        if not (isinstance(self.digits, int) and 0 <= self.digits <= 15):
            raise GraphcError(f"digits={self.digits!r}: use a whole number from 0 to 15")
        if self.sig is not None and not (isinstance(self.sig, int) and 1 <= self.sig <= 15):
            raise GraphcError(f"sig={self.sig!r}: use a whole number from 1 to 15, or None")
        if self.theme not in THEMES:
            raise GraphcError(f"unknown theme {self.theme!r}; use one of {', '.join(THEMES)}")
        if self.direction not in DIRECTIONS:
            raise GraphcError(f"direction={self.direction!r}: use one of {', '.join(DIRECTIONS)}")
        if self.fit is not None and self.fit not in FITS:
            raise GraphcError(f"fit={self.fit!r}: use one of {', '.join(FITS)}, or None")
        if self.background is not None and not (
            isinstance(self.background, str) and self.background.strip()
        ):
            raise GraphcError(f"background={self.background!r}: use a colour or 'transparent'")

    @property
    def colours(self) -> Theme:
        return THEMES[self.theme]

    @property
    def paper(self) -> str:
        return self.background or PAPER[self.theme]

    def numbers(self, tiny: float = 0.0) -> Numbers:
        return Numbers(self.digits, self.sig, tiny)


def style_of(style=None, **options) -> Style:
    """A `Style` from one or from keyword options (digits=2, theme="dark", ...)."""
    if style is not None:
        return style
    return Style(**{k: v for k, v in options.items() if v is not None or k == "sig"})


# A gate's symbol with a scalar constant folded in (the lecture's +1, *-1 and 1/x gates)
CONSTANT_SYMBOLS = {
    ("add", 0): "+{c}",
    ("add", 1): "+{c}",
    ("mul", 0): "*{c}",
    ("mul", 1): "*{c}",
    ("sub", 1): "-{c}",
    ("sub", 0): "{c}-",
    ("div", 0): "{c}/x",
    ("div", 1): "/{c}",
    ("pow", 1): "x^{c}",
    ("maximum", 0): "max({c},·)",
    ("maximum", 1): "max(·,{c})",
    ("minimum", 0): "min({c},·)",
    ("minimum", 1): "min(·,{c})",
}


# Gates whose argument order matters: argument 0 enters above argument 1
ORDERED = {"sub", "div", "pow", "matmul", "where"}

# ---------------------------------------------------------------- numbers on wires


@dataclass(frozen=True)
class Numbers:
    """How a picture writes its numbers: `digits` fixed decimals, or `sig` significant figures
    (when given); e-notation only at magnitudes from 1e6 or below 1e-4; a magnitude below `tiny`
    (1e-12 of the picture's largest, see `picture`) is round-off and printed as 0."""

    digits: int = 2
    sig: int | None = None
    tiny: float = 0.0

    def number(self, v: float) -> str:
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if abs(v) <= self.tiny or v == 0:
            v = 0.0
        elif abs(v) >= 1e6 or abs(v) < 1e-4:
            return f"{v:.{max((self.sig or self.digits + 1) - 1, 1)}e}"
        if self.sig is None:
            decimals = self.digits
        else:
            magnitude = math.floor(math.log10(abs(v))) if v else 0
            decimals = max(self.sig - 1 - magnitude, 0)
        text = f"{v:.{decimals}f}"
        if float(text) == 0:  # no "-0.00" on a slide
            text = f"{0:.{decimals}f}"
        return text


SMALL = 3  # arrays of up to 3 x 3 entries are drawn whole


def fmt(value, digits: int | Numbers = 2) -> str:
    """A value for a wire: a number; a small array whole (a matrix's rows on lines); a larger
    one as its shape and a summary. `digits`: decimals, or a picture's `Numbers`."""
    numbers = digits if isinstance(digits, Numbers) else Numbers(digits)
    arr = np.asarray(value)
    if arr.ndim == 0:
        return numbers.number(float(arr))
    if arr.ndim == 1 and arr.size <= SMALL:
        return "[" + ", ".join(numbers.number(float(v)) for v in arr) + "]"
    if arr.ndim == 2 and arr.shape[0] <= SMALL and arr.shape[1] <= SMALL:
        rows = [[numbers.number(float(v)) for v in row] for row in arr]
        width = max(len(t) for row in rows for t in row)
        return "\n".join("[" + "  ".join(t.rjust(width) for t in row) + "]" for row in rows)
    shape = "×".join(str(n) for n in arr.shape)
    if arr.size and np.all(arr == arr.ravel()[0]):
        return f"{shape}: all {numbers.number(float(arr.ravel()[0]))}"
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        return f"{shape}: all {numbers.number(float(arr.ravel()[0]))}"
    low, high = numbers.number(float(finite.min())), numbers.number(float(finite.max()))
    if low == high:
        return f"{shape}: all {low}"
    bad = arr.size - finite.size
    return f"{shape}: {low}…{high}" + (f", {bad} non-finite" if bad else "")


def largest(scene: Scene) -> float:
    """The largest finite magnitude drawn on a scene's wires (0 for none)."""
    top = 0.0
    for w in scene.wires:
        for v in (w.value, w.gradient, w.total):
            if v is not None:
                arr = np.abs(np.asarray(v, dtype=float))
                arr = arr[np.isfinite(arr)]
                if arr.size:
                    top = max(top, float(arr.max()))
    return top


def _finite(value) -> bool:
    return bool(np.all(np.isfinite(value)))


# ---------------------------------------------------------------- what is drawn


@dataclass
class Wire:
    """One drawn line: from a drawn node to another, with what it carries.

    A value read more than once is drawn as a stem from its source to a fork point (`kind`
    "stem", carrying the total gradient, the sum of the branches) and one branch per read.
    """

    tail: str
    head: str
    value: object = None  # forward value (None: not shown)
    gradient: object = None  # gradient flowing back along it (None: not shown)
    arrow: bool = True
    step: int = 0  # when backprop reaches this wire (see build_scene)
    kind: str = "wire"  # "wire" (one read), "stem" (to a fork point), "branch" (from one)
    gate: int | None = None  # the graph node the wire enters, and at which argument position
    position: int = 0
    total: object = None  # on a stem: the gradient the branches add up to
    total_step: int | None = None  # when the total is complete, where not at `step`
    made: int = 0  # forward: the place of the gate computing its value (0: an input)
    why: str | None = None  # backward: "upstream × local" of the gate it enters
    below: str = "gradient"  # under the line: "gradient", or "tangent" (forward mode)


@dataclass
class Scene:
    """Drawn nodes (id -> graphviz attributes) and wires, before layout."""

    nodes: dict[str, dict]
    wires: list[Wire]
    steps: dict[str, int]  # gate node -> its place in backward order (1 = next to the output)
    inputs: list[str] = field(default_factory=list)  # input nodes in signature order


def _scalar_const(g: nx.DiGraph, n: int) -> float | None:
    data = g.nodes[n]
    if data["op"] == "const" and np.ndim(data["value"]) == 0:
        return float(data["value"])
    return None


def _const_text(c: float) -> str:
    return f"{c:g}"


def _gate_label(g: nx.DiGraph, n: int) -> str:
    data = g.nodes[n]
    op = data["op"]
    args = args_of(g, n)
    consts = [
        (i, _scalar_const(g, a)) for i, a in enumerate(args) if _scalar_const(g, a) is not None
    ]
    if op == "expr":
        return data.get("gate", "f")
    if len(consts) == 1 and len(args) == 2 and (op, consts[0][0]) in CONSTANT_SYMBOLS:
        return CONSTANT_SYMBOLS[(op, consts[0][0])].format(c=_const_text(consts[0][1]))
    if op in ("sum", "mean", "max", "logsumexp", "sum_squares", "log_softmax"):
        axis = data.get("params", {}).get("axis")
        return gate_of(op).symbol + (f"[{axis}]" if axis is not None else "")
    if op in ("getitem", "index_add"):  # the index itself, as written: [:, 1:]
        return f"[{index_code(tuple(data['params']['index']))}]"
    return gate_of(op).symbol


def build_scene(
    g: nx.DiGraph,
    values=None,
    wires=None,
    seed=None,
    output_name: str = "out",
    digits: int = 2,
    totals=None,
) -> Scene:
    """What to draw for graph `g`, with forward values and wire gradients when given.

    One wire per argument position (x*x has two wires into `*`); a value read more than once
    forks at a point after its source, and the stem to that point carries the total gradient
    (`totals`: node -> its summed gradient node). Each wire's `step` says when backprop reaches
    it: 0 for the output wire, k for the input wires of the k-th gate in backward (reverse
    topological) order, and for a stem the step of its last branch.
    """
    nodes: dict[str, dict] = {}
    drawn: list[Wire] = []
    output = g.graph["output"]
    order = topo_order(g)
    gates = [n for n in order if g.nodes[n]["op"] not in ("input", "const")]
    step = {n: k for k, n in enumerate(reversed(gates), start=1)}
    made = {n: k for k, n in enumerate(gates, start=1)}
    for n in order:
        data = g.nodes[n]
        op = data["op"]
        if op == "input":
            nodes[f"n{n}"] = {"shape": "plaintext", "label": data["name"], "kind": "input"}
        elif op == "const":
            if _scalar_const(g, n) is None or all(
                _folded(g, s, n) is False for s in g.successors(n)
            ):
                nodes[f"n{n}"] = {
                    "shape": "plaintext",
                    "label": fmt(data["value"], digits),
                    "kind": "const",
                }
        else:
            label = _gate_label(g, n)
            wired = [a for a in args_of(g, n) if not _folded(g, n, a)]
            ordered = op in ORDERED or (op == "expr" and len(wired) > 1)
            nodes[f"n{n}"] = {"label": label, "kind": "gate", "node": n, "ordered": ordered}
        args = args_of(g, n) if op not in ("input", "const") else []
        for i, a in enumerate(args):
            if _folded(g, n, a):
                continue
            gradient, before = (None, None)
            if wires is not None and (n, a) in wires and a not in args[:i]:
                gradient, before = wires[(n, a)]
            value = values.get(a) if values else None
            grad_value = values.get(gradient) if values and gradient is not None else None
            if values and args.count(a) > 1:  # x*x: each read its own share of the gradient
                grad_value = _share(g, n, i, values, wires, totals)
            wire = Wire(f"n{a}", f"n{n}", value, grad_value, True, step[n], gate=n, position=i)
            wire.made = made.get(a, 0)
            if before is not None and values:
                mid = f"u{n}_{a}"  # the summation undoing broadcasting, drawn as its own step
                nodes[mid] = {"label": "Σ", "kind": "unbroadcast"}
                drawn.append(replace(wire, head=mid, arrow=False))
                drawn.append(replace(wire, tail=mid, gradient=values.get(before)))
            else:
                drawn.append(wire)
    nodes["output"] = {"shape": "plaintext", "label": output_name, "kind": "output"}
    seed_value = values.get(seed) if values and seed is not None else None
    drawn.append(Wire(f"n{output}", "output", values.get(output) if values else None, seed_value))
    drawn[-1].made = made.get(output, 0)
    inputs = [f"n{i}" for i in g.graph.get("inputs", []) if f"n{i}" in nodes]
    scene = _split_far_sources(Scene(nodes, drawn, {f"n{n}": k for n, k in step.items()}, inputs))
    return _forks(scene, g, values, totals)


def _share(g: nx.DiGraph, n: int, i: int, values: dict, wires, totals) -> object:
    """The gradient through argument position `i` of gate `n` whose argument is read at more
    than one position (x*x): upstream times the local gradient of that position alone. The
    generated code adds the positions' shares in one step (2*x*dout); the picture shows each."""
    from ..passes.autodiff import gate_local_gradients

    d = gate_local_gradients(g, n)[i]
    upstream = values.get(totals.get(n)) if totals else None
    if d is None or upstream is None:
        return None
    args = args_of(g, n)
    symbols = sorted(d.free_symbols, key=str)
    slots = {f"{k}{j}": values.get(a) for j, a in enumerate(args) for k in "am"}
    slots["out"] = values.get(n)
    if any(slots.get(str(s)) is None for s in symbols):
        return None
    local = sympy.lambdify(symbols, d, "numpy")(*(slots[str(s)] for s in symbols))
    return np.asarray(upstream) * local


def _forks(scene: Scene, g: nx.DiGraph, values, totals) -> Scene:
    """The scene with every value drawn into more than one wire forking at a point: a stem from
    the source to the point, carrying the value and the total gradient, then one branch per read."""
    reads: dict[str, list[int]] = {}
    for k, w in enumerate(scene.wires):
        reads.setdefault(w.tail, []).append(k)
    nodes, wires = dict(scene.nodes), list(scene.wires)
    stems = []
    for tail, ks in reads.items():
        if len(ks) < 2:
            continue
        point = f"f{tail}"
        nodes[point] = {"label": "", "kind": "fork"}
        for k in ks:
            wires[k] = replace(wires[k], tail=point, kind="branch")
        source = int(tail[1:].split("_")[0]) if tail.startswith("n") else None
        total = None
        if values and totals and source is not None and source in totals:
            total = values.get(totals[source])
        first = scene.wires[ks[0]]
        step = max(scene.wires[k].step for k in ks)
        stems.append(
            Wire(tail, point, first.value, None, False, step, "stem", total=total, made=first.made)
        )
    # an input drawn once per use (see _split_far_sources) shows its total once, on the wire of
    # its first copy, complete when backprop has reached every copy
    copies: dict[str, list[int]] = {}
    for k, w in enumerate(wires):
        if nodes[w.tail].get("copy"):
            copies.setdefault(w.tail.rsplit("_", 1)[0], []).append(k)
    for key, ks in copies.items():
        source = int(key[1:])
        if values and totals and source in totals:
            k = next(k for k in ks if nodes[wires[k].tail].get("first"))
            last = max(wires[i].step for i in ks)
            wires[k] = replace(wires[k], total=values.get(totals[source]), total_step=last)
    return _bends(Scene(nodes, stems + wires, scene.steps, scene.inputs))


def _bends(scene: Scene) -> Scene:
    """Wires between the same two nodes (x*x: two reads of one fork) each bent through a point
    of its own, which `dot` sets apart, so both lines and their labels can be seen."""
    pairs: dict[tuple[str, str], int] = {}
    for w in scene.wires:
        pairs[(w.tail, w.head)] = pairs.get((w.tail, w.head), 0) + 1
    nodes, wires = dict(scene.nodes), []
    for k, w in enumerate(scene.wires):
        if pairs[(w.tail, w.head)] < 2:
            wires.append(w)
            continue
        bend = f"b{k}"
        nodes[bend] = {"label": "", "kind": "bend"}
        wires.append(replace(w, head=bend, arrow=False))
        wires.append(replace(w, tail=bend, value=None, gradient=None, kind="end"))
    return Scene(nodes, wires, scene.steps, scene.inputs)


def _folded(g: nx.DiGraph, n: int, a: int) -> bool:
    """Whether the scalar constant `a` is written inside gate `n`'s symbol instead of wired."""
    if _scalar_const(g, a) is None:
        return False
    op = g.nodes[n]["op"]
    args = args_of(g, n)
    if op == "expr":
        return True
    consts = [i for i, x in enumerate(args) if _scalar_const(g, x) is not None]
    return len(consts) == 1 and len(args) == 2 and (op, consts[0]) in CONSTANT_SYMBOLS


# ---------------------------------------------------------------- long circuits

# `dot` turns a wire that crosses k ranks into a chain of k-1 invisible nodes and lays them all
# out: an input used by every step of an unrolled loop gives O(steps^2) of them, and `dot`'s
# crossing and positioning passes stall for minutes past ~150 gates. So an input or constant
# whose uses lie more than MAX_SPAN ranks apart is drawn once beside each use (as unrolled
# recurrences are drawn in textbooks), and a drawing that would still need more than
# MAX_DETOUR invisible nodes, or has more than MAX_NODES nodes, is refused before `dot` runs.
MAX_SPAN = 4
MAX_DETOUR = 20_000
MAX_NODES = 5_000


def _ranks(scene: Scene) -> dict[str, int]:
    """Each drawn node's rank as `dot` places it (roughly): gates by longest path from the
    inputs, and every source (input, constant) one rank before its first use."""
    preds: dict[str, list[str]] = {k: [] for k in scene.nodes}
    succs: dict[str, list[str]] = {k: [] for k in scene.nodes}
    for w in scene.wires:
        preds[w.head].append(w.tail)
        succs[w.tail].append(w.head)
    waiting = {k: len(p) for k, p in preds.items()}
    ready = [k for k, n in waiting.items() if n == 0]
    rank: dict[str, int] = {}
    while ready:  # Kahn's algorithm, a loop rather than recursion: chains may be long
        k = ready.pop()
        rank[k] = 1 + max((rank[p] for p in preds[k]), default=-1)
        for s in succs[k]:
            waiting[s] -= 1
            if waiting[s] == 0:
                ready.append(s)
    for k, p in preds.items():
        if not p and succs[k]:
            rank[k] = min(rank[s] for s in succs[k]) - 1
    return rank


def _split_far_sources(scene: Scene) -> Scene:
    """The scene with every source whose uses lie far apart drawn once per use."""
    rank = _ranks(scene)
    uses: dict[str, list[int]] = {}
    for i, w in enumerate(scene.wires):
        uses.setdefault(w.tail, []).append(i)
    far = {
        k
        for k, attrs in scene.nodes.items()
        if attrs["kind"] in ("input", "const")
        and len(uses.get(k, ())) > 1
        and max(rank[scene.wires[i].head] for i in uses[k])
        - min(rank[scene.wires[i].head] for i in uses[k])
        > MAX_SPAN
    }
    if not far:
        return scene
    nodes: dict[str, dict] = {}
    wires = list(scene.wires)
    for key, attrs in scene.nodes.items():
        if key not in far:
            nodes[key] = attrs
            continue
        for j, i in enumerate(uses[key], start=1):
            nodes[f"{key}_{j}"] = {**attrs, "copy": True, "first": j == 1}
            wires[i] = replace(wires[i], tail=f"{key}_{j}")
    return Scene(nodes, wires, scene.steps, [k for k in scene.inputs if k in nodes])


def _check_drawable(scene: Scene) -> None:
    """Refuse, before `dot` runs, a drawing it would take minutes or more to lay out."""
    rank = _ranks(scene)
    detour = sum(max(0, rank[w.head] - rank[w.tail] - 1) for w in scene.wires)
    gates = sum(1 for a in scene.nodes.values() if a["kind"] == "gate")
    if len(scene.nodes) > MAX_NODES or detour > MAX_DETOUR:
        why = (
            f"{len(scene.nodes)} nodes (the limit is {MAX_NODES})"
            if len(scene.nodes) > MAX_NODES
            else f"long wires that pass {detour} columns of gates in all (the limit is "
            f"{MAX_DETOUR})"
        )
        raise GraphcError(
            f"this circuit is too large to draw: {gates} gates, {why}, more than Graphviz lays "
            "out in reasonable time. Draw a smaller piece (fewer loop steps or layers), or the "
            "fused circuit (f.fused(level='elementwise'), graphc render --level elementwise), "
            "which has fewer gates"
        )


# ---------------------------------------------------------------- wrapping onto a slide

LINK_NAMES = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I or O, which read as 1 and 0


def wrapped(scene: Scene, parts: int, along: dict[str, float] | None = None) -> list[Scene]:
    """The scene cut into `parts` pieces of about the same length (rows of a picture drawn left
    to right, columns of one drawn top to bottom), the way a long derivation is written over
    several lines of a slide: cut where the nodes lie (`along`: each node's place along the
    direction of drawing, as `dot` laid out the whole; without it, its rank). A wire from one
    piece to a later one ends at a link node named by a letter (class `output link`) and starts
    again at a node of the same letter in the piece that reads it (class `input link`); both
    halves carry the wire's value and gradient. An input or constant stands in the first piece
    that reads it, a fork point in the piece of its first branch (a stem cut there is linked
    once, its Σ total written at the fork), a bend with the gate it leads to."""
    rank: dict[str, float] = dict(along) if along is not None else dict(_ranks(scene))
    if parts < 2 or not rank:
        return [scene]
    into = {w.head: w.tail for w in scene.wires}
    out_of: dict[str, str] = {}
    for w in scene.wires:
        out_of.setdefault(w.tail, w.head)

    def home(key: str) -> int:  # the rank that decides a node's piece
        kind = scene.nodes[key]["kind"]
        if kind == "fork" and key in into:
            return home(into[key])
        if kind == "bend" and key in out_of:
            return home(out_of[key])
        return rank[key]

    low, high = min(rank.values()), max(rank.values())
    span = (high - low + (1 if along is None else 1e-9)) / parts
    piece = {k: min(parts - 1, int((home(k) - low) / span)) for k in scene.nodes}
    heads: dict[str, list[str]] = {}
    for w in scene.wires:
        heads.setdefault(w.tail, []).append(w.head)

    def first_use(key: str) -> int:  # an input or constant stands in the piece first reading it
        uses = heads.get(key, [])
        return min((first_use(h) if scene.nodes[h]["kind"] == "fork" else piece[h] for h in uses),
                   default=piece[key])  # fmt: skip

    for key, attrs in scene.nodes.items():  # a fork stands where its first branch goes
        if attrs["kind"] == "fork" and heads.get(key):
            piece[key] = min(piece[h] for h in heads[key])
    for key, attrs in scene.nodes.items():
        if attrs["kind"] in ("input", "const") and key not in into:
            piece[key] = first_use(key)
            for h in heads.get(key, []):
                if scene.nodes[h]["kind"] == "fork":
                    piece[h] = piece[key]
    nodes: list[dict[str, dict]] = [{} for _ in range(parts)]
    wires: list[list[Wire]] = [[] for _ in range(parts)]
    for key, attrs in scene.nodes.items():
        nodes[piece[key]][key] = attrs
    names: dict[str, str] = {}
    for w in scene.wires:
        a, b = piece[w.tail], piece[w.head]
        if a == b:
            wires[a].append(w)
            continue
        source = into.get(w.tail, w.tail) if scene.nodes[w.tail]["kind"] == "fork" else w.tail
        name = names.setdefault(source, LINK_NAMES[len(names) % len(LINK_NAMES)]
                                + "'" * (len(names) // len(LINK_NAMES)))  # fmt: skip
        exit_, entry = f"l{w.tail}_{w.head}_out", f"l{w.tail}_{w.head}_in"
        nodes[a][exit_] = {"shape": "plaintext", "label": f"→ {name}", "kind": "link out"}
        nodes[b][entry] = {"shape": "plaintext", "label": f"{name} →", "kind": "link in"}
        # a stem's Σ total is written once, at its fork
        wires[a].append(replace(w, head=exit_, gate=None, why=None, kind="wire", total=None))
        wires[b].append(replace(w, tail=entry))
    return [
        Scene(
            nodes[i],
            wires[i],
            {k: s for k, s in scene.steps.items() if k in nodes[i]},
            [k for k in scene.inputs if k in nodes[i]],
        )  # fmt: skip
        for i in range(parts)
        if nodes[i]
    ]


# ---------------------------------------------------------------- layout and drawing


def _gate_size(label: str) -> float:
    return max(0.5, 0.16 + 0.11 * len(label))


def _layout(
    scene: Scene, theme: Theme, digits, spread: float = 1.0, direction: str = "LR"
) -> tuple[dict, dict]:
    """Node centres (points) from `dot`, with room left for the wire labels, and the points
    through which `dot` routes each long wire ((tail, head) -> points); `spread` scales the
    room between gates, `direction` is Graphviz's rankdir (LR or TB)."""
    _check_drawable(scene)
    widest = max(
        (
            max(len(line) for line in fmt(v, digits).split("\n"))
            for w in scene.wires
            for v in (w.value, w.gradient, w.total)
            if v is not None
        ),
        default=0,
    )
    if direction == "LR":  # labels above and below wires that run across
        ranksep, nodesep = max(1.6, 0.13 * widest + 0.4), 0.9  # inches
    else:  # labels left and right of wires that run down
        ranksep, nodesep = 1.3, max(0.9, 0.22 * widest + 0.3)
    # nslimit 1: at most one network-simplex iteration per node when placing nodes within their
    # ranks; small circuits need fewer, and long ones are laid out in seconds instead of minutes
    sketch = graphviz.Digraph(
        graph_attr={
            "rankdir": direction,
            "nodesep": f"{nodesep * spread:.2f}",
            "ranksep": f"{ranksep * spread:.2f}",
            "nslimit": "1",
        },  # fmt: skip
    )
    for key, attrs in scene.nodes.items():
        sketch.node(key, **_node_attrs(attrs, theme))
    # the inputs drawn once stand in one column, top to bottom in signature order
    column = [k for k in scene.inputs if not scene.nodes[k].get("copy")]
    if len(column) > 1:
        with sketch.subgraph() as same:
            same.attr(rank="min")
            for a, b in zip(column, column[1:]):
                same.edge(a, b, style="invis")
    # inputs drawn once per use pull less than the wires between gates, which then run straight
    split = any(attrs.get("copy") for attrs in scene.nodes.values())
    for w in scene.wires:
        heavy = split and not scene.nodes[w.tail].get("copy")
        sketch.edge(w.tail, w.head, **({"weight": "3"} if heavy else {}))
    centres, routes = _dot_positions(sketch.source)
    return dict(centres), dict(routes)


@functools.lru_cache(maxsize=16)
def _dot_positions(source: str):
    """The node centres `dot` gives a sketch, and the points its long wires detour through:
    ((name, (x, y)), ...), (((tail, head), ((x, y), ...)), ...). Cached: the frames of
    `render_steps` and the panels of a comparison lay out the same circuit again, with other
    numbers on the wires."""
    try:
        laid = json.loads(graphviz.Source(source).pipe(format="json", engine="dot"))
    except graphviz.ExecutableNotFound:
        raise GraphcError(
            "drawing needs Graphviz's `dot` program; install it (Debian: apt-get install graphviz)"
        ) from None
    objects = laid.get("objects", [])
    centres = tuple(
        (o["name"], tuple(float(v) for v in o["pos"].split(","))) for o in objects if "pos" in o
    )
    routes = []
    for e in laid.get("edges", []):
        points = [
            tuple(map(float, p.split(","))) for p in e.get("pos", "").split() if "e," not in p
        ]
        if len(points) > 4:  # a bezier through more than one rank: points along the curve
            routes.append(((objects[e["tail"]]["name"], objects[e["head"]]["name"]),
                           _along(points)))  # fmt: skip
    return centres, tuple(routes)


def _along(points: list) -> tuple:
    """Points along a piecewise cubic bezier (p0 c c p1 c c p2 ...), its ends left out: each
    piece at a third and two thirds of the way and its end."""
    out = []
    for i in range(0, len(points) - 3, 3):
        p0, c1, c2, p1 = points[i : i + 4]
        for t in (1 / 3, 2 / 3, 1.0):
            u = 1 - t
            out.append(tuple(
                round(u**3 * a + 3 * u * u * t * b + 3 * u * t * t * c + t**3 * d, 2)
                for a, b, c, d in zip(p0, c1, c2, p1)
            ))  # fmt: skip
    return tuple(out[:-1])


def _paths(scene: Scene, pos: dict, routes: dict, ports: dict) -> list[list[tuple]]:
    """Each wire's drawn path, a polyline from its tail's centre to where it enters its head:
    straight, unless the straight line would pass through a gate; then through the points by
    which `dot` routed it around the gates."""
    gates = {k: node_box(a, *pos[k]) for k, a in scene.nodes.items() if a["kind"] == "gate"}
    paths = []
    for k, w in enumerate(scene.wires):
        p, q = pos[w.tail], ports[k][1] if k in ports else pos[w.head]
        via = list(routes.get((w.tail, w.head), ()))
        blocked = any(
            segment_hits_box(p, q, box) for g, box in gates.items() if g not in (w.tail, w.head)
        )
        paths.append([p, *via, q] if via and blocked else [p, q])
    return paths


def plain(value) -> graphviz.nohtml:
    """A label as Graphviz text, shown as it is: one line with backslashes, quotes and `&`
    escaped (`text.label`), and never an HTML-like label, so a gate symbol `<<TABLE>...>` is
    drawn as those characters. Every label drawn goes through here but the comparison's table,
    which is HTML-like on purpose (its cells are `text.markup`)."""
    return graphviz.nohtml(text.label(value))


def lines(value: str) -> graphviz.nohtml:
    """A label of one or more lines (split at newlines), each shown as it is (see `plain`)."""
    return graphviz.nohtml("\\n".join(text.label(line) for line in str(value).split("\n")))


def _node_attrs(attrs: dict, theme: Theme) -> dict:
    kind = attrs["kind"]
    common = {
        "label": plain(attrs["label"]),
        "fontname": FONT,
        "fontcolor": theme.text,
        "color": theme.line,
    }
    if kind in ("input", "output", "const", "link in", "link out"):
        return {**common, "shape": "plaintext", "fontsize": "16"}
    if kind == "fork":
        return {**common, "label": "", "shape": "point", "width": "0.08", "color": theme.line}
    if kind == "bend":
        return {**common, "label": "", "shape": "point", "width": "0", "style": "invis"}
    if kind == "unbroadcast":
        return {
            **common, "shape": "box", "style": "rounded,dashed", "color": theme.gradient,
            "fontcolor": theme.gradient, "width": "0.3", "height": "0.3", "fontsize": "13",
        }  # fmt: skip
    size = _gate_size(attrs["label"])
    long = len(attrs["label"]) > 6
    return {
        **common,
        "shape": "ellipse" if long else "circle",
        "width": f"{size:.2f}",
        "height": "0.5",
        "fixedsize": "true",
        "fontsize": "13" if long else "15",
        "penwidth": "1.4",
    }


# ---------------------------------------------------------------- where labels go

# Text boxes are estimated generously, 0.6 em a character (Helvetica's digits are 0.556 em,
# its commas and spaces 0.278), so that boxes apart by the estimate are apart as drawn.
EM = 0.6
LABEL_SIZE = 13.0  # points, the wires' numbers
LOCAL_SIZE = 12.0  # points, the local gradients
GAP = 3.0  # points between a label's box and its wire


def text_width(label: str, size: float) -> float:
    """The width of one line of Helvetica text at `size` points (estimated, generously)."""
    return size * EM * len(label) + 2.0


def text_box(cx: float, cy: float, label: str, size: float) -> tuple[float, float, float, float]:
    """The box (x0, y0, x1, y1) of text centred at (cx, cy), one line per line of `label`."""
    lines = label.split("\n")
    w = max(text_width(line, size) for line in lines)
    h = size * 1.2 * len(lines)
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


def boxes_overlap(a, b, margin: float = 0.0) -> bool:
    return (
        a[0] < b[2] + margin
        and b[0] < a[2] + margin
        and a[1] < b[3] + margin
        and b[1] < a[3] + margin
    )


def segment_hits_box(p, q, box) -> bool:
    """Whether segment p-q passes through box (Liang-Barsky clipping)."""
    t0, t1 = 0.0, 1.0
    dx, dy = q[0] - p[0], q[1] - p[1]
    for d, lo, hi, start in ((dx, box[0], box[2], p[0]), (dy, box[1], box[3], p[1])):
        if d == 0:
            if start < lo or start > hi:
                return False
            continue
        a, b = (lo - start) / d, (hi - start) / d
        a, b = min(a, b), max(a, b)
        t0, t1 = max(t0, a), min(t1, b)
        if t0 > t1:
            return False
    return True


def point_segment_distance(c, p, q) -> float:
    dx, dy = q[0] - p[0], q[1] - p[1]
    length2 = dx * dx + dy * dy
    t = (
        0.0
        if length2 == 0
        else max(0.0, min(1.0, ((c[0] - p[0]) * dx + (c[1] - p[1]) * dy) / length2))
    )
    return math.hypot(c[0] - p[0] - t * dx, c[1] - p[1] - t * dy)


def _normal(p, q, direction: str = "LR") -> tuple[float, float]:
    """The unit normal of p-q on the side called "above": up for a wire running right (y grows
    upwards in graphviz's points), and right for a wire running straight down; in a picture
    drawn top to bottom (TB), always the right-hand side."""
    dx, dy = q[0] - p[0], q[1] - p[1]
    length = math.hypot(dx, dy) or 1.0
    nx_, ny_ = -dy / length, dx / length
    flip = (
        (nx_ < 0 or (nx_ == 0 and ny_ < 0))
        if direction == "TB"
        else (ny_ < 0 or (ny_ == 0 and nx_ < 0))
    )
    return (-nx_, -ny_) if flip else (nx_, ny_)


# where along its wire a label may sit, in order of preference, and how much farther from the
# line than the closest
AT = (0.42, 0.3, 0.55, 0.2, 0.65, 0.12, 0.75, 0.36, 0.48, 0.25, 0.6, 0.16, 0.7, 0.82, 0.08)
AWAY = (0.0, 6.0, 14.0, 24.0)


def _shortest(segment) -> float:
    return -math.dist(*segment)


def place_label(
    side: int, label: str, obstacles: list, segments: list, own: list[int], direction: str = "LR"
):
    """The centre and box of `label` beside its wire, the segments `own` of `segments` (side +1
    above, -1 below), and whether the place is clear: the first place along the wire's longest
    piece (then its others), a little before the middle first, whose box overlaps no obstacle
    box, crosses no other wire and is nearer its own wire than any other; then the same on the
    other side of the wire; else the least bad."""
    others = [segments[k] for k in range(len(segments)) if k not in own]
    mine = [segments[k] for k in own]
    best, best_cost = None, math.inf
    # its own side of the wire first; the other side only where its own has no clear place
    tries = [(side, p, q) for side in (side, -side) for p, q in sorted(mine, key=_shortest)]
    for side, p, q in tries:
        nx_, ny_ = _normal(p, q, direction)
        x0, y0, x1, y1 = text_box(0, 0, label, LABEL_SIZE)
        support = (x1 - x0) / 2 * abs(nx_) + (y1 - y0) / 2 * abs(ny_)
        for away in AWAY:
            for at in AT:
                mx, my = p[0] + at * (q[0] - p[0]), p[1] + at * (q[1] - p[1])
                d = GAP + support + away
                c = (mx + side * d * nx_, my + side * d * ny_)
                box = text_box(*c, label, LABEL_SIZE)
                cost = sum(boxes_overlap(box, o, 2.0) for o in obstacles)
                cost += sum(segment_hits_box(a, b, box) for a, b in others + mine)
                near = min(point_segment_distance(c, a, b) for a, b in mine)
                cost += sum(point_segment_distance(c, a, b) <= near + 4.0 for a, b in others)
                if cost == 0:
                    return c, box, True
                if cost < best_cost:
                    best, best_cost = (c, box, False), cost
    return best


def node_box(attrs: dict, x: float, y: float) -> tuple[float, float, float, float]:
    """A drawn node's box in points, centred at (x, y)."""
    kind = attrs["kind"]
    if kind in ("input", "output", "const", "link in", "link out"):
        return text_box(x, y, str(attrs["label"]), 16.0)
    if kind in ("fork", "bend"):
        return x - 3, y - 3, x + 3, y + 3
    if kind == "unbroadcast":
        return x - 12, y - 12, x + 12, y + 12
    r = _gate_size(attrs["label"]) * POINTS / 2
    h = 18.0 if len(attrs["label"]) > 6 else r  # an ellipse 0.5 inches high, or a circle
    return x - r, y - h, x + r, y + h


def new_canvas(style: Style) -> tuple[graphviz.Digraph, Theme]:
    """An empty drawing for `neato` and its colours, on the style's background. Every node drawn
    on it is pinned, so neato's stress solver (O(nodes^2) time and memory) is given no
    iterations: maxiter 0."""
    if isinstance(style, str):
        style = Style(theme=style)
    canvas = graphviz.Digraph(
        "circuit",
        engine="neato",
        graph_attr={"bgcolor": style.paper, "splines": "line", "outputorder": "edgesfirst",
                    "pad": "0.3", "notranslate": "true", "maxiter": "0"},
    )  # fmt: skip
    return canvas, style.colours


KIND_CLASS = {"gate": "gate", "input": "input", "output": "output", "const": "const",
              "fork": "fork", "bend": "bend", "unbroadcast": "gate unbroadcast",
              "link in": "input link", "link out": "output link"}  # fmt: skip


@dataclass
class Label:
    """A text placed on the drawing: which group it is, where its centre is, what it says."""

    id: str
    kind: str  # value, grad, total, local
    text: str
    centre: tuple[float, float]
    colour: str


@dataclass
class Arrangement:
    """Where everything of a scene goes: node centres, wire paths, labels, and how many labels
    found no place clear of everything (0 for a clean picture)."""

    pos: dict[str, tuple[float, float]]
    paths: list[list[tuple[float, float]]]
    ports: dict[int, tuple[str, tuple[float, float]]]
    labels: list[Label]
    unplaced: int
    box: tuple[float, float, float, float]


# where a gate's local gradients may go, from just below the gate (points right and up)
LOCAL_SPOTS = [(dx, dy) for dy in (0, -16, -32, 16, 40, -48, 60, -64, 80) for dx in (0, -30, 30)]
SPREADS = (1.0, 1.4, 2.0, 2.8)  # room between gates, tried in turn until every label has a place
FIT_SPREADS = (0.45, 0.52, 0.6, 0.67, 0.75, 0.82, 0.9, *SPREADS)
RETRY_NODES = 400  # larger drawings are laid out once


def arrange(
    scene, colours, digits=2, local=None, reveal=None, offset=(0.0, 0.0), prefix="", direction="LR",
    built=None, explain=False, spreads=None,
):  # fmt: skip
    """The arrangement of a scene at `offset`: laid out by `dot`, with more room between gates
    when a label found no clear place (`spreads`, tried in turn; SPREADS, or FIT_SPREADS for a
    picture fitted to a slide, which starts tighter)."""
    best = None
    spreads = spreads or SPREADS
    for spread in spreads if len(scene.nodes) <= RETRY_NODES else spreads[:1]:
        found = _arrange(
            scene, colours, digits, local, reveal, offset, prefix, spread, direction, built, explain
        )
        if best is None or found.unplaced < best.unplaced:
            best = found
        if found.unplaced == 0:
            break
    return best


def _wire_id(scene: Scene, k: int, prefix: str) -> str:
    if scene.wires[k].kind == "end":  # the second piece of a bent wire (see _bends)
        return f"{prefix}w{k - 1}-end"
    return f"{prefix}w{k}"


def _arrange(
    scene, colours, digits, local, reveal, offset, prefix, spread, direction, built, explain
) -> Arrangement:
    laid, routed = _layout(scene, colours, digits, spread, direction)
    pos = {k: (x + offset[0], y + offset[1]) for k, (x, y) in laid.items()}
    routes = {e: [(x + offset[0], y + offset[1]) for x, y in via] for e, via in routed.items()}
    obstacles = [node_box(attrs, *pos[key]) for key, attrs in scene.nodes.items()]
    ports = _ports(scene, pos, direction)
    paths = _paths(scene, pos, routes, ports)
    pieces = [(k, a, b) for k, path in enumerate(paths) for a, b in zip(path, path[1:])]
    segments = [(a, b) for _, a, b in pieces]
    labels, unplaced = [], 0
    for key, attrs in scene.nodes.items():
        if local and local.get(key):
            x, y = pos[key]
            box = text_box(0, 0, local[key], LOCAL_SIZE)
            below = node_box(attrs, x, y)[1] - 4 - (box[3] - box[1]) / 2
            spot = None
            for dx, dy in LOCAL_SPOTS:  # below its gate first, where nothing is
                candidate = text_box(x + dx, below + dy, local[key], LOCAL_SIZE)
                if not any(boxes_overlap(candidate, o, 2.0) for o in obstacles) and not any(
                    segment_hits_box(a, b, candidate) for a, b in segments
                ):
                    spot = (x + dx, below + dy)
                    break
            unplaced += spot is None
            spot = spot or (x, below)
            obstacles.append(text_box(*spot, local[key], LOCAL_SIZE))
            labels.append(Label(f"{prefix}{key}-local", "local", local[key], spot, colours.text))
    for k, w in enumerate(scene.wires):
        shown = reveal is None or w.step <= reveal
        total_shown = reveal is None or (w.step if w.total_step is None else w.total_step) <= reveal
        wire_id = _wire_id(scene, k, prefix)
        mine = {k, k + 1} if k + 1 < len(scene.wires) and scene.wires[k + 1].kind == "end" else {k}
        own = [i for i, (owner, _, _) in enumerate(pieces) if owner in mine]
        made = built is None or w.made <= built
        items = (
            (1, w.value if made else None, colours.value, "value", ""),
            (-1, w.gradient if shown else None, colours.gradient, "grad", "")
            if w.below == "gradient"
            else (-1, w.gradient, TANGENT_COLOURS[colours], "tangent", ""),
            (-1, w.total if total_shown else None, colours.gradient, "total", "Σ "),
        )
        if explain and w.why and w.step == reveal and w.gradient is not None:
            items += ((-1, w.gradient, colours.active, "step", w.why + " = "),)
        for side, item, tint, what, mark in items:
            if item is None:
                continue
            text_ = mark + fmt(item, digits)
            centre, box, clear = place_label(side, text_, obstacles, segments, own, direction)
            unplaced += not clear
            obstacles.append(box)
            tint = tint if _finite(item) else colours.warning
            labels.append(Label(f"{wire_id}-{what}", what, text_, centre, tint))
    xs = [x for box in obstacles for x in (box[0], box[2])]
    ys = [y for box in obstacles for y in (box[1], box[3])]
    return Arrangement(pos, paths, ports, labels, unplaced, (min(xs), min(ys), max(xs), max(ys)))


def draw_scene(
    canvas: graphviz.Digraph,
    colours: Theme,
    scene: Scene,
    digits: int = 2,
    local: dict[str, str] | None = None,
    reveal: int | None = None,
    offset: tuple[float, float] = (0.0, 0.0),
    prefix: str = "",
    direction: str = "LR",
    built: int | None = None,
    explain: bool = False,
    spreads: tuple[float, ...] | None = None,
) -> tuple[float, float, float, float]:
    """Draw a scene onto a canvas at `offset`; returns its bounding box (points). `digits`:
    decimals, or the picture's `Numbers`.

    Every element is an SVG group with a `class` saying what it is (`wire`, `value`, `grad`,
    `total`, `gate`, `input`, `output`, `const`, `fork`, `local`) and an `id`: wire k of the
    panel is `<prefix>w<k>` (its further pieces, where it bends, `<prefix>w<k>-...`; a wire into
    a gate also has the class `arg<i>`, the argument position it feeds), its labels
    `<prefix>w<k>-value` and `<prefix>w<k>-grad` (a stem's total: `<prefix>w<k>-total`), node
    key's `<prefix><key>`, its local gradients `<prefix><key>-local`.

    `reveal` shows the gradients of wires up to that backward step only (-1: none, 0: the
    seed), and marks the gate of that step as the active one; `explain` writes that gate's
    computation on each of its input wires (class `step`); `built` shows the values of the first
    gates only (forward order; 0: the inputs').
    """
    done = arrange(
        scene, colours, digits, local, reveal, offset, prefix, direction, built, explain, spreads
    )
    active = next((k for k, s in scene.steps.items() if s == reveal), None)

    def pinned(x, y):
        return f"{x / POINTS:.3f},{y / POINTS:.3f}!"

    for key, attrs in scene.nodes.items():
        node = _node_attrs(attrs, colours)
        if key == active:
            node.update(color=colours.active, penwidth="2.6", fontcolor=colours.active)
        node["class"] = KIND_CLASS[attrs["kind"]]
        canvas.node(prefix + key, pos=pinned(*done.pos[key]), id=prefix + key, **node)
    for k, w in enumerate(scene.wires):
        shown = reveal is None or w.step <= reveal
        carried = (w.value, w.gradient if shown else None, w.total if shown else None)
        broken = any(v is not None and not _finite(v) for v in carried)
        wire_id = _wire_id(scene, k, prefix)
        style = dict(
            color=colours.warning if broken else colours.line, penwidth="2.8" if broken else "1.4",
            arrowsize="0.7", style="dashed" if broken else "solid",
            **{"class": "wire" if w.gate is None else f"wire arg{w.position}"},
        )  # fmt: skip
        ends = [prefix + w.tail]
        for j, (x, y) in enumerate(done.paths[k][1:-1], start=1):  # a detour: pinned points
            ends.append(f"{wire_id}_via{j}")
            canvas.node(ends[-1], label="", shape="point", width="0", style="invis",
                        pos=pinned(x, y), id=f"{wire_id}-point{j}")  # fmt: skip
        ends.append(prefix + w.head)
        for j, (a, b) in enumerate(zip(ends, ends[1:])):
            last = j == len(ends) - 2
            canvas.edge(
                a, b, id=wire_id if j == 0 else f"{wire_id}-via{j}",
                arrowhead="normal" if w.arrow and last else "none",
                **({"headport": done.ports[k][0]} if k in done.ports and last else {}), **style,
            )  # fmt: skip
    for label in done.labels:
        if label.kind == "local":
            canvas.node(
                label.id.replace("-local", "_local"), label=lines(label.text), shape="plaintext",
                fontname=FONT,
                fontsize=f"{LOCAL_SIZE:g}", fontcolor=label.colour, pos=pinned(*label.centre),
                id=label.id, margin="0", width="0", height="0", **{"class": "local"},
            )  # fmt: skip
            continue
        canvas.node(
            label.id.rsplit("-", 1)[0] + label.kind[0], label=lines(label.text), shape="plaintext",
            fontsize=f"{LABEL_SIZE:g}",
            fontname=FONT + ("-Bold" if label.kind in ("total", "step") else ""),
            margin="0", width="0", height="0", fontcolor=label.colour, pos=pinned(*label.centre),
            id=label.id, **{"class": label.kind},
        )  # fmt: skip
    return done.box


def _ports(scene: Scene, pos: dict, direction: str = "LR") -> dict:
    """Where the wires of a gate whose argument order matters enter it, when `dot` drew its
    argument 0 coming from below (TB: right of) argument 1: wire index -> (head port, the point
    it ends at). Argument 0 then enters the upper left of the circle (TB: its top left),
    argument 1 the lower left (TB: top right)."""
    into: dict[str, list[tuple[int, int]]] = {}
    for k, w in enumerate(scene.wires):
        if scene.nodes[w.head].get("ordered") and w.kind != "stem":
            into.setdefault(w.head, []).append((w.position, k))
    ports = {}
    across = direction == "LR"
    for head, wires in into.items():
        wires.sort()
        if len(wires) < 2:
            continue
        tails = [pos[scene.wires[k].tail][1 if across else 0] for _, k in wires]
        in_order = (a >= b if across else a <= b for a, b in zip(tails, tails[1:]))
        if all(in_order):
            continue  # already in argument order (y grows upwards)
        (x, y) = pos[head]
        x0, y0, x1, y1 = node_box(scene.nodes[head], x, y)
        # Graphviz's compass points of a circle or ellipse: a corner's is where the ray from its
        # centre at 45 degrees meets it, (t, t) with t = ab / sqrt(a² + b²), a side's the middle
        a, b = (x1 - x0) / 2, (y1 - y0) / 2
        r = s = a * b / math.hypot(a, b)
        entries = (
            (("nw", (-r, s)), ("sw", (-r, -s)), ("w", (-a, 0.0)))
            if across
            else (("nw", (-r, s)), ("ne", (r, s)), ("n", (0.0, b)))
        )
        for (_, k), (port, (dx, dy)) in zip(wires, entries):
            ports[k] = (port, (x + dx, y + dy))
    return ports


@dataclass
class Panel:
    """One circuit to draw: its scene, and how to show it."""

    scene: Scene
    title: str | None = None
    local: dict[str, str] | None = None
    reveal: int | None = None  # backward steps shown (None: all, -1: none, 0: the seed alone)
    built: int | None = None  # forward: gates shown (None: all)
    explain: bool = False  # write the revealed gate's computation on its input wires


def function_panel(
    f, inputs: dict, digits=2, show_local: bool = False, reveal=None, title=None
) -> Panel:
    """The panel of a `graphc.Function` `f`: its structure alone for no `inputs`, else the
    values and gradients its generated code computes at `inputs` (by name) on every wire.
    `digits`: decimals, or a `Style`."""
    from ..passes.autodiff import gate_local_gradients

    numbers = digits.numbers() if isinstance(digits, Style) else Numbers(digits)
    graph = f.graph
    if not inputs:
        output_name = graph.nodes[graph.graph["output"]].get("hint", "out")
        scene = build_scene(graph, output_name=output_name)
    else:
        compiled, values = f.values_for(**inputs)
        program = compiled.program
        scene = build_scene(
            graph, values, program.graph.graph["wires"], program.seed,
            program.names.get(program.output, "out"), numbers,
            program.graph.graph["gradient_of"],
        )  # fmt: skip
        why = computations(
            graph, gate_local_gradients, values, program.graph.graph["gradient_of"],
            numbers.number,
        )  # fmt: skip
        for w in scene.wires:
            if w.gate is not None and w.kind != "end" and not w.head.startswith("u"):
                w.why = why.get((w.gate, w.position))
    local = local_texts(graph, gate_local_gradients) if show_local else None
    return Panel(scene, title, local, reveal)


def steps(
    f, inputs: dict, digits=2, show_local: bool = False, theme: str = "light", style=None,
    forward: bool = False,
) -> list[str]:  # fmt: skip
    """SVG frames for a slide build-up of `f` at `inputs`, as a lecturer builds the slide:
    (with `forward`, the forward pass one gate more per frame, then) the forward values; the
    seed, the output's gradient 1 alone; one frame per gate in backward order, every gate
    including the last, the gate highlighted and its computation written for each input wire
    ("upstream × local = gradient"); and the full picture."""
    return [
        svg_text(p) for p in step_pictures(f, inputs, digits, show_local, theme, style, forward)
    ]


def step_pictures(
    f, inputs: dict, digits=2, show_local: bool = False, theme: str = "light", style=None,
    forward: bool = False,
) -> list[graphviz.Digraph]:  # fmt: skip
    """The frames of `steps` as graphviz.Digraphs (to write as PDF or PNG)."""
    style = style or Style(digits=digits, theme=theme)
    gates = sum(1 for _, op in f.graph.nodes(data="op") if op not in ("input", "const"))
    panel = function_panel(f, inputs, style, show_local)
    panels = [replace(panel, reveal=-1, built=shown) for shown in range(gates if forward else 0)]
    panels.append(replace(panel, reveal=-1))  # the forward values
    panels.append(replace(panel, reveal=0))  # the seed
    panels += [replace(panel, reveal=k, explain=True) for k in range(1, gates + 1)]
    panels.append(panel)  # the full picture
    return [_sized(picture([p], style), style) for p in panels]


def _sized(canvas: graphviz.Digraph, style: Style) -> graphviz.Digraph:
    if style.fit is not None:
        width, height = FITS[style.fit]
        canvas.graph_attr["size"] = f"{width / POINTS:.3f},{height / POINTS:.3f}!"
    return canvas


def fitted(
    f, inputs: dict, style: Style, show_local: bool = False, wrap: bool = True
) -> graphviz.Digraph:
    """`f`'s picture in `style`; fitted to a slide when `style.fit` says which: drawn in the
    direction (LR or TB) whose scaled text is the larger, and above FIT_GATES gates the circuit
    fused (`f.fused()`: affine, softmax cross-entropy, ... as one gate each; where that leaves
    too many, level "elementwise"), the title saying so; wrapped onto rows (or columns) linked
    by letters where one piece would read too small. `wrap=False` keeps one piece (the
    explorer's page, which scrolls instead)."""
    if style.fit is None:
        return picture([function_panel(f, inputs, style, show_local)], style)
    title = None
    gates = sum(1 for _, op in f.graph.nodes(data="op") if op not in ("input", "const"))
    if gates > FIT_GATES:
        for level in ("patterns", "elementwise"):  # named regions first, then every run
            fused = f.fused(level=level)
            now = sum(1 for _, op in fused.graph.nodes(data="op") if op not in ("input", "const"))
            if now <= FIT_GATES:
                break
        title = "\n".join(
            [
                f"fused to fit the slide: {gates} gates drawn as {now}",
                *collapsed(f.graph, fused.graph),
            ]
        )
        f = fused
    panel = function_panel(f, inputs, style, show_local, title=title)
    found: list[tuple[int, float, graphviz.Digraph]] = []  # (pieces, smallest text, picture)
    for direction in DIRECTIONS:  # rows drawn left to right, one under the other, or columns
        trial = replace(style, direction=direction)
        stack = "vertical" if direction == "LR" else "horizontal"
        laid, _ = _layout(panel.scene, trial.colours, trial.numbers(), 1.0, direction)
        along = {k: (x if direction == "LR" else -y) for k, (x, y) in laid.items()}
        for parts in range(1, (MAX_PARTS if wrap else 1) + 1):  # wrap=False: one piece
            pieces = wrapped(panel.scene, parts, along)
            if parts > 1 and len(pieces) < parts:
                break  # fewer ranks than pieces
            panels = [replace(panel, scene=s, title=title if not i else None)
                      for i, s in enumerate(pieces)]  # fmt: skip
            canvas = picture(panels, trial, stack=stack)
            found.append((parts, smallest_text(canvas, style.fit), canvas))
    # the fewest rows (or columns) whose smallest text reads well; else the largest text
    found.sort(key=lambda t: t[0])  # stable: left to right before top to bottom
    for parts, size, canvas in found:
        best = max(s for p, s, _ in found if p == parts)
        if best >= COMFORTABLE_PX and size == best:
            return _sized(canvas, style)
    top = max(s for _, s, _ in found)
    return _sized(next(c for _, s, c in found if s > top - 0.05), style)


MAX_PARTS = 5  # a fitted picture is wrapped onto at most this many rows (or columns)
COMFORTABLE_PX = 16.0  # text this large on the slide needs no wrapping to grow
FIT_GATES = 30  # above this many gates a fitted picture is drawn fused


def collapsed(original: nx.DiGraph, fused: nx.DiGraph) -> list[str]:
    """What each fused gate of `fused` stands for in `original`, one line per kind of region:
    "affine: 2 gates (@, +)", "mul_add_tanh ×12: 3 gates each (*, +, tanh)". A fused gate
    remembers the node it replaced (`at`); its region is the gates of `original` it reaches
    backwards from there without passing the gate's own inputs."""
    kinds: dict[tuple[str, tuple[str, ...]], int] = {}
    for n in topo_order(fused):
        data = fused.nodes[n]
        if data["op"] in ("input", "const") or "at" not in data or n in original:
            continue
        stop = {fused.nodes[a].get("at", a) if a not in original else a for a in args_of(fused, n)}
        region, todo = set(), [data["at"]]
        while todo:
            m = todo.pop()
            if m in region or m in stop or original.nodes[m]["op"] in ("input", "const"):
                continue
            region.add(m)
            todo.extend(original.predecessors(m))
        if len(region) < 2:
            continue
        ops = [_gate_label(original, m) for m in topo_order(original) if m in region]
        kind = (data.get("gate") or data["op"].replace("_", " "), tuple(ops))
        kinds[kind] = kinds.get(kind, 0) + 1
    return [
        f"{name}{f' ×{k}' if k > 1 else ''}: {len(ops)} gates{' each' if k > 1 else ''} "
        f"({', '.join(ops)})"
        for (name, ops), k in kinds.items()
    ]


def _title_room(title: str) -> float:
    """The height (points) a panel's title takes above it, 20 a line."""
    return 20.0 * (title.count("\n") + 1) + 20.0


def smallest_text(canvas: graphviz.Digraph, fit: str) -> float:
    """The smallest text's height in pixels when the picture is scaled into the slide frame."""
    width, height = FITS[fit]
    x0, y0, x1, y1 = canvas.box
    pad = 2 * 0.3 * POINTS
    scale = min(width / (x1 - x0 + pad), height / (y1 - y0 + pad))
    return scale * min(LABEL_SIZE, LOCAL_SIZE)


def picture(panels: list[Panel], theme="light", digits: int = 2, table=None, stack="horizontal"):
    """Panels drawn side by side (`stack` "horizontal") or one under the other ("vertical") on
    one canvas, with an optional table (rows of cells) below. `theme`: a theme's name, or the
    picture's `Style` (then `digits` is the style's)."""
    style = theme if isinstance(theme, Style) else Style(digits=digits, theme=theme)
    if stack not in ("horizontal", "vertical"):
        raise GraphcError(f"stack={stack!r}: use 'horizontal', 'vertical' or 'auto'")
    canvas, colours = new_canvas(style)
    spreads = FIT_SPREADS if style.fit is not None else None
    numbers = style.numbers(1e-12 * max((largest(p.scene) for p in panels), default=0.0))
    x0, y0, bottom, right, left, top = 0.0, 0.0, math.inf, 0.0, math.inf, -math.inf
    for i, panel in enumerate(panels):
        if stack == "vertical" and i:  # this panel's top 80 points under the one above
            own = arrange(
                panel.scene,
                colours,
                numbers,
                panel.local,
                panel.reveal,
                direction=style.direction,
                built=panel.built,
                explain=panel.explain,
                spreads=spreads,
            )
            y0 = (
                bottom
                - (40.0 if spreads else 80.0)
                - (own.box[3] + (_title_room(panel.title) + 10 if panel.title else 0))
            )
        box = draw_scene(
            canvas, colours, panel.scene, numbers, panel.local, panel.reveal, (x0, y0),
            f"p{i}_", style.direction, panel.built, panel.explain, spreads,
        )  # fmt: skip
        if panel.title:
            canvas.node(
                f"p{i}_title", label=lines(panel.title), shape="plaintext", fontname=FONT,
                fontsize="16", fontcolor=colours.text, id=f"p{i}_title", **{"class": "title"},
                pos=f"{(box[0] + box[2]) / 2 / POINTS:.3f},"
                f"{(box[3] + 10 + _title_room(panel.title) / 2) / POINTS:.3f}!",
            )  # fmt: skip
        bottom, right = min(bottom, box[1]), max(right, box[2])
        left, top = (
            min(left, box[0]),
            max(top, box[3] + (_title_room(panel.title) + 10 if panel.title else 0)),
        )
        if stack == "horizontal":
            x0 = box[2] + 150.0
    if table:
        canvas.node(
            "table", label=_html_table(table, colours), shape="plaintext", fontname=FONT,
            pos=f"{right / 2 / POINTS:.3f},{(bottom - 60 - 9 * len(table)) / POINTS:.3f}!",
        )  # fmt: skip
        bottom -= 120 + 18 * len(table)
    canvas.box = (left, bottom, right, top)  # points: what `fitted` scales into a slide
    return canvas


def _html_table(rows, colours: Theme) -> str:
    cells = []
    for r, row in enumerate(rows):
        inner = ""
        for c, v in enumerate(row):
            cell = text.markup(v) or "&#160;"
            cell = f"<B>{cell}</B>" if r == 0 else cell
            inner += f'<TD ALIGN="{"LEFT" if c == 0 else "RIGHT"}">{cell}</TD>'
        cells.append(f"<TR>{inner}</TR>")
    return (
        f'<<FONT COLOR="{colours.text}" POINT-SIZE="12"><TABLE BORDER="0" CELLBORDER="1" '
        f'CELLSPACING="0" CELLPADDING="4" COLOR="{colours.line}">{"".join(cells)}</TABLE></FONT>>'
    )


# ---------------------------------------------------------------- files


def pipe(picture: graphviz.Digraph, fmt_: str = "svg") -> bytes:
    """The drawing rendered by Graphviz in format `fmt_` (svg, pdf, png)."""
    try:
        return picture.pipe(format=fmt_)
    except graphviz.ExecutableNotFound:
        raise GraphcError(
            "drawing needs Graphviz's `dot` program; install it (Debian: apt-get install graphviz)"
        ) from None
    except graphviz.CalledProcessError as e:
        detail = (e.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        raise GraphcError(f"Graphviz could not draw this: {detail[0] if detail else e}") from None


def svg_text(picture: graphviz.Digraph) -> str:
    return pipe(picture, "svg").decode("utf-8")
