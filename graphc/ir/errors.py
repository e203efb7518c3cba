"""Errors: one `GraphcError` hierarchy shared by every stage.

Leaf module: imports nothing from graphc. Each subclass also derives from the built-in exception
a Python user would expect (`TypeError` for wrong arguments, `ValueError` for wrong values), so
`except ValueError` keeps working. Every message says what was wrong and what to do about it.
"""


class GraphcError(Exception):
    """Base class of every error graphc raises on purpose."""


class InputError(GraphcError, TypeError):
    """Arguments of a compiled function: missing, unexpected, badly named or of a refused type."""


class TraceError(GraphcError, TypeError):
    """Tracing met Python that cannot become a graph (e.g. `if x > 0:` on a traced value)."""


class GraphError(GraphcError, ValueError):
    """A graph that is not a valid graphc DAG: a cycle, an unknown op, a wrong arity."""


class ShapeError(GraphcError, ValueError):
    """Shapes that cannot broadcast, multiply, reduce or reshape."""


class GateError(GraphcError, ValueError):
    """A gate definition graphc cannot use, e.g. a formula SymPy cannot differentiate."""
