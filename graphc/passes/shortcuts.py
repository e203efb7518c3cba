"""Print-time shortcuts: the generated module computes the same values in fewer passes.

Stage: passes (`Program` -> `Shortcuts`), read by `emit.codegen.emit_module` alone. Imports
the `ir` and `schedule`. The values module behind drawings and checks still runs
every step, so each wire keeps its number; the shortcuts only change how the module spells them.

Two of them let a scalar stand for an array of its copies: `value_and_grad` seeds backward with
a 0-d one, and a scalar that `broadcast_to` would spread is read as it is. One rule decides both
(see "Narrow values" below): a value computed with fewer entries than its shape is exact only in
elementwise steps, where NumPy broadcasts it; it must never reach a step that reads it as whole
(a sum, reshape, transpose, matmul, in-place mask, copy, np.vdot or backward's return).

- `value_and_grad` passes `dout = 1` as a 0-d NumPy number where no narrow value then reaches a
  step that reads it as whole: no array of ones to allocate and multiply by.
- A full sum of a product, `sum(x * y)` with x and y of one shape, is `np.vdot(x, y)`: one pass,
  no temporary (the regulariser's `sum(W * W)` made and kept a W-sized array).
- A scalar spread by `np.broadcast_to` and read only by elementwise steps whose other operands
  give them their shape (as computed: with a 0-d seed, `dout * mean` is a scalar) is read as the
  scalar: `dW = 2 * dreg * W` is one pass over W, where
  `2 * np.broadcast_to(dreg, W.shape) * W` first made a W-sized array of copies of `2 * dreg`.
- Backward's statements keep the sweep's order, the exact reverse of forward's: a gradient
  only summed into later (`dW = 2 * dreg * W` ... `dW = dW + X.T @ dh`) is not moved down to
  the sum, though that would hold it for less time, so the code reads as the lecture's sweep.
- A mask applied to a gradient nothing reads again works in that gradient's own array
  (`dx = dh` then `dx *= h > 0`, as the lecture's `dhidden[hidden <= 0] = 0`), where the array
  is a fresh result of backward itself: never an input, a cached value, a view or a returned one.
  Multiplying by booleans keeps the array's dtype, so the in-place product is the same.
- In float64, a tall weight gradient `X.T @ dh` is computed as `(dh.T @ X).T`: OpenBLAS's dgemm
  is much slower at a tall C-ordered product than at the wide one (measured here, one thread:
  (3072, 100) from K=256 took 6.0 ms, its transpose 4.0 ms; float32 shows no difference, so it
  keeps the plain product). A gradient summed into it is added before transposing back,
  `dW = (dh.T @ X + dW.T).T`, so NumPy adds in place into the product's own array.
- relu's backward reads its mask `x > 0` as `out > 0` (the same booleans, NaN included) when
  `out` is cached anyway: x then leaves the forward cache, as in hand-written code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import sympy

from ..ir.errors import GraphcError
from ..ir.graph import args_of
from ..ir.ops import ARGS, TENSOR, gate_of
from ..ir.shapes import real_size
from ..ir.tensor import broadcast_shapes
from .schedule import Program


@dataclass
class Shortcuts:
    """What `emit_module` prints differently, by node id."""

    dots: dict[int, tuple[int, int]] = field(default_factory=dict)  # sum -> (x, y) of x * y
    scalars: dict[int, int] = field(default_factory=dict)  # broadcast -> the scalar it spreads
    skipped: set[int] = field(default_factory=set)  # statements folded into their readers
    rereads: dict[tuple[int, int], int] = field(default_factory=dict)  # (step, x) -> read instead
    cache: list[int] = field(default_factory=list)  # the forward cache backward still reads
    backward: list[int] = field(default_factory=list)  # backward's statements, in print order
    masked: dict[int, tuple[int, sympy.Expr]] = field(default_factory=dict)  # step -> (g, mask)
    transposed: dict[int, tuple[int, int]] = field(default_factory=dict)  # X.T @ dh -> (X, dh)
    summed_transposed: dict[int, tuple[int, int]] = field(default_factory=dict)  # add -> (dW, mm)
    scalar_seed: bool = False  # value_and_grad seeds backward with a 0-d one, not ones_like(out)


# dgemm's slow shape: a product at least this many times taller than wide (see the docstring),
# with at least this many entries (a small product is not worth a less plain spelling)
TALL = 8
TALL_SIZE = 2**16


# Gates whose output is positive exactly where their argument is: a mask `x > 0` of the argument
# is the mask `out > 0` of the output.
SAME_POSITIVES = ("relu",)


def shortcuts(program: Program, dtype: str = "float64") -> Shortcuts:
    """The shortcuts that keep every value the generated module returns or caches the same.

    `dtype` is the generated module's output type (the widest of its inputs').
    """
    g = program.graph
    statements = [*program.forward, *program.backward]
    kept = {program.output, *program.grads, *program.cache}
    plan = Shortcuts()
    narrow = narrow_shapes(program, ())  # with a 0-d seed, where nothing reads one as whole
    plan.scalar_seed = next(whole_reads(program, narrow), None) is None
    if not plan.scalar_seed:
        narrow = {}
    sums = [s for s in statements if g.nodes[s]["op"] == "sum"]
    named_reads = {s: readers_of(g, s, program.inline) for s in statements} if sums else {}
    readers: dict[int, list[int]] = {}
    for s in named_reads:
        for a in sorted(named_reads[s]):
            readers.setdefault(a, []).append(s)
    for s in sums:
        product = _product_summed(g, s, program)
        if product is None or any(a in narrow for a in args_of(g, product)):
            continue  # np.vdot reads both operands as whole
        if readers.get(product) == [s] and product not in kept:
            plan.dots[s] = tuple(args_of(g, product))
            plan.skipped.add(product)
    printed = (set(statements) | program.inline) - plan.skipped
    for s in sorted(printed):
        if s in kept or not _spreads_a_scalar(g, s):
            continue
        users = list(g.successors(s))
        spread = {s, *plan.scalars}  # a step may read two of them: one must keep its shape
        if users and all(u in printed and _broadcasts_anyway(g, u, spread, narrow) for u in users):
            plan.scalars[s] = args_of(g, s)[0]
            narrow[s] = ()
            if s not in program.inline:
                plan.skipped.add(s)
    for s in program.backward:
        swap = _mask_from_output(g, s, program.cache)
        if swap is not None:
            plan.rereads[(s, swap[0])] = swap[1]
    plan.cache = list(program.cache)  # backward reads all of it, unless a shortcut skips some
    if plan.skipped or plan.rereads:
        read = set()
        for s in program.backward:
            if s not in plan.skipped:
                reading = named_reads.get(s) or readers_of(g, s, program.inline)
                read |= {plan.rereads.get((s, a), a) for a in reading}
        plan.cache = [n for n in program.cache if n in read]
    reads = {s: _values_read(program, plan, s) for s in program.backward if s not in plan.skipped}
    plan.backward = [s for s in program.backward if s not in plan.skipped]  # the sweep's order
    if dtype == "float64":
        _transpose_tall_products(program, plan, narrow)
    users = None
    for s in plan.backward:
        found = _mask_of(g, s)
        if found is None or found[0] in kept or found[0] in narrow:  # *= reads its array whole
            continue
        target, mask = found
        users = _users(plan.backward, reads) if users is None else users
        if _fresh(g, target, program) and users.get(target) == [s]:
            plan.masked[s] = found
    _check_narrow_values(program, plan)
    return plan


# Backward steps whose result is a new array of their own (a view or an alias is not)
FRESH_OPS = ("matmul", "route_to_max", "softmax_cross_entropy_grad")


def _fresh(g: nx.DiGraph, n: int, program: Program) -> bool:
    """Whether backward statement `n` makes a new array nothing else holds."""
    data = g.nodes[n]
    if n not in program.backward or n == program.seed or data.get("copy") is not None:
        return False
    if data["op"] == "expr":
        return not data["formula"].is_Symbol and data["shape"] != ()
    return data["op"] in FRESH_OPS and data["shape"] != ()


def _mask_of(g: nx.DiGraph, s: int) -> tuple[int, sympy.Expr] | None:
    """(g, mask) when step `s` computes g * mask, mask a 0/1 indicator of g's shape or smaller."""
    data = g.nodes[s]
    formula = data["formula"] if data["op"] == "expr" else None
    if formula is None or not formula.is_Mul or len(formula.args) != 2:
        return None
    args = args_of(g, s)
    for k, factor in enumerate(formula.args):
        mask = formula.args[1 - k]
        if factor not in ARGS[: len(args)] or factor in mask.free_symbols:
            continue
        target = args[ARGS.index(factor)]
        indicator = isinstance(mask, sympy.Piecewise) and len(mask.args) == 2
        if (
            indicator
            and (mask.args[0].expr, mask.args[1].expr, mask.args[1].cond) == (1, 0, sympy.true)
            and g.nodes[target]["shape"] == data["shape"]
        ):
            return target, mask
    return None


