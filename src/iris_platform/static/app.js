// The dashboard: forms that call the API, result cards, and the MLflow runs it reads back.
// Every value from the server is put on the page as text (textContent), never parsed as HTML.
"use strict";

const IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"];
const IRIS_DEFAULTS = { sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 };
const RUNS_PAGE = 50;
let currentExperiment = "";

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

async function api(path, options = {}) {
  const response = await fetch(path, options);
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

function renderPrediction(data) {
  showResult("prediction", "Prediction",
    el("div", { class: "big", text: data.class_name }),
    el("div", { class: "stats" }, stat("Confidence", pct(data.confidence)), stat("Class index", String(data.prediction))),
    ...Object.entries(data.probabilities).map(([name, p]) => bar(name, p, pct(p))),
    data.out_of_range_features?.length
      ? el("p", { class: "run-meta", text: `Outside the training range: ${data.out_of_range_features.join(", ")}` })
      : null,
    el("p", { class: "run-meta", text: `prediction id ${data.prediction_id}` }));
}

function renderBatch(data) {
  const s = data.batch_statistics;
  showResult("batch", "Batch prediction",
    el("div", { class: "stats" },
      stat("Samples", String(data.total_samples)), stat("Avg confidence", pct(s.avg_confidence)),
      stat("Min confidence", pct(s.min_confidence)), stat("Max confidence", pct(s.max_confidence))),
    el("h3", { text: "Class distribution" }),
    ...Object.entries(s.prediction_distribution).map(([name, count]) =>
      bar(name, count / data.total_samples, `${count} · ${(100 * count / data.total_samples).toFixed(1)}%`)),
    el("p", { class: "run-meta", text: `run ${data.run_id}` }));
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
    setTimeout(refreshRuns, 800); // the run is written by the background writer
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

function runSummaryLine(run) {
  const m = run.metrics, p = run.params;
  if (run.run_type === "training") {
    return [`accuracy ${pct(m.accuracy)}`, `F1 ${pct(m.f1_score)}`, `samples ${p.n_samples ?? "–"}`, p.data_source ?? ""];
  }
  const confidence = m.prediction_confidence ?? m.avg_confidence;
  const samples = m.total_samples ?? 1;
  return [`type ${p.prediction_type ?? "–"}`, `confidence ${pct(confidence)}`, `samples ${fmt(samples)}`,
    p.predicted_class ? `class ${p.predicted_class}` : (p.input_file ? `file ${p.input_file}` : "")];
}

function renderRuns(runs) {
  const list = document.getElementById("runs");
  list.replaceChildren();
  if (runs.length === 0) list.append(el("li", { class: "empty", text: "No runs yet." }));
  for (const run of runs) {
    const item = el("li", { class: `run ${run.run_type}`, tabindex: "0", role: "button", "data-run-id": run.run_id },
      el("div", { class: "run-head" },
        el("span", { class: `badge ${run.run_type}`, text: run.run_type }),
        el("span", { class: "run-name", text: run.run_name }),
        el("small", { class: "run-meta", text: run.status })),
      el("div", { class: "run-meta" },
        el("span", { text: new Date(run.start_time).toLocaleString() }),
        ...runSummaryLine(run).filter(Boolean).map((t) => el("span", { text: t }))));
    item.addEventListener("click", () => openRun(run.run_id));
    item.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); openRun(run.run_id); } });
    list.append(item);
  }
}

function keyValueTable(entries) {
  if (entries.length === 0) return el("p", { class: "empty", text: "None." });
  return el("table", {}, el("tbody", {}, ...entries.map(([k, v]) => el("tr", {}, el("th", { text: k }), el("td", { text: fmt(v, 4) })))));
}

async function openRun(runId) {
  const dialog = document.getElementById("run-dialog");
  const body = document.getElementById("run-dialog-body");
  try {
    const run = await api(`/mlflow/run/${encodeURIComponent(runId)}`);
    document.getElementById("run-dialog-title").textContent = run.run_name;
    body.replaceChildren(
      el("p", { class: "run-meta", text: `${run.experiment_name} · ${run.status} · ${run.start_time} · ${run.run_id}` }),
      el("h3", { text: "Params" }), keyValueTable(Object.entries(run.params).sort()),
      el("h3", { text: "Metrics" }), keyValueTable(Object.entries(run.metrics).sort()),
      el("h3", { text: "Tags" }), keyValueTable(Object.entries(run.tags).sort()),
      el("h3", { text: "Artifacts" }), keyValueTable(run.artifacts.map((a) => [a.path, `${a.size_bytes ?? "?"} bytes`])));
    if (!dialog.open) dialog.showModal();
  } catch (error) {
    showError("Opening the run", error);
  }
}

async function refreshRuns() {
  const query = new URLSearchParams({ max_results: String(RUNS_PAGE) });
  if (currentExperiment) query.set("experiment_name", currentExperiment);
  try {
    const [runs, summary] = await Promise.all([api(`/mlflow/runs?${query}`), api("/mlflow/summary")]);
    renderRuns(runs.runs);
    document.getElementById("summary").replaceChildren(
      stat("Total runs", String(summary.total_runs)), stat("Training runs", String(summary.training_runs)),
      stat("Inference runs", String(summary.inference_runs)), stat("Avg accuracy", pct(summary.avg_accuracy)));
  } catch (error) {
    document.getElementById("runs").replaceChildren(el("li", { class: "empty", text: error.message }));
  }
}

function selectTab(tab) {
  for (const other of document.querySelectorAll(".tab")) {
    const active = other === tab;
    other.classList.toggle("active", active);
    other.setAttribute("aria-selected", String(active));
  }
  currentExperiment = tab.dataset.experiment;
  refreshRuns();
}

async function refreshAll() {
  await Promise.all([loadHealth(), loadModels(), refreshRuns()]);
}

document.addEventListener("DOMContentLoaded", () => {
  renderFeatureInputs(IRIS_FEATURES);
  document.getElementById("train-form").addEventListener("submit", onTrain);
  document.getElementById("predict-form").addEventListener("submit", onPredict);
  document.getElementById("batch-form").addEventListener("submit", onBatch);
  document.getElementById("refresh").addEventListener("click", refreshAll);
  for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => selectTab(tab));
  const dialog = document.getElementById("run-dialog");
  document.getElementById("run-dialog-close").addEventListener("click", () => dialog.close());
  dialog.addEventListener("click", (e) => { if (e.target === dialog) dialog.close(); });
  refreshAll();
});
