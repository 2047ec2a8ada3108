// The "Train a model" card and its result: the model type and its hyperparameters (as GET /model_types lists
// them), the held-out metrics, the cross-validation means and the confusion matrix.

import { post } from "./api.js";
import { M_ACCURACY, M_AVERAGE_PRECISION, M_F1, M_PRECISION, M_RECALL, M_ROC_AUC, cvMetric } from "./contract.js";
import { el, stat } from "./dom.js";
import { NO_LIMIT, formatDetail, formatHyperparameter, formatMeanStd, formatPercent } from "./format.js";
import { modelTypes } from "./model-types.js";
import { showResult, withBusy } from "./results.js";

// The /train answer carries the run's metrics under their MLflow names.
const SHOWN_METRICS = [["Accuracy", M_ACCURACY], ["Precision", M_PRECISION], ["Recall", M_RECALL], ["F1 score", M_F1]];
// A two-class target's areas under its curves.
const AREAS = [["ROC AUC", M_ROC_AUC], ["Average precision", M_AVERAGE_PRECISION]];

let catalog = null; // GET /model_types, once read

/** A hyperparameter's input id: its name with dashes (n_estimators -> n-estimators). */
export const hyperparameterId = (name) => name.replaceAll("_", "-");

/** What a hyperparameter allows, in short: "1 to 1000", "above 0, at most 1", "at least 1". */
function range(h) {
  if (h.minimum === null || h.minimum === undefined) return h.maximum === null || h.maximum === undefined ? "" : `at most ${h.maximum}`;
  const low = h.exclusive_minimum ? `above ${h.minimum}` : `${h.minimum}`;
  if (h.maximum === null || h.maximum === undefined) return h.exclusive_minimum ? low : `at least ${low}`;
  return h.exclusive_minimum ? `${low}, at most ${h.maximum}` : `${low} to ${h.maximum}`;
}

/** A select for a hyperparameter with choices, else a number input with its bounds (empty: the default, or no limit). */
function hyperparameterInput(h) {
  const id = hyperparameterId(h.name);
  const hint = [h.description, h.choices ? "" : range(h)].filter(Boolean).join(" · ");
  let input;
  if (h.choices) {
    input = el("select", { id, name: h.name, "aria-describedby": `${id}-hint` },
      ...h.choices.map((c) => el("option", { value: c, text: c })));
    input.value = h.default;
  } else {
    input = el("input", { id, name: h.name, type: "number", step: h.type === "integer" ? "1" : "any",
      "aria-describedby": `${id}-hint`, value: h.default === null ? "" : String(h.default) });
    // The browser checks the inclusive bounds; an exclusive minimum is the server's to refuse (its detail says so).
    if (h.minimum !== null && h.minimum !== undefined) input.min = String(h.minimum);
    if (h.maximum !== null && h.maximum !== undefined) input.max = String(h.maximum);
    input.placeholder = h.nullable ? NO_LIMIT : String(h.default);
  }
  return el("div", { class: "hyperparameter", "data-hyperparameter": h.name },
    el("label", { for: id, text: h.name }), input, el("small", { id: `${id}-hint`, class: "hint", text: hint }));
}

/** The chosen model type's hyperparameter inputs, with its defaults; only these are sent. */
function renderHyperparameters() {
  const type = catalog?.model_types.find((t) => t.name === document.getElementById("model-type").value);
  document.getElementById("model-type-class").textContent = type ? type.estimator_class : "";
  document.getElementById("hyperparameter-inputs").replaceChildren(...(type?.hyperparameters ?? []).map(hyperparameterInput));
  document.getElementById("hyperparameters").hidden = !type?.hyperparameters.length;
}

let loading = null; // the read in flight, so two callers fill the select once

/** Fill the model type select from GET /model_types (once; a failed read is tried again on the next call).
 * Until then the form trains the server's default. */
export function loadModelTypes() {
  loading ??= fillModelTypes().then((done) => { if (!done) loading = null; });
  return loading;
}

async function fillModelTypes() {
  const note = document.getElementById("model-type-class");
  try {
    catalog = await modelTypes();
  } catch (error) {
    note.textContent = `The model types could not be read (${error.message}): training uses the server's default.`;
    return false;
  }
  const select = document.getElementById("model-type");
  select.replaceChildren(...catalog.model_types.map((t) =>
    el("option", { value: t.name, text: t.name.replaceAll("_", " ") })));
  select.value = catalog.default;
  document.getElementById("cv-folds").max = String(catalog.max_cv_folds);
  document.getElementById("cv-folds-hint").textContent = `0: none; else 2 to ${catalog.max_cv_folds}`;
  renderHyperparameters();
  return true;
}

