// The workflow pages, added to app.js's: "/workflows" (the runs, newest first, filtered by status and id) and
// "/workflows/ID" (one run: its steps as a graph, laid out by dependency layer from left to right, each box
// coloured by its status; a click shows the step and links its tasks). A run is a task of capability
// wa.workflow, and each change of a step's status is one of its updates: the stream's `task` event for its id
// makes the page read the run again (several close together: one read). The page never polls.
"use strict";

const WORKFLOW = "wa.workflow";
const WF_PAGE = 50;
const STEP_STATUSES = ["WAITING", "RUNNING", "COMPLETED", "FAILED", "CANCELED", "SKIPPED"];
const NODE_W = 184, NODE_H = 54, GAP_X = 64, GAP_Y = 16, MARGIN = 14, WAYPOINT_H = 10;
const MAX_WAYPOINTS = 3000; // past it, lines that pass over layers are drawn straight across (boxes may hide them)
const workflowHref = (id) => "/workflows/" + encodeURIComponent(id);
const cut = (text, n) => (text.length > n ? text.slice(0, n - 1) + "…" : text);
const wf = { shown: null, step: "", timer: null, reads: 0, listTimer: null, offset: 0, nodes: null, edges: [] };

pages.push(["/workflows/", "workflow", (id) => showWorkflow(id)], ["/workflows", "workflows", () => showWorkflows()]);

listeners.task.push((task) => {
  if (view.name === "workflow" && task.task_id === view.id) workflowChanged();
  else if (view.name === "workflows" && task.capability === WORKFLOW) workflowsChanged();
});
listeners.snapshot.push(() => { // (re)connected: what changed while the stream was away is read again
  if (view.name === "workflow") workflowChanged();
  else if (view.name === "workflows") workflowsChanged();
});

// ---- the list ------------------------------------------------------------------------------------------

function listParams() {
  const params = new URLSearchParams(location.search);
  const found = new URLSearchParams();
  for (const name of ["status", "q"]) if (params.get(name)) found.set(name, params.get(name));
  return found;
}

async function showWorkflows() {
  const params = listParams();
  wf.offset = Number(new URLSearchParams(location.search).get("offset")) || 0;
  $("wf-status").value = params.get("status") || "";
  $("wf-q").value = params.get("q") || "";
  await loadWorkflows();
}

function workflowsChanged() {
  if (wf.listTimer) return;
  wf.listTimer = setTimeout(() => { wf.listTimer = null; if (view.name === "workflows") loadWorkflows(); }, 300);
}

async function loadWorkflows() {
  const params = listParams();
  params.set("limit", String(WF_PAGE));
  params.set("offset", String(wf.offset));
  let answer;
  try {
    answer = await getJSON("/api/workflows?" + params);
  } catch (error) {
    $("wf-query-error").textContent = error.message;
    $("wf-query-error").hidden = false;
    $("workflows").tBodies[0].replaceChildren();
    return;
  }
  if (view.name !== "workflows") return;
  $("wf-query-error").hidden = true;
  $("workflows").tBodies[0].replaceChildren(...answer.workflows.map(workflowRow));
  $("workflows-empty").hidden = answer.workflows.length > 0;
  $("workflows-empty").textContent = listParams().toString() ? "no workflow matches" : "no workflows yet";
  $("wf-pager").hidden = wf.offset === 0 && !answer.more;
  $("wf-newer").disabled = wf.offset === 0;
  $("wf-older").disabled = !answer.more;
  $("wf-page-at").textContent = answer.workflows.length ? `${wf.offset + 1}–${wf.offset + answer.workflows.length}` : "";
}

function stepCounts(row) {
  const done = row.counts.COMPLETED || 0;
  const bar = el("span", { class: "bar wf-bar" }, ...STEP_STATUSES.filter((s) => row.counts[s]).map((s) =>
    el("span", { class: "wf-seg", "data-status": s, style: `width:${(100 * row.counts[s]) / row.steps_total}%` })));
  return [bar, `${done} / ${row.steps_total} completed`];
}

