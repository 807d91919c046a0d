// tropic dashboard: the replicated jobs panel (each job's status, log head, and its replicas with their
// host, failure domain, health, applied index and lag). Uses app.js's `api`, `el` and `guard`; hidden
// while there is no job.
"use strict";

function jobRows(job) {
  const head = el("tr", { class: "job", "data-job": job.name, "data-status": job.status },
    el("td", { text: job.name }),
    el("td", { text: `${job.up}/${job.replicas} up · ${job.serving} serving` }),
    el("td", { text: job.failure_domain }),
    el("td", {}, el("span", { class: `badge ${job.status}`, text: job.status })),
    el("td", { text: String(job.log_head) }),
    el("td", { text: job.max_lag === null ? "-" : String(job.max_lag) }),
    el("td", { text: job.message || job.program.join(" ") }));
  const members = job.members.map((m) =>
    el("tr", { class: "replica", "data-replica": m.name, "data-health": m.health },
      el("td", { text: `  ${m.name}` }),
      el("td", { text: m.host }),
      el("td", { text: m.domain }),
      el("td", {}, el("span", { class: `badge ${m.health}`, text: m.health })),
      el("td", { text: String(m.applied) }),
      el("td", { text: m.lag === null ? "-" : String(m.lag) }),
      el("td", { text: m.reason || m.address })));
  return [head, ...members];
}

async function loadJobs() {
  const body = await api("/v1/jobs");
  $("jobs-panel").hidden = body.items.length === 0;
  $("jobs-status").textContent = body.zk ? `log in ${body.zk}` : "no ZooKeeper configured (--ha-zk)";
  $("jobs-table").tBodies[0].replaceChildren(...body.items.flatMap(jobRows));
}

document.addEventListener("DOMContentLoaded", () => {
  setInterval(() => { if (!$("main").hidden) guard(loadJobs()); }, 2000);
});
