"""The draw wing: pictures of circuits, for slides and notebooks.

`render` draws a circuit with graphviz the way the lecture does (values above the wires,
gradients below) from the values the generated code computed; `compare` sets an unfused function
beside its fused version; `notebook` is what Jupyter shows of a drawing (scaled to the
notebook's width, in the graphviz package's Jupyter format) and of step frames (a player);
`gallery` writes the lecture circuits' page of pictures and code; `modes` draws forward mode
(tangents under the wires) and both modes side by side; `explore` makes one self-contained web
page that steps through forward and backward (its script and style are `explore_assets`).
`notation` writes local gradients in the lecture's notation. Nothing here evaluates text; the
numbers drawn are those the generated code computed (but the shares of a value read twice by
one gate, see `render`, and the explorer's local gradients: gradient / upstream).

May import: `graphc.ir`, `graphc.passes` and `graphc.emit` (the values it draws), never
`graphc.function` or `graphc.cli`.

Modules, in pipeline order:
    notation -> explore_assets -> render -> notebook -> explore -> compare -> gallery | modes
"""
