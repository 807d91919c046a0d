// tropic dashboard: the autopilot panel (decisions, and each host's predicted CPU utilisation over the
// passes as an SVG plot). Uses app.js's `api`, `el`, `guard` and `fmtTime`; hidden when the server runs
// no autopilot.
"use strict";

const AUTOPILOT_DECISIONS = 100;
const PLOT_W = 640;
const PLOT_H = 160;
const PLOT_COLOURS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563", "#ca8a04"];
const SVG_NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

function stepSummary(d) {
  if (!d.steps.length) return "-";
  return d.steps.map((s) => {
    const what = s.procedure === "migrate_vm" ? `${s.args.vm} → ${s.args.dest}` : JSON.stringify(s.args);
    return `${s.procedure} ${what}: ${s.state}${s.txn !== null ? ` (txn ${s.txn})` : ""}`;
  }).join("\n");
}

function renderDecisions(decisions) {
  const rows = decisions.slice(-20).reverse().map((d) =>
    el("tr", { "data-pass-id": d.pass_id, "data-status": d.status },
      el("td", { text: fmtTime(d.at) }),
      el("td", { text: d.policy }),
      el("td", { text: d.trigger }),
      el("td", {}, el("span", { class: `badge ${d.status}`, text: d.status })),
      el("td", { class: "steps", text: stepSummary(d) }),
      el("td", { text: d.why + (d.held.length ? ` (held: ${d.held.length})` : "") })));
  $("autopilot-decisions").tBodies[0].replaceChildren(...rows);
}

function renderPlot(decisions) {
  const points = decisions.filter((d) => Object.keys(d.utilisation).length);
  const plot = svg("svg", { id: "autopilot-svg", viewBox: `0 0 ${PLOT_W} ${PLOT_H + 20}`, role: "img",
    "aria-label": "predicted CPU utilisation per host over the passes" });
  const y = (u) => PLOT_H - Math.min(1.2, u) / 1.2 * PLOT_H;
  for (const level of [0.5, 0.9, 1.0]) {
    plot.append(svg("line", { x1: 0, x2: PLOT_W, y1: y(level), y2: y(level), stroke: "#d1d5db", "stroke-dasharray": "4 3" }));
    const label = svg("text", { x: 2, y: y(level) - 2, "font-size": 10, fill: "#6b7280" });
    label.textContent = `${Math.round(level * 100)}%`;
    plot.append(label);
  }
  const hosts = [...new Set(points.flatMap((d) => Object.keys(d.utilisation)))].sort();
  const t0 = points.length ? points[0].at : 0;
  const span = points.length > 1 ? points[points.length - 1].at - t0 : 1;
  const legend = [];
  hosts.forEach((host, i) => {
    const colour = PLOT_COLOURS[i % PLOT_COLOURS.length];
    const xy = points.filter((d) => host in d.utilisation)
      .map((d) => `${((d.at - t0) / span * (PLOT_W - 10) + 5).toFixed(1)},${y(d.utilisation[host]).toFixed(1)}`);
    plot.append(svg("polyline", { points: xy.join(" "), fill: "none", stroke: colour, "stroke-width": 1.5, "data-host": host }));
    legend.push(el("span", { class: "legend", "data-host": host, text: `■ ${host.split("/").pop()}` }));
    legend[legend.length - 1].style.color = colour; // through the CSSOM: the CSP refuses style attributes
  });
  $("autopilot-plot").replaceChildren(plot, el("div", { class: "legends" }, ...legend));
}

async function loadAutopilot() {
  const st = await api("/v1/autopilot/status");
  $("autopilot-panel").hidden = !st.enabled;
  if (!st.enabled) return;
  const pause = st.paused ? "paused" : "running";
  $("autopilot-status").textContent =
    `${pause} · ${st.policies.join(", ")} every ${st.interval_s} s${st.dry_run ? " · dry run" : ""} · ${st.passes} passes`;
  const body = await api(`/v1/autopilot/decisions?limit=${AUTOPILOT_DECISIONS}`);
  renderDecisions(body.decisions);
  renderPlot(body.decisions);
}

document.addEventListener("DOMContentLoaded", () => {
  setInterval(() => { if (!$("main").hidden) guard(loadAutopilot()); }, 2000);
});
