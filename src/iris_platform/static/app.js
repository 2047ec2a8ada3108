// The dashboard: forms that call the API, result cards, and the MLflow runs it reads back.
// Every value from the server is put on the page as text (textContent), never parsed as HTML.
"use strict";

const IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"];
const IRIS_DEFAULTS = { sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 };
const RUNS_PAGE = 25;
const CHART_RUNS = 200;
const TABS = { all: null, training: "training", inference: "inference" };
// The runs view: tab, search, sort and page, mirrored in the URL so a view can be shared.
const view = { tab: "all", q: "", sort: "start_time", order: "desc", page: 1 };
const selected = new Map(); // run id -> run, training runs picked for comparison
const charts = {};
let autoRefreshTimer = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

const fmt = (value, digits = 3) =>
  typeof value === "number" ? (Number.isInteger(value) ? String(value) : value.toFixed(digits)) : String(value ?? "–");
const pct = (value) => (typeof value === "number" ? (value * 100).toFixed(1) + "%" : "–");

function askForToken() {
  const dialog = document.getElementById("token-dialog");
  const input = document.getElementById("token-input");
  input.value = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      if (input.value) sessionStorage.setItem("iris-api-token", input.value);
      resolve(Boolean(input.value));
    }, { once: true });
  });
}

async function api(path, options = {}, retried = false) {
  const token = sessionStorage.getItem("iris-api-token");
  const headers = { ...(options.headers || {}), ...(token ? { Authorization: `Bearer ${token}` } : {}) };
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401 && !retried && await askForToken()) return api(path, options, true);
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON */ }
  if (!response.ok) {
    let detail = body && body.detail !== undefined ? body.detail : response.statusText;
    if (typeof detail !== "string") detail = JSON.stringify(detail);
    throw new Error(`${response.status}: ${detail}`);
  }
  return body;
}

function stat(label, value) {
  return el("div", { class: "stat" }, el("span", { class: "value", text: value }), el("span", { class: "label", text: label }));
}

function bar(name, fraction, label) {
  const fill = el("div", { class: "fill" });
  fill.style.width = `${Math.max(0, Math.min(1, fraction)) * 100}%`;
  return el("div", { class: "bar" },
    el("span", { class: "name", text: name, title: name }),
    el("div", { class: "track" }, fill),
    el("span", { text: label }));
}

function showResult(kind, title, ...content) {
  const results = document.getElementById("results");
  const card = el("article", { class: `card result ${kind}`, "data-result": kind }, el("h3", { text: title }), ...content);
  results.querySelector(`[data-result="${kind}"]`)?.remove();
  results.querySelector('[data-result="error"]')?.remove();
  results.prepend(card);
}

function showError(action, error) {
  showResult("error", `${action} failed`, el("p", { text: error.message }));
}

async function withBusy(form, action, work) {
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try { await work(); } catch (error) { showError(action, error); } finally { button.disabled = false; }
}

// ---- health and models ---------------------------------------------------------------------

async function loadHealth() {
  const box = document.getElementById("health");
  try {
    const health = await api("/health");
    const model = health.model_loaded ? `model: ${health.current_model.split("/").pop()}` : "no model yet: train one";
    box.textContent = `● ${health.status} · ${model} · ${health.pending_inference_records} record(s) waiting for MLflow`;
  } catch (error) {
    box.textContent = `Server unreachable: ${error.message}`;
  }
}

function renderFeatureInputs(features) {
  const box = document.getElementById("feature-inputs");
  const previous = Object.fromEntries([...box.querySelectorAll("input")].map((i) => [i.name, i.value]));
  box.replaceChildren();
  for (const name of features) {
    const id = `feature-${name}`;
    const value = previous[name] ?? IRIS_DEFAULTS[name] ?? "";
    box.append(el("div", {},
      el("label", { for: id, text: name }),
      el("input", { id, name, type: "number", step: "any", required: "", value: String(value) })));
  }
}

