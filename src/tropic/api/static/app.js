// tropic dashboard: plain JavaScript, no build step. Every data request carries the bearer token
// (kept in sessionStorage: this tab only); live updates come from the server-sent event stream, read
// with fetch so that the token travels in a header, never in a URL.
"use strict";

const STATES = ["SUBMITTED", "DEFERRED", "STARTED", "ROLLING_BACK", "COMMITTED", "ABORTED", "FAILED", "KILLED"];
const FINAL = new Set(["COMMITTED", "ABORTED", "FAILED"]);
const MAX_ROWS = 300;

const state = {
  token: sessionStorage.getItem("tropic.token") || "",
  who: null,
  txns: new Map(), // id -> summary
  selected: null,
  expanded: new Set(["/", "/compute", "/storage", "/network"]),
  tree: new Map(), // path -> resource (depth 1)
  procedures: [],
  lastEventId: null,
  stream: null,
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

class Unauthorized extends Error {}

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: `Bearer ${state.token}` }, options.headers || {});
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  if (resp.status === 401) throw new Unauthorized("the token was refused");
  let data = null;
  try { data = await resp.json(); } catch (_) { data = null; }
  if (!resp.ok) {
    const err = (data && data.error) || { code: `http_${resp.status}`, message: `HTTP ${resp.status}` };
    const e = new Error(err.message);
    e.info = err;
    e.status = resp.status;
    throw e;
  }
  return data;
}

// Coalesce bursts of events: run fn at most once per `ms`.
function throttle(fn, ms) {
  let timer = null;
  let again = false;
  return () => {
    if (timer) { again = true; return; }
    fn();
    timer = setTimeout(() => { timer = null; if (again) { again = false; fn(); } }, ms);
  };
}

function fmtTime(t) {
  if (t === null || t === undefined) return "";
  return new Date(t * 1000).toLocaleTimeString();
}

function fmtDuration(s) {
  if (s === null || s === undefined) return "";
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 120) return `${s.toFixed(2)} s`;
  return `${Math.round(s / 60)} min`;
}

function badge(st) {
  return el("span", { class: `state state-${st}`, text: st });
}

// --- sign in -------------------------------------------------------------------------------------------
function showLogin(message) {
  $("main").hidden = true;
  $("login").hidden = false;
  $("logout").hidden = true;
  $("who").textContent = "";
  $("login-error").textContent = message || "";
  stopStream();
}

async function signIn(token) {
  state.token = token;
  try {
    state.who = await api("/v1/whoami");
  } catch (e) {
    sessionStorage.removeItem("tropic.token");
    showLogin(e instanceof Unauthorized ? "that token was refused" : e.message);
    return;
  }
  sessionStorage.setItem("tropic.token", token);
  $("login").hidden = true;
  $("main").hidden = false;
  $("logout").hidden = false;
  $("who").textContent = `${state.who.name} (${state.who.role})`;
  $("submit-panel").hidden = state.who.role === "viewer";
  await Promise.all([loadStats(), loadTransactions(), loadTree(), loadCapacity(), loadProcedures()]);
  startStream();
}

function guard(promise) {
  return promise.catch((e) => {
    if (e instanceof Unauthorized) showLogin("the token is no longer accepted");
    else console.warn(e);
  });
}

// --- counters ------------------------------------------------------------------------------------------
async function loadStats() {
  const s = await api("/v1/stats");
  const c = s.counters;
  const items = [
    ["submitted", c.submitted], ["committed", c.committed], ["aborted", c.aborted],
    ["rolled back", c.rolled_back], ["failed", c.failed], ["killed", c.killed],
    ["deferrals", c.deferred], ["queue depth", s.queue_depth], ["in flight", s.in_flight],
    ["fenced", s.fenced.length], ["model version", s.model_version],
  ];
  $("counters").replaceChildren(...items.map(([label, value]) =>
    el("div", { class: "counter", "data-counter": label.replace(/ /g, "_") },
      el("div", { class: "value", text: value }), el("div", { class: "label", text: label }))));
}
const refreshStats = throttle(() => guard(loadStats()), 500);

// --- capacity (used and free per region and host) -----------------------------------------------------
const CAPACITY_HOSTS = 200; // the panel shows the first hosts in path order; `tropic get hosts` lists all

function fmtMiB(n) {
  return Math.abs(n) >= 10240 ? `${(n / 1024).toFixed(1)} GiB` : `${n} MiB`;
}

function usageBar(used, total) {
  const pct = total > 0 ? Math.max(0, Math.min(100, Math.round((100 * used) / total))) : 0;
  const bar = el("div", { class: `bar${pct >= 90 ? " full" : ""}`, title: `${pct}%` });
  const fill = el("div", { class: "fill" });
  fill.style.width = `${pct}%`; // through the CSSOM: the CSP refuses style attributes
  bar.append(fill);
  return bar;
}