function keyValueTable(className, rows) {
  return el("table", { class: className }, el("tbody", {}, ...rows.map(([key, value]) =>
    el("tr", { "data-key": key }, el("th", { scope: "row", text: key }), el("td", { text: value })))));
}

/** The model trained: its type and scikit-learn class, what serves it, its hyperparameters. */
function modelSummary(data) {
  return keyValueTable("model-summary", [
    ["model type", `${data.model_type} (${data.model_metadata.model_type})`],
    ["runtime", data.runtime],
    ...Object.entries(data.hyperparameters).map(([name, value]) => [name, formatHyperparameter(value)]),
    ["preprocessing", preprocessingText(data)],
    ...Object.entries(data.text_features ?? {}).map(([feature, categories]) =>
      [`${feature} (text)`, categories.map((c) => c === "" ? "(blank)" : c).join(", ")]),
    ...(data.constant_columns?.length ? [["left out (one value)", data.constant_columns.join(", ")]] : []),
  ]);
}

/** The steps before the classifier, with the blank cells the imputer filled per feature. */
function preprocessingText(data) {
  const filled = Object.entries(data.imputed_cells ?? {}).map(([feature, n]) => `${feature}: ${n}`);
  return filled.length ? `${data.preprocessing} (blank cells filled: ${filled.join(", ")})` : data.preprocessing;
}

/** With cv_folds: each metric's mean ± standard deviation over the folds; a two-class target's curve areas. */
function scores(data) {
  const out = [];
  const folds = SHOWN_METRICS.filter(([, m]) => data[cvMetric(m, "mean")] !== undefined);
  if (folds.length) {
    out.push(el("h3", { text: `Cross-validation (${data.cv_folds} folds, mean ± std)` }),
      keyValueTable("cv-scores", folds.map(([label, m]) => [label, formatMeanStd(data[cvMetric(m, "mean")], data[cvMetric(m, "std")])])));
  }
  const areas = AREAS.filter(([, m]) => data[m] !== undefined);
  if (areas.length) {
    out.push(el("h3", { text: "Curves (test split)" }), keyValueTable("curve-areas", areas.map(([label, m]) => [label, formatDetail(data[m])])));
  }
  return out;
}

function renderTraining(data) {
  const classes = data.model_metadata.class_names;
  const matrix = el("table", {},
    el("thead", {}, el("tr", {}, el("th", { text: "true \\ predicted" }), ...classes.map((c) => el("th", { text: c })))),
    el("tbody", {}, ...data.confusion_matrix.map((row, i) =>
      el("tr", {}, el("th", { text: classes[i] }), ...row.map((n) => el("td", { text: String(n) }))))));
  showResult("training", "Training result",
    el("div", { class: "stats" }, ...SHOWN_METRICS.map(([label, metric]) => stat(label, formatPercent(data[metric])))),
    el("p", { class: "run-meta", text: `run ${data.run_id} · ${data.model_path}` }),
    el("h3", { text: "Model" }), modelSummary(data),
    ...scores(data),
    el("h3", { text: "Confusion matrix" }), matrix);
}

/** The form's field a refusal names first (its detail starts with the field, or quotes it), marked invalid. */
function markInvalid(form, message) {
  const detail = message.replace(/^\d+: /u, "");
  let first = null;
  for (const field of form.elements) {
    if (!field.name) continue;
    const name = field.name.replace(/[.*+?^${}()|[\]\\]/gu, "\\$&");
    const found = new RegExp(`(^|[\\s'"])${name}(?=$|[\\s'"])`, "u").exec(detail);
    if (found && (!first || found.index < first.index)) first = { field, index: found.index };
  }
  if (first) first.field.setAttribute("aria-invalid", "true");
}

/** Wire the form; `afterTraining` runs (and is awaited) once the result is shown. */
export function initTrain({ afterTraining }) {
  const form = document.getElementById("train-form");
  document.getElementById("model-type").addEventListener("change", renderHyperparameters);
  form.addEventListener("input", (e) => e.target.removeAttribute?.("aria-invalid"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    for (const field of form.querySelectorAll("[aria-invalid]")) field.removeAttribute("aria-invalid");
    withBusy(form, "Training", async () => {
      const body = new FormData(form);
      if (!form.querySelector("#train-file").files.length) body.delete("file");
      // An empty field is left out: the model type's default (for max_depth: no limit), or the last column.
      for (const [name, value] of [...body.entries()]) if (value === "") body.delete(name);
      try {
        renderTraining(await post("/train", body));
      } catch (error) {
        markInvalid(form, error.message);
        throw error; // withBusy shows the server's detail
      }
      await afterTraining();
    });
  });
  loadModelTypes();
}
