"""The draw wing: pictures of circuits, for slides and notebooks.

`render` draws a circuit with graphviz the way the lecture does (values above the wires,
gradients below) from the values the generated code computed; `compare` sets an unfused function
beside its fused version; `gallery` writes the lecture circuits' page of pictures and code.
Nothing here evaluates text; the numbers drawn are those the generated code computed (but the
shares of a value read twice by one gate, see `render`).

May import: `graphc.ir`, `graphc.passes` and `graphc.emit` (the values it draws), never
`graphc.function` or `graphc.cli`.

Modules, in pipeline order:
    notation -> render -> compare -> gallery
"""