function capacityRow(r, kind) {
  const tr = el("tr", {
    class: kind,
    "data-path": r.path,
    "data-kind": kind,
    "data-memory-used": r.memory_used_mib,
    "data-memory-free": r.memory_free_mib,
    "data-vms": r.vms,
  },
  el("td", { text: kind === "region" ? r.name : `  ${r.name}${r.cordoned ? " (cordoned)" : ""}` }),
  el("td", { text: `${r.vcpus_used} / ${r.vcpu_limit}` }),
  el("td", { text: `${fmtMiB(r.memory_used_mib)} / ${fmtMiB(r.memory_mib)}` }),
  el("td", { text: fmtMiB(r.memory_free_mib) }),
  el("td", { text: r.vms }),
  el("td", {}, usageBar(r.memory_used_mib, r.memory_mib)));
  return tr;
}

async function loadCapacity() {
  const [regions, hosts] = await Promise.all([api("/v1/regions"), api(`/v1/hosts?limit=${CAPACITY_HOSTS}`)]);
  const rows = [];
  for (const r of regions.items) {
    rows.push(capacityRow(r, "region"));
    for (const h of hosts.items) if (h.region === r.name) rows.push(capacityRow(h, "host"));
  }
  $("capacity").tBodies[0].replaceChildren(...rows);
}
const refreshCapacity = throttle(() => guard(loadCapacity()), 1000);

// --- transactions --------------------------------------------------------------------------------------
async function loadTransactions() {
  const page = await api(`/v1/transactions?limit=${MAX_ROWS}`);
  state.txns.clear();
  for (const t of page.items) state.txns.set(t.id, t);
  renderTransactions();
}

function renderTransactions() {
  const filter = $("state-filter").value;
  const rows = [...state.txns.values()]
    .filter((t) => !filter || t.state === filter)
    .sort((a, b) => b.id - a.id)
    .slice(0, MAX_ROWS);
  const now = Date.now() / 1000;
  $("txns").tBodies[0].replaceChildren(...rows.map((t) => {
    const running = !FINAL.has(t.state) && t.submitted_at ? now - t.submitted_at : null;
    return el("tr", {
      "data-txn-id": t.id,
      "data-state": t.state,
      class: t.id === state.selected ? "selected" : null,
      onclick: () => select(t.id),
    },
    el("td", { text: t.id }),
    el("td", { text: t.procedure }),
    el("td", {}, badge(t.state)),
    el("td", { text: t.submitter }),
    el("td", { text: fmtTime(t.submitted_at) }),
    el("td", { text: t.latency_s !== null ? fmtDuration(t.latency_s) : running !== null ? `${fmtDuration(running)}…` : "" }));
  }));
}
const refreshTable = throttle(renderTransactions, 100);

// --- one transaction's timeline ------------------------------------------------------------------------
let detailTimer = null;

function select(id) {
  state.selected = id;
  renderTransactions();
  guard(loadDetail());
}

async function loadDetail() {
  clearTimeout(detailTimer);
  const id = state.selected;
  if (id === null) return;
  const t = await api(`/v1/transactions/${id}`);
  if (state.selected !== id) return;
  renderDetail(t);
  // Steps progress without state changes: poll while the transaction is still running.
  if (!FINAL.has(t.state)) detailTimer = setTimeout(() => guard(loadDetail()), 400);
}

