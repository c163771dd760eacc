// Hand-drawn SVG charts for the dashboard: labelled axes (ticks, units, time in the hospital's
// zone), series, thresholds, colour bands, step plots (hypnograms). No library, no CDN.
"use strict";

(() => {
const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

// --- times in the hospital's time zone -----------------------------------------------------
const Clock = {
  zone: "UTC",
  skew: 0,  // server time - browser time (s): ages are measured on the server's clock
  now() { return Date.now() / 1000 + this.skew; },
  _fmt: new Map(),
  format(options) {
    const key = this.zone + JSON.stringify(options);
    if (!this._fmt.has(key)) this._fmt.set(key, new Intl.DateTimeFormat("en-GB", { timeZone: this.zone, ...options }));
    return this._fmt.get(key);
  },
  day(unix) { return this.format({ year: "numeric", month: "2-digit", day: "2-digit" }).format(new Date(unix * 1000)); },
  // "14:02" today, "4 Dec 23:55" another day, "4 Dec 2025 23:55" another year (hospital's zone).
  time(unix, { seconds = false } = {}) {
    const date = new Date(unix * 1000);
    if (!Number.isFinite(date.getTime())) return "?";
    const hm = this.format({ hour: "2-digit", minute: "2-digit", hourCycle: "h23", ...(seconds ? { second: "2-digit" } : {}) }).format(date);
    const now = this.now();
    if (this.day(unix) === this.day(now)) return hm;
    const sameYear = this.format({ year: "numeric" }).format(date) === this.format({ year: "numeric" }).format(new Date(now * 1000));
    const day = this.format({ day: "numeric", month: "short", ...(sameYear ? {} : { year: "numeric" }) }).format(date);
    return `${day} ${hm}`;
  },
  age(unix) {
    if (!unix) return "never";
    const s = Math.max(0, this.now() - unix);
    if (s < 60) return `${s.toFixed(0)} s ago`;
    if (s < 3600) return `${(s / 60).toFixed(0)} min ago`;
    if (s < 86400) return `${(s / 3600).toFixed(1)} h ago`;
    return `${(s / 86400).toFixed(1)} d ago`;
  },
};

// --- ticks -------------------------------------------------------------------------------
function niceTicks(lo, hi, count = 4) {
  if (!(hi > lo)) { hi = lo + 1; }
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toFixed(10)));
  return ticks;
}

const TIME_STEPS_S = [10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

function timeTicks(t0, t1, count = 5) {
  const step = TIME_STEPS_S.find((s) => (t1 - t0) / s <= count) || 86400;
  const ticks = [];
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) ticks.push(t);
  ticks.step = step;
  return ticks;
}

// --- one chart -----------------------------------------------------------------------------
// series: [{name, points: [[x, y], ...], color, step}]; x and y ranges, tick lists and their
// formatters, axis titles; optional threshold {value, label} and bands [{from, to, cls}].
function plot(svg, o) {
  const W = 420, H = 150, L = 44, R = 10, T = 8, B = 34;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const x = (v) => L + ((W - L - R) * (v - o.x0)) / (o.x1 - o.x0 || 1);
  const y = (v) => H - B - ((H - B - T) * (v - o.y0)) / (o.y1 - o.y0 || 1);
  const nodes = [];
  for (const band of o.bands || []) {
    const top = y(Math.min(band.to, o.y1)), bottom = y(Math.max(band.from, o.y0));
    if (bottom > top) nodes.push(svgEl("rect", { x: L, y: top, width: W - L - R, height: bottom - top, class: `band ${band.cls}` }));
  }
  const xAxis = svgEl("g", { "data-axis": "x", class: "axis" });
  xAxis.append(svgEl("line", { x1: L, x2: W - R, y1: H - B, y2: H - B }));
  for (const t of o.xTicks) {
    xAxis.append(svgEl("line", { x1: x(t), x2: x(t), y1: H - B, y2: H - B + 4 }));
    xAxis.append(svgEl("text", { x: x(t), y: H - B + 14, "text-anchor": "middle", class: "tick" }, o.xFormat(t)));
  }
  xAxis.append(svgEl("text", { x: (L + W - R) / 2, y: H - 3, "text-anchor": "middle", class: "title" }, o.xLabel));
  const yAxis = svgEl("g", { "data-axis": "y", class: "axis" });
  yAxis.append(svgEl("line", { x1: L, x2: L, y1: T, y2: H - B }));
  for (const v of o.yTicks) {
    yAxis.append(svgEl("line", { x1: L - 4, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
    yAxis.append(svgEl("text", { x: L - 6, y: y(v) + 3, "text-anchor": "end", class: "tick" }, (o.yFormat || String)(v)));
  }
  yAxis.append(svgEl("text", { x: 10, y: (T + H - B) / 2, "text-anchor": "middle", class: "title",
    transform: `rotate(-90 10 ${(T + H - B) / 2})` }, o.yLabel));
  nodes.push(xAxis, yAxis);
  if (o.threshold) {
    nodes.push(svgEl("line", { x1: L, x2: W - R, y1: y(o.threshold.value), y2: y(o.threshold.value), class: "threshold", "data-threshold": o.threshold.value }));
    nodes.push(svgEl("text", { x: W - R - 2, y: y(o.threshold.value) - 3, "text-anchor": "end", class: "threshold-label" }, o.threshold.label));
  }
  for (const s of o.series) {
    const pts = s.points.filter(([a, b]) => Number.isFinite(a) && Number.isFinite(b));
    if (pts.length === 0) continue;
    let d = "";
    pts.forEach(([a, b], i) => {
      const px = x(a).toFixed(1), py = y(b).toFixed(1);
      if (i === 0) d += `M${px},${py}`;
      else d += s.step ? `H${px}V${py}` : `L${px},${py}`;
    });
    if (s.step && s.end !== undefined) d += `H${x(s.end).toFixed(1)}`;
    nodes.push(svgEl("path", { d, class: "series", stroke: s.color || "#1d3557", "data-series": s.name }));
    if (!s.step) for (const [a, b] of pts.slice(-60)) nodes.push(svgEl("circle", { cx: x(a), cy: y(b), r: 1.8, fill: s.color || "#1d3557" }));
  }
  svg.replaceChildren(...nodes);
  return svg;
}

// A value over time (the trend of the last hours): time axis in the hospital's zone.
function timeChart(series, { t0, t1, yLabel, y0, y1, threshold, bands, testid }) {
  const values = series.flatMap((s) => s.points.map((p) => p[1]));
  let lo = y0 ?? Math.min(...values), hi = y1 ?? Math.max(...values);
  if (y0 === undefined || y1 === undefined) {
    const pad = (hi - lo) * 0.1 || Math.max(1, Math.abs(hi) * 0.05);
    if (y0 === undefined) lo -= pad;
    if (y1 === undefined) hi += pad;
  }
  const yTicks = niceTicks(lo, hi, 4).filter((v) => v >= lo && v <= hi);
  const svg = svgEl("svg", { class: "chart", role: "img", "aria-label": `${yLabel} over time`, "data-testid": testid || "trend" });
  const ticks = timeTicks(t0, t1);
  const seconds = ticks.step < 60;
  return plot(svg, { series, x0: t0, x1: t1, xTicks: ticks, xFormat: (t) => Clock.time(t, { seconds }),
    xLabel: `time (${Clock.zone})`, y0: lo, y1: hi, yTicks, yLabel, threshold, bands });
}

window.Charts = { Clock, plot, timeChart, niceTicks, timeTicks, svgEl };
})();
