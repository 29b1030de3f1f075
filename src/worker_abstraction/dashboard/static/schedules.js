// The schedule pages, added to app.js's: "/schedules" (every schedule: what it runs, its timing, its next
// occurrence, its latest run, what it fired and skipped, paused or not, its last error) and "/schedules/NAME"
// (one schedule: every fact, its next occurrences, its recent runs, and an operator's pause, resume and
// run-now buttons). A schedule's runs are tasks whose id starts with "NAME@": the stream's `task` event for
// one makes the page read the schedule again (several close together: one read), and so does the moment the
// next occurrence shown passes. How far off each time is, is counted in the page itself. It never polls.
"use strict";

const SC_SLACK_MS = 1500; // a schedule is read again this long after its next occurrence passed
const SC_LONGEST_MS = 2 ** 31 - 1; // setTimeout's longest wait
const sc = { names: new Set(), listTimer: null, timer: null, due: null, reads: 0 };
const scheduleHref = (name) => "/schedules/" + encodeURIComponent(name);
const scCut = (text, n) => (text.length > n ? text.slice(0, n - 1) + "…" : text);

pages.push(["/schedules/", "schedule", (name) => showSchedule(name)], ["/schedules", "schedules", () => showSchedules()]);

listeners.task.push((task) => {
  const at = task.task_id.indexOf("@");
  if (at < 1) return;
  const name = task.task_id.slice(0, at);
  if (view.name === "schedule" && name === view.id) scheduleChanged();
  else if (view.name === "schedules" && sc.names.has(name)) schedulesChanged();
});
listeners.snapshot.push(() => { // (re)connected: what changed while the stream was away is read again
  if (view.name === "schedule") scheduleChanged();
  else if (view.name === "schedules") schedulesChanged();
});

// ---- times ---------------------------------------------------------------------------------------------

// "2026-12-08 02:30:00 EST": an instant in the schedule's zone (the one its cron expression is read in).
function zoned(epoch, zone) {
  const date = new Date(epoch * 1000);
  let parts;
  try {
    parts = new Intl.DateTimeFormat("en-US", { timeZone: zone || "UTC", year: "numeric", month: "2-digit",
      day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
      timeZoneName: "short" }).formatToParts(date);
  } catch (error) { return date.toISOString(); } // a zone this browser does not know
  const part = Object.fromEntries(parts.map((p) => [p.type, p.value]));
  return `${part.year}-${part.month}-${part.day} ${part.hour}:${part.minute}:${part.second} ${part.timeZoneName}`;
}

// How far off an instant is; an occurrence (`upcoming`) that just passed is "due now" (its run is on its way).
function fromNow(epoch, upcoming) {
  const ahead = epoch - Date.now() / 1000;
  if (upcoming && ahead < 0 && ahead > -60) return "due now";
  const s = Math.abs(ahead);
  const two = (n) => String(Math.floor(n)).padStart(2, "0");
  let told;
  if (s < 60) told = Math.round(s) + "s";
  else if (s < 3600) told = Math.floor(s / 60) + "m" + two(s % 60) + "s";
  else if (s < 86400) told = Math.floor(s / 3600) + "h" + two((s % 3600) / 60) + "m";
  else told = Math.floor(s / 86400) + "d" + two((s % 86400) / 3600) + "h";
  return ahead >= 0 ? "in " + told : told + " ago";
}

// An instant in the schedule's zone, with how far off it is (kept current by the ticker below); the
// viewer's own local time in its title.
function instant(epoch, zone, attrs, upcoming) {
  if (!epoch) return el("span", attrs || {}, "–");
  const local = new Date(epoch * 1000).toLocaleString();
  return el("span", { ...(attrs || {}), title: local }, zoned(epoch, zone) + " ",
    el("span", { class: "dim", "data-at": epoch, "data-upcoming": upcoming ? "1" : null },
      "(" + fromNow(epoch, upcoming) + ")"));
}

setInterval(() => {
  if (!view.name.startsWith("schedule")) return;
  for (const node of document.querySelectorAll("#view-schedules [data-at], #view-schedule [data-at]")) {
    node.textContent = "(" + fromNow(Number(node.dataset.at), node.dataset.upcoming === "1") + ")";
  }
}, 1000);