function renderDetail(t) {
  $("timeline").hidden = false;
  $("timeline").dataset.txnId = t.id;
  $("timeline").dataset.state = t.state;
  $("timeline-title").replaceChildren(`Transaction ${t.id}: ${t.procedure} `, badge(t.state),
    el("span", { class: "hint", text: `by ${t.submitter}` }));
  const body = [];
  const start = t.times.SUBMITTED;
  const stamps = Object.entries(t.times).sort((a, b) => a[1] - b[1]);
  body.push(el("div", { class: "states" }, ...stamps.map(([st, at]) =>
    el("span", {}, badge(st), el("span", { class: "stamp", text: ` +${fmtDuration(at - start)}` })))));

  if (t.error) {
    body.push(el("div", { class: "box error" },
      el("strong", { text: t.error.code }), ": ", t.error.message,
      t.error.path ? el("div", { class: "hint", text: `resource: ${t.error.path}` }) : null,
      t.error.undo_error ? el("div", { text: `undo failed: ${t.error.undo_error.message}` }) : null));
  }
  for (const v of t.violations) {
    body.push(el("div", { class: "box violation", "data-constraint": v.constraint },
      el("strong", { text: v.constraint }), ` on ${v.path}: ${v.message}`));
  }
  if (t.left_behind.length) {
    body.push(el("div", { class: "box error", text: `left behind and fenced: ${t.left_behind.join(", ")}` }));
  }

  if (t.steps.length) {
    const t0 = Math.min(...t.steps.map((s) => s.started));
    const t1 = Math.max(...t.steps.map((s) => s.finished));
    const span = Math.max(t1 - t0, 1e-6);
    body.push(el("h3", { text: "Steps on the devices" }));
    body.push(el("div", { class: "steps" }, ...t.steps.map((s) => {
      const bar = el("div", { class: "bar" });
      bar.style.left = `${((s.started - t0) / span) * 100}%`;
      bar.style.width = `${Math.max(((s.finished - s.started) / span) * 100, 0.5)}%`;
      const cls = ["step", s.undo ? "undo" : "", s.status === "failed" ? "failed" : ""].join(" ");
      return el("div", { class: cls, title: s.error ? s.error.message : s.status },
        el("div", { class: "label", text: `${s.undo ? "↩ undo " : ""}${s.action} ${s.path}` }),
        el("div", { class: "track" }, bar),
        el("div", { class: "dur", text: fmtDuration(s.finished - s.started) }));
    })));
  }

  if (t.actions.length) {
    body.push(el("h3", { text: "Action log" }));
    body.push(el("table", { class: "actions-log" },
      el("thead", {}, el("tr", {}, el("th", { text: "#" }), el("th", { text: "action" }),
        el("th", { text: "resource" }), el("th", { text: "undo" }))),
      el("tbody", {}, ...t.actions.map((a, i) => el("tr", {},
        el("td", { text: i }), el("td", { text: a.action }), el("td", { text: a.path }),
        el("td", { text: `${a.undo.action} ${a.undo.path}` }))))));
  }
  if (!FINAL.has(t.state) && state.who && state.who.role !== "viewer") {
    body.push(el("button", { type: "button", onclick: () => guard(kill(t.id)), text: "Kill" }));
  }
  $("timeline-body").replaceChildren(...body);
}

async function kill(id) {
  try { await api(`/v1/transactions/${id}/kill`, { method: "POST" }); } catch (e) { if (e instanceof Unauthorized) throw e; }
  await loadDetail();
}

// --- resource tree -------------------------------------------------------------------------------------
async function fetchNode(path) {
  const tail = path === "/" ? "" : path.slice(1).split("/").map(encodeURIComponent).join("/");
  const url = tail ? `/v1/resources/${tail}?depth=1` : "/v1/resources?depth=1";
  try {
    state.tree.set(path, await api(url));
  } catch (e) {
    if (e instanceof Unauthorized) throw e;
    state.tree.delete(path); // removed meanwhile
    state.expanded.delete(path);
  }
}

async function loadTree() {
  await Promise.all([...state.expanded].map(fetchNode));
  renderTree();
}
const refreshTree = throttle(() => guard(loadTree()), 1000);

function attrSummary(node) {
  const a = node.attrs;
  switch (node.kind) {
    case "host": return `${a.cpus} cpus, ${a.memory_mib} MiB, ${a.failure_domain || ""}`;
    case "vm": return `${a.state}, ${a.vcpus} vcpus, ${a.memory_mib} MiB`;
    case "router": return `${a.role}${a.next_hop ? `, next hop ${a.next_hop}` : ""}`;
    case "volume": return a.exported ? "exported" : "";
    default: return "";
  }
}

function renderNode(node) {
  const open = state.expanded.has(node.path);
  const loaded = state.tree.get(node.path);
  const toggle = el("span", {
    class: "toggle",
    text: node.child_count ? (open ? "▾" : "▸") : "",
    onclick: () => toggleNode(node.path),
  });
  const name = el("span", { class: node.kind === "vm" ? `vm-${node.attrs.state}` : "", text: node.name });
  const row = el("div", { class: "node-row" }, toggle, name, el("span", { class: "kind", text: node.kind }),
    el("span", { class: "attrs", text: attrSummary(node) }));
  const li = el("li", { "data-path": node.path, "data-kind": node.kind }, row);
  if (open && loaded && loaded.children) {
    li.append(el("ul", {}, ...loaded.children.map(renderNode)));
  }
  return li;
}

function renderTree() {
  const root = state.tree.get("/");
  if (!root) return;
  $("tree").replaceChildren(el("ul", {}, renderNode(root)));
}

async function toggleNode(path) {
  if (state.expanded.has(path)) {
    state.expanded.delete(path);
  } else {
    state.expanded.add(path);
    await guard(fetchNode(path));
  }
  renderTree();
}

// --- submit form ---------------------------------------------------------------------------------------
async function loadProcedures() {
  state.procedures = await api("/v1/procedures");
  $("procedure").replaceChildren(...state.procedures.map((p) => el("option", { value: p.name, text: p.name })));
  renderParams();
}

