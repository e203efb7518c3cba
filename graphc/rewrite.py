"""Rewriting: one generic driver that applies pattern rules to a graph until nothing changes.

Stage: pass (graph -> graph). Imports `graph`, `ops` and `errors`.

A rule is data (see `fusion.py` for the rows): a pattern of gates with named holes, a
replacement, and a one-line math comment. Patterns are nested tuples:

    ("div", 1, ("add", 1, ("exp", ("neg", "x"))))      # 1/(1+exp(-x))

`"x"` matches any node (the same name, the same node), `"#a"` a scalar constant (its value is
bound), a number a scalar constant of that value, and a trailing dict `{"params": "p"}` binds a
tensor gate's parameters (the same name must bind equal parameters). add, mul, maximum and
minimum match either argument order. A replacement is a tuple of the same form, or a function
of the bindings returning one.

A rule never fires where a value it would swallow is also used outside the match (fan-out): the
graph keeps every value something else still reads. The driver sweeps the graph in topological
order, so inner rewrites (double negation) happen before outer ones (sigmoid), and repeats
sweeps to a fixed point. Every rewrite is recorded with the nodes it replaced, so a report can
say which fusion cured which gates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from .errors import GraphcError
from .graph import add_node, args_of, topo_order

COMMUTATIVE = frozenset({"add", "mul", "maximum", "minimum"})
MAX_SWEEPS = 100


@dataclass(frozen=True)
class Rule:
    """A rewrite row: `pattern` -> `replacement`, with a one-line math comment."""

    name: str
    pattern: tuple
    replacement: tuple | Callable[[dict], tuple]
    comment: str
    when: Callable[[dict], bool] | None = None  # a condition on the bindings (e.g. 0 < a < 1)
    tags: tuple[str, ...] = field(default=())  # e.g. ("stabilize",): cures an overflow


def _scalar(g: nx.DiGraph, n: int):
    data = g.nodes[n]
    if data["op"] == "const" and np.ndim(data["value"]) == 0:
        return float(data["value"])
    return None


def match(g: nx.DiGraph, node: int, pattern, binding: dict) -> dict | None:
    """Bindings extending `binding` under which `pattern` matches at `node`, or None.

    `binding["_matched"]` collects the gate nodes the pattern covers.
    """
    if isinstance(pattern, str):
        if pattern.startswith("#"):
            value = _scalar(g, node)
            if value is None or (pattern in binding and binding[pattern] != value):
                return None
            return {**binding, pattern: value}
        if pattern in binding:
            return binding if binding[pattern] == node else None
        return {**binding, pattern: node}
    if isinstance(pattern, (int, float)):
        return binding if _scalar(g, node) == float(pattern) else None
    op, *args = pattern
    params = args.pop() if args and isinstance(args[-1], dict) else None
    data = g.nodes[node]
    if data["op"] != op:
        return None
    actual = args_of(g, node)
    if len(actual) != len(args):
        return None
    if params:
        key = params["params"]
        mine = data.get("params", {})
        if key in binding and binding[key] != mine:
            return None
        binding = {**binding, key: mine}
    orders = [args, args[::-1]] if op in COMMUTATIVE and len(args) == 2 else [args]
    for order in orders:
        b: dict | None = {**binding, "_matched": binding.get("_matched", ()) + (node,)}
        for a, p in zip(actual, order):
            b = match(g, a, p, b)
            if b is None:
                break
        if b is not None:
            return b
    return None


def _build(g: nx.DiGraph, template, binding: dict) -> int:
    """Nodes for a replacement template; returns the node computing its value."""
    if isinstance(template, str):
        if template.startswith("#"):
            return add_node(g, "const", value=binding[template])
        return binding[template]
    if isinstance(template, (int, float)):
        return add_node(g, "const", value=template)
    op, *args = template
    params = args.pop() if args and isinstance(args[-1], dict) else None
    nodes = [_build(g, a, binding) for a in args]
    attrs = {}
    if params is not None:
        attrs["params"] = dict(binding[params["params"]]) if "params" in params else dict(params)
        attrs["params"].update({k: v for k, v in params.items() if k != "params"})
    return add_node(g, op, nodes, **attrs)


def _swallows_shared_value(g: nx.DiGraph, root: int, matched: tuple[int, ...]) -> bool:
    inside = set(matched)
    output = g.graph["output"]
    return any(
        n != root and (n == output or any(s not in inside for s in g.successors(n))) for n in inside
    )


def replace(g: nx.DiGraph, old: int, new: int) -> None:
    """Let every reader of `old` read `new` instead (argument positions kept)."""
    for s in list(g.successors(old)):
        pos = g.edges[old, s]["pos"]
        g.remove_edge(old, s)
        if g.has_edge(new, s):
            g.edges[new, s]["pos"] = tuple(sorted(g.edges[new, s]["pos"] + pos))
        else:
            g.add_edge(new, s, pos=pos)
    if g.graph["output"] == old:
        g.graph["output"] = new
    if "hint" in g.nodes[old]:
        g.nodes[new].setdefault("hint", g.nodes[old]["hint"])


def remove_dead(g: nx.DiGraph, candidates) -> None:
    """Remove nodes nothing reads (never inputs or the output), then their dead arguments."""
    stack = list(candidates)
    while stack:
        n = stack.pop()
        if (
            n in g
            and g.out_degree(n) == 0
            and n != g.graph["output"]
            and g.nodes[n]["op"] != "input"
        ):
            stack.extend(g.predecessors(n))
            g.remove_node(n)


def apply_rule(g: nx.DiGraph, rule: Rule, node: int) -> bool:
    """Rewrite at `node` if `rule` matches there safely; say whether it did."""
    binding = match(g, node, rule.pattern, {})
    if binding is None or (rule.when and not rule.when(binding)):
        return False
    matched = binding["_matched"]
    if _swallows_shared_value(g, node, matched):
        return False
    template = rule.replacement(binding) if callable(rule.replacement) else rule.replacement
    new = _build(g, template, binding)
    if new == node:
        return False
    covered = tuple(sorted(set(matched)))
    replace(g, node, new)
    remove_dead(g, [node])
    g.graph.setdefault("rewrites", []).append((rule, new, covered))
    return True


def rewrite(g: nx.DiGraph, rules: list[Rule]) -> nx.DiGraph:
    """A copy of `g` with `rules` applied to a fixed point (first matching rule wins per node).

    The copy's `graph["rewrites"]` lists (rule, new node, replaced nodes) in order.
    """
    h = g.copy()
    h.graph["rewrites"] = list(g.graph.get("rewrites", []))
    by_op: dict[str, list[Rule]] = {}
    for r in rules:
        by_op.setdefault(r.pattern[0], []).append(r)
    for _ in range(MAX_SWEEPS):
        changed = False
        for n in topo_order(h):
            if n not in h:
                continue
            for rule in by_op.get(h.nodes[n]["op"], ()):
                if apply_rule(h, rule, n):
                    changed = True
                    break
        if not changed:
            return h
    raise GraphcError(
        f"rewriting did not reach a fixed point in {MAX_SWEEPS} sweeps; two rules undo each "
        "other — report the rules passed to fuse()"
    )
