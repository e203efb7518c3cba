"""The IR wing: the graph and the gate table every other wing reads.

A circuit is a networkx DAG of gates (`graph`); what each gate is, its NumPy spelling and its
local gradients derived with SymPy is one row of the gate table (`ops`, with its tensor half in
`tensor` and the exact special functions in `special`). `shapes` and `dtypes` read off the shape
and dtype of every value; `text` is the one rule for every string that reaches code or a
picture; `errors` is the exception hierarchy all wings raise.

May import: nothing of graphc outside this wing.

Modules, in the order they build on each other:
    errors -> text -> special -> tensor -> ops -> graph -> shapes -> dtypes
"""
