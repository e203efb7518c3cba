"""Tensor gates: shape rules, NumPy spellings and vector-Jacobian rules.

Stage: ir (the tensor half of the gate table in `ops.py`). Imports `errors` only.

A vector-Jacobian rule gets a builder `b` (`b.op(name, args, **params)`, `b.const(value)`,
`b.count(node, axes)`, `b.shape(node)`, `b.params(node)`, `b.swap(node)`, `b.column(node)`,
`b.expr(formula, operands)`), the gate's node, its argument nodes and the upstream gradient node;
it returns one gradient node per argument (None where no gradient flows). Results may have
broadcast shapes: the backward pass sums them back to each argument's shape as a step of its
own. No Jacobian is ever formed.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import sympy
from sympy.codegen.cfunctions import expm1

from .errors import GraphError, ShapeError
from .special import ARGS, DOUT, OUT


def broadcast_shapes(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    """NumPy's broadcasting rule on shapes alone, for sizes of any magnitude (the compiler's
    probe sizes, see `shapes.probe_sizes`, are beyond what np.broadcast_shapes can multiply);
    ValueError where the shapes do not broadcast."""
    rank = max(map(len, shapes), default=0)
    out = []
    for k in range(rank):
        sizes = {int(s[len(s) - rank + k]) for s in shapes if len(s) - rank + k >= 0} - {1}
        if len(sizes) > 1:
            raise ValueError(f"shapes {shapes} do not broadcast")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def broadcast_shape(gate: str, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    """NumPy broadcasting, with an error that names the gate and the shapes."""
    try:
        return broadcast_shapes(*shapes)
    except ValueError:
        listed = " and ".join(str(s) for s in shapes)
        raise ShapeError(
            f"gate {gate!r}: shapes {listed} cannot broadcast; make the trailing dimensions equal "
            "or 1 (reshape or transpose one of the arguments)"
        ) from None


def _axes(axis, ndim: int, gate: str) -> tuple[int, ...]:
    """Normalise an `axis` parameter (None, int or tuple) to sorted non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    items = axis if isinstance(axis, tuple) else (axis,)
    out = []
    for a in items:
        if not -ndim <= a < ndim:
            raise ShapeError(
                f"gate {gate!r}: axis {a} is out of range for an input with {ndim} dimensions; "
                f"use an axis from {-ndim} to {ndim - 1}"
            )
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ShapeError(f"gate {gate!r}: axis {axis} repeats an axis; name each axis once")
    return tuple(sorted(out))


def _reduce_shape(gate):
    def rule(shapes, p):
        (s,) = shapes
        axes = _axes(p["axis"], len(s), gate)
        if gate == "max" and any(s[a] == 0 for a in axes):
            raise ShapeError(f"gate 'max': cannot take the max over an empty axis of shape {s}")
        if p["keepdims"]:
            return tuple(1 if i in axes else n for i, n in enumerate(s))
        return tuple(n for i, n in enumerate(s) if i not in axes)

    return rule


def _matmul_shape(shapes, p):
    a, b = shapes
    if not a or not b:
        raise ShapeError(
            f"gate 'matmul': cannot multiply shapes {a} and {b}: matmul needs arrays with at least "
            "one dimension; use * for scalars"
        )
    inner_a = a[-1]
    inner_b = b[0] if len(b) == 1 else b[-2]
    if inner_a != inner_b:
        raise ShapeError(
            f"gate 'matmul': cannot multiply shapes {a} and {b}: the inner dimensions "
            f"{inner_a} and {inner_b} differ; transpose or reshape one side so they match"
        )
    if len(a) == 1 and len(b) == 1:
        return ()
    if len(a) == 1:
        return b[:-2] + b[-1:]
    if len(b) == 1:
        return a[:-1]
    batch = broadcast_shape("matmul", [a[:-2], b[:-2]])
    return batch + (a[-2], b[-1])


def _transpose_shape(shapes, p):
    (s,) = shapes
    axes = p["axes"]
    if axes is None:
        return s[::-1]
    if sorted(a % max(len(s), 1) for a in axes) != list(range(len(s))) or len(axes) != len(s):
        raise ShapeError(
            f"gate 'transpose': axes {axes} are not a permutation of the {len(s)} axes of shape {s}"
        )
    return tuple(s[a] for a in axes)