def _users(order: list[int], reads: dict[int, set[int]]) -> dict[int, list[int]]:
    """The statements that read each value, in order."""
    users: dict[int, list[int]] = {}
    for r in order:
        for a in reads[r]:
            users.setdefault(a, []).append(r)
    return users


def _values_read(program: Program, plan: Shortcuts, s: int) -> set[int]:
    """The named values statement `s` reads as printed (through inlining and the shortcuts)."""
    g = program.graph
    out: set[int] = set()
    stack = [plan.rereads.get((s, a), a) for a in args_of(g, s)]
    while stack:
        a = stack.pop()
        if a in plan.scalars:
            stack.append(plan.scalars[a])
        elif a in program.inline:
            stack.extend(args_of(g, a))
        elif a in program.names:
            out.add(a)
    return out


def _product_summed(g: nx.DiGraph, s: int, program: Program) -> int | None:
    """The `mul` statement that statement `s` sums over all axes, if its operands match."""
    data = g.nodes[s]
    params = data.get("params", {})
    if data["op"] != "sum" or params.get("axis") is not None or params.get("keepdims"):
        return None
    (m,) = args_of(g, s)
    if g.nodes[m]["op"] != "mul" or m in program.inline or not g.nodes[m]["shape"]:
        return None
    shape = g.nodes[m]["shape"]
    if any(g.nodes[a]["shape"] != shape for a in args_of(g, m)):
        return None  # a broadcast operand: vdot would not see the same pairs
    return m


