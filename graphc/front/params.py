"""The gates' keyword parameters, checked once for `gc.sum(x, axis=...)` and `x.sum(axis=...)`.

Stage: front. Imports `ir.errors` only. `gates` (the functions users call) and `trace` (the
methods of traced values) both read their parameters through here, so a mistake gets the same
message either way and neither module needs the other's.
"""

from __future__ import annotations

from ..ir.errors import TraceError


def axis(value, gate: str):
    """A reduction's `axis`: None, an int or a non-empty tuple of ints."""
    if value is None or isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, tuple) and value and all(isinstance(a, int) for a in value):
        return value
    raise TraceError(f"gc.{gate}: axis must be None, an int or a tuple of ints, got {value!r}")


def reduction(value, keepdims, gate: str) -> dict:
    """The parameters of `sum` and `mean`."""
    return {"axis": axis(value, gate), "keepdims": bool(keepdims)}


def max_reduction(value, keepdims) -> dict:
    """The parameters of `max`, which reduces over one axis or all of them."""
    value = axis(value, "max")
    if isinstance(value, tuple) and len(value) != 1:
        raise TraceError("gc.max reduces over one axis or all of them; pass axis=None or an int")
    return {"axis": value[0] if isinstance(value, tuple) else value, "keepdims": bool(keepdims)}


def axes(value) -> tuple[int, ...] | None:
    """`transpose`'s permutation (None: reverse the axes)."""
    return None if value is None else tuple(int(a) for a in value)


def shape(value) -> tuple[int, ...]:
    """`reshape`'s target shape: an int or a tuple of non-negative ints, one entry may be -1."""
    value = (value,) if isinstance(value, int) else tuple(value)
    if not all(isinstance(n, int) and n >= -1 for n in value):
        raise TraceError(
            f"gc.reshape: shape must be a tuple of non-negative ints or -1, got {value!r}"
        )
    return value


def one_axis(value, gate: str) -> int:
    """The one `axis` of `take_along_axis`, `concatenate` and `stack`: an int."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TraceError(f"gc.{gate}: axis must be an int, got {value!r}")