function renderParams() {
  const p = state.procedures.find((x) => x.name === $("procedure").value);
  if (!p) return;
  $("params").replaceChildren(...p.params.map((param) => {
    const type = param.type === "boolean" ? "checkbox" : param.type === "string" ? "text" : "number";
    const input = el("input", { name: param.name, type, "data-type": param.type, required: param.required && type !== "checkbox" });
    if (param.type === "number") input.step = "any";
    if (param.default !== null && param.default !== undefined) {
      if (type === "checkbox") input.checked = Boolean(param.default); else input.value = param.default;
    }
    return el("label", {}, `${param.name} (${param.type})`, input);
  }));
  $("params").title = p.doc;
}

function formArgs() {
  const args = {};
  for (const input of $("params").querySelectorAll("input")) {
    const t = input.dataset.type;
    if (t === "boolean") args[input.name] = input.checked;
    else if (input.value === "") continue;
    else if (t === "integer") args[input.name] = parseInt(input.value, 10);
    else if (t === "number") args[input.name] = parseFloat(input.value);
    else args[input.name] = input.value;
  }
  return args;
}

async function submitForm(mode) {
  const body = { procedure: $("procedure").value, args: formArgs() };
  const out = $("submit-result");
  out.hidden = false;
  try {
    if (mode === "plan") {
      const plan = await api("/v1/plan", { method: "POST", body });
      out.textContent = JSON.stringify(plan, null, 2);
    } else {
      const r = await api("/v1/transactions", { method: "POST", body });
      out.textContent = `submitted transaction ${r.id} (${r.state})`;
      select(r.id);
    }
  } catch (e) {
    if (e instanceof Unauthorized) throw e;
    out.textContent = `error (${e.info ? e.info.code : "network"}): ${e.message}`;
  }
}

// --- live events ---------------------------------------------------------------------------------------
function setLive(on) {
  $("live").className = `live ${on ? "on" : "off"}`;
  $("live").textContent = on ? "live" : "reconnecting…";
}

function stopStream() {
  if (state.stream) state.stream.abort();
  state.stream = null;
}

function onEvent(kind, data) {
  if (kind === "transaction") {
    const t = data.txn;
    state.txns.set(t.id, t);
    refreshTable();
    refreshStats();
    refreshTree();
    refreshCapacity();
    if (t.id === state.selected) guard(loadDetail());
  } else if (kind === "resync") {
    guard(Promise.all([loadStats(), loadTransactions(), loadTree(), loadCapacity()]));
  }
}

async function startStream() {
  stopStream();
  const controller = new AbortController();
  state.stream = controller;
  let delay = 500;
  while (state.stream === controller) {
    try {
      const headers = { Authorization: `Bearer ${state.token}`, Accept: "text/event-stream" };
      if (state.lastEventId !== null) headers["Last-Event-ID"] = String(state.lastEventId);
      const resp = await fetch("/v1/events", { headers, signal: controller.signal });
      if (resp.status === 401) { showLogin("the token is no longer accepted"); return; }
      if (!resp.ok || !resp.body) throw new Error(`HTTP ${resp.status}`);
      setLive(true);
      delay = 500;
      await readEvents(resp.body);
    } catch (e) {
      if (controller.signal.aborted) return;
    }
    setLive(false);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 10000);
    // Whatever happened while disconnected is replayed from Last-Event-ID, or a resync event follows.
  }
}

async function readEvents(stream) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let kind = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const i = line.indexOf(":");
        const field = i < 0 ? line : line.slice(0, i);
        const val = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
        if (field === "event") kind = val;
        else if (field === "data") data.push(val);
        else if (field === "id" && /^\d+$/.test(val)) state.lastEventId = Number(val);
      }
      if (data.length) {
        try { onEvent(kind, JSON.parse(data.join("\n"))); } catch (e) { console.warn("bad event", e); }
      }
    }
  }
}

// --- wiring --------------------------------------------------------------------------------------------
function init() {
  for (const s of STATES) $("state-filter").append(el("option", { value: s, text: s }));
  $("state-filter").addEventListener("change", renderTransactions);
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const token = $("token").value.trim();
    $("token").value = "";
    guard(signIn(token));
  });
  $("logout").addEventListener("click", () => {
    sessionStorage.removeItem("tropic.token");
    state.token = "";
    showLogin("");
  });
  $("procedure").addEventListener("change", renderParams);
  $("submit-form").addEventListener("submit", (ev) => { ev.preventDefault(); guard(submitForm("submit")); });
  $("plan-button").addEventListener("click", () => guard(submitForm("plan")));
  // Running transactions' durations tick even without events.
  setInterval(() => { if (!$("main").hidden) renderTransactions(); }, 1000);
  if (state.token) guard(signIn(state.token)); else showLogin("");
}

document.addEventListener("DOMContentLoaded", init);