function workflowRow(row) {
  return el("tr", { "data-workflow": row.workflow_id, "data-status": row.status },
    el("td", {}, el("a", { href: workflowHref(row.workflow_id), "data-nav": true, class: "mono", title: row.workflow_id },
      cut(row.workflow_id, 32))),
    el("td", {}, row.name, row.rerun_of ? el("span", { class: "dim" }, " (a rerun)") : null),
    el("td", {}, badge(row.status)),
    el("td", {}, stepCounts(row)),
    el("td", { class: "err", title: row.error }, row.failed_step ? row.failed_step + ": " + row.error.slice(0, 60) : ""),
    el("td", {}, when(row.submitted_at)));
}

function workflowsHref(offset) {
  const params = new URLSearchParams();
  if ($("wf-status").value) params.set("status", $("wf-status").value);
  if ($("wf-q").value.trim()) params.set("q", $("wf-q").value.trim());
  if (offset) params.set("offset", String(offset));
  const text = params.toString();
  return text ? "/workflows?" + text : "/workflows";
}

$("wf-filters").addEventListener("submit", (event) => { event.preventDefault(); go(workflowsHref(0)); });
$("wf-clear").addEventListener("click", () => go("/workflows"));
$("wf-newer").addEventListener("click", () => go(workflowsHref(Math.max(0, wf.offset - WF_PAGE))));
$("wf-older").addEventListener("click", () => go(workflowsHref(wf.offset + WF_PAGE)));
$("workflows").addEventListener("click", (event) => {
  const row = event.target.closest("tr[data-workflow]");
  if (row && !event.target.closest("a")) go(workflowHref(row.dataset.workflow));
});

// ---- one run -------------------------------------------------------------------------------------------

async function showWorkflow(id) {
  wf.shown = null;
  wf.step = new URLSearchParams(location.search).get("step") || "";
  $("wf-title").replaceChildren("workflow ", el("span", { class: "mono" }, id));
  $("wf-notice").replaceChildren();
  $("wf-cancel").hidden = true;
  $("wf-body").replaceChildren(el("p", { class: "dim" }, "loading…"));
  $("wf-graph").replaceChildren();
  wf.nodes = null;
  $("wf-step").replaceChildren(el("p", { class: "dim" }, "click a step to see it here"));
  await loadWorkflow(id);
}

function workflowChanged() {
  if (wf.timer) return;
  wf.timer = setTimeout(() => { wf.timer = null; if (view.name === "workflow") loadWorkflow(view.id); }, 150);
}

async function loadWorkflow(id) {
  const mine = ++wf.reads; // an older read that answers late is dropped
  let found;
  try {
    found = await getJSON(`/api/workflows/${encodeURIComponent(id)}`);
  } catch (error) {
    if (mine === wf.reads && view.name === "workflow" && view.id === id) {
      $("wf-body").replaceChildren(el("p", { class: "err", id: "wf-load-error" }, error.message));
    }
    return;
  }
  if (mine !== wf.reads || view.name !== "workflow" || view.id !== id) return;
  wf.shown = found;
  renderWorkflow(found);
}

function renderWorkflow(w) {
  $("wf-title").replaceChildren("workflow ", w.name ? w.name + " " : "", el("span", { class: "dim mono" }, w.workflow_id));
  $("wf-cancel").hidden = !w.may.cancel;
  const failed = w.failed_step ? el("a", { href: "#", class: "mono", onclick: (e) => { e.preventDefault(); selectStep(w.failed_step); } },
    w.failed_step) : "–";
  $("wf-body").replaceChildren(facts([
    ["status", el("span", { id: "wf-status", "data-status": w.status }, badge(w.status),
      w.status === "RUNNING" ? ` ${Math.round(w.progress * 100)}% of its steps ended` : "")],
    ["id", el("span", { class: "mono" }, w.workflow_id), { id: "wf-id" }],
    ["name", w.name || "–", { id: "wf-name" }],
    ["steps", w.steps_total === w.steps_shown ? String(w.steps_total) :
      `${w.steps_total} (the first ${w.steps_shown} in run order are shown)`, { id: "wf-count" }],
    ["failed step", failed, { id: "wf-failed-step" }],
    w.error ? ["error", w.error, { class: "err", id: "wf-error" }] : null,
    w.rerun_of ? ["rerun of", el("a", { href: workflowHref(w.rerun_of), "data-nav": true, class: "mono", id: "wf-rerun-of" },
      w.rerun_of)] : null,
    w.cancel_reason ? ["cancel reason", w.cancel_reason] : null,
    ["on a failure", w.fail_fast ? "cancel the running steps, start no other (fail fast)" : "finish the other branches"],
    ["deadline", w.deadline_seconds ? seconds(w.deadline_seconds) : "none"],
    ["submitted", when(w.submitted_at)],
    ["as a task", el("a", { href: taskHref(w.workflow_id), "data-nav": true }, "its updates")],
  ]));
  $("wf-legend").replaceChildren(...[...STEP_STATUSES, ""].map((s) =>
    el("span", { class: "wf-key", "data-status": s }, s ? s.toLowerCase() : "not run")));
  drawGraph(w);
  renderStep();
}

