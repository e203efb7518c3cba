"""The passes wing: graph -> graph, and graph -> program.

`rewrite` is the one driver that applies pattern rules, `fusion` the rule rows and the pass that
runs them; `lower` spells exact gates over a shared intermediate; `autodiff` adds the backward
pass as graph nodes (the chain rule, gradients summed at forks); `schedule` orders the
statements and names them (a `Program`); `shortcuts` plans how the printed module spells a few
steps in fewer passes; `lint` looks for inputs where an unfused graph overflows. Forward mode
and second order: `forward` adds each value's tangent as graph nodes and schedules the tangent
code; `gradient` makes the backward pass a graph of its own (gradients as outputs).

May import: `graphc.ir`.

Modules, in pipeline order:
    rewrite -> fusion -> lower -> autodiff -> gradient -> schedule -> shortcuts | forward
    (lint beside them)
"""