// Read again once the soonest of these occurrences has passed (its run, or its skip, changes what is shown).
function dueAt(epochs, reload) {
  clearTimeout(sc.due);
  sc.due = null;
  const soonest = Math.min(...epochs.filter(Boolean));
  if (!Number.isFinite(soonest)) return;
  const wait = Math.max(0, soonest * 1000 - Date.now()) + SC_SLACK_MS;
  if (wait <= SC_LONGEST_MS) sc.due = setTimeout(reload, wait);
}

// ---- shared cells --------------------------------------------------------------------------------------

function runsText(runs) {
  if (runs.kind !== "workflow") return runs.capability;
  const steps = runs.steps === null ? "" : ` (${runs.steps} step${runs.steps === 1 ? "" : "s"})`;
  return "workflow " + (runs.workflow || "") + steps;
}

const stateBadge = (paused, id) => el("span", { id, "data-state": paused ? "paused" : "active" },
  badge(paused ? "PAUSED" : "ACTIVE"));

function runLink(taskId, runs) {
  const href = runs && runs.kind === "workflow" ? workflowHref(taskId) : taskHref(taskId);
  return el("a", { href, "data-nav": true, class: "mono", title: taskId, "data-task-id": taskId }, scCut(taskId, 44));
}

function lastRun(last, id) {
  if (!last) return el("span", { id }, "–");
  return el("span", { id }, el("a", { href: taskHref(last.task_id), "data-nav": true, class: "mono",
    title: last.task_id }, scCut(last.task_id, 44)), " ", last.status ? badge(last.status) : null);
}

// ---- the list ------------------------------------------------------------------------------------------

async function showSchedules() {
  clearTimeout(sc.due);
  await loadSchedules();
}

function schedulesChanged() {
  if (sc.listTimer) return;
  sc.listTimer = setTimeout(() => { sc.listTimer = null; if (view.name === "schedules") loadSchedules(); }, 300);
}

async function loadSchedules() {
  let answer;
  try {
    answer = await getJSON("/api/schedules");
  } catch (error) {
    $("sc-list-error").textContent = error.message;
    $("sc-list-error").hidden = false;
    return;
  }
  if (view.name !== "schedules") return;
  $("sc-list-error").hidden = true;
  sc.names = new Set(answer.schedules.map((row) => row.name));
  $("schedules").tBodies[0].replaceChildren(...answer.schedules.map(scheduleRow));
  $("schedules-empty").hidden = answer.schedules.length > 0;
  $("schedules-more").hidden = answer.total <= answer.schedules.length;
  $("schedules-more").textContent = `the first ${answer.schedules.length} of ${answer.total} shown`;
  dueAt(answer.schedules.map((row) => row.next_occurrence), () => { if (view.name === "schedules") loadSchedules(); });
}

function scheduleRow(row) {
  return el("tr", { "data-schedule": row.name, "data-paused": row.paused ? "1" : "0" },
    el("td", {}, el("a", { href: scheduleHref(row.name), "data-nav": true, class: "mono", title: row.name },
      scCut(row.name, 48)), row.description ? el("div", { class: "dim" }, scCut(row.description, 80)) : null),
    el("td", {}, runsText(row.runs)),
    el("td", { class: "mono" }, row.timing.text),
    el("td", {}, row.paused ? "–" : instant(row.next_occurrence, row.timing.timezone, {}, true)),
    el("td", { class: "sc-last" }, lastRun(row.last_run)),
    el("td", {}, `${row.fired} / ${row.skipped}`),
    el("td", { class: "sc-state" }, stateBadge(row.paused)),
    el("td", { class: "err", title: row.last_error }, scCut(row.last_error, 80)));
}

$("schedules").addEventListener("click", (event) => {
  const row = event.target.closest("tr[data-schedule]");
  if (row && !event.target.closest("a")) go(scheduleHref(row.dataset.schedule));
});

// ---- one schedule --------------------------------------------------------------------------------------

async function showSchedule(name) {
  clearTimeout(sc.due);
  $("sc-title").replaceChildren("schedule ", el("span", { class: "mono" }, name));
  $("sc-notice").replaceChildren();
  $("sc-pause").hidden = $("sc-resume").hidden = $("sc-trigger").hidden = true;
  $("sc-body").replaceChildren(el("p", { class: "dim" }, "loading…"));
  $("sc-next").replaceChildren();
  $("sc-next-none").hidden = true;
  $("sc-runs").tBodies[0].replaceChildren();
  $("sc-runs-empty").hidden = true;
  $("sc-all-runs").setAttribute("href", "/?q=" + encodeURIComponent(name + "@"));
  await loadSchedule(name);
}