// The steps in columns by layer (a step stands one past the deepest step it waits for). A line that passes over
// a layer goes through a gap of its own there (a "waypoint", as in a layered drawing), so that it never runs
// behind a box. Each column is ordered by where the things it waits for stand (fewer crossing lines), and
// centred on the tallest. Returns each step's place and each edge's route (the points it passes).
function placeSteps(w) {
  const columns = Array.from({ length: Math.max(1, w.layers) }, () => []);
  const layerOf = new Map(w.steps.map((s) => [s.name, s.layer]));
  for (const step of w.steps) columns[step.layer].push({ key: step.name, height: NODE_H, after: step.parents });
  const long = w.edges.filter((e) => layerOf.has(e.from) && layerOf.get(e.to) - layerOf.get(e.from) > 1);
  const waypoints = long.reduce((n, e) => n + layerOf.get(e.to) - layerOf.get(e.from) - 1, 0) <= MAX_WAYPOINTS;
  const through = new Map(); // edge -> the keys of its waypoints, in order
  if (waypoints) {
    for (const e of long) {
      const keys = [];
      for (let layer = layerOf.get(e.from) + 1; layer < layerOf.get(e.to); layer++) {
        const key = `\u0000${e.from}\u0000${e.to}\u0000${layer}`;
        columns[layer].push({ key, height: WAYPOINT_H, after: [keys.length ? keys[keys.length - 1] : e.from] });
        keys.push(key);
      }
      through.set(e, keys);
    }
  }
  const row = new Map();
  for (const column of columns) {
    const weight = (item) => {
      const at = item.after.filter((p) => row.has(p)).map((p) => row.get(p));
      return at.length ? at.reduce((a, b) => a + b, 0) / at.length : Infinity;
    };
    column.sort((a, b) => (weight(a) === weight(b) ? 0 : weight(a) < weight(b) ? -1 : 1)); // (a stable sort)
    let y = 0;
    for (const item of column) { row.set(item.key, y + item.height / 2); y += item.height + GAP_Y; }
  }
  const heightOf = (column) => column.reduce((sum, item) => sum + item.height + GAP_Y, -GAP_Y);
  const tallest = Math.max(...columns.map(heightOf));
  const place = new Map();
  columns.forEach((column, layer) => {
    let y = MARGIN + (tallest - heightOf(column)) / 2;
    for (const item of column) {
      place.set(item.key, { x: MARGIN + layer * (NODE_W + GAP_X), y: y + (item.height - NODE_H) / 2 });
      y += item.height + GAP_Y;
    }
  });
  const routes = w.edges.filter((e) => place.has(e.from) && place.has(e.to)).map((e) => {
    const [a, b] = [place.get(e.from), place.get(e.to)];
    const points = [[a.x + NODE_W, a.y + NODE_H / 2]];
    for (const key of through.get(e) || []) {
      const p = place.get(key);
      points.push([p.x, p.y + NODE_H / 2], [p.x + NODE_W, p.y + NODE_H / 2]);
    }
    points.push([b.x - 2, b.y + NODE_H / 2]);
    return { edge: e, points };
  });
  return { place, routes, width: 2 * MARGIN + columns.length * (NODE_W + GAP_X) - GAP_X, height: 2 * MARGIN + tallest };
}

