"""Rewriting: one generic driver that applies pattern rules to a graph until nothing changes.

Stage: passes (graph -> graph). Imports the `ir` only.

A rule is data (see `fusion.py` for the rows): a pattern of gates with named holes, a
replacement, and a one-line math comment. Patterns are nested tuples:

    ("div", 1, ("add", 1, ("exp", ("neg", "x"))))      # 1/(1+exp(-x))

`"x"` matches any node (the same name, the same node), `"#a"` a scalar constant (its value is
bound), a number a scalar constant of that value, `OneOf(p, q, ...)` any of several spellings
(tried in order), and a trailing dict `{"params": "p"}` binds a tensor gate's parameters (the
same name must bind equal parameters). add and mul match either argument order; maximum and
minimum do not, because they give the gradient to their first argument on a tie, so
`maximum(x, 0)` and `maximum(0, x)` differ at x = 0. A replacement is a tuple of the same form,
or a function of the bindings returning one.

A rule never fires where a value it would swallow is also used outside the match (fan-out): the
graph keeps every value something else still reads.

Order, so that the result does not depend on which of two overlapping rules happens to be
tried first:
- Roots before their arguments. A node is visited before the nodes it reads, so a rule that
  sees a larger expression (`max(x) + log(sum(exp(x - max(x))))`) fires before a rule that
  sees only a part of it (`log(sum(exp(...)))`) could destroy its match.
- At one node, the match covering the most gates wins; ties go to the earlier row.
- After a rewrite, the readers of the new value are visited again, then the new nodes: an
  inner rewrite (a clean-up, a folded constant) can complete an outer pattern at once.
Passes over the whole graph repeat until one changes nothing (a rewrite can also unblock a
fan-out elsewhere). Every rewrite is recorded with the nodes it replaced, so a report can say
which fusion cured which gates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from ..ir.errors import GraphcError
from ..ir.graph import add_node, args_of, copy_graph, topo_order

COMMUTATIVE = frozenset({"add", "mul"})  # not maximum/minimum: a tie goes to the first argument
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

    def __reduce_ex__(self, protocol):
        """A row of graphc's rule table pickles as its place there, by name (a fused graph
        records the rules that fired, and a row's replacement or condition may be a lambda,
        which pickle cannot carry); any other rule pickles field by field."""
        rows = [r for r in TABLE if r.name == self.name]
        for k, row in enumerate(rows):
            if row is self:
                return table_row, (self.name, k)
        return super().__reduce_ex__(protocol)


def table_row(name: str, k: int) -> Rule:
    """The `k`th row named `name` of graphc's rule table (how a pickled row is read back)."""
    return [r for r in TABLE if r.name == name][k]


# graphc's own rule table: the rows `fusion` defines over this driver, registered there (this
# module never imports `fusion`; a pickled row is read back after `import graphc` registered it)
TABLE: list[Rule] = []


def register_table(rows) -> None:
    """Make `rows` graphc's rule table, the rows that pickle by their place in it."""
    TABLE[:] = rows


class OneOf:
    """A pattern part matching any of several spellings, tried in order.

    >>> minus_2x = OneOf(("neg", ("mul", 2, "x")), ("mul", -2, "x"))   # -(2*x) or -2*x
    """

    __slots__ = ("spellings",)

    def __init__(self, *spellings):
        if not spellings:
            raise GraphcError("OneOf needs at least one spelling")
        self.spellings = spellings

    def __repr__(self) -> str:
        return f"OneOf{self.spellings!r}"

    def __eq__(self, other) -> bool:
        return isinstance(other, OneOf) and self.spellings == other.spellings

    def __hash__(self) -> int:
        return hash(self.spellings)


def _scalar(g: nx.DiGraph, n: int):
    data = g.nodes[n]
    if data["op"] == "const" and np.ndim(data["value"]) == 0:
        return float(data["value"])
    return None


def match(g: nx.DiGraph, node: int, pattern, binding: dict) -> dict | None:
    """Bindings extending `binding` under which `pattern` matches at `node`, or None.

    `binding["_matched"]` collects the gate nodes the pattern covers.
    """
    if isinstance(pattern, OneOf):
        for spelling in pattern.spellings:
            b = match(g, node, spelling, binding)
            if b is not None:
                return b
        return None
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
    _takes_place(g, new, old)


def _takes_place(g: nx.DiGraph, new: int, old: int) -> None:
    """`new` is written where `old` was (`ir.graph.user_order`): the user's order survives."""
    if new > old:  # a node made now; an older node keeps its own place
        g.nodes[new].setdefault("at", g.nodes[old].get("at", old))


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


def applicable(g: nx.DiGraph, rule: Rule, node: int) -> dict | None:
    """The bindings under which `rule` may rewrite `node`, or None (no match, its condition
    fails, or it would swallow a value something else reads)."""
    binding = match(g, node, rule.pattern, {})
    if binding is None or (rule.when and not rule.when(binding)):
        return None
    if _swallows_shared_value(g, node, binding["_matched"]):
        return None
    return binding


