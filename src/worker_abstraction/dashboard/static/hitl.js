// Human in the loop, added to app.js's pages. On a task's page: the question it waits on (its prompt, schema and
// deadline) with a form to answer it (a refused answer lists every problem and keeps the form as it was), every
// past question with its answer and who gave it, approve / deny (with a reason) while it waits for approval,
// the decision once made, and its streamed output, appended as it comes: /api/tasks/ID/chunks is a stream of
// server-sent events of its own (resumed where it stopped after a reconnection), so nothing is polled. The
// task's other changes reach the page as app.js's do (a `task` event, then one read of the task). And
// "/inbox": the tasks waiting for input or approval, read again on each `task` event that concerns them.
"use strict";

const WAITING = new Set(["INPUT_REQUIRED", "APPROVAL_REQUIRED"]);
const ENDED = new Set(["COMPLETED", "FAILED", "CANCELED"]);
const MAX_STREAM_TEXT = 200000; // characters of streamed output the page keeps (the latest)
const hitl = { shownFor: "", key: null, source: null, sourceFor: "", inbox: new Set(), inboxTimer: null };

pages.push(["/inbox", "inbox", () => showInbox()]);

listeners.route.push(() => {
  if (view.name === "task" && view.id === hitl.shownFor) return;
  closeStream();
  hitl.shownFor = view.name === "task" ? view.id : "";
  hitl.key = null;
  $("task-hitl").replaceChildren();
  $("task-stream").hidden = true;
  $("task-chunks").replaceChildren();
  $("task-chunks").dataset.count = "0";
});
listeners.taskLoaded.push((task) => {
  renderHitl(task);
  followStream(task);
});
listeners.task.push((row) => {
  if (view.name === "inbox" && (WAITING.has(row.status) || hitl.inbox.has(row.task_id))) inboxChanged();
});
listeners.snapshot.push(() => { if (view.name === "inbox") inboxChanged(); });

// ---- questions and approval ----------------------------------------------------------------------------

function renderHitl(task) {
  const pending = task.input_request;
  // Drawn again only when what it shows changed: an answer being written stays as it is across reads.
  const key = JSON.stringify([task.status, pending && pending.request_id, task.may.answer, task.may.approve,
    task.inputs_total, task.inputs.map((e) => e.answer !== null), task.approval]);
  if (key === hitl.key) return;
  hitl.key = key;
  const parts = [];
  if (pending) parts.push(questionBox(task, pending));
  if (task.status === "APPROVAL_REQUIRED") parts.push(approvalBox(task));
  if (task.approval) parts.push(decisionView(task.approval));
  const past = task.inputs.filter((e) => !pending || e.request_id !== pending.request_id || e.answer);
  if (past.length) parts.push(exchangesTable(past, task.inputs_total));
  $("task-hitl").replaceChildren(...parts);
}

// A placeholder showing the shape an answer takes, from the schema's top level (a hint, never sent).
function example(schemaText) {
  let schema;
  try { schema = schemaText ? JSON.parse(schemaText) : null; } catch (error) { return "any JSON value"; }
  const sample = (s) => {
    if (!s || typeof s !== "object") return null;
    if (Array.isArray(s.enum) && s.enum.length) return s.enum[0];
    return { boolean: true, string: "", integer: 0, number: 0, array: [], object: {}, null: null }[s.type] ?? null;
  };
  if (schema && schema.type === "object" && schema.properties) {
    const shape = {};
    for (const [name, property] of Object.entries(schema.properties)) shape[name] = sample(property);
    return JSON.stringify(shape);
  }
  return schema && schema.type ? JSON.stringify(sample(schema)) : 'any JSON value: a text goes in quotes, "yes"';
}