async function loadModels() {
  const list = document.getElementById("models");
  try {
    const data = await api("/models");
    list.replaceChildren();
    const current = data.models.find((m) => m.is_current);
    renderFeatureInputs(current ? current.metadata.feature_names : IRIS_FEATURES);
    if (data.models.length === 0) list.append(el("li", { class: "empty", text: "No saved models yet." }));
    for (const model of data.models) {
      const meta = model.metadata || {};
      const info = el("div", {},
        el("div", { text: model.filename, class: model.is_current ? "current" : "" }),
        el("small", { text: `${meta.data_source ?? ""} · accuracy ${fmt(meta.metrics?.accuracy)}${model.is_current ? " · serving" : ""}` }));
      const button = el("button", { type: "button", class: "secondary", text: model.is_current ? "Current" : "Load",
        "aria-label": `Load model ${model.filename}` });
      button.disabled = model.is_current;
      button.addEventListener("click", () => loadModel(model.path, button));
      list.append(el("li", {}, info, button));
    }
  } catch (error) {
    list.replaceChildren(el("li", { class: "empty", text: error.message }));
  }
}

async function loadModel(path, button) {
  button.disabled = true;
  try {
    const body = new FormData();
    body.append("model_path", path);
    const data = await api("/load_model", { method: "POST", body });
    showResult("model", "Model loaded", el("p", { text: data.model_path }));
    await Promise.all([loadModels(), loadHealth()]);
  } catch (error) {
    showError("Loading the model", error);
    button.disabled = false;
  }
}

// ---- actions --------------------------------------------------------------------------------

function renderTraining(data) {
  const classes = data.model_metadata.class_names;
  const matrix = el("table", {},
    el("thead", {}, el("tr", {}, el("th", { text: "true \\ predicted" }), ...classes.map((c) => el("th", { text: c })))),
    el("tbody", {}, ...data.confusion_matrix.map((row, i) =>
      el("tr", {}, el("th", { text: classes[i] }), ...row.map((n) => el("td", { text: String(n) }))))));
  showResult("training", "Training result",
    el("div", { class: "stats" },
      stat("Accuracy", pct(data.accuracy)), stat("Precision", pct(data.precision)),
      stat("Recall", pct(data.recall)), stat("F1 score", pct(data.f1_score))),
    el("p", { class: "run-meta", text: `run ${data.run_id} · ${data.model_path}` }),
    el("h3", { text: "Confusion matrix" }), matrix);
}

function chartBox(id, label) {
  return el("div", { class: "chart-box" }, el("canvas", { id, role: "img", "aria-label": label }));
}

function drawChart(id, config) {
  charts[id]?.destroy();
  const canvas = document.getElementById(id);
  if (!canvas || typeof Chart === "undefined") return;
  charts[id] = new Chart(canvas, { ...config, options: { responsive: true, maintainAspectRatio: false, animation: false, ...config.options } });
}

function classBarChart(id, labels, values, axisLabel, max) {
  drawChart(id, {
    type: "bar",
    data: { labels, datasets: [{ label: axisLabel, data: values, backgroundColor: "#7c6ee6" }] },
    options: {
      plugins: { legend: { display: false } },
      scales: {
        x: { title: { display: true, text: "class" } },
        y: { beginAtZero: true, max, title: { display: true, text: axisLabel } },
      },
    },
  });
}

function renderPrediction(data) {
  const names = Object.keys(data.probabilities);
  showResult("prediction", "Prediction",
    el("div", { class: "big", text: data.class_name }),
    el("div", { class: "stats" }, stat("Confidence", pct(data.confidence)), stat("Class index", String(data.prediction))),
    chartBox("probability-chart", "Class probabilities"),
    ...Object.entries(data.probabilities).map(([name, p]) => bar(name, p, pct(p))),
    data.out_of_range_features?.length
      ? el("p", { class: "run-meta", text: `Outside the training range: ${data.out_of_range_features.join(", ")}` })
      : null,
    el("p", { class: "run-meta", text: `prediction id ${data.prediction_id}` }));
  classBarChart("probability-chart", names, names.map((n) => data.probabilities[n]), "probability", 1);
}

