"""Reading a drawn circuit back from its SVG: the semantic groups, their text boxes and wires.

Independent of graphc's own layout code: text boxes come from the SVG's coordinates and font
sizes alone (a width of 0.6 em per character, Helvetica's widest digits are 0.556 em), wires
from the points of their paths, gates from their ellipses. A wire drawn in pieces (a detour, a
bend) is the group `<id>` and the groups `<id>-...` after it.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

SVG = "{http://www.w3.org/2000/svg}"
LABELS = ("value", "grad", "total", "local", "step")


@dataclass
class Text:
    id: str
    kind: str  # the group's class: value, grad, total, local, input, output, const, gate
    text: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in SVG coordinates (y down)
    fill: str

    @property
    def centre(self):
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)


@dataclass
class Wire:
    id: str
    tail: str
    head: str
    points: list[tuple[float, float]]
    stroke: str

    @property
    def segment(self):
        return self.points[0], self.points[-1]


@dataclass
class Drawing:
    texts: list[Text]
    wires: dict[str, Wire]
    gates: dict[str, tuple[float, float, float, float]]  # node title -> ellipse's box
    ids: dict[str, str]  # group id -> what it is (its semantic class)
    titles: dict[str, str]  # node group id -> graphviz title (the wires' ends)
    classes: dict[str, set[str]]  # group id -> all its classes
    symbols: dict[str, str]  # gate title -> its symbol


def classes(g) -> set[str]:
    return set((g.get("class") or "").split())


def kind_of(g) -> str | None:
    found = classes(g) & {*LABELS, "input", "output", "const", "gate", "wire", "fork"}
    return min(found) if found else None


def read(svg: str) -> Drawing:
    root = ET.fromstring(svg)
    texts, wires, gates, ids, titles, every, symbols = [], {}, {}, {}, {}, {}, {}
    for g in root.iter(f"{SVG}g"):
        kind = kind_of(g)
        if kind is None:
            continue
        ids[g.get("id")] = kind
        every[g.get("id")] = classes(g)
        title = g.find(f"{SVG}title").text
        if kind == "wire":
            d = g.find(f"{SVG}path").get("d")
            points = [tuple(map(float, p)) for p in re.findall(r"(-?[\d.]+),(-?[\d.]+)", d)]
            tail, head = title.split("->")
            wires[g.get("id")] = Wire(
                g.get("id"), tail, head.split(":")[0], points, g.find(f"{SVG}path").get("stroke")
            )
            continue
        titles[g.get("id")] = title
        ellipse = g.find(f"{SVG}ellipse")
        if kind == "gate" and ellipse is not None:
            cx, cy = float(ellipse.get("cx")), float(ellipse.get("cy"))
            rx, ry = float(ellipse.get("rx")), float(ellipse.get("ry"))
            gates[title] = (cx - rx, cy - ry, cx + rx, cy + ry)
            symbols[title] = g.find(f"{SVG}text").text
        for t in g.findall(f"{SVG}text"):
            size = float(t.get("font-size"))
            x, y = float(t.get("x")), float(t.get("y"))
            width = 0.6 * size * len(t.text or "")
            anchor = t.get("text-anchor")
            x0 = x - width / 2 if anchor == "middle" else x if anchor == "start" else x - width
            words = (t.text or "").replace("\xa0", " ")  # Graphviz keeps runs of spaces so
            texts.append(Text(g.get("id"), kind, words, (x0, y - 0.75 * size,
                                                                x0 + width, y + 0.2 * size),
                              t.get("fill")))  # fmt: skip
    return Drawing(texts, wires, gates, ids, titles, every, symbols)


def overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def hits(p, q, box) -> bool:
    """Whether segment p-q passes through box."""
    t0, t1 = 0.0, 1.0
    for d, lo, hi, s in ((q[0] - p[0], box[0], box[2], p[0]), (q[1] - p[1], box[1], box[3], p[1])):
        if d == 0:
            if not lo <= s <= hi:
                return False
            continue
        a, b = sorted(((lo - s) / d, (hi - s) / d))
        t0, t1 = max(t0, a), min(t1, b)
        if t0 > t1:
            return False
    return True


def distance(c, p, q) -> float:
    dx, dy = q[0] - p[0], q[1] - p[1]
    n = dx * dx + dy * dy
    t = 0.0 if n == 0 else max(0.0, min(1.0, ((c[0] - p[0]) * dx + (c[1] - p[1]) * dy) / n))
    return math.hypot(c[0] - p[0] - t * dx, c[1] - p[1] - t * dy)


def shrink(box, by: float):
    return box[0] + by, box[1] + by, box[2] - by, box[3] - by


def problems(svg: str) -> list[str]:
    """Every broken rule of a slide picture, as sentences (empty: the picture is clean)."""
    d = read(svg)
    found = []
    # gate symbols sit inside their circles: those are compared as the circles
    texts = [t for t in d.texts if t.kind != "gate"]
    boxes = texts + [Text(k, "gate", k, b, "") for k, b in d.gates.items()]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            if overlap(shrink(a.box, 0.5), shrink(b.box, 0.5)):
                found.append(f"{a.kind} {a.text!r} overlaps {b.kind} {b.text!r}")
    for t in texts:
        if t.kind in ("input", "output", "const"):
            continue  # a wire starts at its own name
        for w in d.wires.values():
            if hits(*w.segment, shrink(t.box, 1.0)):
                found.append(f"{t.kind} {t.text!r} lies on wire {w.id}")
    for t in texts:
        if t.kind not in ("value", "grad", "total", "step"):
            continue
        wire = t.id.rsplit("-", 1)[0]
        pieces = [w for w in d.wires.values() if w.id == wire or w.id.startswith(wire + "-")]
        mine = min(distance(t.centre, *w.segment) for w in pieces)
        for w in d.wires.values():
            if w not in pieces and distance(t.centre, *w.segment) < mine:
                found.append(f"{t.kind} {t.text!r} of {wire} is nearer wire {w.id}")
    for w in d.wires.values():
        for title, box in d.gates.items():
            if title not in (w.tail, w.head) and hits(*w.segment, shrink(box, 3.0)):
                found.append(f"wire {w.id} ({w.tail}->{w.head}) passes through gate {title}")
    return found
