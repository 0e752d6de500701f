"use strict";
let selected = null;
const TRIAL_ROWS = 200;
const fmt = v => (typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : (v ?? "–"));
const cell = text => { const td = document.createElement("td"); td.textContent = text; return td; };
const header = names => { const tr = document.createElement("tr");
  tr.append(...names.map(n => { const th = document.createElement("th"); th.textContent = n; return th; })); return tr; };
// Errors stay until dismissed (the 3-second refresh never clears them).
const showError = (id, message) => { document.getElementById(id).textContent = message; };
for (const button of document.querySelectorAll("button.dismiss"))
  button.addEventListener("click", () => showError(button.dataset.for, ""));

// The token lives in sessionStorage (this tab only) and goes out as a bearer header, so
// another site cannot make this browser send it (no cookie is involved).
const TOKEN_KEY = "hwnas-token";
class Unauthorized extends Error {}

async function api(url, options = {}) {
  const headers = new Headers(options.headers || {});
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.set("Authorization", `Bearer ${token}`);
  const response = await fetch(url, {...options, headers});
  if (response.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    document.getElementById("login").hidden = false;
    // a token was sent and refused: say so (a first visit sends none, and needs no message)
    document.getElementById("login-error").textContent =
      token ? "the service refused that token: copy it again from the file `nas serve` printed" : "";
    throw new Unauthorized("the service needs its access token");
  }
  return response;
}

async function getResponse(url, options) {
  const response = await api(url, options);
  const body = await response.json();
  if (!response.ok) {
    const detail = Array.isArray(body.detail) ? body.detail.map(d => d.msg).join("; ") : body.detail;
    throw new Error(detail || response.statusText);
  }
  return {body, headers: response.headers};
}

async function getJSON(url, options) {
  return (await getResponse(url, options)).body;
}

// every page of a list route (X-Next-Offset says where the next one starts)
async function getAll(url) {
  const items = [];
  for (let offset = 0; offset !== null;) {
    const {body, headers} = await getResponse(`${url}${url.includes("?") ? "&" : "?"}limit=1000&offset=${offset}`);
    items.push(...body);
    const next = headers.get("X-Next-Offset");
    offset = next === null ? null : Number(next);
  }
  return items;
}

const report = err => { if (!(err instanceof Unauthorized)) showError("error", err.message); };

// ------------------------------------------------------------------ jobs
let jobsById = {};
async function loadJobs() {
  const jobs = await getAll("/api/jobs");
  jobsById = Object.fromEntries(jobs.map(j => [j.job_id, j]));
  const body = document.querySelector("#jobs tbody");
  body.replaceChildren(...jobs.map(job => {
    const tr = document.createElement("tr");
    tr.className = "job" + (job.job_id === selected ? " selected" : "");
    tr.dataset.job = job.job_id;
    const best = Object.entries(job.best).map(([k, v]) => `${k}=${fmt(v)}`).join(", ");
    const state = cell(job.state); state.className = "state-" + job.state;
    tr.append(cell(job.job_id), cell(job.name), state, cell(job.searcher),
              cell(`${job.done}/${job.budget ?? "–"}`), cell(job.failed), cell(best), cell(fmt(job.hypervolume)));
    tr.addEventListener("click", () => select(job.job_id));
    return tr;
  }));
  if (selected && !jobsById[selected]) { selected = null; document.getElementById("detail").hidden = true; }
  updateActions();
}

function select(jobId) {
  selected = jobId;
  lastKeys = {};
  const form = document.getElementById("bounds");
  form.reset(); form.dataset.metrics = "";
  document.getElementById("export").replaceChildren();
  loadJobs().catch(report);
  loadDetail();
}

function updateActions() {
  const job = jobsById[selected];
  if (!job) return;
  const state = document.getElementById("detail-state");
  state.textContent = job.state; state.className = "state-" + job.state;
  document.getElementById("cancel-job").disabled = !["created", "running", "interrupted"].includes(job.state);
  document.getElementById("delete-job").disabled = job.state === "running";
}

