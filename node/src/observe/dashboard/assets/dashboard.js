// The Flotilla dashboard: polls the node's /api every POLL_MS and redraws. No framework, no
// build step; data goes into the page as text (textContent), never as HTML.
"use strict";

const POLL_MS = 1500;
// The chart's ring of samples: at most this many (3 minutes at POLL_MS).
const MAX_SAMPLES = 120;
const ACT_HEADER = "x-flotilla-dashboard";

const samples = [];
let filters = new URLSearchParams();
let selected = null;
let polls = 0;

function token() { return sessionStorage.getItem("flotilla-token") || ""; }

async function api(path, method) {
  const headers = {};
  if (token()) headers["authorization"] = "Bearer " + token();
  if (method === "POST") headers[ACT_HEADER] = "1";
  const res = await fetch(path, { method: method || "GET", headers });
  const body = await res.json().catch(() => ({ error: res.statusText }));
  if (res.status === 401 || res.status === 403) document.getElementById("token-form").hidden = false;
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) tr.appendChild(c instanceof Node ? c : el("td", c));
  return tr;
}

function fill(id, rows) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren(...rows);
}

function when(ms) { return ms ? new Date(ms).toLocaleString() : ""; }

function drawCluster(c) {
  document.getElementById("cluster-summary").textContent =
    `Node ${c.node_id} answering · leader ${c.leader_id ?? "none"} · term ${c.term} · commit ${c.commit_index} · applied ${c.applied_index}`;
  fill("members", c.members.map(m => row([m.id, m.addr, m.role, m.zone, m.lag ?? ""])));
}

function button(text, cls, data, action) {
  const b = el("button", text, cls);
  for (const [k, v] of Object.entries(data)) b.dataset[k] = v;
  b.addEventListener("click", async () => {
    b.disabled = true;
    try { await action(); } catch (e) { setStatus(e.message, true); }
    await poll();
  });
  return b;
}

function drawQueues(q) {
  fill("queues", q.queues.map(s => {
    const td = el("td");
    const enc = encodeURIComponent(s.queue);
    td.appendChild(s.paused
      ? button("resume", "resume", { queue: s.queue }, () => api(`/api/queues/${enc}/resume`, "POST"))
      : button("pause", "pause", { queue: s.queue }, () => api(`/api/queues/${enc}/pause`, "POST")));
    const name = el("td", s.queue + (s.paused ? " (paused)" : ""));
    return row([name, s.scheduled, s.pending, s.leased, s.retrying, s.succeeded, s.dead, s.cancelled, td]);
  }));
  const sum = k => q.queues.reduce((a, s) => a + s[k], 0);
  samples.push({ t: Date.now(), backlog: sum("pending") + sum("leased") + sum("retrying"),
                 finished: sum("succeeded") + sum("dead") + sum("cancelled") });
  while (samples.length > MAX_SAMPLES) samples.shift();
  drawChart();
}

function drawChart() {
  const svg = document.getElementById("chart");
  const W = 600, H = 120;
  const rates = samples.map((s, i) => {
    if (i === 0) return 0;
    const p = samples[i - 1];
    return Math.max(0, (s.finished - p.finished) / Math.max(0.001, (s.t - p.t) / 1000));
  });
  const line = (values, color) => {
    const max = Math.max(1, ...values);
    const pts = values.map((v, i) => `${(i / (MAX_SAMPLES - 1)) * W},${H - 4 - (v / max) * (H - 8)}`);
    const p = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    p.setAttribute("points", pts.join(" "));
    p.setAttribute("fill", "none");
    p.setAttribute("stroke", color);
    p.setAttribute("stroke-width", "2");
    return p;
  };
  svg.replaceChildren(line(samples.map(s => s.backlog), "#1d70b8"), line(rates, "#e07b00"));
  const span = samples.length > 1 ? Math.round((samples[samples.length - 1].t - samples[0].t) / 1000) : 0;
  document.getElementById("chart-span").textContent = span;
}

