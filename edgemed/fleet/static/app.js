// edgemed fleet dashboard: plain DOM, no framework, no CDN. Text from devices is only ever set
// with textContent (never innerHTML), so a hostile payload cannot inject markup.
"use strict";

const $ = (sel) => document.querySelector(sel);
const FEED_MAX = 50;
let source = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role") node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}

// Times in the hospital's zone (GET /api/ward-settings), with the date where it is not today.
function ago(unix) {
  return window.Charts.Clock.age(unix);
}

function clock(unix) {
  return window.Charts.Clock.time(unix, { seconds: true });
}

// A result whose device clock the fleet found implausible (clock_suspect): its created_at is
// never shown or used; the receive time stands in, marked, and it has no latency.
function createdCell(r) {
  if (!r.clock_suspect) return el("td", {}, clock(r.created_at));
  return el("td", { title: "device clock implausible: receive time shown" },
    `${clock(r.received_at)} `, el("span", { class: "clock-suspect", "data-testid": "clock-suspect" }, "clock?"));
}

function latencyMs(r) {
  const ms = (r.received_at - r.created_at) * 1000;
  return r.clock_suspect || !Number.isFinite(ms) ? null : ms;
}

// A signed-in session's state-changing requests echo its CSRF cookie in X-CSRF-Token.
function csrfHeaders(options) {
  const method = (options.method || "GET").toUpperCase();
  const match = document.cookie.match(/(?:^|;\s*)edgemed_csrf=([^;]+)/);
  return method === "GET" || !match ? {} : { "X-CSRF-Token": decodeURIComponent(match[1]) };
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}), ...csrfHeaders(options) };
  const response = await fetch(path, { credentials: "same-origin", ...options, headers });
  if (response.status === 401) {
    showLogin();
    throw new Error("unauthorized");
  }
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.status === 204 ? null : response.json();
}

// --- value shown and charted per result kind ---------------------------------------------
const FIELD_TEXT = [["hr", "HR"], ["spo2", "SpO₂"], ["rr", "RR"], ["nibp_systolic", "SYS"], ["nibp_diastolic", "DIA"], ["temperature", "T"]];

function resultValue(kind, body) {
  if (kind === "news2") return { text: `NEWS2 ${body.score}`, number: body.score };
  if (kind === "seizure-probability")
    return { text: `p(seizure) ${body.probability.toFixed(2)}`, number: body.probability };
  if (kind === "monitor-reading") {
    const f = body.fields || {};
    const read = FIELD_TEXT.filter(([k]) => f[k]).map(([k, name]) => `${name} ${f[k].value} ${f[k].unit}`);
    const score = body.news2 ? `NEWS2 ${body.news2.score} · ` : "";
    return { text: score + (read.join(" · ") || "no value read"), number: body.news2 ? body.news2.score : null };
  }
  if (kind === "tabular-classification")
    return { text: `p(${body.positive_label}) ${body.probability.toFixed(2)} → ${body.label}`, number: body.probability };
  if (kind === "tabular-regression") return { text: `${body.name} ${body.value} ${body.unit}`, number: body.value };
  if (kind === "sleep-stages") return { text: `sleep stages: ${body.n_epochs} epochs`, number: null };
  const top = Array.isArray(body.nearest) && body.nearest[0];
  if (top) return { text: `${top.code} (${Number(top.score).toFixed(2)})`, number: Number(top.score) };
  return { text: kind, number: null };
}

// --- views -------------------------------------------------------------------------------
function show(view) {
  for (const id of ["login-view", "fleet-view", "device-view", "ward-view"]) $(`#${id}`).hidden = id !== view;
  $("#logout").hidden = view === "login-view";
}

function showLogin() {
  if (source) source.close();
  source = null;
  setLive(false);
  show("login-view");
  $("#username").focus();
}

function setLive(on) {
  $("#live").className = `live ${on ? "on" : "off"}`;
  $("#live").textContent = on ? "live" : "offline";
}

// "unknown since 14:02": the device went silent past its announced heartbeat (its will may be lost).
function stateText(d) {
  if (d.state === "unknown" && d.state_since) return `unknown since ${clock(d.state_since)}`;
  return d.state || "unknown";
}