def _spreads_a_scalar(g: nx.DiGraph, s: int) -> bool:
    data = g.nodes[s]
    return data["op"] == "broadcast_to" and g.nodes[args_of(g, s)[0]]["shape"] == ()


def _broadcasts_anyway(g: nx.DiGraph, u: int, spread: set[int], narrow: dict) -> bool:
    """Whether elementwise step `u` is computed with the same shape without its broadcast
    operands (`narrow`: the shapes of values computed narrower than their own)."""
    data = g.nodes[u]
    if not _elementwise(data) or data.get("copy"):
        return False
    others = [narrow.get(a, g.nodes[a]["shape"]) for a in args_of(g, u) if a not in spread]
    return bool(others) and broadcast_shapes(*others) == narrow.get(u, data["shape"])


def _mask_from_output(g: nx.DiGraph, s: int, cache: list[int]) -> tuple[int, int] | None:
    """(x, out) when backward step `s` reads x only as `x > 0`, out = relu(x) being cached."""
    data = g.nodes[s]
    gate = data.get("grad_gate")
    if data["op"] != "expr" or gate is None or g.nodes[gate]["op"] not in SAME_POSITIVES:
        return None
    (x,) = args_of(g, gate)
    args = args_of(g, s)
    if gate not in cache or x not in args or gate in args:
        return None
    slot = ARGS[args.index(x)]
    masked = data["formula"].xreplace({sympy.StrictGreaterThan(slot, 0): sympy.Dummy()})
    return (x, gate) if slot not in masked.free_symbols else None


def _transpose_tall_products(program: Program, plan: Shortcuts, narrow: dict) -> None:
    """Mark each backward `X.T @ dh` of a tall result, and a fork that sums one into a gradient
    (`dW.T` in `(dh.T @ X + dW.T).T` reads dW as whole)."""
    g = program.graph
    for m in sorted(set(program.backward) | program.inline):
        found = _tall_transposed_product(g, m, program)
        if found is None:
            continue
        plan.transposed[m] = found
    for n in program.backward:
        data = g.nodes[n]
        if (
            not plan.transposed
            or data["op"] != "add"
            or not data.get("comment", "").startswith("fork")
        ):
            continue
        prev, m = args_of(g, n)
        full = g.nodes[prev]["shape"] == data["shape"] and prev not in narrow
        if m in plan.transposed and m in program.inline and full:
            plan.summed_transposed[n] = (prev, m)


def _tall_transposed_product(g: nx.DiGraph, m: int, program: Program) -> tuple[int, int] | None:
    """(X, dh) when node m is X.T @ dh of 2-d matrices, at least TALL times taller than wide."""
    data = g.nodes[m]
    if data["op"] != "matmul" or len(data["shape"]) != 2 or data.get("role") != "grad":
        return None
    rows, cols = data["shape"]
    a, b = args_of(g, m)
    view = g.nodes[a]
    if view["op"] != "transpose" or a not in program.inline or len(view["shape"]) != 2:
        return None
    if view.get("params", {}).get("axes") not in (None, (1, 0)) or len(g.nodes[b]["shape"]) != 2:
        return None
    big = real_size(rows) * real_size(cols) >= TALL_SIZE  # probes keep ratios, not products
    return (args_of(g, a)[0], b) if rows >= TALL * cols and big else None


