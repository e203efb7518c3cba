"""The emit wing: program -> code, and code -> a module that runs.

`codegen` prints a scheduled `Program` as the readable NumPy module (`forward`, `backward`,
`value_and_grad`) and loads it, `sizes` writing each size as a read of an argument's shape so
that the module works for every batch size; `scalar` runs that module's statements on Python
floats, straight through; `numba_backend` runs an elementwise program as one compiled loop;
`jvp` prints a forward-mode program as the tangent module `jvp(inputs..., tangents...)`;
`array_api` prints the same program in the array API standard, over its inputs' namespace.

May import: `graphc.ir` and `graphc.passes`.

Modules, in pipeline order:
    sizes -> codegen -> scalar | numba_backend | jvp | array_api
"""
