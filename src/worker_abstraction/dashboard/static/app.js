// The dashboard page: everything arrives as server-sent events from /api/events (a snapshot first, then
// `task` rows as they change and the `overview` every second); the page never polls.
"use strict";

const MAX_ROWS = 500;
const HEADERS = { "X-WA-Dashboard": "1", "Content-Type": "application/json" };
const $ = (id) => document.getElementById(id);
const rows = new Map(); // task id -> <tr>
const workerNames = new Map(); // worker id -> its name, from the latest overview
const workerLabel = (id) => (id ? workerNames.get(id) || short(id) : "–");

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const badge = (text) => el("span", { class: "badge s-" + text }, text);
const short = (id) => (id.length > 12 ? id.slice(0, 12) + "…" : id);

function seconds(value) {
  if (value === null || value === undefined) return "–";
  if (value === 0) return "0";
  if (value < 0.001) return (value * 1e6).toFixed(0) + " µs";
  if (value < 1) return (value * 1000).toFixed(value < 0.01 ? 2 : 0) + " ms";
  if (value < 120) return value.toFixed(2) + " s";
  return (value / 60).toFixed(1) + " min";
}

function clock(epoch) {
  if (!epoch) return "–";
  return new Date(epoch * 1000).toLocaleTimeString([], { hour12: false });
}

// ---- tasks ---------------------------------------------------------------------------------------------

function taskRow(task) {
  const progress = task.status === "COMPLETED" ? 1 : task.progress || 0;
  const tr = el("tr", { id: "task-" + task.task_id, "data-status": task.status, "data-task": task.task_id },
    el("td", { class: "mono", title: task.task_id }, short(task.task_id)),
    el("td", {}, task.capability),
    el("td", { class: "status" }, badge(task.status),
      task.error ? el("span", { class: "err", title: task.error }, " " + task.error.slice(0, 60)) : null),
    el("td", { title: task.worker_id }, workerLabel(task.worker_id)),
    el("td", {}, task.attempt || "–"),
    el("td", {}, el("span", { class: "bar" }, el("span", { style: `width:${Math.round(progress * 100)}%` })),
      task.message || ""),
    el("td", {}, seconds(task.latency)),
    el("td", {}, clock(task.updated_at)));
  tr.addEventListener("click", () => showTask(task.task_id));
  return tr;
}

function upsertTask(task) {
  const body = $("tasks").tBodies[0];
  const fresh = taskRow(task);
  const old = rows.get(task.task_id);
  if (old) old.replaceWith(fresh);
  else body.prepend(fresh);
  rows.set(task.task_id, fresh);
  while (rows.size > MAX_ROWS) {
    const last = body.lastElementChild;
    rows.delete(last.dataset.task);
    last.remove();
  }
  $("tasks-empty").hidden = rows.size > 0;
}

function resetTasks(tasks) {
  rows.clear();
  $("tasks").tBodies[0].replaceChildren();
  for (const task of [...tasks].reverse()) upsertTask(task);
  $("tasks-empty").hidden = rows.size > 0;
}

// ---- overview ------------------------------------------------------------------------------------------

