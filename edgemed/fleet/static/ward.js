// The ward page: one tile per bed (GET /api/wards/{id}/view). Every result kind drawn as what
// it is; times in the hospital's zone (the view's `timezone`). Device text only as textContent.
"use strict";

(() => {
const { Clock, plot, timeChart, niceTicks, svgEl } = window.Charts;
const NEWS2_BANDS = [{ from: 0, to: 4.5, cls: "low" }, { from: 4.5, to: 6.5, cls: "medium" }, { from: 6.5, to: 21, cls: "high" }];
const COLOUR_TEXT = { low: "low (0-4)", medium: "medium (5-6 or a single parameter scoring 3)", high: "high (7 or more)", unknown: "incomplete" };
// Trend series: what the select offers, in order, with axis title and range.
const SERIES = {
  news2: { label: "NEWS2", title: "NEWS2 score", y0: 0, bands: NEWS2_BANDS },
  hr: { label: "HR", title: "HR (/min)" },
  spo2: { label: "SpO₂", title: "SpO₂ (%)" },
  rr: { label: "RR", title: "RR (/min)" },
  bp: { label: "BP", title: "BP (mmHg)", parts: ["nibp_systolic", "nibp_diastolic"] },
  temperature: { label: "Temp", title: "Temp (°C)" },
  seizure: { label: "Seizure p", title: "p(seizure)", y0: 0, y1: 1 },
};
const VITAL_NAMES = { hr: "HR", spo2: "SpO₂", rr: "RR", nibp: "BP", temperature: "Temp" };
const STAGE_LEVEL = { W: 3, R: 2, N: 1, U: 0 };
const STAGE_NAME = ["undef.", "NREM", "REM", "Wake"];  // undef.: padded epochs
const wardState = { id: null, data: null, choice: {}, pending: null, ackOpen: null };

function fmtNumber(v, digits = 2) {
  return typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(digits)) : "—";
}

function stamp(r, what = "read") {
  const suspect = r.clock_suspect ? " (device clock implausible: receive time)" : "";
  return el("div", { class: "muted stamp", "data-testid": "stamp" },
    `${what} ${Clock.time(r.at)} · ${Clock.age(r.at)}${suspect} · ${r.model}`);
}

// --- NEWS2 and vitals ----------------------------------------------------------------------
function news2Badge(n) {
  if (!n) return el("div", { class: "news2 none", "data-testid": "news2" }, "NEWS2 —");
  const text = n.complete ? `NEWS2 ${n.score}` : `NEWS2 ≥ ${n.score ?? "?"}`;
  const badge = el("div", { class: `news2 ${n.colour}`, "data-testid": "news2", "data-colour": n.colour,
    title: `colour band: ${COLOUR_TEXT[n.colour]}` },
    el("strong", {}, text), " ", el("span", { class: "band-name" }, n.complete ? n.colour : "incomplete"));
  if (!n.complete) badge.append(el("div", { class: "muted" }, `missing: ${(n.missing || []).join(", ") || "?"}` +
    (n.max_possible_score != null ? ` · could be up to ${n.max_possible_score}` : "")));
  badge.append(el("div", { class: "muted" }, `${Clock.time(n.at)} · ${Clock.age(n.at)}`));
  return badge;
}

function vitalCell(name, reading, second) {
  if (!reading) return null;
  const limits = reading.alarm_limits;
  let value = reading.value === null || reading.value === undefined ? null : fmtNumber(reading.value, 1);
  if (second) value = value === null && (second.value ?? null) === null ? null : `${fmtNumber(reading.value, 0)}/${fmtNumber(second.value, 0)}`;
  const out = limits && typeof reading.value === "number" && (reading.value < limits[0] || reading.value > limits[1]);
  const cell = el("div", { class: `vital${out ? " out-of-limits" : ""}`, "data-vital": name, "data-testid": "vital" },
    el("span", { class: "vital-name" }, VITAL_NAMES[name] || name),
    el("span", { class: "vital-value" }, value === null ? "—" : value),
    el("span", { class: "vital-unit" }, reading.unit || ""));
  if (value === null) cell.title = `not reported: ${reading.withheld || "not read"}`;
  if (limits) cell.append(el("span", { class: "limits", "data-testid": "alarm-limits", title: "alarm limits on the monitor" },
    `alarm ${fmtNumber(limits[0], 0)}–${fmtNumber(limits[1], 0)}`));
  return cell;
}

function vitalsBlock(v) {
  if (!v) return el("div", { class: "vitals muted", "data-testid": "vitals" }, "No vital signs read");
  const f = v.fields;
  const cells = [vitalCell("hr", f.hr), vitalCell("spo2", f.spo2), vitalCell("rr", f.rr),
    f.nibp_systolic ? vitalCell("nibp", f.nibp_systolic, f.nibp_diastolic || {}) : null, vitalCell("temperature", f.temperature)];
  return el("div", { class: "vitals", "data-testid": "vitals" },
    el("div", { class: "vital-row" }, ...cells.filter(Boolean)), stamp(v));
}

// --- trend ---------------------------------------------------------------------------------
function trendSeries(bed, key) {
  const spec = SERIES[key];
  const names = spec.parts || [key];
  const colours = ["#1d3557", "#e76f51"];
  return names.filter((n) => bed.trend[n]).map((n, i) => ({ name: n, points: bed.trend[n], color: colours[i] }));
}

function trendBlock(bed) {
  const available = Object.keys(SERIES).filter((k) => trendSeries(bed, k).length);
  if (!available.length) return el("div", { class: "muted trend-none" }, `No readings in the last ${wardState.data.hours} h`);
  let key = wardState.choice[bed.bed_id];
  if (!available.includes(key)) key = available[0];
  const box = el("div", { class: "trend-box" });
  const select = el("select", { "data-testid": "trend-select", "aria-label": "trend shown" },
    ...available.map((k) => el("option", { value: k, selected: k === key }, SERIES[k].label)));
  const draw = (k) => {
    const spec = SERIES[k];
    const series = trendSeries(bed, k);
    const seizure = bed.results["seizure-probability"];
    const threshold = k === "seizure" && seizure ? { value: seizure.threshold, label: `threshold ${seizure.threshold}` } : null;
    const high = Math.max(...series.flatMap((s) => s.points.map((p) => p[1])));
    const y1 = spec.y1 ?? (k === "news2" ? Math.min(20, Math.max(10, high + 2)) : undefined);
    box.replaceChildren(timeChart(series, { t0: wardState.data.since, t1: wardState.data.now, yLabel: spec.title,
      y0: spec.y0, y1, bands: spec.bands, threshold }));
  };
  select.addEventListener("change", () => { wardState.choice[bed.bed_id] = select.value; draw(select.value); });
  draw(key);
  return el("div", { class: "trend" }, el("div", { class: "trend-head" }, `Last ${wardState.data.hours} h `, select), box);
}

// --- alerts and acknowledgements -----------------------------------------------------------
function episodeText(a) {
  if (!a.episode) return `raised ${Clock.time(a.raised_at)}`;
  const peak = a.peak === null || a.peak === undefined ? "" : ` · peak ${fmtNumber(a.peak)}`;
  const closed = a.closed_at ? " · ended" : " · ongoing";
  return `${a.episode_count} alert${a.episode_count === 1 ? "" : "s"} · ${Clock.time(a.first_at)}–${Clock.time(a.last_at)}${peak}${closed}`;
}

function ackForm(a) {
  const input = el("input", { type: "text", maxLength: 500, placeholder: "comment (optional)", "data-testid": "ack-comment" });
  const form = el("form", { class: "ack-form", "data-testid": "ack-form" }, input,
    el("button", { type: "submit", "data-testid": "ack-confirm" }, "Confirm"),
    el("button", { type: "button", onclick: () => { wardState.ackOpen = null; renderWard(); } }, "Cancel"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    wardState.ackOpen = null;
    await acknowledge(a.id, input.value.trim() || null);
    await loadWard();
  });
  setTimeout(() => input.focus(), 0);
  return form;
}

function alertItem(a) {
  const open = wardState.ackOpen === a.id;
  return el("li", { class: `bed-alert ${a.severity}`, "data-alert": a.id, "data-testid": "bed-alert" },
    el("div", {},
      el("span", { class: `sev ${a.severity}` }, a.severity), " ", el("strong", {}, a.rule),
      a.escalated_at ? el("span", { class: "escalated" }, " escalated") : "",
      el("div", {}, a.detail),
      el("div", { class: "muted", "data-testid": "episode" }, episodeText(a)),
      el("div", { class: "muted" }, `waiting since ${Clock.time(a.raised_at)} (${Clock.age(a.raised_at)})`),
      open ? ackForm(a) : ""),
    open ? "" : el("button", { type: "button", "data-testid": "ward-ack",
      onclick: () => { wardState.ackOpen = a.id; renderWard(); } }, "Acknowledge"));
}

function ackItem(a) {
  return el("li", { "data-testid": "acked", "data-alert": a.id },
    el("span", { class: `sev ${a.severity}` }, a.severity), " ", el("strong", {}, a.rule),
    ` acknowledged ${Clock.time(a.acked_at)} by `, el("strong", { "data-testid": "acked-by" }, a.acked_by || "?"),
    a.ack_comment ? el("div", { class: "comment", "data-testid": "ack-text" }, `“${a.ack_comment}”`) : "");
}

// --- other result kinds --------------------------------------------------------------------
function seizureBlock(r) {
  const step = r.trace_step_s || 0.5;
  const points = (r.trace || []).map((v, i) => [r.segment_start_s + i * step, v]).filter(([, v]) => v !== null);
  const x0 = r.segment_start_s, x1 = Math.max(r.segment_end_s, x0 + step);
  const svg = svgEl("svg", { class: "chart", role: "img", "aria-label": "seizure probability trace", "data-testid": "seizure-trace" });
  plot(svg, { series: [{ name: "seizure", points, color: "#b00020" }], x0, x1, xTicks: niceTicks(x0, x1, 4),
    xFormat: (v) => `${fmtNumber(v, 1)}`, xLabel: "seconds from window start", y0: 0, y1: 1, yTicks: [0, 0.25, 0.5, 0.75, 1],
    yLabel: "p(seizure)", threshold: { value: r.threshold, label: `threshold ${r.threshold}` } });
  return [el("div", {}, `p(seizure) ${fmtNumber(r.probability)} `, el("strong", { class: r.seizure ? "flag" : "" },
    r.seizure ? `≥ threshold ${r.threshold}: seizure` : `< threshold ${r.threshold}`),
    r.evaluated_fraction < 1 ? el("span", { class: "muted" }, ` · ${(r.evaluated_fraction * 100).toFixed(0)} % evaluated`) : ""), svg];
}

function hypnogramBlock(r) {
  const letters = [...(r.hypnogram || "")];
  const hours = (r.epoch_seconds || 30) / 3600;
  const points = letters.map((s, i) => [i * hours, STAGE_LEVEL[s] ?? 0]);
  const end = letters.length * hours;
  const svg = svgEl("svg", { class: "chart", role: "img", "aria-label": "hypnogram", "data-testid": "hypnogram" });
  plot(svg, { series: [{ name: "stages", points, step: true, end, color: "#5a3d99" }], x0: 0, x1: end || 1,
    xTicks: niceTicks(0, end || 1, 4), xFormat: (v) => `${fmtNumber(v, 1)} h`, xLabel: "hours from recording start",
    y0: -0.3, y1: 3.3, yTicks: [0, 1, 2, 3], yFormat: (v) => STAGE_NAME[v], yLabel: "stage" });
  const minutes = Object.entries(r.counts || {}).map(([k, n]) => `${k} ${fmtNumber((n * r.epoch_seconds) / 60, 0)} min`);
  return [el("div", {}, `${r.n_epochs} epochs of ${r.epoch_seconds} s · ${minutes.join(" · ")}`), svg];
}

// Sizes through the CSSOM: the fleet's Content-Security-Policy refuses style attributes.
function bar(pct, mark) {
  const fill = el("span"), tick = el("i");
  fill.style.width = `${pct}%`;
  tick.style.left = `${mark}%`;
  return el("div", { class: "bar", title: `${pct} %` }, fill, tick);
}

function tabularBlock(r) {
  const pct = Math.round(r.probability * 100);
  return [el("div", {}, `p(${r.positive_label}) `, el("strong", { "data-testid": "probability" }, fmtNumber(r.probability)),
      ` → ${r.label} (threshold ${r.threshold})`),
    bar(pct, Math.round(r.threshold * 100)),
    r.out_of_range && r.out_of_range.length ? el("div", { class: "warn" }, `outside training range: ${r.out_of_range.join(", ")}`) : ""];
}

function icdBlock(r) {
  const items = (r.nearest || []).map((n, i) => el("li", { class: r.suggestion && i === 0 ? "suggested" : "" },
    el("strong", {}, n.code), ` ${n.text} `, el("span", { class: "muted" }, fmtNumber(n.score))));
  const head = r.abstained ? `no confident suggestion (${r.abstain_reason || "abstained"})` :
    r.suggestion ? `suggested ${r.suggestion.code}${r.confidence != null ? ` · confidence ${fmtNumber(r.confidence)}` : ""}` : "nearest codes";
  return [el("div", {}, head, r.assertion ? el("span", { class: "muted" }, ` · assertion: ${r.assertion}`) : ""),
    el("ol", { class: "icd", "data-testid": "icd-list" }, ...items)];
}

const KIND_BLOCKS = {
  "seizure-probability": ["EEG seizure watch", seizureBlock],
  "sleep-stages": ["Sleep stages (ECG)", hypnogramBlock],
  "tabular-classification": ["Risk model", tabularBlock],
  "tabular-regression": ["Regression model", (r) => [el("div", {}, `${r.name} `, el("strong", {}, fmtNumber(r.value, 1)), ` ${r.unit}`)]],
  "text-embedding": ["ICD-10-CM suggestions: for review, not diagnoses", icdBlock],
};

function resultBlocks(bed) {
  return Object.entries(KIND_BLOCKS).filter(([kind]) => bed.results[kind]).map(([kind, [title, draw]]) => {
    const r = bed.results[kind];
    return el("div", { class: "result", "data-testid": `result-${kind}` }, el("h4", {}, title), ...draw(r), stamp(r, "at"));
  });
}

// --- the page ------------------------------------------------------------------------------
function bedTile(bed) {
  const devices = bed.devices.map((d) => el("span", { class: `chip state ${d.state || "unknown"}`, title: d.known ? `last seen ${Clock.time(d.last_seen)}` : "never connected" },
    `${d.device_id} · ${d.known ? d.state || "no status" : "never seen"}`));
  const alerts = bed.alerts.length ? el("ul", { class: "bed-alerts", "data-testid": "bed-alerts" }, ...bed.alerts.map(alertItem)) : el("div", { class: "muted" }, "No open alerts");
  return el("section", { class: `tile colour-${bed.news2 ? bed.news2.colour : "none"}`, "data-bed": bed.bed_id, "data-testid": "bed-tile" },
    el("div", { class: "tile-head" },
      el("h3", {}, bed.label || `Bed ${bed.bed_id}`), news2Badge(bed.news2)),
    el("div", { class: "chips" }, ...devices),
    vitalsBlock(bed.vitals), trendBlock(bed), alerts,
    bed.acknowledged.length ? el("ul", { class: "acks", "data-testid": "bed-acks" }, ...bed.acknowledged.map(ackItem)) : "",
    ...resultBlocks(bed));
}

function renderWard() {
  const data = wardState.data;
  if (!data) return;
  $("#ward-title").textContent = data.name;
  $("#ward-meta").textContent = `times in ${data.timezone} · updated ${Clock.time(data.now, { seconds: true })} · trend of the last ${data.hours} h`;
  $("#ward-tiles").replaceChildren(...(data.beds.length ? data.beds.map(bedTile) : [el("p", { class: "muted" }, "No beds in this ward yet (edgemed fleet ward bed …)")]));
}

async function loadWard() {
  if (!wardState.id) return;
  const data = await api(`/api/wards/${encodeURIComponent(wardState.id)}/view?hours=6`);
  Clock.zone = data.timezone;
  Clock.skew = data.now - Date.now() / 1000;
  wardState.data = data;
  if (wardState.ackOpen === null) renderWard();  // never pull a half-typed comment away
}

async function showWard(id) {
  show("ward-view");
  if (wardState.id !== id) Object.assign(wardState, { id, data: null, choice: {}, ackOpen: null });
  await loadWard();
}

function wardChanged() {  // live events: reload at most every 3 s (a ward of EEG streams sends several a second)
  if ($("#ward-view").hidden || wardState.pending) return;
  wardState.pending = setTimeout(() => { wardState.pending = null; loadWard().catch(() => {}); }, 3000);
}

window.Ward = { showWard, loadWard, wardChanged };
})();