// A route as a path: curves between columns, straight through each waypoint.
function routePath(points) {
  let d = `M${points[0][0]},${points[0][1]}`;
  for (let i = 1; i < points.length; i++) {
    const [[x1, y1], [x2, y2]] = [points[i - 1], points[i]];
    if (i % 2 === 0) { d += ` L${x2},${y2}`; continue; } // across a waypoint's gap
    const bend = Math.max(20, (x2 - x1) / 2);
    d += ` C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`;
  }
  return d;
}

// Drawn anew when the steps shown change; otherwise each box and line is updated where it stands (a box keeps
// its focus, and the page does not flicker at each change of status).
function drawGraph(w) {
  const graph = $("wf-graph");
  const shape = JSON.stringify([w.workflow_id, w.steps.map((s) => [s.name, s.layer, s.parents, Boolean(s.map)])]);
  if (graph.dataset.shape !== shape || !wf.nodes) {
    const { place, routes, width, height } = placeSteps(w);
    graph.setAttribute("viewBox", `0 0 ${width} ${height}`);
    graph.setAttribute("width", width);
    graph.setAttribute("height", height);
    const defs = svg("defs", {});
    const arrow = svg("marker", { id: "wf-arrow", viewBox: "0 0 8 8", refX: 8, refY: 4, markerWidth: 7, markerHeight: 7,
      orient: "auto-start-reverse" });
    arrow.append(svg("path", { d: "M0,0 L8,4 L0,8 z", class: "wf-arrow" }));
    defs.append(arrow);
    const edges = routes.map(({ edge, points }) => svg("path", { d: routePath(points), class: "wf-edge",
      "data-from": edge.from, "data-to": edge.to, "marker-end": "url(#wf-arrow)" }));
    wf.nodes = new Map(w.steps.map((step) => [step.name, stepNode(step, place.get(step.name))]));
    wf.edges = edges;
    graph.replaceChildren(defs, ...edges, ...wf.nodes.values());
    graph.dataset.shape = shape;
  }
  const status = new Map(w.steps.map((s) => [s.name, s.status]));
  for (const step of w.steps) fillNode(wf.nodes.get(step.name), step);
  for (const edge of wf.edges) edge.dataset.done = status.get(edge.dataset.from) === "COMPLETED" ? "1" : "0";
}

function stepNode(step, at) {
  const node = svg("g", { class: "wf-node", "data-step": step.name, transform: `translate(${at.x},${at.y})`,
    tabindex: 0, role: "button" });
  node.append(svg("title", {}));
  if (step.map) { // a map: its elements drawn as a stack
    node.append(svg("rect", { x: 6, y: -6, width: NODE_W, height: NODE_H, rx: 6, class: "box back" }));
    node.append(svg("rect", { x: 3, y: -3, width: NODE_W, height: NODE_H, rx: 6, class: "box back" }));
  }
  node.append(svg("rect", { width: NODE_W, height: NODE_H, rx: 6, class: "box" + (step.on_failure ? " on-failure" : "") }));
  const name = svg("text", { x: 10, y: 20, class: "wf-name" });
  name.textContent = cut(step.name, 22);
  node.append(name, svg("text", { x: 10, y: 39, class: "wf-sub" }),
    svg("text", { x: NODE_W - 8, y: 20, "text-anchor": "end", class: "wf-state" }));
  const choose = () => selectStep(step.name);
  node.addEventListener("click", choose);
  node.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); choose(); } });
  return node;
}

function fillNode(node, step) {
  const said = step.status ? step.status.toLowerCase() : "not run";
  node.dataset.status = step.status;
  node.dataset.tasks = step.tasks;
  node.classList.toggle("selected", step.name === wf.step);
  node.querySelector("title").textContent = `${step.name} (${step.capability}): ${said}`;
  const count = step.map ? ` · ×${step.tasks || "?"}` : "";
  node.querySelector(".wf-sub").textContent =
    cut((step.on_failure ? "on failure · " : "") + step.capability, step.map ? 16 : 24) + count;
  node.querySelector(".wf-state").textContent = said;
}