function renderOverview(view) {
  const workers = view.workers;
  workerNames.clear();
  for (const w of workers) workerNames.set(w.worker_id, w.name || short(w.worker_id));
  $("n-workers").textContent = workers.length;
  $("n-queued").textContent = view.queue.reduce((sum, q) => sum + q.waiting, 0);
  $("n-flight").textContent = workers.reduce((sum, w) => sum + w.in_flight, 0);
  $("n-dead").textContent = view.dead_letter_count;
  const s = view.series;
  const recent = s.t.length - 10;
  let finished = 0, p95 = null;
  for (let i = Math.max(0, recent); i < s.t.length; i++) {
    finished += s.completed[i] + s.failed[i];
    if (s.p95[i] !== null) p95 = Math.max(p95 ?? 0, s.p95[i]);
  }
  $("n-rate").textContent = (finished / 10).toFixed(1);
  $("n-p95").textContent = seconds(p95);

  $("workers").tBodies[0].replaceChildren(...workers.map((w) => {
    const slots = w.slots || 0;
    const used = slots ? Math.min(1, w.in_flight / slots) : 0;
    return el("tr", { "data-worker": w.worker_id },
      el("td", { title: w.worker_id + " @ " + w.address }, w.name || short(w.worker_id),
        el("div", { class: "dim mono" }, w.address)),
      el("td", { title: w.state_reason }, badge(w.state)),
      el("td", {}, badge(w.circuit)),
      el("td", {}, el("span", { class: "bar" }, el("span", { style: `width:${Math.round(used * 100)}%` })),
        `${w.in_flight} / ${slots || "∞"}`),
      el("td", {}, w.in_flight),
      el("td", { class: "mono" }, w.capabilities.join(", ")));
  }));
  $("workers-empty").hidden = workers.length > 0;

  $("queue").tBodies[0].replaceChildren(...view.queue.map((q) =>
    el("tr", {}, el("td", {}, q.capability), el("td", {}, q.priority), el("td", {}, q.waiting))));
  $("queue-empty").hidden = view.queue.length > 0;

  $("dead").tBodies[0].replaceChildren(...view.dead_letters.map((d) =>
    el("tr", { id: "dead-" + d.task_id, "data-task": d.task_id },
      el("td", { class: "mono", title: d.task_id }, short(d.task_id)),
      el("td", {}, d.capability),
      el("td", { class: "err", title: d.error }, d.error.slice(0, 80)),
      el("td", {}, d.attempts.length),
      el("td", {},
        el("button", { class: "btn requeue", onclick: () => requeue(d.task_id) }, "requeue"), " ",
        el("button", { class: "btn btn-bad purge", onclick: () => purge([d.task_id]) }, "purge")))));
  $("dead-empty").hidden = view.dead_letters.length > 0;
  $("purge-all").disabled = view.dead_letter_count === 0;

  drawBars($("chart-rate"), s.t, [[s.completed, "var(--ok)"], [s.failed, "var(--bad)"]]);
  drawLines($("chart-latency"), s.t, [[s.p50, "var(--info)"], [s.p95, "var(--violet)"]]);
}

// ---- charts (inline SVG) -------------------------------------------------------------------------------

const W = 600, H = 160, PAD_L = 44, PAD_B = 16;
const svg = (tag, attrs) => {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
};

function frame(chart, t, top, format) {
  const parts = [];
  for (const f of [0, 0.5, 1]) {
    const y = H - PAD_B - f * (H - PAD_B - 8);
    parts.push(svg("line", { x1: PAD_L, x2: W, y1: y, y2: y, class: "grid" }));
    const label = svg("text", { x: PAD_L - 4, y: y + 3, "text-anchor": "end", class: "axis" });
    label.textContent = format(top * f);
    parts.push(label);
  }
  if (t.length) {
    for (const [x, anchor, at] of [[PAD_L, "start", t[0]], [W, "end", t[t.length - 1]]]) {
      const label = svg("text", { x, y: H - 3, "text-anchor": anchor, class: "axis" });
      label.textContent = clock(at);
      parts.push(label);
    }
  }
  chart.replaceChildren(...parts);
}

function drawBars(chart, t, series) {
  const totals = t.map((_, i) => series.reduce((sum, [values]) => sum + values[i], 0));
  const top = Math.max(1, ...totals);
  frame(chart, t, top, (v) => (v >= 10 ? v.toFixed(0) : v.toFixed(1)));
  const step = (W - PAD_L) / Math.max(1, t.length);
  const scale = (H - PAD_B - 8) / top;
  t.forEach((_, i) => {
    let base = H - PAD_B;
    for (const [values, color] of series) {
      if (!values[i]) continue;
      const h = values[i] * scale;
      base -= h;
      chart.append(svg("rect", { x: PAD_L + i * step, y: base, width: Math.max(1, step - 0.5), height: h, fill: color }));
    }
  });
}

function drawLines(chart, t, series) {
  const top = Math.max(0.001, ...series.flatMap(([values]) => values.filter((v) => v !== null)));
  frame(chart, t, top, seconds);
  const step = (W - PAD_L) / Math.max(1, t.length - 1);
  const scale = (H - PAD_B - 8) / top;
  for (const [values, color] of series) {
    let d = "";
    let pen = "M";
    values.forEach((v, i) => {
      if (v === null) { pen = "M"; return; }
      d += `${pen}${(PAD_L + i * step).toFixed(1)},${(H - PAD_B - v * scale).toFixed(1)} `;
      pen = "L";
    });
    if (d) chart.append(svg("path", { d, fill: "none", stroke: color, "stroke-width": 1.5 }));
  }
}

// ---- actions -------------------------------------------------------------------------------------------

async function post(url, body) {
  const response = await fetch(url, { method: "POST", headers: HEADERS, body: JSON.stringify(body || {}),
    credentials: "same-origin" });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.error || response.statusText);
  return answer;
}

function notice(text) { $("notice").textContent = text; }