def _reshape_shape(shapes, p):
    (s,) = shapes
    new = p["shape"]
    size = math.prod(s)
    if list(new).count(-1) > 1:
        raise ShapeError(f"gate 'reshape': shape {new} has more than one -1; give all but one size")
    known = math.prod(n for n in new if n != -1)
    if -1 in new:
        if known == 0 or size % known:
            raise ShapeError(f"gate 'reshape': cannot reshape {s} ({size} elements) into {new}")
        new = tuple(size // known if n == -1 else n for n in new)
    if math.prod(new) != size:
        raise ShapeError(
            f"gate 'reshape': cannot reshape {s} ({size} elements) into {new} "
            f"({math.prod(new)} elements); the sizes must match"
        )
    return tuple(new)


def _broadcast_to_shape(shapes, p):
    return tuple(p["shape"])


def _sum_to_shape(shapes, p):
    return tuple(p["shape"])


def _route_shape(shapes, p):
    return shapes[1]


# ---------------------------------------------------------------- NumPy spellings of tensor gates


def _kw(p, *names) -> str:
    parts = []
    for n in names:
        v = p.get(n)
        if n == "axis" and v is not None:
            parts.append(f", axis={v}")
        if n == "keepdims" and v:
            parts.append(", keepdims=True")
    return "".join(parts)


def _spell_reduce(fn):
    return lambda a, shapes, p: f"np.{fn}({a[0]}{_kw(p, 'axis', 'keepdims')})"


def _spell_transpose(a, shapes, p):
    if p["axes"] is None or len(shapes[0]) <= 2 and tuple(p["axes"]) == (1, 0):
        return f"{a[0]}.T"
    return f"np.transpose({a[0]}, {tuple(p['axes'])})"


def _spell_broadcast_to(a, shapes, p):
    x = a[0]
    if tuple(p["shape"]) == tuple(shapes[0]):
        return x
    if p["expand"] and tuple(p["expand"]) != tuple(range(len(p["expand"]))):
        # new leading axes broadcast by themselves; others must be inserted first
        x = f"np.expand_dims({x}, {p['expand'] if len(p['expand']) > 1 else p['expand'][0]})"
    return f"np.broadcast_to({x}, {tuple(p['shape'])})"


def sum_to_axes(src: tuple[int, ...], dst: tuple[int, ...]) -> tuple[tuple[int, ...], bool]:
    """Axes to sum so that a gradient of shape `src` becomes `dst` (undoing broadcasting).

    Returns the axes and whether the result still needs a reshape to `dst`.
    """
    lead = len(src) - len(dst)
    kept = tuple(lead + i for i, n in enumerate(dst) if n == 1 and src[lead + i] != 1)
    return tuple(range(lead)) + kept, bool(kept)


def _spell_sum_to(a, shapes, p):
    src, dst = shapes[0], tuple(p["shape"])
    axes, kept = sum_to_axes(src, dst)
    axis = axes[0] if len(axes) == 1 else axes
    if not axes:
        return a[0]
    if not kept:
        return f"np.sum({a[0]}, axis={axis})" if dst else f"np.sum({a[0]})"
    if len(src) == len(dst):
        return f"np.sum({a[0]}, axis={axis}, keepdims=True)"
    return f"np.sum({a[0]}, axis={axis}).reshape({dst})"


def _spell_reshape(a, shapes, p):
    return f"np.reshape({a[0]}, {tuple(p['shape'])})"


def _spell_route(a, shapes, p):
    return f"route_to_max({a[0]}, {a[1]}, axis={p['axis']}, keepdims={p['keepdims']})"


# ---------------------------------------------------------------- array API spellings
# The same gates in the array API standard, over `xp`, the namespace of the module's inputs
# (`emit.array_api`): `.T` only of a matrix, `permute_dims` otherwise; new axes by `reshape`
# (the standard's `expand_dims` takes one axis); the fused gates' helpers have standard twins.


def _api_reduce(fn):
    return lambda a, shapes, p: f"xp.{fn}({a[0]}{_kw(p, 'axis', 'keepdims')})"


def _api_transpose(a, shapes, p):
    n = len(shapes[0])
    axes = tuple(range(n))[::-1] if p["axes"] is None else tuple(i % n for i in p["axes"])
    if axes == tuple(range(n)):
        return a[0]
    return f"{a[0]}.T" if n == 2 else f"xp.permute_dims({a[0]}, {axes})"


def _api_broadcast_to(a, shapes, p):
    x, shape, expand = a[0], tuple(p["shape"]), tuple(p["expand"])
    if shape == tuple(shapes[0]):
        return x
    if expand and expand != tuple(range(len(expand))):  # new axes inside: inserted first
        dims = iter(shapes[0])
        x = f"xp.reshape({x}, {tuple(1 if i in expand else next(dims) for i in range(len(shape)))})"
    return f"xp.broadcast_to({x}, {shape})"


def _api_sum_to(a, shapes, p):
    src, dst = shapes[0], tuple(p["shape"])
    axes, kept = sum_to_axes(src, dst)
    axis = axes[0] if len(axes) == 1 else axes
    if not axes:
        return a[0]
    if not kept:
        return f"xp.sum({a[0]}, axis={axis})" if dst else f"xp.sum({a[0]})"
    if len(src) == len(dst):
        return f"xp.sum({a[0]}, axis={axis}, keepdims=True)"
    return f"xp.reshape(xp.sum({a[0]}, axis={axis}), {dst})"


def _api_reshape(a, shapes, p):
    return f"xp.reshape({a[0]}, {tuple(p['shape'])})"


def _api_sum_squares(a, shapes, p):
    return f"xp.sum(xp.square({a[0]}){_kw(p, 'axis', 'keepdims')})"


# ---------------------------------------------------------------- vector-Jacobian rules
# Each rule gets a builder `b` (b.op(name, args, **params), b.const(value), b.shape(node)), the
# gate's node, its argument nodes and the upstream gradient node; it returns one gradient node
# per argument (None where no gradient flows). Results may have broadcast shapes: the backward
# pass sums them back to each argument's shape as a step of its own.


def _vjp_matmul(b, node, args, dout):
    x, y = args
    sx, sy = b.shape(x), b.shape(y)
    if len(sx) == 1 and len(sy) == 1:  # dot product x . y: dx = dout * y, dy = dout * x
        return b.op("mul", [dout, y]), b.op("mul", [dout, x])
    if len(sx) == 1 and len(sy) == 2:  # x @ W: dx = W @ dout, dW = outer(x, dout)
        return b.op("matmul", [y, dout]), b.op("mul", [b.column(x), dout])
    if len(sx) == 2 and len(sy) == 1:  # W @ x: dW = outer(dout, x), dx = W.T @ dout
        return b.op("mul", [b.column(dout), y]), b.op("matmul", [b.swap(x), dout])
    if len(sx) == 1:  # x @ Ws, a batch of matrices: x as one row, dout as a batch of rows
        rows = b.op("reshape", [dout], shape=b.shape(dout)[:-1] + (1, sy[-1]))
        b.g.nodes[rows]["comment"] = "matmul backward: dout as one row per matrix"
        return b.op("matmul", [rows, b.swap(y)]), b.op("mul", [b.column(x), rows])
    if len(sy) == 1:  # Ws @ x: dW = outer(dout, x) per matrix, dx = W.T @ dout summed over them
        column = b.column(dout)
        b.g.nodes[column]["comment"] = "matmul backward: dout as one column per matrix"
        return b.op("mul", [column, y]), b.op("mul", [x, column])
    return b.op("matmul", [dout, b.swap(y)]), b.op("matmul", [b.swap(x), dout])


def _vjp_transpose(b, node, args, dout):
    axes = b.params(node)["axes"]
    n = len(b.shape(args[0]))
    if axes is None:
        inverse = None
    else:
        inverse = tuple(sorted(range(n), key=lambda i: axes[i] % n))
    return (b.op("transpose", [dout], axes=inverse),)


def _vjp_reshape(b, node, args, dout):
    return (b.op("reshape", [dout], shape=b.shape(args[0])),)


def _expanded_axes(b, node, args):
    p = b.params(node)
    axes = _axes(p["axis"], len(b.shape(args[0])), b.op_of(node))
    return () if p["keepdims"] else axes


def _vjp_sum(b, node, args, dout):
    expand = _expanded_axes(b, node, args)
    return (b.op("broadcast_to", [dout], shape=b.shape(args[0]), expand=expand),)


def _vjp_mean(b, node, args, dout):
    shape = b.shape(args[0])
    p = b.params(node)
    axes = _axes(p["axis"], len(shape), "mean")
    count = math.prod(shape[a] for a in axes)
    # over an empty axis the gradient is empty: nothing to divide (dout / 0 fails on a float)
    scaled = b.op("div", [dout, b.count(args[0], axes)]) if count else dout
    return (b.op("broadcast_to", [scaled], shape=shape, expand=_expanded_axes(b, node, args)),)


def _vjp_max(b, node, args, dout):
    p = b.params(node)
    axis = p["axis"]
    if isinstance(axis, tuple):
        axis = axis[0] if len(axis) == 1 else None
    return (b.op("route_to_max", [dout, args[0]], axis=axis, keepdims=p["keepdims"]),)


def _vjp_broadcast_to(b, node, args, dout):
    p = b.params(node)
    shape, (arg_shape, expand) = b.shape(node), (b.shape(args[0]), p["expand"])
    dims = iter(arg_shape)
    expanded = tuple(1 if i in expand else next(dims) for i in range(len(shape)))
    summed = b.op("sum_to", [dout], shape=expanded)
    return (b.op("reshape", [summed], shape=arg_shape) if expand else summed,)


def _vjp_sum_to(b, node, args, dout):
    return (b.op("broadcast_to", [dout], shape=b.shape(args[0]), expand=()),)


def _vjp_route_to_max(b, node, args, dout):
    # route_to_max(g, x) puts g at the largest entry of x: linear in g, flat in x, so
    # dg = the upstream gradient read at that entry, route_to_max(1, x) its mask
    g, x = args
    p = b.params(node)
    ones = b.const(np.ones(b.shape(g)) if b.shape(g) else 1.0)
    mask = b.op("route_to_max", [ones, x], **p)
    picked = b.expr(DOUT * ARGS[0], {DOUT: dout, ARGS[0]: mask})
    axes = p["axis"]
    total = b.op("sum", [picked], axis=axes, keepdims=p["keepdims"])
    return total, None


def _vjp_cross_entropy_grad(b, node, args, dout):
    # out = softmax(x) * sum(y) - y: dx = sum(y) * s * (g - sum(s * g)), dy = sum(s * g) - g
    x, y = args
    axis = b.params(node)["axis"]
    logp = b.op("log_softmax", [x], axis=axis)  # s = exp(log_softmax(x)): no overflow
    weighted = b.op("sum", [b.expr(DOUT * sympy.exp(ARGS[0]), {DOUT: dout, ARGS[0]: logp})],
                    axis=axis, keepdims=True)  # fmt: skip
    labels = b.op("sum", [y], axis=axis, keepdims=True)
    dx = b.expr(
        ARGS[2] * sympy.exp(ARGS[0]) * (DOUT - ARGS[1]),
        {DOUT: dout, ARGS[0]: logp, ARGS[1]: weighted, ARGS[2]: labels},
    )
    dy = b.expr(ARGS[0] - DOUT, {DOUT: dout, ARGS[0]: weighted})
    return dx, dy


# ---------------------------------------------------------------- fused tensor gates
# Made by the fusion rules; each is computed by a helper that stays exact for any input.


def _one_axis(p, ndim: int, gate: str) -> int:
    axis = p["axis"]
    if not isinstance(axis, int):
        raise ShapeError(f"gate {gate!r} works over one axis; got axis={axis!r}")
    return _axes(axis, ndim, gate)[0]


def _kept(b, n: int, shape: tuple[int, ...], axis: int, keepdims: bool) -> int:
    """A value reduced over `axis`, reshaped to keep that axis (size 1), for broadcasting back."""
    if keepdims:
        return n
    kept = b.op("reshape", [n], shape=tuple(1 if i == axis else k for i, k in enumerate(shape)))
    b.g.nodes[kept].update(same_name_as=n, comment=f"keep axis {axis} (size 1) to broadcast back")
    return kept


def _logsumexp_shape(shapes, p):
    _one_axis(p, len(shapes[0]), "logsumexp")
    return _reduce_shape("logsumexp")(shapes, p)


def _spell_logsumexp(a, shapes, p):
    return f"logsumexp({a[0]}, axis={p['axis']}{', keepdims=True' if p['keepdims'] else ''})"


def _vjp_logsumexp(b, node, args, dout):
    # d/dx logsumexp(x) = softmax(x) = exp(x - out)
    (x,) = args
    shape, p = b.shape(x), b.params(node)
    axis = _one_axis(p, len(shape), "logsumexp")
    out, dout = (_kept(b, n, shape, axis, p["keepdims"]) for n in (node, dout))
    return (b.expr(DOUT * sympy.exp(ARGS[0] - ARGS[1]), {DOUT: dout, ARGS[0]: x, ARGS[1]: out}),)


def _log_softmax_shape(shapes, p):
    _one_axis(p, len(shapes[0]), "log_softmax")
    return shapes[0]


def _vjp_log_softmax(b, node, args, dout):
    # dx = dout - softmax * sum(dout), with softmax = exp(out), written as
    # dout * (1 - softmax) - softmax * (sum(dout) - dout) with 1 - softmax = -expm1(out):
    # exact where softmax rounds to 1 (one-hot dout: the sum minus the picked entry is exactly 0)
    total = b.op("sum", [dout], axis=b.params(node)["axis"], keepdims=True)
    formula = -DOUT * expm1(OUT) - sympy.exp(OUT) * (ARGS[0] - DOUT)
    return (b.expr(formula, {DOUT: dout, OUT: node, ARGS[0]: total}),)


# softmax_cross_entropy(x, y) may get a third argument, log_softmax(x) computed by forward
# (`passes.lower.cache_log_softmax`): the gate then reads it, and so does its backward.


def _cross_entropy_shape(shapes, p):
    both = broadcast_shape("softmax_cross_entropy", list(shapes[:2]))
    axis = _one_axis(p, len(both), "softmax_cross_entropy")
    return tuple(n for i, n in enumerate(both) if i != axis)


def _spell_cross_entropy(a, shapes, p, xp="np"):
    logp = a[2] if len(a) == 3 else f"log_softmax({a[0]}, axis={p['axis']})"
    return f"-{xp}.sum({a[1]} * {logp}, axis={p['axis']})"


def _vjp_cross_entropy(b, node, args, dout):
    # dx = dout * (softmax(x) * sum(y) - y), dy = -dout * log_softmax(x)
    x, y = args[:2]
    p = b.params(node)
    both = broadcast_shape("softmax_cross_entropy", [b.shape(x), b.shape(y)])
    axis = _one_axis(p, len(both), "softmax_cross_entropy")
    dout = _kept(b, dout, both, axis, False)
    logp = args[2] if len(args) == 3 else b.op("log_softmax", [x], axis=p["axis"])
    dy = b.expr(-DOUT * ARGS[0], {DOUT: dout, ARGS[0]: logp})
    b.g.nodes[dy]["comment"] = "softmax_cross_entropy backward: dy = -dout * log_softmax(x)"
    if len(args) == 3 and b.shape(y) == both:
        # softmax * sum(y) - y written as y * (softmax - 1) + softmax * (sum(y) - y), with
        # softmax = exp(logp) and softmax - 1 = expm1(logp): exact at a one-hot label, where
        # softmax rounds to 1, and where softmax is tiny (sum(y) - y is then exactly sum(y))
        mass = b.op("sum", [y], axis=p["axis"], keepdims=True)
        formula = DOUT * (ARGS[1] * expm1(ARGS[0]) + sympy.exp(ARGS[0]) * (ARGS[2] - ARGS[1]))
        dx = b.expr(formula, {DOUT: dout, ARGS[0]: logp, ARGS[1]: y, ARGS[2]: mass})
        b.g.nodes[dx]["comment"] = (
            "softmax_cross_entropy backward: dx = dout * (softmax(x) * sum(y) - y), "
            "softmax - 1 as expm1(log_softmax) at the labels"
        )
        return dx, dy, None  # no gradient flows into the cached log_softmax: it is in dx
    dx = b.op("softmax_cross_entropy_grad", [x, y], axis=p["axis"])
    return (b.expr(DOUT * ARGS[0], {DOUT: dout, ARGS[0]: dx}), dy, *([None] * (len(args) - 2)))


def _affine_shape(shapes, p):
    x, w, bias = shapes
    return broadcast_shape("affine", [_matmul_shape([x, w], p), bias])


def _vjp_affine(b, node, args, dout):
    # out = x @ W + b: the matmul's rule for x and W; b receives dout (summed back by the pass)
    x, w, _ = args
    product = _matmul_shape([b.shape(x), b.shape(w)], {})
    upstream = dout if b.shape(dout) == product else b.op("sum_to", [dout], shape=product)
    return (*_vjp_matmul(b, node, [x, w], upstream), dout)


def _spell_sum_squares(a, shapes, p):
    if p.get("axis") is None and not p.get("keepdims") and shapes[0]:
        return f"np.vdot({a[0]}, {a[0]})"  # one pass over x, no temporary x**2
    return f"np.sum(np.square({a[0]}){_kw(p, 'axis', 'keepdims')})"


def _vjp_sum_squares(b, node, args, dout):
    # d/dx sum(x**2) = 2 * x * dout, dout broadcast back over the summed axes
    (spread,) = _vjp_sum(b, node, args, dout)
    return (b.expr(2 * DOUT * ARGS[0], {DOUT: spread, ARGS[0]: args[0]}),)


FUSED_ROWS = (
    dict(
        name="logsumexp", arity=1, symbol="lse", shape=_logsumexp_shape, spell=_spell_logsumexp,
        vjp=_vjp_logsumexp, params=("axis", "keepdims"), helpers=("logsumexp",),
        spell_api=_spell_logsumexp,
    ),
    dict(
        name="log_softmax", arity=1, symbol="logsoftmax", shape=_log_softmax_shape,
        spell=lambda a, s, p: f"log_softmax({a[0]}, axis={p['axis']})",
        vjp=_vjp_log_softmax, params=("axis",), helpers=("log_softmax",),
        spell_api=lambda a, s, p: f"log_softmax({a[0]}, axis={p['axis']})",
    ),
    dict(
        name="softmax_cross_entropy", arity=2, symbol="CE", shape=_cross_entropy_shape,
        spell=_spell_cross_entropy, vjp=_vjp_cross_entropy, params=("axis",),
        helpers=("log_softmax",),
        spell_api=lambda a, s, p: _spell_cross_entropy(a, s, p, "xp"),
    ),
    dict(
        name="affine", arity=3, symbol="affine", shape=_affine_shape,
        spell=lambda a, s, p: f"{a[0]} @ {a[1]} + {a[2]}", vjp=_vjp_affine,
        spell_api=lambda a, s, p: f"{a[0]} @ {a[1]} + {a[2]}",
    ),
    dict(
        name="sum_squares", arity=1, symbol="Σx²", shape=_reduce_shape("sum_squares"),
        spell=_spell_sum_squares, vjp=_vjp_sum_squares, params=("axis", "keepdims"),
        spell_api=_api_sum_squares,
    ),
    # backward-only
    dict(
        name="softmax_cross_entropy_grad", arity=2, symbol="dCE",
        shape=lambda shapes, p: broadcast_shape("softmax_cross_entropy", list(shapes)),
        spell=lambda a, s, p: f"softmax_cross_entropy_grad({a[0]}, {a[1]}, axis={p['axis']})",
        vjp=_vjp_cross_entropy_grad, params=("axis",), helpers=("softmax_cross_entropy_grad",),
        spell_api=lambda a, s, p: f"softmax_cross_entropy_grad({a[0]}, {a[1]}, axis={p['axis']})",
    ),
)  # fmt: skip


# ---------------------------------------------------------------- indexing and gathering
# Basic indexing (`x[1:3]`, `x[:, k]`, `x[..., None]`) keeps its index as a static parameter:
# a tuple whose entries are an int, None (a new axis), "..." (Ellipsis) or a (start, stop, step)
# triple for a slice. Its backward adds dout into zeros at the same index (`scatter_add`, which
# is np.add.at: right also where gathered indices repeat). Integer-array gathering takes the
# indices as an argument no gradient flows into (`INDEX_ARGS`).


def index_code(index: tuple) -> str:
    """An index as Python writes it inside brackets: `:, 1:`, `..., None`, `::-1, 0`."""

    def one(e) -> str:
        if e is None:
            return "None"
        if e == "...":
            return "..."
        if isinstance(e, tuple):
            start, stop, step = ("" if v is None else str(v) for v in e)
            return f"{start}:{stop}" + (f":{step}" if step else "")
        return str(e)

    return ", ".join(one(e) for e in index)


def _index_shape(shape: tuple[int, ...], index: tuple, gate: str = "getitem") -> tuple[int, ...]:
    """The shape of `x[index]` for basic indexing, worked out on sizes alone (probe sizes are
    far too large to index an array with)."""
    ellipses = sum(1 for e in index if e == "...")
    if ellipses > 1:
        raise ShapeError(f"gate {gate!r}: an index can have only one '...' (Ellipsis)")
    used = sum(1 for e in index if e is not None and e != "...")
    if used > len(shape):
        raise ShapeError(
            f"gate {gate!r}: too many indices [{index_code(index)}] for an array of shape "
            f"{shape} ({len(shape)} dimensions)"
        )
    if not ellipses:
        index = index + ("...",)
    out: list[int] = []
    axis = 0
    for e in index:
        if e is None:
            out.append(1)
        elif e == "...":
            rest = len(shape) - used
            out.extend(shape[axis : axis + rest])
            axis += rest
        elif isinstance(e, tuple):
            if e[2] == 0:
                raise ShapeError(f"gate {gate!r}: a slice step cannot be zero")
            out.append(_slice_length(slice(*e), shape[axis], gate))
            axis += 1
        else:
            n = _real(shape[axis])
            if not -n <= e < n:
                raise ShapeError(
                    f"gate {gate!r}: index {e} is out of bounds for axis {axis} of size {n} "
                    f"(shape {shape}); use an index from {-n} to {n - 1}"
                )
            axis += 1
    return tuple(out)


PROBE_FROM = 1 << 24  # sizes from here up are the compiler's probes (`shapes.PROBE_SHIFT`)


def _real(n: int) -> int:
    """The call's size behind a probe size (`shapes.real_size`), for bounds checks."""
    return n >> 24 if n >= PROBE_FROM else n


def _slice_length(s: slice, n: int, gate: str) -> int:
    """How many entries slice `s` takes of an axis of size `n`. Of a probe size, a generic
    module needs a length that follows the size in every call of its pattern: all of it, or
    all but a fixed number (`1:`, `:-1`); another (`:3`, `::2`) is a ShapeError, on which the
    compiler specialises to the call's shapes."""
    length = len(range(*s.indices(n)))
    if n >= PROBE_FROM:
        real = _real(n)
        taken = len(range(*s.indices(real)))
        if n - length != real - taken or taken < 2:
            raise ShapeError(f"gate {gate!r}: slice {s} does not follow the size of its axis")
    return length


def _getitem_shape(shapes, p):
    return _index_shape(tuple(shapes[0]), tuple(p["index"]))


def _spell_getitem(a, shapes, p):
    return f"{a[0]}[{index_code(tuple(p['index']))}]"


def _vjp_getitem(b, node, args, dout):
    # x[index] picks entries: dx is zeros with dout added at the same index
    index = b.params(node)["index"]
    if all(e is None or e == "..." or e == (None, None, None) for e in index):  # new axes only
        return (b.op("reshape", [dout], shape=b.shape(args[0])),)
    dx = b.op("index_add", [dout], shape=b.shape(args[0]), index=index)
    b.g.nodes[dx]["comment"] = f"[{index_code(tuple(index))}] backward: dout into zeros there"
    return (dx,)


def _spell_index_add(a, shapes, p):
    return f"scatter_add({a[0]}, {tuple(p['shape'])}, np.s_[{index_code(tuple(p['index']))}])"


def _vjp_index_add(b, node, args, dout):
    # index_add(g) is linear in g: dg = dout read at the index
    return (b.op("getitem", [dout], index=b.params(node)["index"]),)


def _pick_shape(shapes, p):
    a, idx = shapes
    if len(a) != 2 or len(idx) != 1 or idx[0] != a[0]:
        raise ShapeError(
            f"gate 'pick': a[arange(N), y] picks one entry per row of a matrix, with one index "
            f"per row; got a of shape {a} and indices of shape {idx} (y needs shape (N,) for a "
            "of shape (N, C)); use gc.take_along_axis for other gathers"
        )
    return (a[0],)


def _vjp_pick(b, node, args, dout):
    # out[i] = a[i, y[i]]: da is zeros with dout[i] added at (i, y[i]), repeats adding up
    a, idx = args
    da = b.op("pick_add", [dout, idx], shape=b.shape(a))
    b.g.nodes[da]["comment"] = "pick backward: dout[i] added at (i, index[i]); repeats add up"
    return da, None


def _pick_add_shape(shapes, p):
    return tuple(p["shape"])


def _vjp_pick_add(b, node, args, dout):
    # pick_add(g, y) is linear in g: dg = dout picked at (i, y[i])
    return b.op("pick", [dout, args[1]]), None


def _take_shape(shapes, p):
    a, idx = shapes
    axis = _one_axis(p, len(a), "take_along_axis")
    if len(idx) != len(a):
        raise ShapeError(
            f"gate 'take_along_axis': the indices (shape {idx}) need as many dimensions as the "
            f"array (shape {a}); add axes of size 1, e.g. idx[:, None]"
        )
    try:
        rest = broadcast_shapes(
            tuple(n for i, n in enumerate(a) if i != axis),
            tuple(n for i, n in enumerate(idx) if i != axis),
        )
    except ValueError:
        raise ShapeError(
            f"gate 'take_along_axis': indices of shape {idx} do not broadcast against the array "
            f"of shape {a} outside axis {axis}"
        ) from None
    return rest[:axis] + (idx[axis],) + rest[axis:]


def _vjp_take(b, node, args, dout):
    # out = take_along_axis(a, idx): da adds dout at the taken entries (repeats add up)
    a, idx = args
    axis = b.params(node)["axis"]
    da = b.op("add_along_axis", [dout, idx], shape=b.shape(a), axis=axis)
    b.g.nodes[da]["comment"] = "take_along_axis backward: dout added where taken; repeats add up"
    return da, None


def _vjp_add_along(b, node, args, dout):
    return b.op("take_along_axis", [dout, args[1]], axis=b.params(node)["axis"]), None


def _concat_shape(shapes, p):
    if not shapes:
        raise ShapeError("gate 'concatenate' needs at least one array")
    first = shapes[0]
    if not first:
        raise ShapeError("gate 'concatenate': zero-dimensional arrays cannot be concatenated; "
                         "use gc.stack")  # fmt: skip
    axis = _axes(p["axis"], len(first), "concatenate")[0]
    for s in shapes[1:]:
        if len(s) != len(first) or any(
            m != n for i, (m, n) in enumerate(zip(s, first)) if i != axis
        ):
            listed = ", ".join(map(str, shapes))
            raise ShapeError(
                f"gate 'concatenate': shapes {listed} differ outside axis {axis}; every array "
                "needs the same sizes except along the axis they are joined on"
            )
    return first[:axis] + (sum(s[axis] for s in shapes),) + first[axis + 1 :]


def _vjp_concat(b, node, args, dout):
    # each input gets its own stretch of dout along the axis
    shape = b.shape(node)
    axis = _axes(b.params(node)["axis"], len(shape), "concatenate")[0]
    out, start = [], 0
    for a in args:
        stop = start + b.shape(a)[axis]
        out.append(b.op("getitem", [dout], index=(*(((None,) * 3,) * axis), (start, stop, None))))
        start = stop
    return tuple(out)


def _stack_shape(shapes, p):
    if not shapes:
        raise ShapeError("gate 'stack' needs at least one array")
    if any(s != shapes[0] for s in shapes):
        listed = ", ".join(map(str, shapes))
        raise ShapeError(f"gate 'stack': shapes {listed} differ; stacked arrays need one shape")
    first = tuple(shapes[0])
    axis = _axes(p["axis"], len(first) + 1, "stack")[0]
    return first[:axis] + (len(shapes),) + first[axis:]


def _vjp_stack(b, node, args, dout):
    # input k gets dout at position k along the new axis
    axis = _axes(b.params(node)["axis"], len(b.shape(node)), "stack")[0]
    whole = ((None,) * 3,) * axis
    return tuple(b.op("getitem", [dout], index=(*whole, k)) for k in range(len(args)))


def _spell_joined(fn, xp="np"):
    def spell(a, shapes, p):
        return f"{xp}.{fn}([{', '.join(a)}], axis={p['axis']})"

    return spell


INDEX_ROWS = (
    dict(
        name="getitem", arity=1, symbol="[]", shape=_getitem_shape, spell=_spell_getitem,
        vjp=_vjp_getitem, params=("index",), spell_api=_spell_getitem,
    ),
    dict(
        name="pick", arity=2, symbol="gather", shape=_pick_shape,
        spell=lambda a, s, p: f"{a[0]}[np.arange({s[0][0]}), {a[1]}]",
        spell_api=lambda a, s, p: f"{a[0]}[xp.arange({s[0][0]}), {a[1]}]",
        vjp=_vjp_pick, indices=(1,),
    ),
    dict(
        name="take_along_axis", arity=2, symbol="gather", shape=_take_shape,
        spell=lambda a, s, p: f"np.take_along_axis({a[0]}, {a[1]}, axis={p['axis']})",
        spell_api=lambda a, s, p: f"xp.take_along_axis({a[0]}, {a[1]}, axis={p['axis']})",
        vjp=_vjp_take, params=("axis",), indices=(1,),
    ),
    dict(
        name="concatenate", arity=-1, symbol="concat", shape=_concat_shape,
        spell=_spell_joined("concatenate"), spell_api=_spell_joined("concat", "xp"),
        vjp=_vjp_concat, params=("axis",),
    ),
    dict(
        name="stack", arity=-1, symbol="stack", shape=_stack_shape,
        spell=_spell_joined("stack"), spell_api=_spell_joined("stack", "xp"),
        vjp=_vjp_stack, params=("axis",),
    ),
    # backward-only: dout added into zeros where the forward gate read (np.add.at)
    dict(
        name="index_add", arity=1, symbol="[]+=", shape=_pick_add_shape, spell=_spell_index_add,
        vjp=_vjp_index_add, params=("shape", "index"), helpers=("scatter_add",),
        spell_api=None,  # the array API standard has no scatter-add (np.add.at)
    ),
    dict(
        name="pick_add", arity=2, symbol="scatter", shape=_pick_add_shape,
        spell=lambda a, s, p: (
            f"scatter_add({a[0]}, {tuple(p['shape'])}, (np.arange({s[0][0]}), {a[1]}))"
        ),
        spell_api=None,
        vjp=_vjp_pick_add, params=("shape",), helpers=("scatter_add",), indices=(1,),
    ),
    dict(
        name="add_along_axis", arity=2, symbol="scatter", shape=_pick_add_shape,
        spell=lambda a, s, p: (
            f"add_along_axis({a[0]}, {a[1]}, {tuple(p['shape'])}, axis={p['axis']})"
        ),
        spell_api=None,
        vjp=_vjp_add_along, params=("shape", "axis"), helpers=("add_along_axis",), indices=(1,),
    ),
)  # fmt: skip


# ---------------------------------------------------------------- static parameters
# What each parameter may hold, checked when a graph comes from outside graphc (gc.from_graph):
# each kind turns a value into the form the rules above read (JSON has no tuples, so a saved list
# becomes a tuple) or gives _BAD. A parameter's kind is the same for every gate that takes it,
# except where a gate works over one axis only (max) or exactly one (the fused softmax gates).

_BAD = object()
INDEX_AXIS_GATES = ("take_along_axis", "add_along_axis", "concatenate", "stack")


def _int(v):
    is_int = isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))
    return int(v) if is_int else _BAD