function questionBox(task, q) {
  const problems = el("ul", { id: "answer-problems", class: "err", role: "alert", hidden: true });
  const value = el("textarea", { id: "answer-value", rows: 4, spellcheck: "false", "aria-label": "the answer, as JSON",
    placeholder: example(q.schema) });
  const send = el("button", { type: "submit", class: "btn", id: "answer-send" }, "answer");
  const form = el("form", { id: "answer-form", onsubmit: (event) => {
    event.preventDefault();
    sendAnswer(task.task_id, q.request_id, value, problems, send);
  } }, value, el("div", { class: "actions" }, send, el("span", { class: "dim" }, "the answer as JSON")), problems);
  return el("div", { class: "question", id: "task-question", "data-request": q.request_id },
    el("h2", {}, "Waiting for input"),
    el("p", { class: "prompt", id: "question-prompt" }, q.prompt || "(the handler gave no prompt)"),
    facts([
      ["schema", q.schema ? el("pre", { id: "question-schema" }, q.schema) : "none: any JSON value"],
      ["deadline", el("span", { id: "question-deadline" }, q.deadline ? when(q.deadline) : "none: it waits until answered")],
      ["request", el("span", { class: "mono" }, q.request_id)],
    ]),
    task.may.answer ? form : el("p", { class: "dim" }, "only an operator may answer"));
}

async function sendAnswer(taskId, requestId, value, problems, send) {
  send.disabled = true;
  problems.hidden = true;
  try {
    const response = await fetch(`/api/tasks/${encodeURIComponent(taskId)}/answer`, { method: "POST",
      headers: HEADERS, credentials: "same-origin", body: JSON.stringify({ value_json: value.value, request_id: requestId }) });
    const answer = await response.json().catch(() => ({}));
    if (response.status === 422) { // refused: every problem, and the form as it was
      problems.replaceChildren(...(answer.problems || [answer.error]).map((problem) => el("li", {}, problem)));
      problems.hidden = false;
      value.focus();
      return;
    }
    if (!response.ok) throw new Error(answer.error || response.statusText);
    $("task-notice").replaceChildren("answered" + (answer.answered_by ? " as " + answer.answered_by : ""));
  } catch (error) {
    $("task-notice").replaceChildren(`answer failed: ${error.message}`);
  } finally {
    send.disabled = false;
  }
  loadTask(taskId);
}

function approvalBox(task) {
  if (!task.may.approve) return el("p", { class: "dim", id: "approval-waits" }, "waits for an operator's approval");
  const reason = el("input", { id: "decision-reason", placeholder: "reason (needed to deny)", maxlength: 4096, size: 48 });
  return el("div", { class: "question approval", id: "task-approval" },
    el("h2", {}, "Waiting for approval"),
    el("p", {}, "It goes to a worker only once approved; denied, it ends canceled with the reason."),
    el("div", { class: "actions" }, reason,
      el("button", { class: "btn", id: "task-approve", onclick: () => decide(task.task_id, true, reason) }, "approve"),
      el("button", { class: "btn btn-bad", id: "task-deny", onclick: () => decide(task.task_id, false, reason) }, "deny")));
}

async function decide(taskId, approved, reason) {
  if (!approved && !reason.value.trim()) {
    $("task-notice").replaceChildren("give a reason to deny");
    reason.focus();
    return;
  }
  try {
    const answer = await post(`/api/tasks/${encodeURIComponent(taskId)}/${approved ? "approve" : "deny"}`,
      { reason: reason.value });
    $("task-notice").replaceChildren(`${approved ? "approved" : "denied"}: ${answer.status.toLowerCase()}`);
  } catch (error) {
    $("task-notice").replaceChildren(`${approved ? "approval" : "denial"} failed: ${error.message}`);
  }
  loadTask(taskId);
}

const who = (name) => name || "someone (credentials are not checked)";

function decisionView(a) {
  return el("p", { id: "task-decision", class: a.approved ? "ok" : "err", "data-approved": a.approved ? "1" : "0" },
    a.approved ? "approved" : "denied", " by ", el("b", { id: "task-decided-by" }, who(a.decided_by)),
    a.decided_at ? ` at ${when(a.decided_at)}` : "", a.reason ? `: ${a.reason}` : "");
}