function selectStep(name) {
  wf.step = name;
  const params = new URLSearchParams(location.search);
  params.set("step", name);
  history.replaceState({}, "", location.pathname + "?" + params); // a reload shows the same step
  for (const node of $("wf-graph").querySelectorAll(".wf-node")) node.classList.toggle("selected", node.dataset.step === name);
  renderStep();
  $("wf-step").scrollIntoView({ block: "nearest" });
}

function renderStep() {
  const w = wf.shown;
  const step = w && w.steps.find((s) => s.name === wf.step);
  if (!step) {
    $("wf-step").replaceChildren(el("p", { class: "dim" }, "click a step to see it here"));
    return;
  }
  const links = step.task_ids.map((id) => el("a", { href: taskHref(id), "data-nav": true, class: "mono wf-task" }, id));
  const more = step.map && step.tasks > step.task_ids.length
    ? el("a", { href: "/?q=" + encodeURIComponent(step.task_prefix), "data-nav": true, id: "wf-step-all" },
      `all ${step.tasks} of them`) : null;
  const tasks = links.length ? [...links.flatMap((a) => [a, " "]), more] :
    step.kept ? ["none: its output was kept from the run this one reruns"] : ["none yet"];
  const operator = w.may.rerun && !step.on_failure;
  $("wf-step").replaceChildren(
    el("h2", {}, "step ", el("span", { class: "mono", id: "wf-step-name" }, step.name)),
    facts([
      ["status", el("span", { id: "wf-step-status", "data-status": step.status }, badge(step.status || "not run"),
        step.kept ? " (kept from the run this one reruns)" : "")],
      ["capability", el("span", { class: "mono" }, step.capability)],
      step.map ? ["map", `one task per element of ${step.map.over}'s output, as ${step.map.item}, ` +
        `at most ${step.map.concurrency} at once`] : null,
      step.on_failure ? ["runs", "once, if the workflow fails"] : null,
      ["waits for", step.parents.length ? step.parents.flatMap((p) => [el("a", { href: "#", class: "mono",
        onclick: (e) => { e.preventDefault(); selectStep(p); } }, p), " "]) : "nothing"],
      ["tasks", el("span", { id: "wf-step-tasks" }, ...tasks)],
      step.error ? ["error", el("pre", { class: "err", id: "wf-step-error" }, step.error)] : null,
      step.output !== null ? ["output", el("pre", { id: "wf-step-output" }, step.output)] : step.status === "COMPLETED"
        ? ["output", el("span", { class: "dim" }, "not read for this page while the run goes: its tasks have it")] : null,
    ]),
    ...[operator ? el("div", { class: "actions" },
      el("button", { class: "btn", id: "wf-rerun", onclick: () => rerun(step.name) }, "rerun from this step"),
      el("label", { class: "dim" }, el("input", { type: "checkbox", id: "wf-downstream", checked: true }),
        " and every step that waits for it"),
      el("span", { class: "notice", id: "wf-rerun-notice", role: "status" })) : null].filter(Boolean));
}

async function rerun(stepName) {
  const id = view.id;
  try {
    const answer = await post(`/api/workflows/${encodeURIComponent(id)}/rerun`,
      { step: stepName, downstream: $("wf-downstream").checked });
    $("wf-rerun-notice").replaceChildren("rerun as ", el("a", { href: workflowHref(answer.workflow_id), "data-nav": true,
      class: "mono", id: "wf-rerun-as", "data-workflow-id": answer.workflow_id }, answer.workflow_id));
  } catch (error) { $("wf-rerun-notice").replaceChildren(`rerun failed: ${error.message}`); }
}

$("wf-cancel").addEventListener("click", async () => {
  const id = view.id;
  try {
    const answer = await post(`/api/workflows/${encodeURIComponent(id)}/cancel`);
    $("wf-notice").replaceChildren(`cancel asked: ${answer.status.toLowerCase()}`);
  } catch (error) { $("wf-notice").replaceChildren(`cancel failed: ${error.message}`); }
  loadWorkflow(id);
});
