// The dashboard page. Three addresses, one script: "/" (overview, the task list and its filters), "/tasks/ID"
// (one task) and "/workers/ID" (one worker); workflows.js adds "/workflows" and "/workflows/ID" to `pages`,
// schedules.js "/schedules" and "/schedules/NAME". Links between them change the address without a reload
// (history.pushState); a full load of any of them shows the same. hitl.js adds "/inbox" and, on a task's page,
// its questions, approval and streamed output. Live data arrives as server-sent events from
// /api/events (a snapshot first, then `task` rows as they change and the `overview` every second); the page
// never polls. A filtered task list is a page of the daemon's whole store, read from /api/tasks?...
"use strict";

const MAX_ROWS = 500;
const HEADERS = { "X-WA-Dashboard": "1", "Content-Type": "application/json" };
const FILTERS = ["q", "status", "capability", "worker", "range", "since", "until"];
const PAGE = 50;
const $ = (id) => document.getElementById(id);
const rows = new Map(); // task id -> <tr> of the task list
let me = { auth: false, name: "", operator: false };
let view = { name: "home", id: "" };
let query = null; // the filters of the task list, or null for the live list
let offset = 0;
let lastOverview = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const badge = (text) => el("span", { class: "badge s-" + text }, text);
// An id cut to fit, keeping its random tail: a task id the daemon made starts with the millisecond it was
// made, so the first digits of tasks made together are the same (the full id is in the link's title).
const short = (id) => (id.length > 13 ? id.slice(0, 4) + "…" + id.slice(-8) : id);
const taskHref = (id) => "/tasks/" + encodeURIComponent(id);
const workerHref = (id) => "/workers/" + encodeURIComponent(id);

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

const when = (epoch) => (epoch ? new Date(epoch * 1000).toISOString() : "–");

// A worker, wherever it is shown: its name and its id, linking to its page (the id alone when it has no name).
function workerLink(id, name) {
  if (!id) return "–";
  return el("a", { href: workerHref(id), "data-nav": true, class: "worker", title: id },
    name ? name + " " : null, el("span", { class: "dim mono" }, short(id)));
}

const taskLink = (id) => el("a", { href: taskHref(id), "data-nav": true, class: "mono", title: id }, short(id));

// ---- navigation ----------------------------------------------------------------------------------------

function go(href) {
  history.pushState({}, "", href);
  route();
}

document.addEventListener("click", (event) => {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
  const link = event.target.closest("a[data-nav]");
  if (link) {
    event.preventDefault();
    go(link.getAttribute("href"));
    return;
  }
  const row = event.target.closest("tr[data-task]");
  if (row && row.closest("#tasks, #worker-tasks")) go(taskHref(row.dataset.task));
});
window.addEventListener("popstate", route);

// Each address and the view that shows it: [path, view name, show(id)]. A path ending in "/" takes the rest of
// the address as the id; any other is matched whole. "/" is the home view. Other scripts add theirs before
// the page starts; `listeners` are how they follow the stream (`task`, `snapshot`), the address (`route`, each
// time the view changes) and the task page (`taskLoaded`, each time it read its task).
const pages = [
  ["/tasks/", "task", (id) => showTask(id)],
  ["/workers/", "worker", (id) => showWorker(id)],
];
const listeners = { task: [], snapshot: [], route: [], taskLoaded: [] };

function decoded(text) {
  try { return decodeURIComponent(text); } catch (error) { return text; } // a stray "%": the id as written
}

function route() {
  const path = location.pathname;
  let [name, id, show] = ["home", "", showHome];
  for (const [prefix, page, shower] of pages) {
    const under = prefix.endsWith("/") && path.startsWith(prefix) && path.length > prefix.length;
    if (under || path === prefix) {
      [name, id, show] = [page, under ? decoded(path.slice(prefix.length)) : "", shower];
      break;
    }
  }
  view = { name, id };
  for (const listener of listeners.route) listener(view);
  for (const each of document.querySelectorAll("main[id^='view-']")) each.hidden = each.id !== "view-" + name;
  // A header link is lit on the views whose names start with its data-views (the tasks' link on the rest).
  const links = [...document.querySelectorAll("#nav a[data-views]")];
  const lit = links.find((link) => name.startsWith(link.dataset.views));
  for (const link of document.querySelectorAll("#nav a")) link.classList.toggle("here", lit ? link === lit : link.id === "nav-tasks");
  show(id);
  window.scrollTo(0, 0);
}

