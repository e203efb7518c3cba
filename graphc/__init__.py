"""graphc: a symbolic computational-graph compiler for teaching and checking backpropagation.

Write a function or an expression; graphc turns it into a networkx DAG of gates, derives each
gate's local gradient with SymPy and emits readable, vectorized NumPy forward/backward code.

>>> import graphc as gc
>>> @gc.function
... def f(x, y, z):
...     return (x + y) * z
>>> f.value_and_grad(x=-2.0, y=5.0, z=-4.0)
(-12.0, {'x': -4.0, 'y': -4.0, 'z': 3.0})
"""

__version__ = "0.1.0"

from .check import check_grad
from .draw.compare import Comparison, compare
from .front.gates import (
    abs,
    exp,
    gate,
    log,
    matmul,
    max,
    maximum,
    mean,
    minimum,
    relu,
    reshape,
    sigmoid,
    sqrt,
    sum,
    tanh,
    transpose,
    where,
)
from .front.trace import symbols, sympy_graph
from .function import Function, from_graph, function
from .ir.errors import GateError, GraphcError, GraphError, InputError, ShapeError, TraceError
from .modes import hessian, jacobian
from .passes.fusion import fuse
from .passes.lint import lint


def from_sympy(expr, name: str = "f") -> Function:
    """A `Function` from a SymPy expression; its inputs are the free symbols, alphabetically.

    >>> import sympy
    >>> x, y = sympy.symbols("x y")
    >>> gc.from_sympy(x**2 + 2*x*y**2 + y**3).grad(x=1.0, y=2.0)["x"]
    10.0
    """
    return Function(sympy_graph(expr, name))


# What `from graphc import *` binds: every public name but the gates named like Python's
# built-ins (abs, max, sum), which would silently change what `sum([1, 2, 3])` computes; they
# stay gc.abs, gc.max and gc.sum.
__all__ = [
    "Comparison", "Function", "GateError", "GraphError", "GraphcError", "InputError",
    "ShapeError", "TraceError", "check_grad", "compare", "exp", "from_graph", "from_sympy",
    "function", "fuse", "gate", "hessian", "jacobian", "lint", "log", "matmul", "maximum",
    "mean", "minimum", "relu", "reshape", "sigmoid", "sqrt", "symbols", "tanh", "transpose",
    "where",
]  # fmt: skip