function scheduleChanged() {
  if (sc.timer) return;
  sc.timer = setTimeout(() => { sc.timer = null; if (view.name === "schedule") loadSchedule(view.id); }, 200);
}

async function loadSchedule(name) {
  const mine = ++sc.reads; // an older read that answers late is dropped
  let found;
  try {
    found = await getJSON(`/api/schedules/${encodeURIComponent(name)}`);
  } catch (error) {
    if (mine === sc.reads && view.name === "schedule" && view.id === name) {
      $("sc-body").replaceChildren(el("p", { class: "err", id: "sc-load-error" }, error.message));
    }
    return;
  }
  if (mine !== sc.reads || view.name !== "schedule" || view.id !== name) return;
  const zone = found.timing.timezone;
  $("sc-pause").hidden = !found.may.pause;
  $("sc-resume").hidden = !found.may.resume;
  $("sc-trigger").hidden = !found.may.trigger;
  $("sc-body").replaceChildren(facts([
    ["state", stateBadge(found.paused, "sc-state")],
    ["runs", el("span", { id: "sc-runs-what" }, runsText(found.runs))],
    found.params ? ["arguments", el("pre", {}, found.params)] : null,
    ["timing", el("span", { class: "mono", id: "sc-timing" }, found.timing.text)],
    found.timing.start_at ? ["from", instant(found.timing.start_at, zone)] : null,
    ["next", found.paused ? el("span", { id: "sc-next-at" }, "none while it is paused")
      : instant(found.next_occurrence, zone, { id: "sc-next-at" }, true)],
    ["overlap", found.overlap],
    ["missed", found.missed === "all" ? `all (within ${seconds(found.grace_seconds)})` : found.missed],
    found.options ? ["task options", el("pre", {}, found.options)] : null,
    found.description ? ["description", found.description] : null,
    ["created", instant(found.created_at, zone)],
    found.resumed_at ? ["resumed", instant(found.resumed_at, zone)] : null,
    ["last occurrence", instant(found.last_occurrence, zone)],
    ["last run", lastRun(found.last_run, "sc-last-run")],
    ["fired / skipped", el("span", { id: "sc-counts" }, `${found.fired} / ${found.skipped}`)],
    found.last_error ? ["last error", found.last_error, { class: "err", id: "sc-last-error" }] : null,
    found.owner ? ["owner", found.owner] : null,
  ]));
  $("sc-next-zone").textContent = zone;
  $("sc-next").replaceChildren(...found.next_occurrences.map((at) => el("li", {}, instant(at, zone, {}, true))));
  $("sc-next-none").hidden = found.next_occurrences.length > 0;
  $("sc-runs").tBodies[0].replaceChildren(...found.recent_runs.map((run) =>
    el("tr", { "data-task": run.task_id, "data-status": run.status },
      el("td", {}, runLink(run.task_id, found.runs)),
      el("td", {}, badge(run.status)),
      el("td", {}, when(run.submitted_at)),
      el("td", {}, seconds(run.latency)),
      el("td", { class: "err", title: run.error }, scCut(run.error, 80)))));
  $("sc-runs-empty").hidden = found.recent_runs.length > 0;
  dueAt([found.paused ? null : found.next_occurrence], () => { if (view.name === "schedule") loadSchedule(view.id); });
}

async function scheduleAction(action, body) {
  const name = view.id;
  try {
    await post(`/api/schedules/${encodeURIComponent(name)}/${action}`, body);
    $("sc-notice").replaceChildren(action === "pause" ? "paused: it fires nothing until resumed"
      : "resumed: it fires again from now on");
  } catch (error) { $("sc-notice").replaceChildren(`${action} failed: ${error.message}`); }
  loadSchedule(name);
}

$("sc-pause").addEventListener("click", () => scheduleAction("pause"));
$("sc-resume").addEventListener("click", () => scheduleAction("resume", { run_now: false }));
$("sc-trigger").addEventListener("click", async () => {
  const name = view.id;
  try {
    const answer = await post(`/api/schedules/${encodeURIComponent(name)}/trigger`);
    $("sc-notice").replaceChildren("running now as ", el("a", { href: taskHref(answer.task_id), "data-nav": true,
      id: "sc-triggered", class: "mono", "data-task-id": answer.task_id }, answer.task_id));
  } catch (error) { $("sc-notice").replaceChildren(`run now failed: ${error.message}`); }
  loadSchedule(name);
});
