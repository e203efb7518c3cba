"""What a notebook shows of graphc's text: generated code, highlighted.

Stage: top. Imports nothing of graphc (pictures are the draw wing's `notebook`).

`Code` is the generated module as a `str` (compare it, slice it, write it, `exec` it: it is the
text), which a notebook shows highlighted: by Pygments where it is installed, as plain
preformatted text where it is not.
"""

from __future__ import annotations

import html


class Code(str):
    """Python source that a notebook shows highlighted; in every other way the `str` it is."""

    __slots__ = ()

    def _repr_html_(self) -> str:
        return highlighted(str(self))


def highlighted(source: str) -> str:
    """HTML of Python source: Pygments' highlighting with inline styles (no stylesheet needed),
    or escaped preformatted text without Pygments."""
    try:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer
    except ImportError:
        return f'<pre class="graphc-code">{html.escape(source)}</pre>'
    return highlight(source, PythonLexer(), HtmlFormatter(noclasses=True, cssclass="graphc-code"))