def _ints(v, low=None):
    if not isinstance(v, (list, tuple)):
        return _BAD
    items = tuple(_int(a) for a in v)
    if any(a is _BAD or low is not None and a < low for a in items):
        return _BAD
    return items


def _axis_or_axes(v):
    if v is None or _int(v) is not _BAD:
        return _axis_or_all(v)
    axes = _ints(v)
    return axes if axes != () else _BAD  # no axes at all: say None for all of them


def _axis_or_all(v):
    return None if v is None else _int(v)


def _flag(v):
    return bool(v) if isinstance(v, (bool, np.bool_)) else _BAD


def _new_shape(v):
    return (int(v),) if _int(v) is not _BAD and v >= -1 else _ints(v, low=-1)


def _index(v):
    if not isinstance(v, (list, tuple)):
        return _BAD
    out = []
    for e in v:
        if e is None or e == "...":
            out.append(e)
        elif _int(e) is not _BAD:
            out.append(int(e))
        elif isinstance(e, (list, tuple)) and len(e) == 3:
            bounds = tuple(None if b is None else _int(b) for b in e)
            if _BAD in bounds:
                return _BAD
            out.append(bounds)
        else:
            return _BAD
    return tuple(out)


def _permutation(v):
    return None if v is None else _ints(v)


PARAM_KINDS = {  # name -> (how to read a value, what it may be)
    "axis": (_axis_or_axes, "None, an int or a list of ints"),
    "keepdims": (_flag, "a bool (True or False; true or false in JSON)"),
    "shape": (lambda v: _ints(v, low=0), "a list of sizes (ints >= 0)"),
    "axes": (_permutation, "None or a list of ints (a permutation of the axes)"),
    "expand": (_ints, "a list of ints"),
    "index": (
        _index,
        'a list of index entries: ints, null (a new axis), "..." and '
        "[start, stop, step] slices (null for a missing bound)",
    ),
}
GATE_PARAM_KINDS = {  # (gate, name) -> kind, where a gate narrows the usual kind
    ("reshape", "shape"): (_new_shape, "a list of sizes (ints >= 0, at most one -1)"),
    ("max", "axis"): (_axis_or_all, "None or an int (max works over one axis or all)"),
    ("route_to_max", "axis"): (_axis_or_all, "None or an int"),
    **{
        (gate, "axis"): (_int, f"an int ({gate} works over one axis)")
        for gate in ("logsumexp", "log_softmax", "softmax_cross_entropy")
    },
    ("softmax_cross_entropy_grad", "axis"): (_int, "an int"),
    **{(gate, "axis"): (_int, "an int") for gate in INDEX_AXIS_GATES},
}