async function loadDevices() {
  const [devices, models] = await Promise.all([api("/api/devices"), api("/api/models")]);
  const rows = devices.map((d) =>
    el("tr", { "data-device": d.device_id },
      el("td", {}, el("a", { href: `#/device/${encodeURIComponent(d.device_id)}` }, d.device_id)),
      el("td", {}, el("span", { class: `state ${d.state || "unknown"}`, "data-testid": "state" }, stateText(d))),
      el("td", {}, (d.models || []).join(", ")),
      el("td", {}, d.edgemed_version || ""),
      el("td", {}, d.outbox_depth ?? ""),
      el("td", { class: "muted" }, ago(d.last_seen))));
  $("[data-testid=devices] tbody").replaceChildren(...rows);
  const online = devices.filter((d) => d.state === "online").length;
  const offline = devices.filter((d) => d.state === "offline").length;
  const unknown = devices.filter((d) => d.state === "unknown").length;  // silent past heartbeat
  const silent = devices.length - online - offline - unknown;  // results but no status yet
  $("#summary").textContent = `${online} online · ${offline} offline` +
    (unknown ? ` · ${unknown} unknown` : "") + (silent ? ` · ${silent} no status` : "");
  $("[data-testid=models] tbody").replaceChildren(...models.map((m) =>
    el("tr", {}, el("td", {}, m.model_id), el("td", {}, m.version), el("td", {}, m.devices))));
}

async function loadAlerts() {
  const alerts = await api("/api/alerts?open=true&limit=100");
  const items = alerts.map((a) =>
    el("li", { "data-alert": a.id, "data-testid": "alert" },
      el("div", {},
        el("span", { class: `sev ${a.severity}` }, a.severity), " ",
        el("strong", {}, a.rule), " · ", el("a", { href: `#/device/${encodeURIComponent(a.device_id)}` }, a.device_id),
        el("div", {}, a.detail),
        el("div", { class: "muted" }, `${clock(a.raised_at)}${a.resolved_at ? " · resolved" : ""}`)),
      el("button", { type: "button", onclick: () => acknowledge(a.id), "data-testid": "ack" }, "Acknowledge")));
  $("#alerts").replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, "No open alerts")]));
}

// The server records who (the signed-in user, once the fleet has named users); the comment is
// optional and kept with the acknowledgement.
async function acknowledge(id, comment = null) {
  await api(`/api/alerts/${id}/ack`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(comment ? { by: "dashboard", comment } : { by: "dashboard" }),
  });
  await loadAlerts();
}

async function loadFeed() {
  const page = await api("/api/results?limit=" + FEED_MAX);
  $("#feed").replaceChildren(...page.items.map((r) => feedItem({
    device_id: r.device_id, seq: r.seq, model: `${r.model_id}@${r.model_version}`,
    value: resultValue(r.kind, r.payload.result).text, received_at: r.received_at,
  })));
}

function feedItem(r) {
  return el("li", { "data-testid": "feed-item" },
    el("strong", {}, r.device_id), ` #${r.seq} · ${r.value} `,
    el("span", { class: "muted" }, `${r.model} · ${clock(r.received_at)}`));
}

async function showFleet() {
  show("fleet-view");
  await Promise.all([loadDevices(), loadAlerts(), loadFeed()]);
}

async function showDevice(id) {
  show("device-view");
  const d = await api(`/api/devices/${encodeURIComponent(id)}?recent=100`);
  $("#device-title").textContent = d.device_id;
  const facts = { State: d.state, Since: d.state_since && clock(d.state_since), Models: d.models.join(", "),
    edgemed: d.edgemed_version, "Outbox depth": d.outbox_depth, Epoch: d.epoch ? d.epoch.slice(0, 12) : d.epoch,
    "Acked up to seq": d.acked_seq,
    "Last seen": ago(d.last_seen) };
  $("#device-facts").replaceChildren(...Object.entries(facts).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v ?? "")]));
  const results = d.recent_results.slice().reverse();  // oldest first for the chart
  drawCharts(results);
  $("[data-testid=device-events]").replaceChildren(...(d.events.length ? d.events.map((e) =>
    el("li", { "data-testid": "device-event", "data-kind": e.kind },
      el("strong", {}, e.kind), " ", el("span", { class: "muted" }, clock(e.at)),
      el("div", {}, e.detail))) : [el("li", { class: "muted" }, "No outbox events")]));
  $("[data-testid=device-results] tbody").replaceChildren(...d.recent_results.map((r) =>
    el("tr", {}, el("td", {}, r.seq), el("td", {}, `${r.model_id}@${r.model_version}`),
      el("td", {}, resultValue(r.kind, r.payload.result).text), createdCell(r),
      el("td", {}, latencyMs(r) === null ? "—" : `${latencyMs(r).toFixed(0)} ms`))));
}

// The device page: the value of its most frequent result kind over time, and the
// device->fleet latency over time, each on its own labelled axes (not one against the other).
const VALUE_AXIS = { "news2": "NEWS2 score", "monitor-reading": "NEWS2 score", "seizure-probability": "p(seizure)",
  "text-embedding": "top code score (cosine)", "tabular-classification": "probability of the positive label" };

