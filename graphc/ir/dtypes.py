"""Dtype inference: the dtype NumPy gives a function's result, given its inputs' (NEP 50).

Stage: ir (graph -> the dtype of every value). Imports `ops` and `graph`.

graphc's result has the dtype NumPy gives for the same expression with the same arguments, by
NumPy 2's promotion rules (NEP 50), whatever the fusion level or backend; each gradient has its
input's dtype. The rules, as NumPy applies them:

- A Python number (an input passed as a Python float or int, a constant) is *weak*: next to an
  array or NumPy scalar it takes that dtype (`x32 * 2.0` is float32). NumPy arrays and scalars
  are *strong*: `x32 * np.float64(2.0)` is float64, `x32 * x64` float64.
- The operators + - * / ** and unary - of weak values alone give a weak value; every gate called
  as a function (gc.exp, gc.maximum, gc.sum, a user's gate ...) of weak values alone gives a
  float64, as NumPy's functions of Python floats give `np.float64`.
- A value computed from constants alone is a constant (weak), however it was computed, since
  constants are folded at one fusion level and not at another.

`signature` says, besides, what each Python-number input is computed in: float64, or the one
narrower float dtype it only ever meets (NumPy converts it to that dtype anyway, and float32 code
stays float32); `node_kinds` of the compiled program says where the code converts a value
computed from Python numbers in float64 (`codegen.Emitter.converted`).
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import sympy

from .graph import args_of, topo_order
from .ops import MASK, gate_of

PY = "py"  # a weak value from a Python-number input
CONST = "const"  # a constant, or a value of constants alone (weak too)
MASK_KIND = "mask"  # a comparison: selects, takes no part in promotion

OPERATORS = frozenset({"add", "sub", "mul", "div", "pow", "neg"})
# gates that keep an integer dtype in NumPy (the others compute in floats: exp of int64 is float64)
KEEP_INTEGERS = frozenset(
    {"add", "sub", "mul", "neg", "pow", "abs", "relu", "maximum", "minimum", "where", "sum",
     "max", "transpose", "reshape", "matmul", "broadcast_to", "sum_to", "getitem", "pick",
     "take_along_axis", "concatenate", "stack", "index_add", "pick_add", "add_along_axis"}
)  # fmt: skip


def promote(kinds: list) -> np.dtype:
    """NumPy's result dtype of strong dtypes and weak Python floats (NEP 50)."""
    strong = [k for k in kinds if isinstance(k, np.dtype)]
    found = np.result_type(*strong)
    if len(strong) < len(kinds) and found.kind in "biu":  # a Python float and an integer array
        return np.dtype(np.float64)
    return found


def _arithmetic(formula: sympy.Expr) -> bool:
    """Whether an "expr" node's formula is operators alone (no function, choice or kink)."""
    return not formula.atoms(sympy.Function, sympy.Piecewise, sympy.Max, sympy.Min)


def node_kinds(g: nx.DiGraph, inputs: dict[int, np.dtype | None]) -> dict[int, object]:
    """Every node's dtype, or PY / CONST (weak) / MASK_KIND; `inputs` gives each input node's
    dtype, None for a Python number (an input missing from it is float64)."""
    kinds: dict[int, object] = {}
    nodes = g._node  # networkx's dict: this is a pass over every node
    for n in topo_order(g):
        data = nodes[n]
        op = data["op"]
        if op == "input":
            dtype = inputs.get(n, np.float64)
            kinds[n] = PY if dtype is None else np.dtype(dtype)
            continue
        if op == "const":
            value = data["value"]
            scalar = type(value) is float or np.ndim(value) == 0
            kinds[n] = CONST if scalar else np.asarray(value).dtype
            continue
        gate = gate_of(op)
        if getattr(gate, "kind", None) == MASK:
            kinds[n] = MASK_KIND
            continue
        indices = getattr(gate, "indices", ())  # integer indices: no part in promotion
        args = [
            kinds[a]
            for p, a in enumerate(args_of(g, n))
            if kinds[a] != MASK_KIND and p not in indices
        ]
        if all(type(k) is str for k in args):  # PY and CONST alone (masks are left out)
            if all(k == CONST for k in args):
                kinds[n] = CONST
            elif op in OPERATORS or (op == "expr" and _arithmetic(data["formula"])):
                kinds[n] = PY
            else:
                kinds[n] = np.dtype(np.float64)
        else:
            found = promote(args)
            if found.kind in "biu" and op not in KEEP_INTEGERS:
                found = np.result_type(found, np.float16)  # np.exp(int8) is float16
            kinds[n] = found
    return kinds