def checked_params(gate: str, names: tuple[str, ...], params) -> dict:
    """A tensor gate's `params`, read as its rules expect them (saved lists become tuples).

    GraphError saying which parameter is missing, unknown or malformed and what it may be (the
    caller names the node).
    """
    wanted = "{" + ", ".join(f"{n!r}: ..." for n in names) + "}"
    if not isinstance(params, dict):
        raise GraphError(f"'params' is {type(params).__name__}; give a dict {wanted}")
    unknown = sorted(str(k) for k in params if k not in names)
    if unknown:
        takes = f"takes {list(names)}" if names else "takes no params"
        raise GraphError(f"unknown param(s) {unknown}; {gate} {takes} (check the spelling)")
    out = {}
    for name in names:
        read, what = GATE_PARAM_KINDS.get((gate, name), PARAM_KINDS[name])
        if name not in params:
            raise GraphError(
                f"missing param {name!r}, which must be {what}; give the node params={wanted}"
            )
        value = read(params[name])
        if value is _BAD:
            raise GraphError(f"param {name!r} is {params[name]!r}; it must be {what}")
        out[name] = value
    return out


def _row(name, arity, symbol, shape, spell, vjp, params=(), helpers=(), api=None) -> dict:
    return dict(
        name=name,
        arity=arity,
        symbol=symbol,
        shape=shape,
        spell=spell,
        vjp=vjp,
        params=params,
        helpers=helpers,
        spell_api=api,
    )


