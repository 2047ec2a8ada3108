// The "MLflow runs" card: summary, tabs, search, sortable and paged table, export link. The view lives in the URL (view.js).

import { api } from "./api.js";
import { refreshCharts } from "./charts.js";
import { select, selected } from "./compare.js";
import {
  M_ACCURACY, M_AVG_CONFIDENCE, M_F1, M_PREDICTION_CONFIDENCE, M_TOTAL_SAMPLES, ORDER_BY_SAMPLES, ORDER_BY_START_TIME,
  P_DATA_SOURCE, P_INPUT_FILE, P_N_SAMPLES, P_N_TRIALS, P_PREDICTED_CLASS, P_PREDICTION_TYPE, P_SEARCH, P_SEARCH_SPACE,
  P_TRIAL, P_TUNING_METRIC, RUN_KIND_TRIAL, RUN_KIND_TUNING, RUN_TYPE_TRAINING, orderByMetric,
} from "./contract.js";
import { el, stat } from "./dom.js";
import { MISSING, formatDateTime, formatNumber, formatPercent, formatTime } from "./format.js";
import { openRun } from "./run-dialog.js";
import { readView, runsQuery, view, writeView } from "./view.js";

export const RUNS_PAGE = 25; // runs per page
const COLUMNS = 9;
/** Each sortable column header (its data-column) and the API's order_by for it. */
export const SORT_COLUMNS = {
  started: ORDER_BY_START_TIME,
  accuracy: orderByMetric(M_ACCURACY),
  f1: orderByMetric(M_F1),
  confidence: orderByMetric(M_PREDICTION_CONFIDENCE),
  samples: ORDER_BY_SAMPLES,
};

function metricCell(value, percent = true) {
  return el("td", { text: value === undefined ? MISSING : (percent ? formatPercent(value) : formatNumber(value)) });
}

/** A training run's kind: a tuning's run (its search space is a param), one of its trials (its number), or null. */
export function runKind(run) {
  if (run.run_type !== RUN_TYPE_TRAINING) return null;
  if (run.params[P_SEARCH_SPACE] !== undefined) return RUN_KIND_TUNING;
  return run.params[P_TRIAL] !== undefined ? RUN_KIND_TRIAL : null;
}

/** The small line under a run's name: a training run's data source, an inference run's type and class; the file.
 * A tuning's run says its search, trials and metric; a trial's, its number. */
function runDetails(run) {
  const p = run.params;
  const kind = runKind(run);
  if (kind === RUN_KIND_TUNING) return `tuning · ${p[P_SEARCH]} search · ${p[P_N_TRIALS]} trials · by ${p[P_TUNING_METRIC]}`;
  if (kind === RUN_KIND_TRIAL) return `trial ${p[P_TRIAL]} of a tuning · ${p[P_DATA_SOURCE] ?? ""}`;
  const what = run.run_type === RUN_TYPE_TRAINING
    ? (p[P_DATA_SOURCE] ?? "")
    : `type ${p[P_PREDICTION_TYPE] ?? MISSING}${p[P_PREDICTED_CLASS] ? ` · ${p[P_PREDICTED_CLASS]}` : ""}`;
  return what + (p[P_INPUT_FILE] ? ` · ${p[P_INPUT_FILE]}` : "");
}

/** A training run's samples are its data set's rows (a param); an inference run's, the rows it predicted. */
function samples(run) {
  if (run.run_type === RUN_TYPE_TRAINING) return run.params[P_N_SAMPLES] === undefined ? undefined : Number(run.params[P_N_SAMPLES]);
  return run.metrics[M_TOTAL_SAMPLES] ?? 1;
}

function runRow(run) {
  const m = run.metrics;
  const pick = el("input", { type: "checkbox", "aria-label": `Select ${run.run_name} to compare` });
  pick.checked = selected.has(run.run_id);
  pick.disabled = run.run_type !== RUN_TYPE_TRAINING || runKind(run) === RUN_KIND_TUNING; // a tuning's run has no model
  pick.addEventListener("click", (e) => e.stopPropagation());
  pick.addEventListener("change", () => select(run, pick.checked));
  const row = el("tr", { class: run.run_type, tabindex: "0", "data-run-id": run.run_id, "aria-label": `Open run ${run.run_name}` },
    el("td", {}, pick),
    el("td", {}, el("span", { class: `badge ${run.run_type}`, text: run.run_type })),
    el("td", { class: "run-name" }, el("div", { text: run.run_name }), el("small", { class: "run-meta", text: runDetails(run) })),
    el("td", { text: formatDateTime(run.start_time) }),
    el("td", { text: run.status }),
    metricCell(m[M_ACCURACY]), metricCell(m[M_F1]),
    metricCell(m[M_PREDICTION_CONFIDENCE] ?? m[M_AVG_CONFIDENCE]),
    metricCell(samples(run), false));
  if (runKind(run)) row.dataset.runKind = runKind(run);
  row.addEventListener("click", () => openRun(run.run_id));
  row.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); openRun(run.run_id); } });
  return row;
}

function renderRuns(data) {
  const body = document.getElementById("runs");
  body.replaceChildren();
  if (data.runs.length === 0) {
    body.append(el("tr", {}, el("td", { colspan: String(COLUMNS), class: "empty", text: view.q ? "No run matches the search." : "No runs yet." })));
  }
  body.append(...data.runs.map(runRow));
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

function renderSummary(summary) {
  document.getElementById("summary").replaceChildren(
    stat("Total runs", String(summary.total_runs)), stat("Training runs", String(summary.training_runs)),
    stat("Inference runs", String(summary.inference_runs)), stat("Avg accuracy", formatPercent(summary.avg_accuracy)));
}

/** Read the view's page of runs, the summary and the trends again. */
export async function refreshRuns() {
  writeView();
  try {
    const [runs, summary] = await Promise.all([
      api(`/mlflow/runs?${runsQuery({ max_results: String(RUNS_PAGE), page: String(view.page) })}`),
      api("/mlflow/summary"),
    ]);
    if (runs.page > runs.pages && runs.total > 0) { view.page = runs.pages; return refreshRuns(); }
    renderRuns(runs);
    renderSummary(summary);
    document.getElementById("last-refresh").textContent = `Last refreshed ${formatTime()}`;
    await refreshCharts();
  } catch (error) {
    document.getElementById("runs").replaceChildren(el("tr", {}, el("td", { colspan: String(COLUMNS), class: "empty", text: error.message })));
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

/** Take the view from the URL and wire the tabs, search, sort headers and pager (the first refresh is the caller's). */
export function initRuns() {
  readView();
  selectTab(view.tab);
  document.getElementById("run-search").value = view.q;
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
    button.dataset.sort = SORT_COLUMNS[button.dataset.column];
    button.addEventListener("click", () => {
      view.order = view.sort === button.dataset.sort && view.order === "desc" ? "asc" : "desc";
      view.sort = button.dataset.sort;
      view.page = 1;
      refreshRuns();
    });
  }
  document.getElementById("prev-page").addEventListener("click", () => { view.page = Math.max(1, view.page - 1); refreshRuns(); });
  document.getElementById("next-page").addEventListener("click", () => { view.page += 1; refreshRuns(); });
}
