"""The explorer page's template, style and script: text, inlined into every page.

Stage: draw (static text for `explore`). Imports nothing. Plain JavaScript, no library and no
build step; the page loads nothing from anywhere (no address of any kind is written here).
The script reads the JSON blob `explore.page_html` writes and only shows, hides and explains
the numbers in it; every text it writes goes in as `textContent`, never as markup.
"""

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
{style}
</style>
</head>
<body>
<header>
<h1>{title}</h1>
<div id="views" role="radiogroup" aria-label="circuit"></div>
<div id="modes" role="radiogroup" aria-label="mode">
<label><input type="radio" name="mode" value="reverse" checked> reverse mode (gradients)</label>
<label><input type="radio" name="mode" value="forward"> forward mode (tangents) along
<select id="along" aria-label="the input whose tangent is seeded with 1"></select></label>
</div>
</header>
<div id="controls">
<button type="button" id="first" aria-label="first step">|&#x25C0;</button>
<button type="button" id="prev" aria-label="previous step">&#x25C0; back</button>
<input type="range" id="slider" min="0" max="0" value="0" aria-label="step">
<button type="button" id="next" aria-label="next step">next &#x25B6;</button>
<button type="button" id="last" aria-label="last step">&#x25B6;|</button>
<span id="counter" aria-live="polite"></span>
<label><input type="checkbox" id="quiz"> quiz: hide gradients as ?</label>
</div>
<main>
<div id="figures">
{figures}
</div>
<aside>
<section id="explain" aria-live="polite"><h2 id="step-title"></h2><ul id="step-lines"></ul>
</section>
<section id="inspect" aria-live="polite"><h2>Wire</h2>
<p id="inspect-hint">Hover over a wire, or focus it with Tab, to see what it carries.</p>
<div id="inspect-body"></div></section>
</aside>
</main>
<section id="tables">
<h2>Inputs</h2>
<table id="inputs"><thead><tr><th>input</th><th>value</th><th id="input-below">gradient</th>
<th>sum of</th></tr>
</thead><tbody></tbody></table>
<h2>Wires</h2>
<table id="wires"><thead><tr><th>from</th><th>to</th><th>value</th><th id="below">gradient</th>
<th>shape</th></tr></thead><tbody></tbody></table>
</section>
<p id="keys">Keys: &#x2190; and &#x2192; step back and forward, Home and End go to the first and
last step, Tab moves through the wires. The address ends in #step=K for the step shown.</p>
<script type="application/json" id="graphc-data">{data}</script>
<script>
{script}
</script>
</body>
</html>
"""

STYLE = """
body { font-family: Helvetica, Arial, sans-serif; margin: 1em 2em; color: #111; }
h1 { font-size: 1.3em; margin: 0.2em 0; }
h2 { font-size: 1.05em; margin: 0.4em 0; }
header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 1.5em; }
#views { display: flex; gap: 0.8em; }
#controls { display: flex; align-items: center; gap: 0.5em; margin: 0.6em 0; flex-wrap: wrap; }
#slider { width: 18em; }
#counter { min-width: 9em; font-variant-numeric: tabular-nums; }
figure.view { margin: 0; overflow-x: auto; }
figure.view.wide { max-height: 70vh; overflow: auto; }
figure.view.wide svg { max-height: none; height: auto; }
figure.view svg { width: 100%; height: auto; max-height: 62vh; }
aside { display: flex; gap: 1em; align-items: flex-start; flex-wrap: wrap; }
#explain { flex: 3; min-width: 24em; }
#inspect { flex: 2; min-width: 18em; }
.hidden { display: none; }
.off { visibility: hidden; }
g.edge { cursor: pointer; }
g.edge:focus { outline: none; }
g.edge:focus path, g.edge.hover path { stroke: #1565c0; stroke-width: 4; }
g.edge:focus-visible { outline: 2px dashed #1565c0; }
g.node.active ellipse { stroke: #1565c0; stroke-width: 3.2; fill: #e3f2fd; }
g.node.active text { fill: #1565c0; font-weight: bold; }
g.node.quiz text { fill: #6a1b9a; font-weight: bold; cursor: pointer; }
g.node.tangent text { fill: #6a1b9a; }
td.tangent { color: #6a1b9a; }
#modes { display: flex; gap: 1em; align-items: baseline; }
#explain, #inspect { border: 1px solid #ccc; border-radius: 6px; padding: 0.5em 0.8em;
  margin-bottom: 0.8em; }
#step-lines { padding-left: 1.2em; margin: 0.3em 0; }
#step-lines li { margin: 0.2em 0; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; margin: 0.3em 0 0.8em 0; }
th, td { border: 1px solid #ccc; padding: 0.15em 0.6em; text-align: right; }
th:first-child, td:first-child, #wires td:nth-child(2) { text-align: left; }
td.value { color: #2e7d32; }
td.grad { color: #c62828; }
button.reveal { color: #6a1b9a; font-weight: bold; }
table.array td { font-size: 0.85em; min-width: 3.5em; }
tr.hover td { background: #e3f2fd; }
#keys { color: #555; font-size: 0.9em; }
"""

SCRIPT = r"""
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("graphc-data").textContent);
  const state = {
    view: 0, step: 0, quiz: data.quiz !== false, revealed: new Set(), mode: "reverse", along: 0,
  };
  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------ numbers
  function fmt(x) {
    if (typeof x === "string") return x;  // inf, -inf, nan
    if (x === 0) return "0";
    return String(Number.parseFloat(x.toPrecision(5)));
  }
  function shapeText(shape) { return shape.length ? shape.join("×") : "scalar"; }
  function summary(x, shape) {
    if (!Array.isArray(x)) return fmt(x);
    const flat = x.flat(Infinity);
    if (flat.length <= 4) return "[" + flat.map(fmt).join(", ") + "]";
    const nums = flat.filter((v) => typeof v === "number");
    if (!nums.length) return shapeText(shape) + " array";
    return shapeText(shape) + ": " + fmt(Math.min(...nums)) + " … " + fmt(Math.max(...nums));
  }

  // ------------------------------------------------------------ the picture's elements
  // The one place that knows how the SVG names a wire's pieces (see explore.view_data):
  // the slides' element ids (`p0_w3`, `p0_w3-value`, `p0_w3-grad`, `p0_n2`), each made its
  // view's own in the page (`v0-p0_w3`).
  function lookup(figure, i, handle) {
    return figure.querySelector('[id="' + CSS.escape("v" + i + "-" + handle) + '"]');
  }

  const figures = Array.from(document.querySelectorAll("figure.view"));
  // A circuit that would be shrunk past reading to fit the page (the 2-layer net, a long strip
  // left to right or a tall one top to bottom) is drawn near its own size (0.8px a pt) in a
  // frame that scrolls to the active gate.
  const room = $("figures").clientWidth;
  for (const f of figures) {
    const svg = f.querySelector("svg");
    const box = svg && svg.viewBox.baseVal;
    if (!box || !box.width || !box.height) continue;
    if (Math.min(room / box.width, (0.62 * window.innerHeight) / box.height) < 0.8) {
      f.classList.add("wide");
      svg.style.width = 0.8 * box.width + "px";
    }
  }
  const parts = data.views.map((view, i) => view.wires.map((w) => ({
    line: lookup(figures[i], i, w.handles.line),
    // the further pieces of a wire: its bent end, the detours of each (`-via<j>`)
    pieces: Array.from(figures[i].querySelectorAll("g.edge")).filter((e) =>
      [w.handles.line, ...w.handles.pieces].some((h) =>
        e.id === "v" + i + "-" + h || e.id.startsWith("v" + i + "-" + h + "-via"))),
    value: lookup(figures[i], i, w.handles.value),
    grad: lookup(figures[i], i, w.handles.grad),
  })));
  const gateOf = (i, s) => (s.gate ? lookup(figures[i], i, s.gate) : null);
  const gates = data.views.map((view, i) => view.steps.map((s) => gateOf(i, s)));
  const tangentGates = data.views.map((view, i) =>
    view.forward.map((pass) => pass.steps.map((s) => gateOf(i, s))));
  const gradTexts = parts.map((ws) => ws.map((p) =>
    (p.grad ? Array.from(p.grad.querySelectorAll("text")).map((t) => t.textContent) : null)));

  // ------------------------------------------------------------ what a step shows
  const view = () => data.views[state.view];
  const forward = () => state.mode === "forward" && view().forward.length > 0;
  const pass = () => view().forward[Math.min(state.along, view().forward.length - 1)];
  const steps = () => (forward() ? pass().steps : view().steps);
  const activeGates = () =>
    (forward() ? tangentGates[state.view][Math.min(state.along, view().forward.length - 1)]
      : gates[state.view]);
  function quizzed(w) {
    if (forward()) return false;
    const output = w.head === null && w.piece !== "stem";  // the seed: no question
    if (!state.quiz || output || state.revealed.has(state.view + ":" + w.k)) return false;
    if (data.quiz === true || data.quiz === false) return true;  // the checkbox hides all
    const from = view().inputs.find((inp) => inp.node === w.tail);
    return Boolean(from && data.quiz.includes(from.name));
  }
  function valueShown(w) { return w.fwd <= state.step; }
  function gradShown(w) {
    if (forward()) return valueShown(w);  // a wire's tangent comes with its value
    return w.grad !== null && w.bwd !== null && w.bwd <= state.step;
  }
  function below(w) { return forward() ? pass().tangents[w.k] : w.grad; }
  function belowShape(w) { return forward() ? w.shape : w.grad_shape; }
  function pictureText(x) {
    return typeof x === "number" ? (Object.is(x, -0) ? 0 : x).toFixed(2) : summary(x, []);
  }
  function wireLabel(w) {
    let text = "wire from " + w.from + " to " + w.to;
    text += valueShown(w) ? ", value " + summary(w.value, w.shape) : ", value not computed yet";
    if (gradShown(w)) {
      text += (forward() ? ", tangent " : ", gradient ")
        + (quizzed(w) ? "hidden (quiz)" : summary(below(w), belowShape(w)));
    }
    return text;
  }

  function showPicture() {
    const v = view();
    v.wires.forEach((w, k) => {
      const p = parts[state.view][k];
      if (p.value) p.value.classList.toggle("off", !valueShown(w));
      if (p.grad) {
        p.grad.classList.toggle("off", !gradShown(w));
        p.grad.classList.toggle("quiz", gradShown(w) && quizzed(w));
        p.grad.classList.toggle("tangent", forward());
        const texts = Array.from(p.grad.querySelectorAll("text"));
        const own = gradTexts[state.view][k];
        texts.forEach((t, j) => {
          if (forward()) t.textContent = j ? "" : pictureText(below(w));
          else t.textContent = quizzed(w) ? (j ? "" : "?") : own[j];
        });
      }
      if (p.line) p.line.setAttribute("aria-label", wireLabel(w));
    });
    const active = activeGates()[state.step];  // a gate is active in two steps
    for (const list of [gates[state.view], ...tangentGates[state.view]]) {
      list.forEach((g) => { if (g) g.classList.toggle("active", g === active); });
    }
    const figure = figures[state.view];
    if (active && figure.classList.contains("wide")) {
      const box = active.getBoundingClientRect(), frame = figure.getBoundingClientRect();
      figure.scrollLeft += box.left + box.width / 2 - (frame.left + frame.width / 2);
      figure.scrollTop += box.top + box.height / 2 - (frame.top + frame.height / 2);
    }
  }

  function showExplanation() {
    const s = steps()[state.step];
    $("step-title").textContent = s.title;
    const list = $("step-lines");
    list.replaceChildren();
    const hide = !forward() && state.quiz && s.quiz
      && view().wires.some((w) => w.bwd === state.step && quizzed(w));
    for (const line of (hide ? s.quiz : s.lines)) {
      const li = document.createElement("li");
      li.textContent = line;
      list.appendChild(li);
    }
    const last = steps().length - 1;
    $("counter").textContent = "step " + state.step + " of " + last;
  }

  function cell(row, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }

  function showTables() {
    const v = view();
    const wires = $("wires").tBodies[0];
    wires.replaceChildren();
    v.wires.forEach((w) => {
      const tr = document.createElement("tr");
      tr.dataset.wire = w.k;
      tr.dataset.tail = w.tail === null ? "" : w.tail;
      tr.dataset.head = w.head === null ? "output" : w.head;
      tr.dataset.piece = w.piece;
      tr.dataset.position = w.position === null ? "" : w.position;
      tr.dataset.fork = w.fork === null ? "" : w.fork;
      cell(tr, w.from);
      cell(tr, w.to);
      cell(tr, valueShown(w) ? summary(w.value, w.shape) : "", "value");
      const g = cell(tr, "", forward() ? "tangent" : "grad");
      if (gradShown(w) && quizzed(w)) {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "reveal";
        b.textContent = "?";
        b.setAttribute("aria-label", "reveal the gradient from " + w.from + " to " + w.to);
        b.addEventListener("click", () => reveal(w));
        g.appendChild(b);
      } else {
        g.textContent = gradShown(w) && below(w) !== null ? summary(below(w), belowShape(w)) : "";
      }
      cell(tr, shapeText(w.shape));
      tr.addEventListener("mouseenter", () => inspect(w));
      wires.appendChild(tr);
    });
    const inputs = $("inputs").tBodies[0];
    inputs.replaceChildren();
    for (const inp of v.inputs) {
      const tr = document.createElement("tr");
      tr.dataset.input = inp.name;
      const mine = inp.wires.map((k) => v.wires[k]);
      cell(tr, inp.name);
      cell(tr, summary(inp.value, inp.shape), "value");
      if (forward()) {  // the seed: 1 for the input chosen, 0 for the others
        cell(tr, inp.name === pass().along ? "1" : "0", "tangent");
        cell(tr, "");
      } else {
        const done = inp.bwd !== null && inp.bwd <= state.step;
        const hidden = mine.some(quizzed);
        cell(tr, done && inp.grad !== null ? (hidden ? "?" : summary(inp.grad, inp.shape)) : "",
          "grad");
        cell(tr, done && inp.sum && !hidden ? inp.sum : "");
      }
      inputs.appendChild(tr);
    }
  }

  // ------------------------------------------------------------ inspecting a wire
  function arrayTable(x, shape) {
    const table = document.createElement("table");
    table.className = "array";
    const rows = shape.length === 1 ? [x] : (shape.length === 2 ? x : null);
    if (!rows) {
      const p = document.createElement("p");
      p.textContent = summary(x, shape);
      return p;
    }
    for (const row of rows.slice(0, 8)) {
      const tr = document.createElement("tr");
      row.slice(0, 8).forEach((v) => cell(tr, fmt(v)));
      if (row.length > 8) cell(tr, "…");
      table.appendChild(tr);
    }
    if (rows.length > 8) {
      const tr = document.createElement("tr");
      cell(tr, "…");
      table.appendChild(tr);
    }
    return table;
  }

  function inspect(w) {
    const body = $("inspect-body");
    body.replaceChildren();
    $("inspect-hint").textContent = w.from + " → " + w.to;
    const add = (label, text, cls) => {
      const p = document.createElement("p");
      p.textContent = label + ": " + text;
      if (cls) p.className = cls;
      body.appendChild(p);
    };
    add("shape", shapeText(w.shape));
    if (!valueShown(w)) add("value", "not computed yet");
    else if (w.shape.length) {
      add("value", summary(w.value, w.shape));
      body.appendChild(arrayTable(w.value, w.shape));
    }
    else add("value", fmt(w.value), "value");
    if (forward()) {
      const t = below(w);
      if (!gradShown(w)) add("tangent", "not computed yet");
      else if (w.shape.length) {
        add("tangent", summary(t, w.shape));
        body.appendChild(arrayTable(t, w.shape));
      } else add("tangent (d/d" + pass().along + ")", fmt(t), "tangent");
    } else if (w.grad === null) add("gradient", "none flows here");
    else if (!gradShown(w)) add("gradient", "not reached yet");
    else if (quizzed(w)) add("gradient", "? (click the wire to reveal it)");
    else if (w.grad_shape.length) {
      add("gradient", summary(w.grad, w.grad_shape));
      body.appendChild(arrayTable(w.grad, w.grad_shape));
    }
    else add("gradient", fmt(w.grad), "grad");
    if (w.local) add("local gradient of " + w.to, w.local);
    rowOf(w, (tr) => tr.classList.add("hover"));
  }
  function rowOf(w, fn) {
    const tr = $("wires").querySelector('tr[data-wire="' + w.k + '"]');
    if (tr) fn(tr);
  }

  function reveal(w) {
    state.revealed.add(state.view + ":" + w.k);
    render();
    inspect(w);
  }

  // ------------------------------------------------------------ moving about
  function render() {
    figures.forEach((f, i) => f.classList.toggle("hidden", i !== state.view));
    for (const b of document.querySelectorAll("#views input")) {
      b.checked = Number(b.value) === state.view;
    }
    for (const b of document.querySelectorAll("#modes input")) {
      b.checked = b.value === (forward() ? "forward" : "reverse");
      b.toggleAttribute("checked", b.checked);  // the markup says it too
    }
    if (view().forward.length) $("along").value = pass().along;
    $("below").textContent = forward() ? "tangent" : "gradient";
    $("input-below").textContent = forward() ? "tangent (seed)" : "gradient";
    const slider = $("slider");
    slider.max = steps().length - 1;
    slider.value = state.step;
    const title = steps()[state.step].title;
    slider.setAttribute("aria-valuetext", "step " + state.step + ": " + title);
    $("quiz").checked = state.quiz;
    showPicture();
    showExplanation();
    showTables();
  }

  function go(step, remember = true) {
    const last = steps().length - 1;
    state.step = Math.max(0, Math.min(last, Number.isFinite(step) ? step : 0));
    render();
    if (remember) {
      let hash = "#step=" + state.step + (state.view ? "&view=" + state.view : "");
      if (forward()) hash += "&mode=forward&along=" + encodeURIComponent(pass().along);
      try { history.replaceState(null, "", hash); } catch (e) { location.hash = hash; }
    }
  }

  function fromHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    const v = Number.parseInt(params.get("view") || "0", 10);
    state.view = v >= 0 && v < data.views.length ? v : 0;
    state.mode = params.get("mode") === "forward" ? "forward" : "reverse";
    const along = view().forward.findIndex((p) => p.along === params.get("along"));
    state.along = Math.max(0, along);
    go(Number.parseInt(params.get("step") || "0", 10), false);
    const k = Number.parseInt(params.get("wire"), 10);  // #step=K&wire=J inspects wire J
    if (view().wires[k]) inspect(view().wires[k]);
  }

  data.views.forEach((v, i) => {
    if (data.views.length < 2) return;
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.type = "radio";
    input.name = "view";
    input.value = i;
    input.addEventListener("change", () => { state.view = i; go(state.step); });
    label.appendChild(input);
    label.appendChild(document.createTextNode(" " + v.title));
    $("views").appendChild(label);
  });

  data.views.forEach((v, i) => v.wires.forEach((w, k) => {
    const line = parts[i][k].line;
    if (!line) return;
    line.setAttribute("tabindex", "0");
    line.setAttribute("role", "button");
    const show = () => { parts[i][k].pieces.forEach((e) => e.classList.add("hover")); inspect(w); };
    const hide = () => {
      parts[i][k].pieces.forEach((e) => e.classList.remove("hover"));
      rowOf(w, (tr) => tr.classList.remove("hover"));
    };
    const click = () => { if (gradShown(w) && quizzed(w)) reveal(w); };
    for (const piece of parts[i][k].pieces) {  // the first piece, a bent end, detours
      piece.addEventListener("mouseenter", show);
      piece.addEventListener("mouseleave", hide);
      piece.addEventListener("click", click);
    }
    line.addEventListener("focus", show);
    line.addEventListener("blur", hide);
    line.addEventListener("keydown", (e) => {
      if (e.key !== "Enter" && e.key !== " ") return;
      e.preventDefault();
      click();
    });
    const label = parts[i][k].grad;
    if (label) label.addEventListener("click", click);
  }));

  $("first").addEventListener("click", () => go(0));
  $("prev").addEventListener("click", () => go(state.step - 1));
  $("next").addEventListener("click", () => go(state.step + 1));
  $("last").addEventListener("click", () => go(steps().length - 1));
  for (const name of (data.views[0].forward || []).map((p) => p.along)) {
    const option = document.createElement("option");
    option.value = name;
    option.textContent = name;
    $("along").appendChild(option);
  }
  if (!data.views.every((v) => v.forward.length)) $("modes").classList.add("hidden");
  for (const b of document.querySelectorAll("#modes input")) {
    b.addEventListener("change", () => { state.mode = b.value; go(0); });
  }
  $("along").addEventListener("change", (e) => {
    state.along = Math.max(0, view().forward.findIndex((p) => p.along === e.target.value));
    if (state.mode === "forward") go(state.step); else { state.mode = "forward"; go(0); }
  });
  $("slider").addEventListener("input", (e) => go(Number(e.target.value)));
  $("quiz").addEventListener("change", (e) => { state.quiz = e.target.checked; render(); });
  document.addEventListener("keydown", (e) => {
    const t = e.target;  // the slider, the select and radios step with their own arrows
    if (t && (t.id === "slider" || t.id === "along" || t.type === "radio")) return;
    if (e.key === "ArrowRight") go(state.step + 1);
    else if (e.key === "ArrowLeft") go(state.step - 1);
    else if (e.key === "Home") go(0);
    else if (e.key === "End") go(steps().length - 1);
    else return;
    e.preventDefault();
  });
  window.addEventListener("hashchange", fromHash);
  fromHash();
  document.body.dataset.ready = "true";
})();
"""