function exchangesTable(exchanges, total) {
  return el("div", {},
    el("h2", { style: "margin-top:12px" }, `Questions (${total})`),
    el("table", { id: "task-inputs" },
      el("thead", {}, el("tr", {}, ...["asked", "question", "answer", "answered by", "answered"].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...exchanges.map((e) => el("tr", { "data-request": e.request_id, "data-answered": e.answer ? "1" : "0" },
        el("td", {}, clock(e.asked_at)),
        el("td", {}, e.prompt || el("span", { class: "dim" }, "(no prompt)")),
        el("td", {}, e.answer ? el("pre", { class: "answer" }, e.answer.value) : el("span", { class: "dim" }, "not answered")),
        el("td", { class: "answered-by" }, e.answer ? who(e.answer.answered_by) : "–"),
        el("td", {}, e.answer ? clock(e.answer.answered_at) : "–"))))));
}

// ---- streamed output -----------------------------------------------------------------------------------

function closeStream() {
  if (hitl.source) hitl.source.close();
  hitl.source = null;
  hitl.sourceFor = "";
}

function followStream(task) {
  if (hitl.sourceFor === task.task_id) return; // followed already (or to its end)
  if (!task.chunks && ENDED.has(task.status)) return; // it streamed nothing, and never will
  closeStream();
  hitl.sourceFor = task.task_id;
  const source = new EventSource(`/api/tasks/${encodeURIComponent(task.task_id)}/chunks`);
  hitl.source = source;
  source.addEventListener("chunks", (event) => {
    if (hitl.source === source) appendChunks(JSON.parse(event.data));
  });
  source.addEventListener("end", (event) => {
    source.close();
    if (hitl.source !== source) return;
    hitl.source = null; // (sourceFor stays: this task's stream was read to its end)
    const count = JSON.parse(event.data).chunks;
    $("task-stream-count").textContent = `${count} chunk${count === 1 ? "" : "s"}, all of them`;
    $("task-chunks").dataset.ended = "1";
  });
}

function appendChunks(data) {
  const pre = $("task-chunks");
  const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  if (data.dropped) {
    pre.append(el("span", { class: "dim" }, `[chunks ${data.dropped[0] + 1} to ${data.dropped[1]} are no longer kept]\n`));
  }
  let text = "";
  for (const chunk of data.chunks) text += chunk.json ? chunk.text + "\n" : chunk.text;
  pre.append(text);
  if (pre.textContent.length > MAX_STREAM_TEXT) pre.replaceChildren("…" + pre.textContent.slice(-MAX_STREAM_TEXT));
  const count = data.chunks[data.chunks.length - 1].index;
  pre.dataset.count = String(count);
  $("task-stream-count").textContent = `${count} chunk${count === 1 ? "" : "s"}, live`;
  $("task-stream").hidden = false;
  if (atBottom) pre.scrollTop = pre.scrollHeight;
}

// ---- the inbox -----------------------------------------------------------------------------------------

function inboxChanged() {
  if (hitl.inboxTimer) return;
  hitl.inboxTimer = setTimeout(() => { hitl.inboxTimer = null; loadInbox(); }, 200); // changes close together: one read
}

async function showInbox() {
  $("inbox").tBodies[0].replaceChildren();
  $("inbox-empty").hidden = true;
  await loadInbox();
}

async function loadInbox() {
  let answer;
  try {
    answer = await getJSON("/api/inbox");
  } catch (error) {
    $("inbox-error").textContent = error.message;
    $("inbox-error").hidden = false;
    return;
  }
  if (view.name !== "inbox") return;
  $("inbox-error").hidden = true;
  hitl.inbox = new Set(answer.tasks.map((t) => t.task_id));
  $("inbox").tBodies[0].replaceChildren(...answer.tasks.map((t) =>
    el("tr", { id: "inbox-" + t.task_id, "data-task": t.task_id, "data-status": t.status },
      el("td", {}, taskLink(t.task_id)),
      el("td", {}, t.capability),
      el("td", {}, badge(t.status)),
      el("td", { class: "prompt" }, t.waiting_for === "input" ? t.prompt || "(no prompt)" : el("span", { class: "dim" }, "approval to run")),
      el("td", {}, when(t.waiting_since)),
      el("td", {}, t.deadline ? when(t.deadline) : "–"))));
  $("inbox-empty").hidden = answer.tasks.length > 0;
  $("inbox-more").hidden = !answer.more;
}

$("inbox").addEventListener("click", (event) => {
  if (event.target.closest("a")) return;
  const row = event.target.closest("tr[data-task]");
  if (row) go(taskHref(row.dataset.task));
});