def readers_of(g: nx.DiGraph, s: int, inline: set[int]) -> set[int]:
    """The named values statement `s` reads, looking through inlined expressions."""
    out, stack = set(), list(args_of(g, s))
    while stack:
        a = stack.pop()
        if a in inline:
            stack.extend(args_of(g, a))
        else:
            out.add(a)
    return out


# ---------------------------------------------------------------- narrow values
# A value computed with fewer entries than its shape stands for the array of its copies: the 0-d
# seed `dout = 1`, a scalar a spread step leaves unspread, and every elementwise step computed
# from them that nothing else gives its full shape (`dout * mean` is a scalar). NumPy's
# broadcasting makes that exact in elementwise steps. Every other step reads a value as whole:
# a tensor gate (sum, sum_to, reshape, transpose, matmul, broadcast_to, ...) works on the entries
# it has (np.sum of the scalar `dh` is not the sum over its broadcast shape), np.vdot and an
# in-place mask need both shapes equal, np.copy keeps the scalar a scalar, and `backward` returns
# each gradient with its input's shape. A narrow value must never reach one of them.


def _elementwise(data: dict) -> bool:
    gate = gate_of(data["op"])
    return gate is not None and gate.kind != TENSOR  # "expr" is an elementwise row too


def narrow_shapes(program: Program, seed_shape: tuple, spread=()) -> dict[int, tuple]:
    """The shape each value is computed with, where that is narrower than its own, when backward
    is seeded with an array of `seed_shape` and the steps `spread` are read as their scalar."""
    g = program.graph
    narrow = {n: () for n in spread}
    if seed_shape != g.nodes[program.seed]["shape"]:
        narrow[program.seed] = tuple(seed_shape)
    if not narrow:
        return narrow
    for n in program.order:
        data = g.nodes[n]
        if n in narrow or not _elementwise(data) or not any(a in narrow for a in g._pred[n]):
            continue
        shapes = [narrow.get(a, g.nodes[a]["shape"]) for a in args_of(g, n)]
        if not shapes or any(s != shapes[0] for s in shapes):
            computed = broadcast_shapes(*shapes) if shapes else data["shape"]
        else:  # the common case: nothing else broadcasts here
            computed = shapes[0]
        if computed != data["shape"]:
            narrow[n] = computed
    return narrow


def whole_reads(program: Program, narrow: dict, plan: Shortcuts | None = None):
    """Each place where the module would read a narrow value as whole (see above), `plan`'s
    np.vdot sums, in-place masks and transposed sums included: nothing where all is right."""
    if not narrow:
        return
    g, plan = program.graph, plan or Shortcuts()
    printed = (set(program.forward) | set(program.backward) | program.inline) - plan.skipped
    for a in narrow:  # in program order
        for r in sorted(g._succ[a]):
            data = g.nodes[r]
            if r in printed and (not _elementwise(data) or data.get("copy")):
                yield f"{data['op']} step {r} reads the narrow value {a} as whole"
    for s, operands in plan.dots.items():
        yield from (f"np.vdot at {s} reads the narrow value {a}" for a in operands if a in narrow)
    for s, (target, _) in plan.masked.items():
        if target in narrow:
            yield f"the in-place mask at {s} works in the narrow value {target}"
    for s, (prev, _) in plan.summed_transposed.items():
        if prev in narrow:
            yield f"the transposed sum at {s} reads the narrow value {prev}"
    for i, n in g.graph["grads"].items():
        if n in narrow:
            yield f"backward returns a narrow value as the gradient of {g.nodes[i]['name']}"


def _check_narrow_values(program: Program, plan: Shortcuts) -> None:
    """The whole plan, checked again from the start: a fault would be a wrong gradient."""
    out_shape = program.graph.nodes[program.output]["shape"]
    narrow = narrow_shapes(program, () if plan.scalar_seed else out_shape, plan.scalars)
    faults = list(whole_reads(program, narrow, plan))
    if faults:
        raise GraphcError(
            "internal error: the generated module would compute a wrong gradient ("
            + "; ".join(faults[:3])
            + "); please report this function to graphc's maintainers"
        )
