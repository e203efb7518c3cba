"""The NumPy path's entry for repeated calls: `f.value_and_grad` as one generated function.

Stage: top (the user's handle, beside `function.py`, which alone uses it). Imports NumPy only.

A call like one before it (same inputs by keyword, or all by position; each a NumPy array of
the same shape and dtype, or a Python float, or a NumPy float of the same type) needs none of
binding's checks or conversions (`Function._known`). Even that path builds a list of the
inputs, a key of their shapes and dtypes, looks it up and builds the gradients' dict in a loop:
about 10 us a call on a loaded machine, as much as a tenth of what the 2-layer net's module
costs at N=8. The entry written here checks the one call it was made for inline, reads the
inputs as its own parameters, calls the module and returns the gradients as a dict display:

    def value_and_grad(_gc_p0=_gc_absent, ..., /, *_gc_more, X=_gc_absent, ..., **_gc_unknown):
        if _gc_p0 is _gc_absent: ...          # by name
        elif X is ... is _gc_absent: ...      # by position
        if not (_gc_more or _gc_unknown) and _gc_type(X) is _gc_array and X.shape == _gc_s0 ...:
            _gc_out, _gc_g = _gc_module(X, ...)
            return _gc_out, {"X": _gc_g[0], ...}
        return _gc_otherwise(...)             # every other call: the NumPy path, as called

Any other call (other shapes or types, a missing, unexpected or repeated input) goes to the
NumPy path with the arguments as given, which binds them and says what is wrong.
"""

from __future__ import annotations

import keyword
import linecache
from collections.abc import Callable

import numpy as np

ABSENT = type("Absent", (), {"__repr__": lambda self: "<not given>"})()
PREFIX = "_gc_"  # the entry's own names; an input named so gets no entry


def can_enter(names: tuple[str, ...]) -> bool:
    """Whether inputs of these names can be the entry's parameters."""
    return bool(names) and all(
        k.isidentifier() and not keyword.iskeyword(k) and not k.startswith(PREFIX)
        and k != "__debug__"  # a name no parameter can have
        for k in names
    )  # fmt: skip


def entry(
    title: str,
    names: tuple[str, ...],
    key: tuple,
    run: Callable,
    converted: tuple,
    gradients: tuple[tuple[str, int, bool], ...],
    value: Callable | None,
    gradient: Callable,
    mark: Callable[[], None],
    otherwise: Callable,
) -> Callable:
    """`value_and_grad` of the function `title` for calls of `key` (`function._call_key`:
    (shape, dtype) of an array, or the type of a scalar, per input).

    `run`: the module's value_and_grad; `converted`: (input position, dtype) the module takes
    it in (`Compiled.prepared`); `gradients`: (name, input position, converted?) per gradient
    returned, converted by `gradient(g, input)`; `value(out, inputs)` converts the value (None:
    as the module returns it); `mark()` notes the call (`Function._last`); `otherwise(*args,
    **kwargs)` answers every other call."""
    ns: dict[str, object] = {  # builtins too: an input may be named `type` or `len`
        "_gc_type": type,
        "_gc_len": len,
        "_gc_zip": zip,
        "_gc_absent": ABSENT,
        "_gc_array": np.ndarray,
        "_gc_run": run,
        "_gc_value": value,
        "_gc_gradient": gradient,
        "_gc_mark": mark,
        "_gc_otherwise": otherwise,
        "_gc_names": names,
    }
    positions = [f"_gc_p{i}" for i in range(len(names))]
    checks = []
    for i, (k, kind) in enumerate(zip(names, key)):
        if isinstance(kind, tuple):  # an array: (shape, dtype)
            ns[f"_gc_s{i}"], ns[f"_gc_d{i}"] = kind
            checks.append(
                f"_gc_type({k}) is _gc_array and {k}.shape == _gc_s{i} and {k}.dtype == _gc_d{i}"
            )
        else:  # a scalar: its type (float, np.float64, ...)
            ns[f"_gc_t{i}"] = kind
            checks.append(f"_gc_type({k}) is _gc_t{i}")
    args = list(names)
    for i, dtype in converted:
        ns[f"_gc_c{i}"] = dtype
        array = isinstance(key[i], tuple)
        args[i] = f"{names[i]}.astype(_gc_c{i})" if array else f"_gc_c{i}.type({names[i]})"
    out = "_gc_value(_gc_out, (" + ", ".join(names) + ",))" if value is not None else "_gc_out"
    items = []
    for j, (k, i, convert) in enumerate(gradients):
        g = f"_gc_g[{j}]"
        items.append(f"{k!r}: " + (f"_gc_gradient({g}, {names[i]})" if convert else g))
    signature = ", ".join(
        [*(f"{p}=_gc_absent" for p in positions), "/", "*_gc_more",
         *(f"{k}=_gc_absent" for k in names), "**_gc_unknown"]
    )  # fmt: skip
    source = "\n".join(
        [
            f"def value_and_grad({signature}):",
            "    if _gc_p0 is _gc_absent:  # by name, or nothing by position",
            "        _gc_named = True",
            f"    elif {' is '.join(names)} is _gc_absent:  # by position",
            f"        {', '.join(names)}, = {', '.join(positions)},",
            "        _gc_named = False",
            "    else:  # mixed",
            "        _gc_named = None",
            "    if _gc_named is not None and not (_gc_more or _gc_unknown) and (",
            *(f"        {c} and" for c in checks[:-1]),
            f"        {checks[-1]}",
            "    ):",
            "        _gc_mark()",
            f"        _gc_out, _gc_g = _gc_run({', '.join(args)})",
            f"        return {out}, {{{', '.join(items)}}}",
            "    # any other call: the NumPy path, with the arguments as given",
            f"    _gc_given = ({', '.join(positions)},)",
            "    _gc_n = _gc_len(_gc_given)  # positions fill from the left: given ones come first",
            "    while _gc_n and _gc_given[_gc_n - 1] is _gc_absent:",
            "        _gc_n -= 1",
            f"    _gc_by_name = ({', '.join(names)},) if _gc_named is not False else ()",
            "    _gc_kw = _gc_zip(_gc_names, _gc_by_name)",
            "    _gc_kw = {k: v for k, v in _gc_kw if v is not _gc_absent}",
            "    return _gc_otherwise(*_gc_given[:_gc_n], *_gc_more, **_gc_kw, **_gc_unknown)",
        ]
    )
    filename = f"<graphc:{title}:value_and_grad>"  # tracebacks show the entry's lines
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), ns)  # our own code, of checked names
    made = ns["value_and_grad"]
    assert callable(made)
    return made
