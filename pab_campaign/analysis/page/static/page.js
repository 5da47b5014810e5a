/* The campaign page's charts (uPlot for curves, plain SVG for the rest). Each <figure data-chart>
   holds its data in a JSON block; a chart that mounts hides the figure's PNG (figure.mounted), one
   that fails leaves the PNG in place. No request, no eval: the page's CSP allows this code by hash. */
(function () {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";
  const tip = document.createElement("div");
  tip.className = "tip";
  tip.setAttribute("role", "tooltip");
  document.body.appendChild(tip);

  function fmt(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(2) : String(Number(v.toPrecision(4)));
  }
  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function svgEl(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function showTip(lines, x, y) {
    tip.replaceChildren(...lines.map((line, i) => el(i === 0 ? "b" : "div", {}, line)));
    tip.classList.add("on");
    const w = tip.offsetWidth, h = tip.offsetHeight;
    tip.style.left = Math.min(x + 14, window.scrollX + document.documentElement.clientWidth - w - 8) + "px";
    tip.style.top = (y + 14 + h > window.scrollY + window.innerHeight ? y - h - 10 : y + 14) + "px";
  }
  function hideTip() { tip.classList.remove("on"); }
  function runsText(runs, total) {
    const shown = runs.slice(0, 8).join(", ");
    return "runs: " + shown + (total > runs.length || runs.length > 8 ? ` … (${total} in all)` : "");
  }

  /* ---- learning curves (uPlot) ---- */
  function mountCurves(figure, spec) {
    const box = el("div", { class: "chart-box" });
    const controls = el("div", { class: "controls" });
    const legend = el("div", { class: "legend" });
    const panels = el("div", { class: "panels" });
    box.append(controls, legend, panels);
    const caption = figure.querySelector("figcaption");
    figure.insertBefore(box, caption);
    const yscale = el("select", { "data-control": "yscale" });
    [["auto", "log for a loss spanning > 2 decades"], ["log", "log"], ["linear", "linear"]].forEach(
      ([value, text]) => yscale.append(el("option", { value: value }, text)));
    const logLabel = el("label", { class: "toggle" }, "y axis ");
    logLabel.append(yscale);
    const select = el("select", { "data-control": "groupby" });
    spec.groupings.forEach((g, i) => select.append(el("option", { value: String(i) }, g.title)));
    const selectLabel = el("label", {}, "colour and split by ");
    selectLabel.append(select);
    controls.append(selectLabel, logLabel);
    const hidden = new Set();
    let plots = [];

    function draw() {
      plots.forEach(p => p.destroy());
      plots = [];
      panels.replaceChildren();
      legend.replaceChildren();
      const grouping = spec.groupings[Number(select.value)];
      caption.textContent = `${spec.lead} ${grouping.note}`.trim();  // what the chosen grouping shows
      grouping.groups.forEach((group, gi) => {
        const item = el("button", { type: "button", class: "item", "data-group": group.name,
                                    "aria-pressed": String(hidden.has(group.name)) });
        const swatch = el("span", { class: "swatch" });
        swatch.style.borderTopColor = spec.styles[gi].colour;
        swatch.style.borderTopStyle = spec.styles[gi].dash.length ? (spec.styles[gi].dash[0] > 2 ? "dashed" : "dotted") : "solid";
        item.append(swatch, document.createTextNode(`${group.name} (${group.total} run${group.total === 1 ? "" : "s"})`));
        if (hidden.has(group.name)) item.classList.add("off");
        item.addEventListener("click", () => {
          const off = !hidden.has(group.name);
          off ? hidden.add(group.name) : hidden.delete(group.name);
          item.classList.toggle("off", off);
          item.setAttribute("aria-pressed", String(off));
          plots.forEach(p => [1, 2, 3].forEach(k => p.setSeries(3 * gi + k, { show: !off })));
        });
        legend.append(item);
      });
      const width = Math.max(320, Math.floor((panels.clientWidth || 1100) / Math.min(2, spec.labels.length)) - 16);
      spec.labels.forEach((label, li) => {
        const panel = grouping.panels[li];
        const wrap = el("div", { class: "panel", "data-panel": label });
        panels.append(wrap);
        const positive = yscale.value === "log" ? spec.loggable[li] : yscale.value === "auto" && spec.log[li];
        const linearNote = yscale.value === "log" && !spec.loggable[li] ? " (linear: has values ≤ 0)" : "";
        const series = [{ label: "epoch" }];
        const data = [panel.epochs];
        const bands = [];
        // on a log scale a band's lower edge at or below 0 is drawn down to below the lowest value shown
        let floor = Infinity;
        if (positive) {
          panel.mean.forEach((mean, gi) => mean.forEach((m, i) => {
            const c = panel.ci[gi][i];
            [m, m === null || c === null ? null : m - c].forEach(v => { if (v !== null && v > 0) floor = Math.min(floor, v); });
          }));
          floor = Number.isFinite(floor) ? floor / 2 : null;
        }
        grouping.groups.forEach((group, gi) => {
          const s = spec.styles[gi];
          const mean = panel.mean[gi], ci = panel.ci[gi];
          const [lo, hi] = spec.ranges[li];
          const clean = v => (v === null || (positive && v <= 0) ? null : v);
          const edge = v => (positive && v <= 0 ? floor : v);
          const low = mean.map((m, i) => m === null || ci[i] === null ? null : edge(Math.max(lo, m - ci[i])));
          const high = mean.map((m, i) => m === null || ci[i] === null ? null : clean(Math.min(hi, m + ci[i])));
          const show = !hidden.has(group.name);
          series.push({ label: group.name, stroke: s.colour, width: 1.6, dash: s.dash, show: show,
                        points: { show: panel.epochs.length <= 30, size: 5, fill: s.colour } },
                      { label: "", stroke: "transparent", show: show, points: { show: false } },
                      { label: "", stroke: "transparent", show: show, points: { show: false } });
          data.push(mean.map(clean), high, low);
          bands.push({ series: [3 * gi + 2, 3 * gi + 3], fill: s.colour + "26" });
        });
        const plot = new uPlot({
          width: width, height: 260, title: label + (positive ? " (log y)" : linearNote),
          legend: { show: false }, bands: bands, series: series,
          cursor: { sync: { key: figure.dataset.figure }, points: { show: false } },
          scales: { x: { time: false }, y: positive ? { distr: 3 } : {} },
          axes: [{ label: "epoch", incrs: [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000] },
                 { label: spec.units[li], size: 60, values: (u, splits) => splits.map(fmt) }],
          hooks: { setCursor: [u => hover(u, grouping, panel, label, spec.ranges[li])] },
        }, data, wrap);
        plot.over.addEventListener("mouseleave", hideTip);
        plots.push(plot);
      });
    }

    function hover(u, grouping, panel, label, range) {
      const idx = u.cursor.idx;
      if (idx === null || idx === undefined || u.cursor.top < 0) { hideTip(); return; }
      let best = -1, distance = Infinity;
      grouping.groups.forEach((group, gi) => {
        const v = u.data[3 * gi + 1][idx];
        if (v === null || v === undefined || hidden.has(group.name)) return;
        const d = Math.abs(u.valToPos(v, "y") - u.cursor.top);
        if (d < distance) { distance = d; best = gi; }
      });
      if (best < 0) { hideTip(); return; }
      const group = grouping.groups[best];
      const mean = panel.mean[best][idx], ci = panel.ci[best][idx], n = panel.runs[best][idx];
      const rect = u.over.getBoundingClientRect();
      const [lo, hi] = range;
      const cut = ci !== null && (mean - ci < lo || mean + ci > hi) ? ", cut to the values it can take" : "";
      const interval = ci === null ? `no CI95 (${n} run${n === 1 ? "" : "s"})`
        : `CI95 [${fmt(Math.max(lo, mean - ci))}, ${fmt(Math.min(hi, mean + ci))}] (± ${fmt(ci)}${cut})`;
      showTip([group.name, `${label} at epoch ${panel.epochs[idx]}`, `mean ${fmt(mean)}  ${interval}`,
               `${n} runs with a value here`, runsText(group.runs, group.total)],
              rect.left + window.scrollX + u.cursor.left, rect.top + window.scrollY + u.cursor.top);
    }

    select.addEventListener("change", () => { hidden.clear(); draw(); });
    yscale.addEventListener("change", draw);
    let drawnWidth = panels.clientWidth;  // the panels are drawn again for a new width (a turned phone, a printout)
    const redraw = () => { if (panels.clientWidth !== drawnWidth) { drawnWidth = panels.clientWidth; draw(); } };
    let pending = null;
    window.addEventListener("resize", () => { clearTimeout(pending); pending = setTimeout(redraw, 150); });
    window.addEventListener("beforeprint", redraw);
    draw();
  }

  /* ---- SVG helpers for the other charts ---- */
  function ticks(lo, hi, count) {
    const step0 = (hi - lo) / Math.max(1, count);
    const power = Math.pow(10, Math.floor(Math.log10(step0 || 1)));
    const step = [1, 2, 5, 10].map(m => m * power).find(s => s >= step0) || power;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
    return out;
  }
  function frame(width, height, label) {
    const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, width: width, height: height, class: "svg-chart",
                               role: "group", "aria-label": label });
    svg.addEventListener("mouseleave", hideTip);
    return svg;
  }
  function hoverable(node, lines, focusable = true) {
    node.addEventListener("mousemove", e => showTip(lines, e.pageX, e.pageY));
    node.addEventListener("mouseleave", hideTip);
    node.classList.add("hot");
    if (focusable) {  // the keyboard reaches it too: Tab shows what hovering shows
      node.setAttribute("tabindex", "0");
      node.setAttribute("aria-label", lines.join("; "));
      node.addEventListener("focus", () => {
        const box = node.getBoundingClientRect();
        showTip(lines, box.right + window.scrollX, box.top + window.scrollY);
      });
      node.addEventListener("blur", hideTip);
    }
    return node;
  }
  function axes(svg, box, x, y, xs, ys, xlabel, ylabel) {
    const [l, t, r, b] = box;
    xs.forEach(v => {
      svg.append(svgEl("line", { x1: x(v), x2: x(v), y1: t, y2: b, class: "grid" }));
      svg.append(svgEl("text", { x: x(v), y: b + 14, "text-anchor": "middle", class: "tick" }, fmt(v)));
    });
    ys.forEach(v => {
      svg.append(svgEl("line", { x1: l, x2: r, y1: y(v), y2: y(v), class: "grid" }));
      svg.append(svgEl("text", { x: l - 5, y: y(v) + 4, "text-anchor": "end", class: "tick" }, fmt(v)));
    });
    svg.append(svgEl("rect", { x: l, y: t, width: r - l, height: b - t, class: "axes" }));
    svg.append(svgEl("text", { x: (l + r) / 2, y: b + 32, "text-anchor": "middle", class: "label" }, xlabel));
    if (ylabel) svg.append(svgEl("text", { x: 14, y: (t + b) / 2, transform: `rotate(-90 14 ${(t + b) / 2})`,
                                           "text-anchor": "middle", class: "label" }, ylabel));
  }
  function scale(lo, hi, a, b) {
    const pad = (hi - lo) * 0.05 || 1;
    const l = lo - pad, h = hi + pad;
    const f = v => a + (v - l) / (h - l) * (b - a);
    f.lo = l; f.hi = h;
    return f;
  }
  const MARKS = ["circle", "rect", "triangle", "diamond"];
  const MAX_FOCUSABLE_POINTS = 60;  // an audit's runs past this many are not each a Tab stop
  function mark(kind, cx, cy, r, colour, filled) {
    const attrs = { fill: filled ? colour : "#fff", stroke: colour, "stroke-width": 1.5 };
    if (kind === "rect") return svgEl("rect", { ...attrs, x: cx - r, y: cy - r, width: 2 * r, height: 2 * r });
    if (kind === "triangle") return svgEl("path", { ...attrs, d: `M${cx} ${cy - r * 1.2}L${cx + r * 1.1} ${cy + r * .8}L${cx - r * 1.1} ${cy + r * .8}Z` });
    if (kind === "diamond") return svgEl("path", { ...attrs, d: `M${cx} ${cy - r * 1.3}L${cx + r} ${cy}L${cx} ${cy + r * 1.3}L${cx - r} ${cy}Z` });
    return svgEl("circle", { ...attrs, cx: cx, cy: cy, r: r });
  }

  /* ---- MBE audit: runs scatter + signed ρ with intervals ---- */
  function mountAudit(figure, spec) {
    const box = el("div", { class: "chart-box audit" });
    figure.insertBefore(box, figure.querySelector("figcaption"));
    const W = 560, H = 380, pb = [62, 16, 540, 330];
    const svg = frame(W, H, `${spec.target} against ${spec.metric}, one point per run`);
    const xs = spec.points.map(p => p[0]), ys = spec.points.map(p => p[1]);
    const x = scale(Math.min(...xs), Math.max(...xs), pb[0], pb[2]);
    const y = scale(Math.min(...ys), Math.max(...ys), pb[3], pb[1]);
    axes(svg, pb, x, y, ticks(x.lo, x.hi, 6), ticks(y.lo, y.hi, 5), spec.metric, spec.target);
    if (spec.curve.length) {
      svg.append(svgEl("path", { d: spec.curve.map(([cx, cy], i) => `${i ? "L" : "M"}${x(cx).toFixed(1)} ${y(cy).toFixed(1)}`).join(""),
                                 class: "regression" }));
    }
    spec.points.forEach(([px, py, g, r]) => {
      const style = spec.styles[g % spec.styles.length];
      const run = spec.runs[r];
      const node = mark(MARKS[Math.floor(g / 8) % 4], x(px), y(py), 4.5, style.colour, true);
      node.setAttribute("data-run", run.id);
      svg.append(hoverable(node, [`run ${run.id}`, `${spec.metric} = ${fmt(px)}`, `${spec.target} = ${fmt(py)}`,
                                  ...run.hparams], spec.points.length <= MAX_FOCUSABLE_POINTS));
    });
    const legend = el("div", { class: "legend static" }, spec.colour_by ? `colour: ${spec.colour_by}: ` : "");
    spec.groups.forEach((name, g) => {
      const item = el("span", { class: "item" });
      const swatch = svgEl("svg", { width: 12, height: 12, viewBox: "0 0 12 12", "aria-hidden": "true" });
      swatch.append(mark(MARKS[Math.floor(g / 8) % 4], 6, 6, 4, spec.styles[g % spec.styles.length].colour, true));
      item.append(swatch, document.createTextNode(name));
      legend.append(item);
    });
    if (spec.curve.length) {
      const item = el("span", { class: "item" });
      const swatch = el("span", { class: "swatch" });
      swatch.style.borderTopColor = "#000";
      item.append(swatch, document.createTextNode("rank regression"));
      legend.append(item);
    }
    const forest = frame(480, 76 + 46 * spec.rows.length, "signed raw and partial Spearman ρ per group, with intervals");
    const fb = [150, 24, 460, 24 + 46 * spec.rows.length];
    const fx = v => fb[0] + (v + 1.05) / 2.1 * (fb[2] - fb[0]);
    [-1, -0.5, 0, 0.5, 1].forEach(v => {
      forest.append(svgEl("line", { x1: fx(v), x2: fx(v), y1: fb[1], y2: fb[3], class: v === 0 ? "zero" : "grid" }));
      forest.append(svgEl("text", { x: fx(v), y: fb[3] + 14, "text-anchor": "middle", class: "tick" }, String(v)));
    });
    [-0.2, 0.2].forEach(v => forest.append(svgEl("line", { x1: fx(v), x2: fx(v), y1: fb[1], y2: fb[3], class: "effect" })));
    forest.append(svgEl("text", { x: (fb[0] + fb[2]) / 2, y: fb[3] + 32, "text-anchor": "middle", class: "label" },
                        "signed Spearman ρ: ○ raw, □ partial"));
    forest.append(svgEl("text", { x: (fb[0] + fb[2]) / 2, y: fb[3] + 48, "text-anchor": "middle", class: "tick" },
                        "filled: significant on the adjusted p"));
    spec.rows.forEach((row, i) => {
      const base = fb[1] + 46 * i + 23;
      const name = row.group.length > 24 ? row.group.slice(0, 23) + "…" : row.group;  // the hover has it whole
      forest.append(svgEl("text", { x: fb[0] - 6, y: base + 4, "text-anchor": "end", class: "tick" }, name));
      [["raw", -9, "circle"], ["partial", 9, "rect"]].forEach(([kind, dy, shape]) => {
        const r = row[kind];
        if (r.rho === null) return;
        const colour = r.significant ? spec.significant : spec.not_significant;
        const cy = base + dy;
        const g = svgEl("g", { "data-interval": `${row.group}:${kind}` });
        if (r.low !== null) g.append(svgEl("line", { x1: fx(r.low), x2: fx(r.high), y1: cy, y2: cy, stroke: colour, "stroke-width": 2 }));
        g.append(mark(shape, fx(r.rho), cy, 5, colour, r.significant));
        forest.append(hoverable(g, [`${row.group}: ${kind} ρ = ${fmt(r.rho)}`,
                                    `95 % interval [${fmt(r.low)}, ${fmt(r.high)}]`,
                                    `adjusted p = ${fmt(r.p_adj)} (${r.significant ? "" : "not "}significant at α = ${spec.alpha})`,
                                    `n = ${row.n}; ${row.verdict} · ${row.effect}`]));
      });
    });
    box.append(svg, forest, legend);
  }

  /* ---- latent phases: arc diagram of the transitions ---- */
  function mountTransitions(figure, spec) {
    const k = spec.states.length, W = Math.max(480, 130 * k + 60), H = 300, mid = 150;
    const svg = frame(W, H, "latent phases and the transitions between them");
    const cx = s => 60 + s * (W - 120) / Math.max(1, k - 1);
    spec.edges.forEach(e => {
      const x1 = cx(e.from), x2 = cx(e.to), rise = (x2 - x1) * 0.35;
      const path = svgEl("path", { d: `M${x1} ${mid} Q${(x1 + x2) / 2} ${mid - rise} ${x2} ${mid}`, fill: "none",
                                   stroke: "#555", "stroke-width": 1 + 6 * e.p, "stroke-opacity": 0.7,
                                   "data-edge": `${e.from}-${e.to}` });
      svg.append(hoverable(path, [`phase ${e.from} → phase ${e.to}`, `P = ${fmt(e.p)}; seen in ${e.runs} runs`,
                                  ...e.features]));
    });
    spec.states.forEach(s => {
      const r = 12 + 30 * Math.sqrt(s.occupancy);
      const node = svgEl("circle", { cx: cx(s.state), cy: mid, r: r, fill: spec.colours[s.state % spec.colours.length],
                                     stroke: "#000", "data-state": s.state });
      svg.append(hoverable(node, [`phase ${s.state}`, `${fmt(100 * s.occupancy)} % of epochs, ${s.runs} runs`,
                                  `typical epochs ${s.epochs}`, s.description]));
      svg.append(svgEl("text", { x: cx(s.state), y: mid + 5, "text-anchor": "middle", class: "node" }, String(s.state)));
    });
    svg.append(svgEl("text", { x: W / 2, y: H - 8, "text-anchor": "middle", class: "label" },
                     "forward above, backward below; width ∝ P; hover for details"));
    const box = el("div", { class: "chart-box" });
    box.append(svg);
    figure.insertBefore(box, figure.querySelector("figcaption"));
  }

  /* ---- ModelDiff: variance of A and B along each direction ---- */
  function mountDirections(figure, spec) {
    const n = spec.directions.length, W = Math.max(420, 90 * n + 120), H = 300, b = [70, 20, W - 20, 250];
    const svg = frame(W, H, `variance of ${spec.a} and ${spec.b} along each ModelDiff direction`);
    const top = 1.1 * Math.max(...spec.directions.flatMap(d => [d.a, d.b]), 1e-12);
    const y = v => b[3] - v / top * (b[3] - b[1]);
    axes(svg, b, () => b[0], y, [], ticks(0, top, 4), "direction (comparison)", "variance along it");
    const step = (b[2] - b[0]) / n;
    spec.directions.forEach((d, i) => {
      [["a", spec.colour_a, 0.15], ["b", spec.colour_b, 0.5]].forEach(([key, colour, at]) => {
        const bar = svgEl("rect", { x: b[0] + step * (i + at), y: y(d[key]), width: step * 0.35,
                                    height: b[3] - y(d[key]), fill: colour, "data-direction": `${d.name}:${key}` });
        svg.append(hoverable(bar, [`${d.name}, direction ${d.direction}`, `variance of ${key.toUpperCase()}'s scores: ${fmt(d[key])}`,
                                   `residual variance: ${fmt(d.residual)}`, ...d.composition]));
      });
      svg.append(svgEl("text", { x: b[0] + step * (i + 0.5), y: b[3] + 14, "text-anchor": "middle", class: "tick" }, d.name));
    });
    const box = el("div", { class: "chart-box" });
    box.append(svg, el("p", { class: "chart-note" }, `bars: A (left, ${spec.a}) and B (right, ${spec.b}); hover for the classes each direction singles out`));
    figure.insertBefore(box, figure.querySelector("figcaption"));
  }

  const MOUNT = { curves: mountCurves, audit: mountAudit, transitions: mountTransitions, directions: mountDirections };
  document.documentElement.classList.add("js");
  const nav = document.querySelector("nav");  // where it wraps to more lines, jumps still land below it
  const clearOfNav = () => { document.documentElement.style.scrollPaddingTop = `${nav.offsetHeight + 8}px`; };
  if (nav) { clearOfNav(); window.addEventListener("resize", clearOfNav); }
  document.querySelectorAll("figure[data-chart]").forEach(figure => {
    try {
      const spec = JSON.parse(figure.querySelector("script.chart-data").textContent);
      MOUNT[spec.kind](figure, spec);
      figure.classList.add("mounted");
    } catch (error) {
      figure.classList.remove("mounted");
      figure.querySelectorAll(".chart-box").forEach(b => b.remove());
      console.warn("chart " + figure.dataset.figure + " left as a picture: " + error);
    }
  });
  document.body.dataset.interactive = "ready";
})();