ROWS: tuple[dict, ...] = (
    _row(
        "matmul",
        2,
        "@",
        _matmul_shape,
        lambda a, s, p: f"{a[0]} @ {a[1]}",
        _vjp_matmul,
        api=lambda a, s, p: f"{a[0]} @ {a[1]}",
    ),
    _row(
        "transpose",
        1,
        "T",
        _transpose_shape,
        _spell_transpose,
        _vjp_transpose,
        ("axes",),
        api=_api_transpose,
    ),
    _row(
        "reshape",
        1,
        "reshape",
        _reshape_shape,
        _spell_reshape,
        _vjp_reshape,
        ("shape",),
        api=_api_reshape,
    ),
    _row(
        "sum",
        1,
        "Σ",
        _reduce_shape("sum"),
        _spell_reduce("sum"),
        _vjp_sum,
        ("axis", "keepdims"),
        api=_api_reduce("sum"),
    ),
    _row(
        "mean",
        1,
        "mean",
        _reduce_shape("mean"),
        _spell_reduce("mean"),
        _vjp_mean,
        ("axis", "keepdims"),
        api=_api_reduce("mean"),
    ),
    _row(
        "max",
        1,
        "max",
        _reduce_shape("max"),
        _spell_reduce("max"),
        _vjp_max,
        ("axis", "keepdims"),
        api=_api_reduce("max"),
    ),
    # backward-only steps, made by the vector-Jacobian rules above
    _row(
        "broadcast_to",
        1,
        "bcast",
        _broadcast_to_shape,
        _spell_broadcast_to,
        _vjp_broadcast_to,
        ("shape", "expand"),
        api=_api_broadcast_to,
    ),
    _row("sum_to", 1, "Σ→", _sum_to_shape, _spell_sum_to, _vjp_sum_to, ("shape",), api=_api_sum_to),
    _row(
        "route_to_max",
        2,
        "route",
        _route_shape,
        _spell_route,
        _vjp_route_to_max,
        ("axis", "keepdims"),
        ("route_to_max",),
        api=_spell_route,
    ),
    *FUSED_ROWS,
    *INDEX_ROWS,
)