document.getElementById("cancel-job").addEventListener("click", async () => {
  try {
    await getJSON(`/api/jobs/${selected}/cancel`, {method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"});
    await loadJobs();
  } catch (err) { report(err); }
});

// Deleting asks twice: the first click arms the button for five seconds.
const deleteButton = document.getElementById("delete-job");
deleteButton.addEventListener("click", async () => {
  if (deleteButton.dataset.armed !== "1") {
    deleteButton.dataset.armed = "1"; deleteButton.textContent = "delete: click again to confirm";
    setTimeout(() => { deleteButton.dataset.armed = ""; deleteButton.textContent = "delete"; }, 5000);
    return;
  }
  deleteButton.dataset.armed = ""; deleteButton.textContent = "delete";
  try {
    await getJSON(`/api/jobs/${selected}`, {method: "DELETE"});
    selected = null;
    document.getElementById("detail").hidden = true;
    await loadJobs();
  } catch (err) { report(err); }
});

// ------------------------------------------------------------------ the selected job
function boundsQuery() {
  const form = document.getElementById("bounds"), params = new URLSearchParams();
  if (form.max_latency.value && form.latency_metric.value) {
    params.set("max_latency", form.max_latency.value); params.set("latency_metric", form.latency_metric.value);
  }
  if (form.min_accuracy.value && form.accuracy_metric.value) {
    params.set("min_accuracy", form.min_accuracy.value); params.set("accuracy_metric", form.accuracy_metric.value);
  }
  return params.toString();
}

// The bounds apply to any of the job's metrics: by default the first minimised objective
// (latency) for "at most" and the first maximised one (accuracy) for "at least".
function fillBoundMetrics(objectives, directions) {
  const form = document.getElementById("bounds");
  const key = objectives.join(",");
  if (form.dataset.metrics === key) return;
  form.dataset.metrics = key;
  for (const [name, preferred] of [["latency_metric", "min"], ["accuracy_metric", "max"]]) {
    const select = form[name];
    select.replaceChildren(...objectives.map(m => { const o = document.createElement("option"); o.textContent = m; return o; }));
    const index = directions.indexOf(preferred);
    select.value = objectives[index >= 0 ? index : 0];
  }
}

let lastKeys = {};  // what each part was last drawn from: redraw only on change
let front = null;

async function loadDetail() {
  if (!selected) return;
  const job = selected, query = boundsQuery();
  try {
    front = await getJSON(`/api/jobs/${job}/pareto?${query}`);
    if (job !== selected) return;
    fillBoundMetrics(front.objectives, front.directions);
    document.getElementById("detail").hidden = false;
    document.getElementById("detail-id").textContent = job;
    updateActions();
    document.getElementById("front-summary").textContent =
      `${front.front.length} Pareto-optimal of ${front.evaluated} evaluated (${front.state}), hypervolume ${fmt(front.hypervolume)}` +
      (front.reference ? ` — the objective space dominated by the feasible front, measured from the reference ` +
        Object.entries(front.reference).map(([k, v]) => `${k} ${fmt(v)}`).join(", ") +
        (front.reference_fixed ? " (fixed for this job: it never decreases; jobs with the same objectives and bounds compare)"
                               : " (the robust nadir of the trials so far: this job predates fixed references)") : "");
    const key = `${job}?${query}|${front.evaluated}|${front.hypervolume}`;
    if (key !== lastKeys.front) {
      drawFrontTable(front);
      const points = await getJSON(`/api/jobs/${job}/points?${query}`);
      drawScatter(points);
      drawHistory(await getJSON(`/api/jobs/${job}/history`));
      lastKeys.front = key;
    }
    const trialsKey = `${job}|${front.evaluated}|${jobsById[job]?.done}|${jobsById[job]?.running}|${trialFilterKey()}`;
    if (trialsKey !== lastKeys.trials) { await loadTrials(); lastKeys.trials = trialsKey; }
  } catch (err) { report(err); }
}

function latencyDevice() {
  const metric = (front?.objectives || []).find(m => m.startsWith("latency_ms@"));
  return metric ? metric.slice("latency_ms@".length) : "DEVICE";
}

function drawFrontTable(front) {
  document.querySelector("#front thead").replaceChildren(header(["trial", ...front.objectives, "arch", ""]));
  document.querySelector("#front tbody").replaceChildren(...front.front.map(t => {
    const tr = document.createElement("tr");
    tr.dataset.trial = t.trial_id;
    const arch = document.createElement("td"); const code = document.createElement("code");
    code.textContent = t.arch_text ?? JSON.stringify(t.arch); arch.append(code);
    const action = document.createElement("td"); const button = document.createElement("button");
    button.type = "button"; button.className = "export"; button.textContent = "export…";
    button.addEventListener("click", () => showExport(t)); action.append(button);
    tr.append(cell(t.trial_id), ...front.objectives.map(m => cell(fmt(t.metrics[m]))), arch, action);
    return tr;
  }));
}

// Export of a front member: its arch and metrics as a file, and the command that writes the
// deployable model (ONNX, TorchScript or safetensors) from the job's supernet.
function showExport(trial) {
  const box = document.getElementById("export");
  const command = `nas export ${selected} --trial ${trial.trial_id} --device ${latencyDevice()} --format onnx --out deploy/`;
  const kind = jobsById[selected]?.evaluator;
  const record = {job_id: selected, trial_id: trial.trial_id, arch: trial.arch, metrics: trial.metrics,
                  export_command: kind === "supernet" ? command : null};
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([JSON.stringify(record, null, 2)], {type: "application/json"}));
  link.download = `${selected}-trial-${trial.trial_id}.json`;
  link.textContent = `download trial ${trial.trial_id} (arch and metrics, JSON)`;
  const p1 = document.createElement("p"); p1.append(link);
  const p2 = document.createElement("p");
  if (kind === "supernet") {  // only a supernet holds the weights `nas export` writes
    const code = document.createElement("code"); code.id = "export-command"; code.textContent = command;
    p2.append("deployable model, checked against the supernet: ", code);
  } else {
    p2.id = "export-unavailable";
    p2.textContent = `no deployable model: this job's evaluator (${kind}) has no weights to export; ` +
      "`nas export` needs a job evaluated by a trained supernet (evaluator kind supernet)";
  }
  box.replaceChildren(p1, p2);
}

const COLOURS = {front: "#1f5fbf", feasible: "#999999", outside: "#999999", constraint: "#1f77b4", bound: "#ff7f0e"};

// Plotly reads <br>, <a href>, <b>... in text as markup: every name, metric and arch string goes
// through this, so user text is shown as text (the page's other text is set with textContent).
const plain = value => String(value).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

function drawScatter(points) {
  if (typeof Plotly === "undefined" || points.objectives.length < 2) return;
  const [yObj, xObj] = points.objectives;  // as the PNG: first objective up, second across
  const xs = points.values[xObj.metric], ys = points.values[yObj.metric];
  const metrics = Object.keys(points.values);
  const hover = i => [`trial ${points.trial_id[i]}`, ...metrics.map(m => `${plain(m)} = ${fmt(points.values[m][i])}`),
                      plain(points.arch[i])].join("<br>");
  const groups = {front: [], feasible: [], outside: []};
  points.trial_id.forEach((_, i) => {
    if (points.front[i]) groups.front.push(i);
    else if (points.feasible[i] && points.within_bounds[i]) groups.feasible.push(i);
    else groups.outside.push(i);
  });
  groups.front.sort((a, b) => xs[a] - xs[b]);
  // SVG always: Plotly's WebGL traces compile code at run time, which the page's
  // Content-Security-Policy (no 'unsafe-eval') forbids
  const type = "scatter";
  const trace = (name, idx, marker, extra = {}) => ({
    type, mode: "markers", name, x: idx.map(i => xs[i]), y: idx.map(i => ys[i]),
    text: idx.map(hover), customdata: idx.map(i => points.trial_id[i]), hovertemplate: "%{text}<extra></extra>",
    marker, ...extra,
  });
  const traces = [
    trace("evaluated (feasible)", groups.feasible, {color: COLOURS.feasible, size: 6}),
    trace("breaks a constraint or bound", groups.outside, {color: COLOURS.outside, size: 7, symbol: "circle-open"}),
    trace("Pareto front", groups.front, {color: COLOURS.front, size: 9},
          {mode: "lines+markers", line: {shape: yObj.direction === "max" ? "hv" : "vh", color: COLOURS.front}}),
  ];
  const shapes = [];
  const line = (c, colour) => {
    for (const [value, axis] of [[c.max, c.metric], [c.min, c.metric]]) {
      if (value === null || value === undefined) continue;
      if (axis === xObj.metric) shapes.push({type: "line", xref: "x", yref: "paper", x0: value, x1: value, y0: 0, y1: 1, line: {dash: "dash", color: colour}});
      if (axis === yObj.metric) shapes.push({type: "line", xref: "paper", yref: "y", y0: value, y1: value, x0: 0, x1: 1, line: {dash: "dash", color: colour}});
    }
  };
  points.constraints.forEach(c => line(c, COLOURS.constraint));
  points.bounds.forEach(c => line(c, COLOURS.bound));
  Plotly.react("scatter", traces, {
    uirevision: selected, margin: {t: 30, r: 10}, title: {text: `${points.trial_id.length} evaluated`, font: {size: 13}},
    xaxis: {title: {text: `${plain(xObj.metric)} (${xObj.direction})`}},
    yaxis: {title: {text: `${plain(yObj.metric)} (${yObj.direction})`}},
    shapes, legend: {orientation: "h", y: -0.2},
  }, {displaylogo: false, responsive: true});
  const plot = document.getElementById("scatter");
  if (!plot.dataset.bound) {  // clicking a front member offers its export
    plot.on("plotly_click", event => {
      const id = event.points[0]?.customdata;
      const member = front?.front.find(t => t.trial_id === id);
      if (member) showExport(member);
    });
    plot.dataset.bound = "1";
  }
}

function drawHistory(history) {
  if (typeof Plotly === "undefined") return;
  Plotly.react("hv", [{type: "scatter", mode: "lines+markers", line: {shape: "hv"}, x: history.evaluations, y: history.hypervolume,
                       hovertemplate: "%{x} evaluations<br>hypervolume %{y:.4g}<extra></extra>"}], {
    uirevision: selected, margin: {t: 30, r: 10}, title: {text: "hypervolume", font: {size: 13}},
    xaxis: {title: {text: "evaluations"}}, yaxis: {title: {text: "hypervolume"}},
  }, {displaylogo: false, responsive: true});
}

// ------------------------------------------------------------------ trials
const trialFilterKey = () => `${document.getElementById("trial-state").value}|${document.getElementById("trial-filter").value}`;

async function loadTrials() {
  const state = document.getElementById("trial-state").value;
  const needle = document.getElementById("trial-filter").value.trim();
  // the server filters and pages: the latest TRIAL_ROWS matching trials, and how many match in all
  const query = new URLSearchParams({order: "desc", limit: String(TRIAL_ROWS)});
  if (state) query.set("state", state);
  if (needle) query.set("contains", needle);
  const {body: shown, headers} = await getResponse(`/api/jobs/${selected}/trials?${query}`);
  const matching = Number(headers.get("X-Total-Count")), all = Number(headers.get("X-Job-Trials"));
  const metrics = [...new Set(shown.flatMap(t => Object.keys(t.metrics)))];
  document.getElementById("trials-summary").textContent =
    `${matching} of ${all} trials` + (matching > TRIAL_ROWS ? ` (latest ${TRIAL_ROWS} shown)` : "");
  document.querySelector("#trials thead").replaceChildren(header(["trial", "state", ...metrics, "arch", "error"]));
  document.querySelector("#trials tbody").replaceChildren(...shown.map(t => {
    const tr = document.createElement("tr");
    const arch = document.createElement("td"); const code = document.createElement("code");
    code.textContent = t.arch_text ?? JSON.stringify(t.arch); arch.append(code);
    const state = cell(t.state); state.className = "state-" + (t.state === "complete" ? "done" : t.state);
    tr.append(cell(t.trial_id), state, ...metrics.map(m => cell(fmt(t.metrics[m]))), arch, cell(t.error || ""));
    return tr;
  }));
}

document.getElementById("trial-filters").addEventListener("submit", event => event.preventDefault());
document.getElementById("trial-state").addEventListener("change", () => loadTrials().catch(report));
document.getElementById("trial-filter").addEventListener("input", () => loadTrials().catch(report));
document.getElementById("bounds").addEventListener("submit", event => { event.preventDefault(); loadDetail(); });
for (const input of document.querySelectorAll("#bounds input, #bounds select")) input.addEventListener("change", () => loadDetail());

// ------------------------------------------------------------------ submit
document.getElementById("submit").addEventListener("submit", async event => {
  event.preventDefault();
  try {
    const job = await getJSON("/api/jobs", {
      method: "POST", headers: {"Content-Type": "application/yaml"}, body: event.target.spec.value,
    });
    showError("submit-error", "");
    select(job.job_id);
  } catch (err) {
    // its own line, which the refresh leaves alone: it stays until dismissed or the next good submit
    if (!(err instanceof Unauthorized)) {
      showError("submit-error", err.message);
      document.getElementById("submit-error").scrollIntoView({block: "nearest"});  // where the eye is
    }
  }
});

async function start() {
  try {
    const info = await getJSON("/api/info");
    document.getElementById("login").hidden = true;
    document.getElementById("login-error").textContent = "";
    document.getElementById("store").textContent = `store: ${info.store}`;
    await loadJobs();
  } catch (err) { report(err); }
}

document.getElementById("login").addEventListener("submit", event => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, event.target.token.value.trim());
  event.target.token.value = "";
  start();
});

start();
setInterval(() => {
  if (!sessionStorage.getItem(TOKEN_KEY) && !document.getElementById("login").hidden) return;
  loadJobs().catch(() => {});
  if (selected) loadDetail();
}, 3000);