function renderBatch(data) {
  const s = data.batch_statistics;
  showResult("batch", "Batch prediction",
    el("div", { class: "stats" },
      stat("Samples", String(data.total_samples)), stat("Avg confidence", pct(s.avg_confidence)),
      stat("Min confidence", pct(s.min_confidence)), stat("Max confidence", pct(s.max_confidence))),
    el("h3", { text: "Class distribution" }),
    chartBox("distribution-chart", "Predicted class distribution"),
    ...Object.entries(s.prediction_distribution).map(([name, count]) =>
      bar(name, count / data.total_samples, `${count} · ${(100 * count / data.total_samples).toFixed(1)}%`)),
    el("p", { class: "run-meta" },
      `run ${data.run_id}${data.truncated ? ` · first ${data.predictions.length} rows shown · ` : " · "}`,
      el("a", { href: data.predictions_url, download: "predictions.csv", text: "download predictions CSV" })));
  const dist = s.prediction_distribution;
  classBarChart("distribution-chart", Object.keys(dist), Object.values(dist), "rows predicted");
}

function onTrain(event) {
  event.preventDefault();
  const form = event.currentTarget;
  withBusy(form, "Training", async () => {
    const body = new FormData(form);
    if (!form.querySelector("#train-file").files.length) body.delete("file");
    if (!body.get("target_column")) body.delete("target_column");
    renderTraining(await api("/train", { method: "POST", body }));
    await refreshAll();
  });
}

function onPredict(event) {
  event.preventDefault();
  const form = event.currentTarget;
  withBusy(form, "Prediction", async () => {
    renderPrediction(await api("/predict", { method: "POST", body: new FormData(form) }));
    setTimeout(refreshRuns, 1500); // the run is written by the background tracking worker
    loadHealth();
  });
}

function onBatch(event) {
  event.preventDefault();
  const form = event.currentTarget;
  withBusy(form, "Batch prediction", async () => {
    renderBatch(await api("/predict_batch", { method: "POST", body: new FormData(form) }));
    await refreshRuns();
  });
}

// ---- MLflow runs ----------------------------------------------------------------------------

function readView() {
  const query = new URLSearchParams(location.search);
  view.tab = query.get("tab") in TABS ? query.get("tab") : "all";
  view.q = query.get("q") || "";
  view.sort = query.get("sort") || "start_time";
  view.order = query.get("order") === "asc" ? "asc" : "desc";
  view.page = Math.max(1, parseInt(query.get("page"), 10) || 1);
}

function writeView() {
  const query = new URLSearchParams();
  if (view.tab !== "all") query.set("tab", view.tab);
  if (view.q) query.set("q", view.q);
  if (view.sort !== "start_time") query.set("sort", view.sort);
  if (view.order !== "desc") query.set("order", view.order);
  if (view.page > 1) query.set("page", String(view.page));
  const search = query.toString();
  history.replaceState(null, "", search ? `?${search}` : location.pathname);
}

function runsQuery(extra = {}) {
  const query = new URLSearchParams({ order_by: view.sort, order: view.order, ...extra });
  if (TABS[view.tab]) query.set("run_type", TABS[view.tab]);
  if (view.q) query.set("search", view.q);
  return query;
}

function metricCell(value, percent = true) {
  return el("td", { text: value === undefined ? "–" : (percent ? pct(value) : fmt(value)) });
}