async function getJSON(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.error || response.statusText);
  return answer;
}

async function post(url, body) {
  const response = await fetch(url, { method: "POST", headers: HEADERS, body: JSON.stringify(body || {}),
    credentials: "same-origin" });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.error || response.statusText);
  return answer;
}

// ---- the task list: live, or a page of the store under filters ------------------------------------------

function taskRow(task, prefix = "task-") {
  const progress = task.status === "COMPLETED" ? 1 : task.progress || 0;
  return el("tr", { id: prefix + task.task_id, "data-status": task.status, "data-task": task.task_id },
    el("td", {}, taskLink(task.task_id)),
    el("td", {}, task.capability),
    el("td", { class: "status" }, badge(task.status),
      task.error ? el("span", { class: "err", title: task.error }, " " + task.error.slice(0, 60)) : null),
    el("td", { class: "worker-cell" }, workerLink(task.worker_id, task.worker_name)),
    el("td", {}, task.attempt || "–"),
    el("td", {}, el("span", { class: "bar" }, el("span", { style: `width:${Math.round(progress * 100)}%` })),
      task.message || ""),
    el("td", {}, seconds(task.latency)),
    el("td", {}, clock(task.updated_at)));
}

function upsertTask(task) {
  const body = $("tasks").tBodies[0];
  const old = rows.get(task.task_id);
  if (!old && query) return; // a filtered page shows the rows it found; they change live, no row is added
  const fresh = taskRow(task);
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

function filtersOf(params) {
  const found = {};
  for (const name of FILTERS) if (params.get(name)) found[name] = params.get(name);
  return Object.keys(found).length ? found : null;
}

function apiParams(filters) {
  const params = new URLSearchParams();
  for (const name of ["q", "status", "capability", "worker", "since", "until"]) {
    if (filters[name]) params.set(name, filters[name]);
  }
  if (filters.range && filters.range !== "custom") params.set("since", String(Date.now() / 1000 - Number(filters.range)));
  params.set("limit", String(PAGE));
  params.set("offset", String(offset));
  return params;
}

async function showHome() {
  query = filtersOf(new URLSearchParams(location.search));
  offset = Number(new URLSearchParams(location.search).get("offset")) || 0;
  fillForm(query || {});
  $("query-error").hidden = true;
  if (!query) {
    $("tasks-scope").textContent = "latest first, live";
    $("pager").hidden = true;
    $("tasks-empty").textContent = "no tasks yet";
    if (liveTasks) resetTasks(liveTasks);
    return;
  }
  $("tasks-scope").textContent = "matching tasks of the whole store, newest first";
  $("tasks-empty").textContent = "no task matches";
  try {
    const answer = await getJSON("/api/tasks?" + apiParams(query));
    rows.clear();
    $("tasks").tBodies[0].replaceChildren();
    for (const task of answer.tasks) {
      const row = taskRow(task);
      $("tasks").tBodies[0].append(row);
      rows.set(task.task_id, row);
    }
    $("tasks-empty").hidden = rows.size > 0;
    $("pager").hidden = offset === 0 && !answer.more;
    $("page-newer").disabled = offset === 0;
    $("page-older").disabled = !answer.more;
    $("page-at").textContent = answer.tasks.length ? `${offset + 1}–${offset + answer.tasks.length}` : "";
  } catch (error) {
    resetTasks([]);
    $("query-error").textContent = error.message;
    $("query-error").hidden = false;
  }
}

function fillForm(filters) {
  for (const name of ["q", "status", "capability", "worker", "range"]) $("f-" + name).value = filters[name] || "";
  const custom = Boolean(filters.since || filters.until) && !filters.range;
  if (custom) $("f-range").value = "custom";
  $("f-between").hidden = $("f-range").value !== "custom";
  const local = (epoch) => {
    const at = new Date(Number(epoch) * 1000 - new Date().getTimezoneOffset() * 60000);
    return epoch && Number.isFinite(at.getTime()) ? at.toISOString().slice(0, 19) : ""; // (the server names a bad one)
  };
  $("f-since").value = local(filters.since);
  $("f-until").value = local(filters.until);
}

function searchHref(atOffset) {
  const params = new URLSearchParams();
  for (const name of ["q", "status", "capability", "worker"]) {
    const value = $("f-" + name).value.trim();
    if (value) params.set(name, value);
  }
  const range = $("f-range").value;
  const epoch = (value) => (value ? String(new Date(value).getTime() / 1000) : "");
  if (range === "custom") {
    if (epoch($("f-since").value)) params.set("since", epoch($("f-since").value));
    if (epoch($("f-until").value)) params.set("until", epoch($("f-until").value));
  } else if (range) params.set("range", range);
  if (atOffset) params.set("offset", String(atOffset));
  const text = params.toString();
  return text ? "/?" + text : "/";
}

$("filters").addEventListener("submit", (event) => { event.preventDefault(); go(searchHref(0)); });
$("f-range").addEventListener("change", () => { $("f-between").hidden = $("f-range").value !== "custom"; });
$("f-clear").addEventListener("click", () => go("/"));
$("page-newer").addEventListener("click", () => go(searchHref(Math.max(0, offset - PAGE))));
$("page-older").addEventListener("click", () => go(searchHref(offset + PAGE)));

// ---- overview ------------------------------------------------------------------------------------------

function renderOverview(overview) {
  lastOverview = overview;
  const workers = overview.workers;
  $("n-workers").textContent = workers.length;
  $("n-queued").textContent = overview.queue.reduce((sum, q) => sum + q.waiting, 0);
  $("n-flight").textContent = workers.reduce((sum, w) => sum + w.in_flight, 0);
  $("n-dead").textContent = overview.dead_letter_count;
  const s = overview.series;
  let finished = 0, p95 = null;
  for (let i = Math.max(0, s.t.length - 10); i < s.t.length; i++) {
    finished += s.completed[i] + s.failed[i];
    if (s.p95[i] !== null) p95 = Math.max(p95 ?? 0, s.p95[i]);
  }
  $("n-rate").textContent = (finished / 10).toFixed(1);
  $("n-p95").textContent = seconds(p95);

  $("workers").tBodies[0].replaceChildren(...workers.map((w) => {
    const slots = w.slots || 0;
    const used = slots ? Math.min(1, w.in_flight / slots) : 0;
    return el("tr", { "data-worker": w.worker_id },
      el("td", {}, workerLink(w.worker_id, w.name), el("div", { class: "dim mono" }, w.address)),
      el("td", { title: w.state_reason }, badge(w.state)),
      el("td", {}, badge(w.circuit)),
      el("td", {}, el("span", { class: "bar" }, el("span", { style: `width:${Math.round(used * 100)}%` })),
        `${w.in_flight} / ${slots || "∞"}`),
      el("td", {}, w.in_flight),
      el("td", { class: "mono" }, w.capability_versions.join(", ")));
  }));
  $("workers-empty").hidden = workers.length > 0;
  const capabilities = new Set([...workers.flatMap((w) => w.capabilities), ...overview.queue.map((q) => q.capability)]);
  $("known-capabilities").replaceChildren(...[...capabilities].sort().map((c) => el("option", { value: c })));
  $("known-workers").replaceChildren(...workers.map((w) => el("option", { value: w.worker_id }, w.name)));

  $("queue").tBodies[0].replaceChildren(...overview.queue.map((q) =>
    el("tr", {}, el("td", {}, q.capability), el("td", {}, q.priority), el("td", {}, q.waiting))));
  $("queue-empty").hidden = overview.queue.length > 0;
  $("queue-limited").replaceChildren(...(overview.limited || []).map((held) =>
    el("li", { "data-capability": held.capability },
      `${held.capability}: ${held.waiting} held back by its limit (${held.limit}); the first may start `,
      held.starts_in_seconds === null ? "when one in flight ends" : `in ${held.starts_in_seconds.toFixed(2)} s`)));

  $("dead").tBodies[0].replaceChildren(...overview.dead_letters.map((d) =>
    el("tr", { id: "dead-" + d.task_id, "data-task": d.task_id },
      el("td", {}, taskLink(d.task_id)),
      el("td", {}, d.capability),
      el("td", { class: "err", title: d.error }, d.error.slice(0, 80)),
      el("td", {}, d.attempts.length),
      el("td", {}, me.operator ? [
        el("button", { class: "btn requeue", onclick: () => requeue(d.task_id) }, "requeue"), " ",
        el("button", { class: "btn btn-bad purge", onclick: () => purge([d.task_id]) }, "purge")] : null))));
  $("dead-empty").hidden = overview.dead_letters.length > 0;
  $("purge-all").disabled = overview.dead_letter_count === 0;

  drawBars($("chart-rate"), s.t, [[s.completed, "var(--ok)"], [s.failed, "var(--bad)"]]);
  drawLines($("chart-latency"), s.t, [[s.p50, "var(--info)"], [s.p95, "var(--violet)"]]);
  if (view.name === "worker") {
    const live = workers.find((w) => w.worker_id === view.id);
    if (live) renderWorkerFacts(live);
  }
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

// ---- dead letters --------------------------------------------------------------------------------------

function notice(text, ...links) { $("notice").replaceChildren(text, ...links); }

async function requeue(taskId) {
  try {
    const answer = await post(`/api/dead-letters/${encodeURIComponent(taskId)}/requeue`);
    $("dead-" + taskId)?.remove();
    notice(`requeued ${short(taskId)} as `, el("a", { href: taskHref(answer.task_id), "data-nav": true,
      id: "requeued-as", "data-task-id": answer.task_id }, answer.task_id));
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

// ---- one task ------------------------------------------------------------------------------------------

let taskShown = null; // the task the page shows
let refetch = null; // a re-read of it, due because an update arrived

function facts(pairs) {
  return el("dl", {}, ...pairs.filter(Boolean).flatMap(([term, value, attrs]) =>
    [el("dt", {}, term), el("dd", attrs || {}, value)]));
}

async function showTask(taskId) {
  $("task-title").replaceChildren("task ", el("span", { class: "mono" }, taskId));
  $("task-notice").replaceChildren();
  $("task-cancel").hidden = $("task-retry").hidden = true;
  $("task-body").replaceChildren(el("p", { class: "dim" }, "loading…"));
  await loadTask(taskId);
}

async function loadTask(taskId) {
  let task;
  try {
    task = await getJSON(`/api/tasks/${encodeURIComponent(taskId)}`);
  } catch (error) {
    if (view.name === "task" && view.id === taskId) {
      $("task-body").replaceChildren(el("p", { class: "err", id: "task-error" }, error.message));
    }
    return;
  }
  if (view.name !== "task" || view.id !== taskId) return; // the page moved on meanwhile
  taskShown = task;
  const last = task.last_update;
  const failure = last && last.failure;
  $("task-cancel").hidden = !task.may.cancel;
  $("task-retry").hidden = !task.may.retry;
  $("task-body").replaceChildren(
    facts([
      ["status", el("span", { id: "task-status", "data-status": task.status }, badge(task.status),
        task.dead_lettered ? " (dead-lettered)" : "")],
      ["capability", task.capability],
      task.capability === "wa.workflow" ? ["workflow", el("a", { href: "/workflows/" + encodeURIComponent(task.task_id),
        "data-nav": true, id: "task-workflow" }, "its steps, as a graph")] : null,
      scheduleOf(task) ? ["schedule", el("a", { href: "/schedules/" + encodeURIComponent(scheduleOf(task)),
        "data-nav": true, id: "task-schedule" }, scheduleOf(task))] : null,
      ["worker", workerLink(task.worker_id, task.worker_name), { id: "task-worker" }],
      ["submitted", when(task.submitted_at)],
      task.not_before ? ["not before", el("span", { id: "task-not-before" }, when(task.not_before))] : null,
      ["owner", task.owner || "–"],
      ["idempotency key", task.idempotency_key || "–"],
      ["cancel reason", task.cancel_reason || "–"],
      ["arguments", el("pre", {}, task.params)],
      last && last.output ? ["output", el("pre", {}, last.output)] : null,
      last && last.error ? ["error", last.error, { class: "err", id: "task-error" }] : null,
      failure ? ["failure", `${failure.type} · ${failure.origin.toLowerCase()} · ${failure.retryable ? "" : "not "}retryable`] : null,
      failure && failure.traceback ? ["traceback", el("pre", { id: "task-traceback", class: "traceback" }, failure.traceback)] : null,
    ]),
    el("h2", {}, "Attempts"),
    el("table", { id: "detail-attempts" },
      el("thead", {}, el("tr", {}, ...["#", "worker", "started", "ended", "status", "error"].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...task.attempts.map((a) => el("tr", {},
        el("td", {}, a.number), el("td", {}, workerLink(a.worker_id, a.worker_name)), el("td", {}, clock(a.started_at)),
        el("td", {}, clock(a.ended_at)), el("td", {}, badge(a.status)), el("td", { class: "err" }, a.error))))),
    el("h2", { style: "margin-top:16px" }, `Updates (${task.updates_total})`),
    el("table", { id: "detail-updates" },
      el("thead", {}, el("tr", {}, ...["at", "status", "attempt", "worker", "progress", "message / error"].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...task.updates.map((u) => el("tr", {},
        el("td", {}, clock(u.at)), el("td", {}, badge(u.status)), el("td", {}, u.attempt || "–"),
        el("td", {}, workerLink(u.worker_id, u.worker_name)),
        el("td", {}, Math.round(u.progress * 100) + "%"),
        el("td", { class: u.error ? "err" : "" }, u.error || u.note || u.message || (u.output ? "output: " + u.output.slice(0, 80) : ""),
          u.failure && u.failure.traceback && u.status !== "FAILED"
            ? el("details", {}, el("summary", {}, "traceback"), el("pre", { class: "traceback" }, u.failure.traceback))
            : null))))));
  for (const listener of listeners.taskLoaded) listener(task);
}

// The schedule a task is a run of (its id is NAME@..., and the schedule's key is schedule:ID), or "".
function scheduleOf(task) {
  const at = task.task_id.indexOf("@");
  return at > 0 && task.idempotency_key.endsWith("schedule:" + task.task_id) ? task.task_id.slice(0, at) : "";
}

function taskChanged(taskId) {
  if (view.name !== "task" || view.id !== taskId || refetch) return;
  refetch = setTimeout(() => { refetch = null; loadTask(taskId); }, 200); // updates close together: one read
}

$("task-cancel").addEventListener("click", async () => {
  const taskId = view.id;
  try {
    const answer = await post(`/api/tasks/${encodeURIComponent(taskId)}/cancel`);
    $("task-notice").replaceChildren(`cancel asked: ${answer.status.toLowerCase()}`);
  } catch (error) { $("task-notice").replaceChildren(`cancel failed: ${error.message}`); }
  loadTask(taskId);
});

$("task-retry").addEventListener("click", async () => {
  const taskId = view.id;
  try {
    const answer = await post(`/api/tasks/${encodeURIComponent(taskId)}/retry`);
    $("task-notice").replaceChildren("retried as ", el("a", { href: taskHref(answer.task_id), "data-nav": true,
      id: "retried-as", class: "mono", "data-task-id": answer.task_id }, answer.task_id));
  } catch (error) { $("task-notice").replaceChildren(`retry failed: ${error.message}`); }
});

// ---- one worker ----------------------------------------------------------------------------------------

function renderWorkerFacts(w) {
  const slots = w.slots || 0;
  $("worker-body").replaceChildren(facts([
    ["id", el("span", { class: "mono" }, w.worker_id)],
    ["address", el("span", { class: "mono" }, w.address)],
    ["state", el("span", { id: "worker-state" }, badge(w.state), w.state_reason ? " " + w.state_reason : "")],
    ["circuit", el("span", { id: "worker-circuit" }, badge(w.circuit))],
    ["slots", el("span", { id: "worker-slots" }, `${w.in_flight} in use of ${slots || "∞"}` +
      (w.free_slots !== null ? ` (the worker reports ${w.free_slots} free)` : ""))],
    ["load", w.cpu !== null ? `${w.load} tasks, CPU ${(w.cpu * 100).toFixed(0)}%` : `${w.load} tasks`],
    ["capabilities", el("span", { class: "mono", id: "worker-capabilities" }, w.capability_versions.join(", "))],
    ["tags", w.tags.join(", ") || "–"],
    ["version", w.version || "–"],
    ["last heartbeat", when(w.last_heartbeat)],
  ]));
}

async function showWorker(workerId) {
  $("worker-title").replaceChildren("worker ", el("span", { class: "mono" }, workerId));
  $("worker-body").replaceChildren(el("p", { class: "dim" }, "loading…"));
  $("worker-tasks").tBodies[0].replaceChildren();
  $("worker-all").setAttribute("href", "/?worker=" + encodeURIComponent(workerId));
  let answer;
  try {
    answer = await getJSON(`/api/workers/${encodeURIComponent(workerId)}`);
  } catch (error) {
    $("worker-body").replaceChildren(el("p", { class: "err", id: "worker-error" }, error.message));
    return;
  }
  if (view.name !== "worker" || view.id !== workerId) return;
  $("worker-title").replaceChildren("worker ", answer.name ? answer.name + " " : "",
    el("span", { class: "dim mono" }, workerId));
  if (answer.worker) renderWorkerFacts(answer.worker);
  else $("worker-body").replaceChildren(el("p", { class: "dim", id: "worker-gone" },
    "not live any more: its tasks are still listed below"));
  $("worker-tasks").tBodies[0].replaceChildren(...answer.tasks.map((task) => taskRow(task, "worker-task-")));
  $("worker-tasks-empty").hidden = answer.tasks.length > 0;
}

// ---- the stream ----------------------------------------------------------------------------------------

let liveTasks = null; // the latest snapshot's rows, for the live list

function connect() {
  const source = new EventSource("/api/events");
  const conn = $("conn");
  source.addEventListener("open", () => { conn.textContent = "live"; conn.className = "pill pill-live"; });
  source.addEventListener("error", () => { conn.textContent = "reconnecting…"; conn.className = "pill pill-wait"; });
  source.addEventListener("snapshot", (e) => {
    const data = JSON.parse(e.data);
    liveTasks = data.tasks;
    if (!query) resetTasks(data.tasks);
    if (data.overview) renderOverview(data.overview);
    for (const listener of listeners.snapshot) listener(data);
  });
  source.addEventListener("task", (e) => {
    const task = JSON.parse(e.data);
    if (liveTasks) {
      const at = liveTasks.findIndex((t) => t.task_id === task.task_id);
      if (at >= 0) liveTasks[at] = task;
      else liveTasks = [task, ...liveTasks].slice(0, MAX_ROWS);
    }
    upsertTask(task);
    const shown = $("worker-tasks").querySelector(`tr[data-task="${CSS.escape(task.task_id)}"]`);
    if (shown) shown.replaceWith(taskRow(task, "worker-task-"));
    taskChanged(task.task_id);
    for (const listener of listeners.task) listener(task);
  });
  source.addEventListener("overview", (e) => renderOverview(JSON.parse(e.data)));
  source.addEventListener("closed", () => source.close());
}

async function start() {
  try {
    me = await getJSON("/api/me");
  } catch (error) { /* the stream says whether the page can read anything */ }
  $("logout").hidden = !me.auth; // with credentials off there is nobody to sign out
  $("visitor").textContent = me.auth && me.name ? me.name : "";
  for (const node of document.querySelectorAll(".operator-only")) node.hidden = !me.operator;
  connect();
  route();
}

document.addEventListener("DOMContentLoaded", start); // (after every script of the page has added its views)
