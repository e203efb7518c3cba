r"""Text is data: the one rule for every string that reaches generated code or a drawing.

Stage: ir, read by every wing that writes code or pictures. Imports only `errors`.

Strings from users and files take one of two roads, and nothing else reaches code or a picture:

- A *name* (an input, a local-variable hint, a graph's or a gate's name) becomes a Python
  variable, so `name` lets it through only if it is a plain Python identifier that Python
  reads as itself: NFKC-stable, since Python normalises identifiers to NFKC when it compiles
  them (`ｘ`, `ℌ` and `ﬁ` would silently be the variables `x`, `H` and `fi`). Anything else is
  refused, with the field named and the NFKC spelling to use.
- Any other *text* (a gate's label or symbol, a comment, a title) is only ever written as
  text: `line` makes it one line of printable characters (a line break, a control or format
  character, a lone surrogate becomes its escape, `\n`, `\u202e`), which is all a `#`
  comment needs; `quoted` also escapes backslashes and double quotes, for a Python string
  (a docstring); `label` also escapes `&`, for a Graphviz label in double quotes, which the
  drawings then mark as plain text (never an HTML-like `<...>` label); `markup` escapes it
  for XML and HTML-like labels.

A name that is fine but equals a name the generated modules use for themselves (`np`, `cache`,
a helper) is not refused: the scheduler renames its variable (`np_`), see `schedule.sanitize`.
"""

from __future__ import annotations

import html
import unicodedata

from .errors import GraphError


def is_name(value) -> bool:
    """Whether `value` is a name graphc writes into code as it is (see `name`)."""
    return (
        isinstance(value, str)
        and value.isidentifier()
        and unicodedata.normalize("NFKC", value) == value
    )


def name(value, what: str, error: type[Exception] = GraphError) -> str:
    """`value` if it is a plain Python identifier that Python reads as itself, else `error`.

    `what` names the field in the message (`input name`, `node 3's 'hint'`). Keywords pass
    (`lambda` becomes the variable `lambda_` in code); so does any identifier in NFKC form.

    >>> name("x", "input name")
    'x'
    """
    if is_name(value):
        return value
    if not isinstance(value, str):
        raise error(
            f"{what} must be a string, a Python identifier such as 'x', got "
            f"{type(value).__name__} {shown(value)}"
        )
    nfkc = unicodedata.normalize("NFKC", value)
    if nfkc != value and nfkc.isidentifier():
        raise error(
            f"{what} {shown(value)} is not in NFKC form: Python normalises identifiers, so it "
            f"would silently be the variable {nfkc!r}; write {nfkc!r} instead"
        )
    raise error(
        f"{what} {shown(value)} is not a Python identifier; use letters, digits and "
        "underscores, not starting with a digit"
    )


def shown(value, limit: int = 80) -> str:
    """A value for an error message: its repr (printable, quoted), cut short."""
    try:
        text = repr(value)
    except Exception:  # a repr that fails is no reason for another exception
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 4] + " ..."


def line(value) -> str:
    r"""`value` as one line of printable characters: others become their escapes (`\n`).

    Safe after a `#` in generated code, and the first step of every other kind of text.
    """
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(c: str) -> str:
    code = ord(c)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def quoted(value) -> str:
    """`line(value)` with backslashes and double quotes escaped: the inside of a double-quoted
    Python string (a docstring) or Graphviz label, which shows the text as it is."""
    return line(value).replace("\\", "\\\\").replace('"', '\\"')


def label(value) -> str:
    """`quoted(value)` with `&` escaped too: the inside of a Graphviz label in double quotes
    that shows the text as it is (Graphviz reads entities such as `&lt;` in any label; the
    drawing also marks the label as no HTML-like one, see `render.plain`)."""
    return quoted(value).replace("&", "&amp;")


def markup(value) -> str:
    """`line(value)` escaped for XML, SVG and Graphviz's HTML-like labels (`<` as `&lt;`)."""
    return html.escape(line(value), quote=True)


def text_table(rows) -> str:
    """Rows of cells (the first row the header) as aligned plain text, one row a line: what
    `print` shows of a report."""
    rows = [[line(c) for c in row] for row in rows]
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)


def html_table(rows, caption: str = "") -> str:
    """Rows of cells (the first row the header) as an HTML table, every cell escaped: what a
    notebook shows of a report."""
    head, *body = [[markup(c) for c in row] for row in rows]
    cells = "".join(f"<th>{c}</th>" for c in head)
    lines = [f"<tr>{''.join(f'<td>{c}</td>' for c in row)}</tr>" for row in body]
    title = f"<caption>{markup(caption)}</caption>" if caption else ""
    return (
        f'<table class="graphc-table">{title}<thead><tr>{cells}</tr></thead>'
        f"<tbody>{''.join(lines)}</tbody></table>"
    )