def by_node(g: nx.DiGraph, inputs: dict[str, np.dtype | None]) -> dict[int, np.dtype | None]:
    """Input dtypes by input name -> by input node."""
    return {i: inputs.get(g.nodes[i]["name"]) for i in g.graph["inputs"]}


def _dtype(kind) -> np.dtype | None:
    return kind if isinstance(kind, np.dtype) else None


def result_dtype(g: nx.DiGraph, inputs: dict[str, np.dtype | None]) -> np.dtype | None:
    """The dtype of the function's value (None: a Python float, weak); inputs by name."""
    return _dtype(node_kinds(g, by_node(g, inputs))[g.graph["output"]])


def signature(g: nx.DiGraph, inputs: dict[str, np.dtype | None]):
    """For one call signature (inputs' dtypes by name, None for a Python float): the value's
    dtype, the dtype each Python float is computed in (`_computed_in`), and the dtype the code
    computes the value in once those are converted (the seed's)."""
    kinds = node_kinds(g, by_node(g, inputs))
    value = _dtype(kinds[g.graph["output"]])
    computed_in = _computed_in(g, kinds, inputs)
    converted = {k: d for k, d in computed_in.items() if d != np.float64}
    if not converted:
        return value, computed_in, value
    return value, computed_in, result_dtype(g, {**inputs, **converted})


def compared_in(g: nx.DiGraph, kinds: dict, n: int) -> object:
    """The dtype a gate works in, as NumPy converts a weak argument for it: its own dtype, or
    for a comparison that of its strong arguments (PY where there are none)."""
    if kinds[n] != MASK_KIND:
        return kinds[n]
    strong = [kinds[a] for a in args_of(g, n) if isinstance(kinds[a], np.dtype)]
    return promote(strong) if strong else PY


def narrow(kind) -> bool:
    """A float dtype narrower than float64 (float32, float16): NumPy converts weak values to it."""
    return isinstance(kind, np.dtype) and kind.kind == "f" and kind.itemsize < 8


def may_narrow(g: nx.DiGraph, given) -> bool:
    """Whether some value of `g` could have a narrow dtype (see `narrow`) where its inputs have
    the dtypes `given` (None: a Python float): only where one of those, or a constant array, is
    not float64 (an integer array may give float16: np.exp(int8)). Else every value is weak or
    float64, and `node_kinds` need not look (a pass over every node)."""
    if any(d is not None and np.dtype(d) != np.float64 for d in given):
        return True
    return any(
        op == "const" and np.ndim(v) > 0 and np.asarray(v).dtype != np.float64
        for op, v in ((data["op"], data.get("value")) for _, data in g.nodes(data=True))
    )


def _computed_in(g: nx.DiGraph, kinds: dict, inputs: dict) -> dict[str, np.dtype]:
    """The dtype each Python-number input is computed in, by name: the narrower float dtype
    (float32, float16) where every gate reading it also reads that dtype's arrays, and so
    converts it to that dtype in NumPy too; else float64, as NumPy computes Python floats."""
    out = {}
    for i in g.graph["inputs"]:
        name = g.nodes[i]["name"]
        if inputs.get(name) is not None:
            continue
        met = {compared_in(g, kinds, s) for s in g.successors(i)}
        (only,) = met if len(met) == 1 else (None,)
        out[name] = only if narrow(only) else np.dtype(np.float64)
    return out
