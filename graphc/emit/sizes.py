"""Sizes read from the arguments: printed statements that work for every size of their pattern.

Stage: emit (printed statements -> statements without a size in them). Imports `ir`.

The compiler works on probe shapes (`ir.shapes.probe_sizes`): each class of equal sizes is an
unmistakable integer (the call's size shifted left, tagged in its low bits). The printer writes
shapes and counts as it always does; this module then rewrites every probe it finds as a read
of a value in scope, the way a person writes it: a whole shape as `xc.shape`, one size as
`dout.shape[0]`, a count over several axes as `x.size` or `(x.shape[0] * x.shape[1])`. What is
in scope is the function's own: `forward` reads its inputs, `backward` its upstream gradient
and the cache (`needed` says which sizes the cache must carry so that it can). A module in which
a size is left that cannot be read this way is not generic (`leftover`): the compiler then
specialises it to the call's exact shapes, as before.
"""

from __future__ import annotations

import re

from ..ir.shapes import Sizes

_TUPLE = re.compile(r"\((?:\s*\d+\s*,)+\s*(?:\d+\s*)?\)")  # (5, 4) or (5,)
_PRODUCT = re.compile(r"\(\d+(?: \* \d+)+\)")  # (5 * 4), as `count_code` writes it
_INT = re.compile(r"(?<![\w.])\d+(?![\w.])")
_NUMBER = re.compile(r"(?<![\w.])(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![\w.])")


class Scope:
    """The values a function can read sizes from: (name, probe shape), in order of preference."""

    def __init__(self, values: list[tuple[str, tuple[int, ...]]], sizes: Sizes):
        self.sizes = sizes
        self.shapes = {}
        self.dims = {}
        self.counts = {}  # the product of a value's sizes (but 1s) -> `name.size`
        for name, shape in values:
            self.shapes.setdefault(tuple(shape), name)
            varying = tuple(sorted(d for d in shape if d != 1))
            if len(varying) > 1 and all(d in sizes.real for d in varying):
                self.counts.setdefault(varying, f"{name}.size")
            for axis, d in enumerate(shape):
                if d in sizes.real:
                    self.dims.setdefault(d, f"{name}.shape[{axis}]")

    def size(self, d: int) -> str | None:
        """How code reads probe size `d` (None: no value in scope has it)."""
        return self.dims.get(d)

    def rewrite(self, lines: str) -> str:
        """Statement lines with each probe shape and size in the code read from the scope
        (probes it cannot read are left, for `leftover` to find) and, in the comments, called
        by the docstring's letters: `# beta was broadcast to (N, D)`."""
        if not any(str(d) in lines for d in self.sizes.real):
            return lines
        return "\n".join(map(self._line, lines.split("\n")))

    def _line(self, line: str) -> str:
        code, hash_, comment = line.partition("  # ")
        code = _PRODUCT.sub(self._product, code)
        code = _TUPLE.sub(self._tuple, code)
        code = _INT.sub(lambda m: self.size(int(m[0])) or m[0], code)
        letters = self.sizes.letters
        comment = _INT.sub(lambda m: letters.get(int(m[0]), m[0]), comment)
        return code + hash_ + comment

    def _product(self, m: re.Match) -> str:
        dims = tuple(sorted(int(d) for d in m[0].strip("()").split(" * ")))
        return self.counts.get(dims, m[0])

    def _tuple(self, m: re.Match) -> str:
        shape = tuple(int(d) for d in m[0].strip("()").split(",") if d.strip())
        if not any(d in self.sizes.real for d in shape):
            return m[0]
        if shape in self.shapes:
            return f"{self.shapes[shape]}.shape"
        parts = [self.size(d) or str(d) for d in shape]
        return f"({parts[0]},)" if len(parts) == 1 else f"({', '.join(parts)})"


def probes_in(lines: list[str], sizes: Sizes) -> set[int]:
    """The probe sizes the lines print."""
    found = set()
    for line in lines:
        found.update(int(t) for t in _INT.findall(line) if int(t) in sizes.real)
    return found


def needed(lines: list[str], scope: Scope, sizes: Sizes) -> set[int]:
    """Probe sizes `lines` print that no value in `scope` has."""
    return {d for d in probes_in(lines, sizes) if scope.size(d) is None}


def leftover(source: str, sizes: Sizes, allowed: set[float]) -> list[str]:
    """Numbers in `source` that could be sizes: a probe, or a large number (a product of probes
    printed as a float) that is not one of the `allowed` constants the user wrote."""
    found = []
    for token in _NUMBER.findall(source):
        value = float(token)
        if value >= 1 << 24 and value not in allowed:
            found.append(token)
    return found


def count_code(shape: tuple[int, ...], axes: tuple[int, ...], sizes: Sizes) -> str | None:
    """A count over `axes` of a probe shape as a product of its probe sizes, for `Scope.rewrite`
    to read (None where a size is fixed: the count is then a plain number)."""
    dims = [shape[a] for a in axes if shape[a] != 1]
    if len(dims) < 2 or not all(d in sizes.real for d in dims):
        return None  # one size is its probe, printed as a number; a 0 leaves nothing to divide
    return "(" + " * ".join(str(d) for d in dims) + ")"