function renderRuns(data) {
  const body = document.getElementById("runs");
  body.replaceChildren();
  if (data.runs.length === 0) {
    body.append(el("tr", {}, el("td", { colspan: "9", class: "empty", text: view.q ? "No run matches the search." : "No runs yet." })));
  }
  for (const run of data.runs) {
    const m = run.metrics, p = run.params;
    const training = run.run_type === "training";
    const pick = el("input", { type: "checkbox", "aria-label": `Select ${run.run_name} to compare` });
    pick.checked = selected.has(run.run_id);
    pick.disabled = !training;
    pick.addEventListener("click", (e) => e.stopPropagation());
    pick.addEventListener("change", () => {
      if (pick.checked) selected.set(run.run_id, run); else selected.delete(run.run_id);
      updateCompareButton();
    });
    const row = el("tr", { class: run.run_type, tabindex: "0", "data-run-id": run.run_id, "aria-label": `Open run ${run.run_name}` },
      el("td", {}, pick),
      el("td", {}, el("span", { class: `badge ${run.run_type}`, text: run.run_type })),
      el("td", { class: "run-name" }, el("div", { text: run.run_name }),
        el("small", { class: "run-meta", text: (training ? (p.data_source ?? "") : `type ${p.prediction_type ?? "–"}${p.predicted_class ? ` · ${p.predicted_class}` : ""}`) + (p.input_file ? ` · ${p.input_file}` : "") })),
      el("td", { text: new Date(run.start_time).toLocaleString() }),
      el("td", { text: run.status }),
      metricCell(m.accuracy), metricCell(m.f1_score),
      metricCell(m.prediction_confidence ?? m.avg_confidence),
      // A training run's samples are its data set's rows (a param); an inference run's, the rows it predicted.
      metricCell(training ? (p.n_samples === undefined ? undefined : Number(p.n_samples)) : (m.total_samples ?? 1), false));
    row.addEventListener("click", () => openRun(run.run_id));
    row.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); openRun(run.run_id); } });
    body.append(row);
  }
  document.getElementById("page-info").textContent = `Page ${data.page} of ${data.pages} · ${data.total} run(s)`;
  document.getElementById("prev-page").disabled = data.page <= 1;
  document.getElementById("next-page").disabled = data.page >= data.pages;
  for (const button of document.querySelectorAll("button.sort")) {
    const active = button.dataset.sort === view.sort;
    if (active) button.setAttribute("aria-sort", view.order === "desc" ? "descending" : "ascending");
    else button.removeAttribute("aria-sort");
  }
  document.getElementById("export").href = `/mlflow/runs/export.csv?${runsQuery()}`;
}

function updateCompareButton() {
  const button = document.getElementById("compare");
  button.textContent = `Compare selected (${selected.size})`;
  button.disabled = selected.size < 2;
}

function keyValueTable(entries) {
  if (entries.length === 0) return el("p", { class: "empty", text: "None." });
  return el("table", {}, el("tbody", {}, ...entries.map(([k, v]) => el("tr", {}, el("th", { text: k }), el("td", {}, v instanceof Node ? v : fmt(v, 4))))));
}

async function openRun(runId) {
  const dialog = document.getElementById("run-dialog");
  const body = document.getElementById("run-dialog-body");
  try {
    const run = await api(`/mlflow/run/${encodeURIComponent(runId)}`);
    document.getElementById("run-dialog-title").textContent = run.run_name;
    const artifactLink = (a) => el("a", {
      href: `/mlflow/run/${encodeURIComponent(run.run_id)}/artifacts/${a.path.split("/").map(encodeURIComponent).join("/")}`,
      download: a.path.split("/").pop(), text: `download (${a.size_bytes ?? "?"} bytes)` });
    body.replaceChildren(
      el("p", { class: "run-meta", text: `${run.experiment_name} · ${run.status} · ${run.start_time} · ${run.run_id}` }),
      el("h3", { text: "Params" }), keyValueTable(Object.entries(run.params).sort()),
      el("h3", { text: "Metrics" }), keyValueTable(Object.entries(run.metrics).sort()),
      el("h3", { text: "Tags" }), keyValueTable(Object.entries(run.tags).sort()),
      el("h3", { text: "Artifacts" }), keyValueTable(run.artifacts.map((a) => [a.path, artifactLink(a)])));
    if (!dialog.open) dialog.showModal();
  } catch (error) {
    showError("Opening the run", error);
  }
}

