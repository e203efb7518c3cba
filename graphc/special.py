"""Special functions: SymPy functions with exact derivatives, and their NumPy helpers.

Stage: vocabulary. Imports nothing from graphc.

SymPy knows sigmoid-like functions only as compositions of exp, whose naive NumPy spelling
overflows. Each function here is a SymPy `Function` whose `fdiff` gives a derivative that stays
exact (sigma' = sigma(x)*sigma(-x), not s*(1-s), which rounds to 0 for x > 37), and a helper that
the generated module defines when it uses the function.
"""

from __future__ import annotations

import sympy


class sigmoid(sympy.Function):  # noqa: N801 - printed as the generated module's `sigmoid`
    """The logistic function 1/(1+exp(-x)), a SymPy function whose derivative stays exact."""

    nargs = 1

    def fdiff(self, argindex=1):
        # sigma'(x) = sigma(x) * sigma(-x): equal to s*(1-s) but exact where 1-s rounds to 0
        (x,) = self.args
        return sigmoid(x) * sigmoid(-x)

    def _eval_rewrite_as_exp(self, x, **kwargs):
        return 1 / (1 + sympy.exp(-x))


SIGMOID_HELPER = '''\
def sigmoid(x):
    """1/(1+exp(-x)) for any x: exp is only taken of -|x|, so it never overflows."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0, e) / (1.0 + e)
'''