function drawCharts(results) {
  const counts = {};
  for (const r of results) counts[r.kind] = (counts[r.kind] || 0) + 1;
  const kind = Object.keys(counts).sort((a, b) => counts[b] - counts[a])[0];
  const at = (r) => (r.clock_suspect ? r.received_at : r.created_at);
  const mine = results.filter((r) => r.kind === kind);
  const values = mine.map((r) => [at(r), resultValue(r.kind, r.payload.result).number]).filter(([, v]) => Number.isFinite(v));
  const latencies = results.map((r) => [at(r), latencyMs(r)]).filter(([, v]) => v !== null);
  const times = results.map(at);
  const first = Math.min(...times), last = Math.max(...times);
  const pad = Math.max(5, (last - first) * 0.05);  // points off the axes
  const t0 = first - pad, t1 = last + pad;
  const { timeChart } = window.Charts;
  const body = mine.length ? mine[mine.length - 1].payload.result : {};
  const label = kind === "tabular-regression" ? `${body.name} (${body.unit})` : (VALUE_AXIS[kind] || "value");
  const charts = [];
  if (values.length) charts.push(timeChart([{ name: "value", points: values }], { t0, t1, yLabel: label, testid: "value-chart" }));
  if (latencies.length) charts.push(timeChart([{ name: "latency", points: latencies, color: "#e76f51" }],
    { t0, t1, yLabel: "latency (ms)", y0: 0, testid: "latency-chart" }));
  $("#device-charts").replaceChildren(...(charts.length ? charts : [el("p", { class: "muted" }, "No results yet")]));
}

function route() {
  const device = location.hash.match(/^#\/device\/(.+)$/);
  const ward = location.hash.match(/^#\/ward\/(.+)$/);
  const shown = ward ? window.Ward.showWard(decodeURIComponent(ward[1]))
    : device ? showDevice(decodeURIComponent(device[1])) : showFleet();
  return shown.catch((e) => console.warn(e));
}

// Who is signed in (GET /api/me, where the fleet has named users): acknowledgements carry it.
function whoAmI() {
  fetch("/api/me", { credentials: "same-origin" }).then((r) => (r.ok ? r.json() : null)).then((me) => {
    $("#whoami").textContent = me ? `${me.name} (${me.role})` : "";
  }).catch(() => {});
}

// The hospital's time zone, and a link per ward in the header.
async function loadWards() {
  const [settings, wards] = await Promise.all([api("/api/ward-settings"), api("/api/wards")]);
  window.Charts.Clock.zone = settings.timezone;
  $("#wards-nav").replaceChildren(el("a", { href: "#/" }, "Fleet"), ...wards.map((w) =>
    el("a", { href: `#/ward/${encodeURIComponent(w.ward_id)}`, "data-ward": w.ward_id }, w.name)));
}

// --- live events -------------------------------------------------------------------------
function connectLive() {
  if (source) return;
  source = new EventSource("/api/events");
  source.addEventListener("hello", () => setLive(true));
  source.addEventListener("result", (e) => {
    const r = JSON.parse(e.data);
    const item = feedItem(r);
    item.classList.add("fresh");
    $("#feed").prepend(item);
    while ($("#feed").children.length > FEED_MAX) $("#feed").lastChild.remove();
    const row = document.querySelector(`tr[data-device="${CSS.escape(r.device_id)}"]`);
    if (!row) loadDevices().catch(() => {});
    else row.lastChild.textContent = ago(r.received_at);
    window.Ward.wardChanged();
  });
  for (const type of ["alert", "alert-ack"]) {
    source.addEventListener(type, () => { loadAlerts().catch(() => {}); window.Ward.wardChanged(); });
  }
  source.addEventListener("device", () => loadDevices().catch(() => {}));
  source.addEventListener("gap", () => route());
  source.onerror = () => setLive(false);  // EventSource reconnects by itself
  source.onopen = () => setLive(true);
}

async function start() {
  try {
    await api("/api/devices");
  } catch {
    return;  // showLogin() already ran
  }
  await loadWards().catch((e) => console.warn(e));
  whoAmI();
  connectLive();
  await route();
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login").addEventListener("submit", async (event) => {
    event.preventDefault();
    // A named user signs in with a password; the service token is for first setup.
    const token = $("#token").value;
    const body = token ? { token } : { username: $("#username").value.trim(), password: $("#password").value };
    const response = await fetch("/api/login", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    $("#token").value = "";
    $("#password").value = "";
    if (!response.ok) {
      $("#login-error").textContent = response.status === 429 ? "Too many attempts: wait a few minutes."
        : "That user name and password (or token) was not accepted.";
      return;
    }
    $("#login-error").textContent = "";
    await start();
  });
  $("#logout").addEventListener("click", async () => {
    await fetch("/api/logout", { method: "POST", headers: csrfHeaders({ method: "POST" }) });
    $("#whoami").textContent = "";
    showLogin();
  });
  window.addEventListener("hashchange", route);
  setInterval(() => { if (!$("#fleet-view").hidden) loadDevices().catch(() => {}); }, 10000);
  setInterval(() => { if (!$("#ward-view").hidden) window.Ward.loadWard().catch(() => {}); }, 15000);
  start();
});