async function openCompare() {
  const dialog = document.getElementById("compare-dialog");
  try {
    const runs = await Promise.all([...selected.keys()].map((id) => api(`/mlflow/run/${encodeURIComponent(id)}`)));
    const models = (await api("/models")).models;
    renderCompare(runs, models);
    if (!dialog.open) dialog.showModal();
  } catch (error) {
    showError("Comparing runs", error);
  }
}

function renderCompare(runs, models) {
  const onlyDiffs = document.getElementById("only-differences").checked;
  const keys = (field) => [...new Set(runs.flatMap((r) => Object.keys(r[field])))].sort();
  const rows = [];
  for (const [field, label] of [["params", "param"], ["metrics", "metric"]]) {
    for (const key of keys(field)) {
      const values = runs.map((r) => r[field][key]);
      const differs = new Set(values.map(String)).size > 1;
      if (onlyDiffs && !differs) continue;
      rows.push(el("tr", { class: differs ? "differs" : "" },
        el("th", { scope: "row", text: `${label} ${key}` }),
        ...values.map((v) => el("td", { text: v === undefined ? "–" : fmt(v, 4) }))));
    }
  }
  const loadButtons = runs.map((run) => {
    const model = models.find((m) => m.metadata?.run_id === run.run_id);
    if (!model) return el("td", { text: "model not in the models folder" });
    const button = el("button", { type: "button", class: "secondary", text: model.is_current ? "Serving" : "Load this model",
      "aria-label": `Load the model of ${run.run_name}` });
    button.disabled = model.is_current;
    button.addEventListener("click", async () => { await loadModel(model.path, button); openCompare(); });
    return el("td", {}, button);
  });
  document.getElementById("compare-body").replaceChildren(el("table", { class: "compare-table" },
    el("thead", {}, el("tr", {}, el("th", { text: "" }), ...runs.map((r) => el("th", { scope: "col", text: r.run_name })))),
    el("tbody", {}, ...rows, el("tr", {}, el("th", { scope: "row", text: "model" }), ...loadButtons))));
}

async function refreshCharts() {
  const fetchRuns = (type) => api(`/mlflow/runs?${new URLSearchParams({ run_type: type, max_results: String(CHART_RUNS) })}`);
  const [inference, training] = await Promise.all([fetchRuns("inference"), fetchRuns("training")]);
  const timeAxis = { type: "category", title: { display: true, text: "run start time" }, ticks: { maxTicksLimit: 8 } };
  const runs = inference.runs.slice().reverse();
  drawChart("confidence-chart", {
    type: "line",
    data: {
      labels: runs.map((r) => new Date(r.start_time).toLocaleTimeString()),
      datasets: [
        { label: "average confidence", data: runs.map((r) => r.metrics.avg_confidence ?? r.metrics.prediction_confidence ?? null), borderColor: "#2f6fdb", backgroundColor: "#2f6fdb" },
        { label: "minimum confidence", data: runs.map((r) => r.metrics.min_confidence ?? r.metrics.prediction_confidence ?? null), borderColor: "#c0392b", backgroundColor: "#c0392b" },
      ],
    },
    options: { scales: { x: timeAxis, y: { min: 0, max: 1, title: { display: true, text: "confidence" } } } },
  });
  const trained = training.runs.slice().reverse();
  drawChart("training-chart", {
    type: "line",
    data: {
      labels: trained.map((r) => new Date(r.start_time).toLocaleTimeString()),
      datasets: [
        { label: "accuracy", data: trained.map((r) => r.metrics.accuracy ?? null), borderColor: "#2e9d57", backgroundColor: "#2e9d57" },
        { label: "F1 score", data: trained.map((r) => r.metrics.f1_score ?? null), borderColor: "#764ba2", backgroundColor: "#764ba2" },
      ],
    },
    options: { scales: { x: timeAxis, y: { min: 0, max: 1, title: { display: true, text: "score" } } } },
  });
}