# What a tensor gate's forward statement says in its comment, where its name alone says little
FORWARD_NOTES = {
    "getitem": "index",
    "pick": "pick (gather): one entry of each row i, at column index[i]",
    "take_along_axis": "gather along an axis",
    "concatenate": "concatenate",
    "stack": "stack along a new axis",
}

# What each tensor gate's backward does, in the drawing's words (show_local=True)
VJP_DOCS = {
    "matmul": "dx = dout @ y.T\ndy = x.T @ dout",
    "transpose": "dx = dout transposed back",
    "reshape": "dx = dout reshaped back",
    "sum": "dx = dout, broadcast back",
    "mean": "dx = dout / n, broadcast back",
    "max": "dx = dout at the max, 0 elsewhere",
    "logsumexp": "dx = dout * softmax(x)",
    "log_softmax": "dx = dout - softmax(x) * sum(dout)",
    "softmax_cross_entropy": "dx = dout * (softmax(x) * sum(y) - y)\ndy = -dout * log_softmax(x)",
    "affine": "dx = dout @ W.T\ndW = x.T @ dout\ndb = dout, summed back",
    "sum_squares": "dx = 2 * x * dout",
    "getitem": "dx = zeros, dout added at the index",
    "pick": "dx = zeros, dout[i] added at (i, y[i])",
    "take_along_axis": "dx = zeros, dout added at the taken entries",
    "concatenate": "each dx = its stretch of dout",
    "stack": "each dx = its slice of dout",
}
ROWS = tuple({**row, "doc": VJP_DOCS.get(row["name"], "")} for row in ROWS)