function drawTasks(page) {
  fill("tasks", page.tasks.map(t => {
    const tr = row([]);
    tr.dataset.id = t.id;
    const idCell = el("td");
    const link = el("a", t.id, "id");
    link.href = "#task-" + t.id;
    link.addEventListener("click", ev => { ev.preventDefault(); selected = t.id; poll(); });
    idCell.appendChild(link);
    const action = el("td");
    if (t.state === "dead" || t.state === "cancelled") {
      action.appendChild(button("retry", "retry", { id: t.id }, () => api(`/api/tasks/${t.id}/retry`, "POST")));
    }
    const err = el("td", t.error, "error");
    err.title = t.error;
    for (const c of [idCell, el("td", t.queue), el("td", t.name), el("td", t.state, "state state-" + t.state),
                     el("td", t.attempt, "attempt"), err, action]) tr.appendChild(c);
    return tr;
  }));
  document.getElementById("tasks-more").textContent =
    page.next_cursor ? `newest ${page.tasks.length} shown; older tasks exist (narrow the filter)` : "";
}

function drawDetail(d) {
  const box = document.getElementById("detail");
  box.hidden = false;
  document.getElementById("detail-id").textContent = d.task.id;
  const fields = [
    ["name", d.task.name], ["queue", d.task.queue], ["state", d.task.state],
    ["attempt", d.task.attempt], ["retries allowed", d.task.max_retries], ["failures", d.failures],
    ["lost leases", d.lost_leases], ["holder", d.holder], ["created", when(d.task.created_unix_ms)],
    ["updated", when(d.task.updated_unix_ms)], ["error", d.task.error],
    ["progress", d.task.progress === null ? "" : JSON.stringify(d.task.progress) + ` (attempt ${d.task.progress_attempt}, ${when(d.task.progress_unix_ms)})`],
    ["args", JSON.stringify(d.args)], ["result", d.task.result === null ? "" : JSON.stringify(d.task.result)],
  ];
  const dl = document.getElementById("detail-fields");
  dl.replaceChildren(...fields.flatMap(([k, v]) => [el("dt", k), el("dd", v)]));
  // The attempt history: which pool or worker ran each attempt, when, how it ended.
  fill("detail-attempts", (d.attempts || []).map(a => row([
    a.attempt, a.holder, when(a.granted_unix_ms), when(a.ended_unix_ms), a.end || "running"])));
}

function drawSchedules(s) {
  fill("schedules", s.schedules.map(x => row([
    x.name, x.cron ? `${x.cron} ${x.time_zone}` : `every ${x.every_ms / 1000} s`, x.task,
    x.paused ? "yes" : "no", when(x.next_unix_ms), x.fired])));
}

const KINDS = { pool: "node's own pool", remote: "remote worker", unknown: "not connected" };

function drawWorkers(w) {
  const rows = w.workers.map(x => row([x.name, x.node_id || "-", KINDS[x.kind] || x.kind,
                                       x.queues.join(", "), x.concurrency, x.busy, x.leased]));
  for (const id of w.unreachable_nodes) {
    rows.push(row([`node ${id}`, id, "unreachable", "", "", "", ""]));
  }
  fill("workers", rows);
}

function setStatus(text, bad) {
  const s = document.getElementById("status");
  s.textContent = text;
  s.style.color = bad ? "#fbb" : "";
}

let polling = false;
async function poll() {
  if (polling) return;
  polling = true;
  try {
    const [c, q, t] = await Promise.all([api("/api/cluster"), api("/api/queues"), api("/api/tasks?" + filters)]);
    drawCluster(c); drawQueues(q); drawTasks(t);
    if (polls++ % 5 === 0) {
      drawSchedules(await api("/api/schedules"));
      drawWorkers(await api("/api/workers"));
    }
    if (selected !== null) drawDetail(await api("/api/tasks/" + selected));
    setStatus("updated " + new Date().toLocaleTimeString(), false);
  } catch (e) {
    setStatus(e.message, true);
  } finally {
    polling = false;
  }
}

document.getElementById("app").hidden = false;
document.getElementById("filters").addEventListener("submit", ev => {
  ev.preventDefault();
  filters = new URLSearchParams();
  for (const [k, v] of new FormData(ev.target)) if (v) filters.set(k, v);
  poll();
});
document.getElementById("token-form").addEventListener("submit", ev => {
  ev.preventDefault();
  sessionStorage.setItem("flotilla-token", document.getElementById("token").value);
  document.getElementById("token-form").hidden = true;
  poll();
});
poll();
setInterval(poll, POLL_MS);
