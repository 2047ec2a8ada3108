// Comparing training runs: the runs ticked in the table, side by side, with a button to serve each one's model.
// The model type and its hyperparameters come first, then the other params; the held-out metrics, then the
// cross-validation means and deviations and the curve areas, then any other metric.

import { api } from "./api.js";
import {
  M_AVERAGE_PRECISION, M_ROC_AUC, P_CV_FOLDS, P_MODEL_TYPE, P_TEST_SIZE, TRAINING_METRICS, cvMetric,
} from "./contract.js";
import { el } from "./dom.js";
import { MISSING, formatDetail } from "./format.js";
import { byEstimatorClass, modelTypes } from "./model-types.js";
import { loadModel } from "./models.js";
import { showError } from "./results.js";

const METRIC_ORDER = [
  ...TRAINING_METRICS,
  ...TRAINING_METRICS.flatMap((m) => [cvMetric(m, "mean"), cvMetric(m, "std")]),
  M_ROC_AUC, M_AVERAGE_PRECISION,
];

export const selected = new Map(); // run id -> run, the training runs ticked for comparison

/** Tick or untick a run; the Compare button counts them and needs two. */
export function select(run, on) {
  if (on) selected.set(run.run_id, run); else selected.delete(run.run_id);
  updateCompareButton();
}

function updateCompareButton() {
  const button = document.getElementById("compare");
  button.textContent = `Compare selected (${selected.size})`;
  button.disabled = selected.size < 2;
}

export async function openCompare() {
  const dialog = document.getElementById("compare-dialog");
  try {
    const runs = await Promise.all([...selected.keys()].map((id) => api(`/mlflow/run/${encodeURIComponent(id)}`)));
    const [models, catalog] = await Promise.all([
      api("/models").then((answer) => answer.models),
      modelTypes().catch(() => null), // without it the hyperparameters are listed among the params
    ]);
    renderCompare(runs, models, catalog);
    if (!dialog.open) dialog.showModal();
  } catch (error) {
    showError("Comparing runs", error);
  }
}

/** The hyperparameters of the compared runs' model types (known from GET /model_types), in the types' order. */
function hyperparameters(runs, catalog) {
  return [...new Set(runs.flatMap((r) =>
    (byEstimatorClass(catalog, r.params[P_MODEL_TYPE])?.hyperparameters ?? []).map((h) => h.name)))];
}

/** The keys the runs have, those of `first` in its order, the rest alphabetically. */
function ordered(runs, field, first) {
  const rank = new Map(first.map((k, i) => [k, i]));
  const at = (k) => rank.get(k) ?? Infinity;
  return [...new Set(runs.flatMap((r) => Object.keys(r[field])))].sort((a, b) => at(a) - at(b) || (a < b ? -1 : a > b ? 1 : 0));
}

function renderCompare(runs, models, catalog) {
  const onlyDiffs = document.getElementById("only-differences").checked;
  const modelKeys = new Set([P_MODEL_TYPE, ...hyperparameters(runs, catalog)]);
  const keys = {
    params: ordered(runs, "params", [...modelKeys, P_CV_FOLDS, P_TEST_SIZE]),
    metrics: ordered(runs, "metrics", METRIC_ORDER),
  };
  const rows = [];
  for (const [field, label] of [["params", "param"], ["metrics", "metric"]]) {
    for (const key of keys[field]) {
      const values = runs.map((r) => r[field][key]);
      const differs = new Set(values.map(String)).size > 1;
      if (onlyDiffs && !differs) continue;
      const kind = field === "params" && modelKeys.has(key) ? "model" : "";
      rows.push(el("tr", { class: [differs ? "differs" : "", kind].filter(Boolean).join(" "), "data-key": key },
        el("th", { scope: "row", text: `${label} ${key}` }),
        ...values.map((v) => el("td", { text: v === undefined ? MISSING : formatDetail(v) }))));
    }
  }
  const loadButtons = runs.map((run) => {
    const model = models.find((m) => m.run_id === run.run_id);
    if (!model) return el("td", { text: "no registered version" });
    const button = el("button", { type: "button", class: "secondary", text: model.is_current ? "Serving" : "Load this model",
      "aria-label": `Load the model of ${run.run_name}` });
    button.disabled = model.is_current;
    button.addEventListener("click", async () => { await loadModel(model, button); openCompare(); });
    return el("td", {}, button);
  });
  document.getElementById("compare-body").replaceChildren(el("table", { class: "compare-table" },
    el("thead", {}, el("tr", {}, el("th", { text: "" }), ...runs.map((r) => el("th", { scope: "col", text: r.run_name })))),
    el("tbody", {}, ...rows, el("tr", {}, el("th", { scope: "row", text: "model" }), ...loadButtons))));
}

/** Wire the Compare button and the "only what differs" box. */
export function initCompare() {
  document.getElementById("compare").addEventListener("click", openCompare);
  document.getElementById("only-differences").addEventListener("change", openCompare);
}