def most_gates(pattern) -> int:
    """The most gates a match of `pattern` can cover."""
    if isinstance(pattern, OneOf):
        return max(most_gates(p) for p in pattern.spellings)
    if not isinstance(pattern, tuple):
        return 0
    return 1 + sum(most_gates(p) for p in pattern[1:] if not isinstance(p, dict))


def _root_ops(pattern) -> list[str]:
    """The gates a pattern can match at its root."""
    if isinstance(pattern, OneOf):
        return list(dict.fromkeys(op for p in pattern.spellings for op in _root_ops(p)))
    if not isinstance(pattern, tuple) or not pattern:
        raise GraphcError(
            f"a rule's pattern must be a gate, as in ('exp', 'x'), not {pattern!r}; a rule that "
            "would match any node has no gate to replace"
        )
    return [pattern[0]]


def _argument_ops(pattern) -> list[str]:
    """The ops a match's arguments must have, one per argument pattern that names one ("const"
    for a constant): ("add", ("add", "x", "#a"), "#b") needs an add and a const."""
    if isinstance(pattern, OneOf):
        return []
    needed = []
    for p in pattern[1:]:
        if isinstance(p, tuple):
            needed.append(p[0])
        elif isinstance(p, (int, float)) or (isinstance(p, str) and p.startswith("#")):
            needed.append("const")
    return needed


def _by_size(rules: list[Rule]) -> list[tuple[int, int, Rule, list[str]]]:
    """(most gates, row index, rule, argument ops), largest patterns first, then in row order."""
    return sorted(((most_gates(r.pattern), i, r, _argument_ops(r.pattern))
                   for i, r in enumerate(rules)),
                  key=lambda t: (-t[0], t[1]))  # fmt: skip


def _has_all(present: list[str], needed: list[str]) -> bool:
    """Whether `present` holds every op of `needed`, as many times as it is there."""
    left = list(present)
    for op in needed:
        if op not in left:
            return False
        left.remove(op)
    return True


def _best_rule(g: nx.DiGraph, rules, node: int) -> tuple[Rule, dict] | None:
    """The rule to apply at `node`: the applicable one covering the most gates (first on a tie).

    `rules` comes from `_by_size`, so the search stops once no later row could cover more, and
    a rule whose arguments need ops the node's arguments lack is not tried.
    """
    present = [g.nodes[a]["op"] for a in args_of(g, node)]
    best = None  # (gates covered, -row index, rule, binding)
    for most, i, rule, needed in rules:
        if best is not None and most < best[0]:
            break
        if not _has_all(present, needed):
            continue
        binding = applicable(g, rule, node)
        if binding is not None:
            key = (len(set(binding["_matched"])), -i)
            if best is None or key > best[:2]:
                best = (*key, rule, binding)
    return None if best is None else best[2:]


def apply_rule(g: nx.DiGraph, rule: Rule, node: int, binding: dict | None = None) -> int | None:
    """Rewrite at `node` if `rule` applies there; the node now computing its value, or None."""
    binding = binding if binding is not None else applicable(g, rule, node)
    if binding is None:
        return None
    template = rule.replacement(binding) if callable(rule.replacement) else rule.replacement
    first = g.graph["next_id"]
    new = _build(g, template, binding)
    if new == node:
        return None
    for m in range(first, g.graph["next_id"]):  # the replacement's inner nodes, in its place
        if m in g:
            _takes_place(g, m, node)
    replace(g, node, new)
    remove_dead(g, [node])
    covered = tuple(sorted(set(binding["_matched"])))
    g.graph.setdefault("rewrites", []).append((rule, new, covered))
    return new


def rewrite(g: nx.DiGraph, rules: list[Rule]) -> nx.DiGraph:
    """A copy of `g` with `rules` applied to a fixed point (see the module docstring for the order).

    The copy's `graph["rewrites"]` lists (rule, new node, replaced nodes) in order.
    """
    h = copy_graph(g)
    h.graph["rewrites"] = list(g.graph.get("rewrites", []))
    by_op: dict[str, list[Rule]] = {}
    for r in rules:
        for op in _root_ops(r.pattern):
            by_op.setdefault(op, []).append(r)
    ordered = {op: _by_size(rows) for op, rows in by_op.items()}
    budget = MAX_SWEEPS * max(h.number_of_nodes(), 1)  # rewrites allowed: a loop guard
    for _ in range(MAX_SWEEPS):
        changed = False
        stack = topo_order(h)  # arguments first: popping from the end visits roots first
        while stack:
            n = stack.pop()
            if n not in h or h.nodes[n]["op"] not in ordered:
                continue
            chosen = _best_rule(h, ordered[h.nodes[n]["op"]], n)
            if chosen is None:
                continue
            rule, binding = chosen
            first_new = h.graph["next_id"]
            new = apply_rule(h, rule, n, binding)
            if new is None:
                continue
            changed, budget = True, budget - 1
            if budget < 0:
                break
            # visit the readers of the new value first (a larger pattern may now match there),
            # then the new nodes, root first
            stack.extend(m for m in range(first_new, h.graph["next_id"]) if m in h)
            stack.extend(sorted(h.successors(new), reverse=True))
        if not changed:
            return h
        if budget < 0:
            break
    raise GraphcError(
        "rewriting did not reach a fixed point; two rules undo each other — report the rules "
        "passed to fuse()"
    )