async function refreshRuns() {
  writeView();
  try {
    const [runs, summary] = await Promise.all([
      api(`/mlflow/runs?${runsQuery({ max_results: String(RUNS_PAGE), page: String(view.page) })}`),
      api("/mlflow/summary"),
    ]);
    if (runs.page > runs.pages && runs.total > 0) { view.page = runs.pages; return refreshRuns(); }
    renderRuns(runs);
    document.getElementById("summary").replaceChildren(
      stat("Total runs", String(summary.total_runs)), stat("Training runs", String(summary.training_runs)),
      stat("Inference runs", String(summary.inference_runs)), stat("Avg accuracy", pct(summary.avg_accuracy)));
    document.getElementById("last-refresh").textContent = `Last refreshed ${new Date().toLocaleTimeString()}`;
    await refreshCharts();
  } catch (error) {
    document.getElementById("runs").replaceChildren(el("tr", {}, el("td", { colspan: "9", class: "empty", text: error.message })));
  }
}

function selectTab(name) {
  view.tab = name;
  view.page = 1;
  for (const tab of document.querySelectorAll(".tab")) {
    const active = tab.dataset.tab === name;
    tab.classList.toggle("active", active);
    tab.setAttribute("aria-selected", String(active));
    tab.tabIndex = active ? 0 : -1;
  }
}

async function refreshAll() {
  await Promise.all([loadHealth(), loadModels(), refreshRuns()]);
}

function setAutoRefresh(on) {
  clearInterval(autoRefreshTimer);
  autoRefreshTimer = on ? setInterval(refreshAll, 5000) : null;
}

document.addEventListener("DOMContentLoaded", () => {
  readView();
  selectTab(view.tab);
  document.getElementById("run-search").value = view.q;
  renderFeatureInputs(IRIS_FEATURES);
  document.getElementById("train-form").addEventListener("submit", onTrain);
  document.getElementById("predict-form").addEventListener("submit", onPredict);
  document.getElementById("batch-form").addEventListener("submit", onBatch);
  document.getElementById("refresh").addEventListener("click", refreshAll);
  document.getElementById("auto-refresh").addEventListener("change", (e) => setAutoRefresh(e.target.checked));
  const tabs = [...document.querySelectorAll(".tab")];
  for (const tab of tabs) {
    tab.addEventListener("click", () => { selectTab(tab.dataset.tab); refreshRuns(); });
    tab.addEventListener("keydown", (e) => { // arrow keys move between tabs, as in any tab list
      const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
      if (!step) return;
      const next = tabs[(tabs.indexOf(tab) + step + tabs.length) % tabs.length];
      next.focus();
      next.click();
    });
  }
  let searchTimer = null;
  document.getElementById("run-search").addEventListener("input", (e) => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => { view.q = e.target.value.trim(); view.page = 1; refreshRuns(); }, 300);
  });
  for (const button of document.querySelectorAll("button.sort")) {
    button.addEventListener("click", () => {
      view.order = view.sort === button.dataset.sort && view.order === "desc" ? "asc" : "desc";
      view.sort = button.dataset.sort;
      view.page = 1;
      refreshRuns();
    });
  }
  document.getElementById("prev-page").addEventListener("click", () => { view.page = Math.max(1, view.page - 1); refreshRuns(); });
  document.getElementById("next-page").addEventListener("click", () => { view.page += 1; refreshRuns(); });
  document.getElementById("compare").addEventListener("click", openCompare);
  document.getElementById("only-differences").addEventListener("change", openCompare);
  for (const id of ["run-dialog", "compare-dialog"]) {
    const dialog = document.getElementById(id);
    document.getElementById(`${id}-close`).addEventListener("click", () => dialog.close());
    dialog.addEventListener("click", (e) => { if (e.target === dialog) dialog.close(); });
  }
  refreshAll();
});
