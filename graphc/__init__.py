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

import sys
import types
import typing

# The public API by module. It loads on first use (PEP 562), all of it at once, so that
# `graphc --help` and `graphc --version` start without importing SymPy and NumPy.
_API = {
    ".check": ("check_grad",),
    ".draw.compare": ("Comparison", "compare"),
    ".front.gates": (
        "abs", "arange", "concatenate", "exp", "gate", "log", "matmul", "max", "maximum",
        "mean", "minimum", "relu", "reshape", "sigmoid", "sqrt", "stack", "sum",
        "take_along_axis", "tanh", "transpose", "where",
    ),
    ".front.trace": ("symbols", "sympy_graph"),
    ".function": ("Function", "from_graph", "from_sympy", "function"),
    ".ir.errors": (
        "GateError", "GraphcError", "GraphError", "InputError", "ShapeError", "TraceError",
    ),
    ".modes": ("hessian", "jacobian"),
    ".passes.fusion": ("fuse",),
    ".passes.lint": ("lint",),
}  # fmt: skip

if typing.TYPE_CHECKING:  # what type checkers and editors read: the same names, imported eagerly
    from .check import check_grad
    from .draw.compare import Comparison, compare
    from .front.gates import (
        abs,
        arange,
        concatenate,
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
        stack,
        sum,
        take_along_axis,
        tanh,
        transpose,
        where,
    )
    from .front.trace import symbols, sympy_graph
    from .function import Function, from_graph, from_sympy, function
    from .ir.errors import GateError, GraphcError, GraphError, InputError, ShapeError, TraceError
    from .modes import hessian, jacobian
    from .passes.fusion import fuse
    from .passes.lint import lint


def _load_api() -> None:
    """Import the whole public API now (the first `gc.<name>` does it too)."""
    import importlib

    found: dict[str, typing.Any] = {}
    for module, names in _API.items():
        loaded = importlib.import_module(module, __name__)
        found.update((name, getattr(loaded, name)) for name in names)
    globals().update(found)  # after the imports: `function` is the decorator, not the module


def __getattr__(name: str) -> typing.Any:
    if any(name in names for names in _API.values()):
        _load_api()
        return globals()[name]
    raise AttributeError(f"module 'graphc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *(n for names in _API.values() for n in names)})


class _Package(types.ModuleType):
    """The package's module type: importing the submodule graphc.function binds the module as
    the package's attribute `function`, which is the decorator `gc.function`; that one binding
    is refused, so the order in which modules are imported cannot change what gc.function is."""

    def __setattr__(self, name: str, value: typing.Any) -> None:
        if name == "function" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


# What `from graphc import *` binds: every public name but the gates named like Python's
# built-ins (abs, max, sum), which would silently change what `sum([1, 2, 3])` computes; they
# stay gc.abs, gc.max and gc.sum.
__all__ = [
    "Comparison", "Function", "GateError", "GraphError", "GraphcError", "InputError",
    "ShapeError", "TraceError", "arange", "check_grad", "compare", "concatenate", "exp",
    "from_graph", "from_sympy", "function", "fuse", "gate", "hessian", "jacobian", "lint", "log",
    "matmul", "maximum", "mean", "minimum", "relu", "reshape", "sigmoid", "sqrt", "stack",
    "symbols", "take_along_axis", "tanh", "transpose", "where",
]  # fmt: skip
