"""The front wing: what users write, turned into a graph.

`trace` runs a Python function on traced values (and reads SymPy expressions); `gates` is the
public vocabulary (`gc.exp`, `gc.sum`, `gc.gate`, ...), which traces on traced values and
computes on numbers; `params` checks the gates' keyword parameters (axes, shapes) once for both;
`parse` reads the command line's expressions by a whitelist over `ast`, never `eval`.

May import: `graphc.ir`.

Modules, in pipeline order:
    params -> trace -> gates -> parse
"""
