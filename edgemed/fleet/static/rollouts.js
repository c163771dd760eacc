// edgemed fleet: the rollouts page. Plain DOM, no framework, no CDN; device-supplied text (a
// device's failure reason) is only ever set with textContent, never as HTML.
"use strict";

const $ = (sel) => document.querySelector(sel);
const FAILED = new Set(["failed", "rolled-back", "timed-out"]);
const DONE_OK = new Set(["switched"]);
const GREY = new Set(["skipped", "aborted"]);
let selected = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-") || key.startsWith("aria-") || key === "title") node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}

// A signed-in session's state-changing requests echo its CSRF cookie (as the dashboard does).
function csrfHeaders(method) {
  const match = document.cookie.match(/(?:^|;\s*)edgemed_csrf=([^;]+)/);
  return method === "GET" || !match ? {} : { "X-CSRF-Token": decodeURIComponent(match[1]) };
}

async function api(path, { method = "GET", body, headers = {} } = {}) {
  const response = await fetch(path, {
    method, body, credentials: "same-origin", headers: { ...headers, ...csrfHeaders(method) },
  });
  $("#signin").hidden = response.status !== 401;
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const detail = data && data.detail;
    throw new Error(typeof detail === "string" ? detail : `${response.status} ${JSON.stringify(detail || "")}`);
  }
  return data;
}

function when(unix) {
  return unix ? new Date(unix * 1000).toLocaleString() : "";
}

function bar(counts, total) {
  const node = el("div", { class: "bar", title: JSON.stringify(counts) });
  const parts = { switched: 0, failed: 0, skipped: 0, progress: 0 };
  for (const [state, n] of Object.entries(counts)) {
    if (DONE_OK.has(state)) parts.switched += n;
    else if (FAILED.has(state)) parts.failed += n;
    else if (GREY.has(state)) parts.skipped += n;
    else if (state !== "pending") parts.progress += n;
  }
  for (const [cls, n] of Object.entries(parts)) {
    if (!n) continue;
    const part = el("span", { class: cls });
    part.style.width = `${(100 * n) / Math.max(1, total)}%`;  // CSSOM: allowed by the fleet's CSP
    node.append(part);
  }
  return node;
}

async function refreshRollouts() {
  const rollouts = await api("/api/rollouts");
  const rows = rollouts.map((r) => {
    const switched = r.counts.switched || 0;
    const tr = el("tr", { "data-id": r.id, class: r.id === selected ? "selected" : "" },
      el("td", {}, r.id), el("td", {}, `${r.model_id}@${r.version}`),
      el("td", { class: `st-${r.state}` }, r.state),
      el("td", {}, bar(r.counts, r.devices_total), el("span", { class: "muted" }, `${switched}/${r.devices_total} switched`)),
      el("td", {}, when(r.created_at)));
    tr.addEventListener("click", () => { selected = r.id; refresh(); });
    return tr;
  });
  $("#rollout-rows").replaceChildren(...rows);
}

async function refreshDetail() {
  if (selected === null) return;
  const r = await api(`/api/rollouts/${selected}`);
  $("#detail").hidden = false;
  $("#detail-title").textContent = `Rollout ${r.id}: ${r.model_id}@${r.version} (${r.state})`;
  const c = r.criteria;
  $("#detail-reason").textContent = `${r.reason ? r.reason + " · " : ""}canary ${r.canary}, ${r.waves} wave(s), `
    + `shadow ${c.shadow_results} results at ≥ ${c.min_agreement} agreement, max failures ${r.max_failures}`;
  $("#waves").replaceChildren(...r.waves_progress.map((w) => {
    const total = Object.values(w.counts).reduce((a, b) => a + b, 0);
    return el("div", { class: "wave" }, w.wave === 0 ? "canary " : `wave ${w.wave} `, bar(w.counts, total));
  }));
  $("#device-rows").replaceChildren(...r.devices.map((d) => {
    const rep = d.report || {};
    const shadow = rep.shadow_needed ? `${rep.shadow_agree}/${rep.shadow_done} of ${rep.shadow_needed}` : "";
    return el("tr", {}, el("td", {}, d.device_id), el("td", {}, d.wave === 0 ? "canary" : d.wave),
      el("td", { class: `st-${d.state}` }, d.state), el("td", {}, shadow),
      el("td", {}, d.reason || ""), el("td", {}, when(d.updated_at)));
  }));
}

async function refreshBundles() {
  const bundles = await api("/api/bundles");
  $("#bundle-rows").replaceChildren(...bundles.map((b) => el("tr", {},
    el("td", {}, b.model_id), el("td", {}, b.version),
    el("td", { title: b.sha256 }, b.sha256.slice(0, 12) + "…"), el("td", {}, b.key_id || "unsigned"),
    el("td", {}, `${(b.size / 1024).toFixed(0)} KiB`))));
  const select = $("#bundle");
  const current = select.value;
  select.replaceChildren(...bundles.map((b) => el("option", { value: b.sha256 }, `${b.model_id}@${b.version} (${b.sha256.slice(0, 8)})`)));
  if (current) select.value = current;
}

async function refresh() {
  try {
    await Promise.all([refreshRollouts(), refreshBundles()]);
    await refreshDetail();
  } catch (err) {
    console.warn(err);
  }
}

function words(text) {
  return text.split(/[\s,]+/).filter(Boolean);
}

document.addEventListener("DOMContentLoaded", () => {
  $("#create").addEventListener("submit", async (event) => {
    event.preventDefault();
    const number = (id) => Number($(id).value);
    const body = {
      bundle_sha256: $("#bundle").value, devices: words($("#devices").value), groups: words($("#groups").value),
      wards: words($("#wards").value),
      canary: number("#canary"), waves: number("#waves-n"), max_failures: number("#max-failures"),
      wave_timeout_s: number("#wave-timeout"),
      criteria: { shadow_results: number("#shadow-results"), min_agreement: number("#min-agreement"),
                  abs_tolerance: number("#abs-tolerance"), rel_tolerance: number("#rel-tolerance") },
    };
    try {
      const made = await api("/api/rollouts", { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } });
      $("#create-error").textContent = "";
      selected = made.id;
      refresh();
    } catch (err) {
      $("#create-error").textContent = err.message;
    }
  });
  $("#upload").addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = $("#archive").files[0];
    if (!file) return;
    try {
      await api("/api/bundles", { method: "POST", body: file, headers: { "Content-Type": "application/x-tar" } });
      $("#upload-error").textContent = "";
      refresh();
    } catch (err) {
      $("#upload-error").textContent = err.message;
    }
  });
  for (const button of document.querySelectorAll("[data-action]")) {
    button.addEventListener("click", async () => {
      if (selected === null) return;
      const action = button.dataset.action;
      if (action === "abort" && !window.confirm(`Abort rollout ${selected}? Devices that switched keep the new version.`)) return;
      try {
        await api(`/api/rollouts/${selected}/${action}`, { method: "POST" });
        $("#control-error").textContent = "";
      } catch (err) {
        $("#control-error").textContent = err.message;
      }
      refresh();
    });
  }
  refresh();
  setInterval(refresh, 2000);
});
