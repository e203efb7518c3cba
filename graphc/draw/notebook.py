"""Pictures in a notebook: drawings scaled to the notebook's width, and a player for step frames.

Stage: draw (a drawing -> what Jupyter displays). Imports `render` and `ir.text`.

Jupyter asks an object for its `_repr_mimebundle_`: a dict from MIME type to data. A drawing
answers with the image in the format the graphviz package's Jupyter setting names
(`graphviz.set_jupyter_format("png")`; SVG by default) and with `text/html` that shows the same
image scaled down to the notebook's width (never up past its natural size), which notebooks
prefer to a bare image. `Frames` (the step frames of `render_steps`) shows as a small player:
buttons and a slider in plain HTML and JavaScript, no widgets, nothing fetched from a network.
"""

from __future__ import annotations

import base64
import hashlib
import html
import itertools
import re

import graphviz

from ..ir import text
from . import render

_players = itertools.count(1)  # a page may show the same frames twice: each player its own id
MIME = {"svg": "image/svg+xml", "png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg"}


def jupyter_format() -> str:
    """The format `graphviz.set_jupyter_format` chose ("svg", "png" or "jpeg")."""
    integration = getattr(graphviz, "jupyter_integration", None)
    mimetype = getattr(getattr(integration, "JupyterIntegration", None), "_jupyter_mimetype", "")
    return {"image/png": "png", "image/jpeg": "jpeg"}.get(mimetype, "svg")


def scaled_svg(svg: str) -> str:
    """SVG text that fills the width it is given, up to its natural width, keeping its shape
    (its viewBox): the root's fixed width and height become `width: 100%`, `max-width`."""
    found = re.search(r"<svg\b[^>]*>", svg)
    if found is None:
        return svg
    tag = found.group(0)
    width = re.search(r'\swidth="([\d.]+)(pt|px)?"', tag)
    natural = f"max-width:{width.group(1)}{width.group(2) or 'px'};" if width else ""
    new = re.sub(r'\s(width|height)="[^"]*"', "", tag)
    new = new.replace("<svg", f'<svg width="100%" style="{natural}height:auto"', 1)
    body = svg[found.start() :].replace(tag, new, 1)
    return body  # from <svg on: the XML declaration and DOCTYPE do not belong inside HTML


def html_image(data: str | bytes, fmt: str, summary: str = "") -> str:
    """HTML showing an image (SVG text, or PNG/JPEG bytes) scaled to the width, under an
    optional one-line summary."""
    if fmt == "svg":
        image = scaled_svg(data if isinstance(data, str) else data.decode("utf-8"))
    else:
        encoded = base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()
        image = (
            f'<img src="data:{MIME[fmt]};base64,{encoded}" '
            'style="max-width:100%;height:auto" alt="graphc drawing">'
        )
    head = ""
    if summary:
        head = f'<div class="graphc-summary"><code>{text.markup(summary)}</code></div>'
    return f'<div class="graphc-picture">{head}<div style="max-width:100%">{image}</div></div>'


def mimebundle(picture: graphviz.Digraph, summary: str = "", include=None, exclude=None) -> dict:
    """What Jupyter shows of a drawing: the image in the graphviz package's Jupyter format, and
    HTML with it scaled to the notebook's width (see the module docstring)."""
    fmt = jupyter_format()
    data: str | bytes = render.svg_text(picture) if fmt == "svg" else render.pipe(picture, fmt)
    bundle = {MIME[fmt]: data, "text/html": html_image(data, fmt, summary)}
    if include is not None:
        bundle = {k: v for k, v in bundle.items() if k in set(include)}
    return {k: v for k, v in bundle.items() if k not in set(exclude or ())}


class Picture(graphviz.Digraph):
    """A graphviz Digraph (all of it: `.source`, `.pipe`, `.render`) that a notebook shows
    scaled to its width, in the graphviz package's Jupyter format."""

    @classmethod
    def of(cls, picture: graphviz.Digraph) -> Picture:
        """The same drawing as a Picture (from the Digraph's public attributes)."""
        return cls(
            name=picture.name, comment=picture.comment, filename=picture.filename,
            directory=picture.directory, format=picture.format, engine=picture.engine,
            encoding=picture.encoding, graph_attr=dict(picture.graph_attr),
            node_attr=dict(picture.node_attr), edge_attr=dict(picture.edge_attr),
            body=list(picture.body), strict=picture.strict,
        )  # fmt: skip

    def _repr_mimebundle_(self, include=None, exclude=None, **_) -> dict:
        return mimebundle(self, include=include, exclude=exclude)


class Frames(list):
    """Step frames (SVG text, one a frame): a list, which a notebook shows as a player."""

    def _repr_html_(self) -> str:
        return player(list(self))


_PLAYER_SCRIPT = """<script>
(function () {
  var root = document.getElementById("%(id)s");
  if (!root) return;
  var frames = root.querySelectorAll(".graphc-frame");
  var slider = root.querySelector("input"), label = root.querySelector(".graphc-count");
  var timer = null;
  function show(i) {
    i = Math.max(0, Math.min(frames.length - 1, i));
    frames.forEach(function (f, k) { f.style.display = k === i ? "" : "none"; });
    slider.value = i; label.textContent = (i + 1) + " / " + frames.length;
  }
  function step(d) { show(Number(slider.value) + d); }
  root.querySelector(".graphc-prev").onclick = function () { step(-1); };
  root.querySelector(".graphc-next").onclick = function () { step(1); };
  root.querySelector(".graphc-play").onclick = function () {
    if (timer) { clearInterval(timer); timer = null; return; }
    if (Number(slider.value) === frames.length - 1) show(0);
    timer = setInterval(function () {
      if (Number(slider.value) >= frames.length - 1) { clearInterval(timer); timer = null; }
      else step(1);
    }, 900);
  };
  slider.oninput = function () { show(Number(slider.value)); };
  show(0);
})();
</script>"""


def player(frames: list[str]) -> str:
    """HTML and JavaScript that step through SVG frames: back, play/pause, forward, a slider.
    Without JavaScript (a static viewer) every frame shows, one under the other."""
    digest = hashlib.sha1("".join(frames).encode("utf-8")).hexdigest()[:12]
    uid = f"graphc-steps-{digest}-{next(_players)}"
    shown = "".join(f'<div class="graphc-frame">{scaled_svg(svg)}</div>' for svg in frames)
    controls = (
        '<div class="graphc-controls">'
        '<button class="graphc-prev" title="back">&#9664;</button> '
        '<button class="graphc-play" title="play / pause">&#9654;&#10074;&#10074;</button> '
        '<button class="graphc-next" title="forward">&#9654;</button> '
        f'<input type="range" min="0" max="{max(len(frames) - 1, 0)}" value="0" step="1"> '
        f'<span class="graphc-count">{len(frames)} frames</span></div>'
    )
    return (
        f'<div class="graphc-steps" id="{html.escape(uid)}">{controls}{shown}</div>'
        + _PLAYER_SCRIPT % {"id": uid}
    )