async function requeue(taskId) {
  try {
    const answer = await post(`/api/dead-letters/${encodeURIComponent(taskId)}/requeue`);
    $("dead-" + taskId)?.remove();
    notice(`requeued ${short(taskId)} as ${answer.task_id}`);
  } catch (error) { notice(`requeue failed: ${error.message}`); }
}

async function purge(taskIds) {
  try {
    const answer = await post("/api/dead-letters/purge", taskIds ? { task_ids: taskIds } : {});
    for (const id of taskIds || []) $("dead-" + id)?.remove();
    notice(`purged ${answer.purged} dead letter(s)`);
  } catch (error) { notice(`purge failed: ${error.message}`); }
}

$("purge-all").addEventListener("click", () => {
  if (confirm("Drop every dead letter?")) purge(null);
});

// ---- task detail ---------------------------------------------------------------------------------------

async function showTask(taskId) {
  const body = $("detail-body");
  $("detail-title").textContent = "task " + taskId;
  body.replaceChildren(el("p", { class: "dim" }, "loading…"));
  $("detail").hidden = false;
  const response = await fetch(`/api/tasks/${encodeURIComponent(taskId)}`, { credentials: "same-origin" });
  const task = await response.json();
  if (!response.ok) { body.replaceChildren(el("p", { class: "err" }, task.error || response.statusText)); return; }
  const last = task.last_update;
  body.replaceChildren(
    el("dl", {},
      el("dt", {}, "status"), el("dd", {}, badge(task.status), task.dead_lettered ? " (dead-lettered)" : ""),
      el("dt", {}, "capability"), el("dd", {}, task.capability),
      el("dt", {}, "submitted"), el("dd", {}, task.submitted_at ? new Date(task.submitted_at * 1000).toISOString() : "–"),
      el("dt", {}, "owner"), el("dd", {}, task.owner || "–"),
      el("dt", {}, "idempotency key"), el("dd", {}, task.idempotency_key || "–"),
      el("dt", {}, "cancel reason"), el("dd", {}, task.cancel_reason || "–"),
      el("dt", {}, "arguments"), el("dd", {}, el("pre", {}, task.params)),
      last && last.output ? el("dt", {}, "output") : null, last && last.output ? el("dd", {}, el("pre", {}, last.output)) : null,
      last && last.error ? el("dt", {}, "error") : null, last && last.error ? el("dd", { class: "err" }, last.error) : null),
    el("h2", {}, "Attempts"),
    el("table", { id: "detail-attempts" },
      el("thead", {}, el("tr", {}, ...["#", "worker", "started", "ended", "status", "error"].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...task.attempts.map((a) => el("tr", {},
        el("td", {}, a.number), el("td", { title: a.worker_id }, workerLabel(a.worker_id)), el("td", {}, clock(a.started_at)),
        el("td", {}, clock(a.ended_at)), el("td", {}, badge(a.status)), el("td", { class: "err" }, a.error))))),
    el("h2", { style: "margin-top:16px" }, `Updates (${task.updates_total})`),
    el("table", { id: "detail-updates" },
      el("thead", {}, el("tr", {}, ...["at", "status", "attempt", "progress", "message / error"].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...task.updates.map((u) => el("tr", {},
        el("td", {}, clock(u.at)), el("td", {}, badge(u.status)), el("td", {}, u.attempt || "–"),
        el("td", {}, Math.round(u.progress * 100) + "%"),
        el("td", { class: u.error ? "err" : "" }, u.error || u.message || (u.output ? "output: " + u.output.slice(0, 80) : "")))))));
}

$("detail-close").addEventListener("click", () => { $("detail").hidden = true; });
document.addEventListener("keydown", (e) => { if (e.key === "Escape") $("detail").hidden = true; });

// ---- the stream ----------------------------------------------------------------------------------------

function connect() {
  const source = new EventSource("/api/events");
  const conn = $("conn");
  source.addEventListener("open", () => { conn.textContent = "live"; conn.className = "pill pill-live"; });
  source.addEventListener("error", () => { conn.textContent = "reconnecting…"; conn.className = "pill pill-wait"; });
  source.addEventListener("snapshot", (e) => {
    const data = JSON.parse(e.data);
    resetTasks(data.tasks);
    if (data.overview) renderOverview(data.overview);
  });
  source.addEventListener("task", (e) => upsertTask(JSON.parse(e.data)));
  source.addEventListener("overview", (e) => renderOverview(JSON.parse(e.data)));
  source.addEventListener("closed", () => source.close());
}

connect();
