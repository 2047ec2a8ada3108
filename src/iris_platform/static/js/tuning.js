// The "Tune hyperparameters" card: a form that starts a tuning (POST /tune, JSON) of a model type over values of
// its hyperparameters (GET /model_types lists them), then its progress, read every second (GET /tune/{id}) until it
// ends: trials done, the trials' table and chart, a Cancel button (DELETE /tune/{id}), and what was registered.

import { api } from "./api.js";
import { drawChart } from "./charts.js";
import { M_ACCURACY, M_F1, M_PRECISION, M_RECALL } from "./contract.js";
import { el } from "./dom.js";
import { NO_LIMIT, formatNumber } from "./format.js";
import { modelTypes } from "./model-types.js";
import { openRun } from "./run-dialog.js";
import {
  describeTuning, formatTrialsDone, isActive, outcomeStats, outcomeText, trialRows, trialsHead, tuningChartConfig,
  tuningRuns,
} from "./tuning-view.js";

/** How often a running tuning is read again. */
export const POLL_MS = 1000;
/** The metrics a tuning may rank its trials by, and their labels. */
const METRICS = [[M_ACCURACY, "accuracy"], [M_PRECISION, "precision"], [M_RECALL, "recall"], [M_F1, "F1 score"]];
/** What a value list says for a hyperparameter without a limit (max_depth's null). */
const NONE_WORDS = ["none", "null", NO_LIMIT];
const CHART = "tuning-chart";

let catalog = null; // GET /model_types, once read
let following = null; // the id of the tuning the card shows
let timer = null;
let afterTuningHook = async () => {};

const byId = (id) => document.getElementById(id);

/** A hyperparameter's inputs' id in the tuning form: tune-<name with dashes>. */
export const spaceInputId = (name) => `tune-${name.replaceAll("_", "-")}`;

/** The values of a comma-separated list, typed as the hyperparameter takes them: numbers as numbers, "none" as
 * null for one without a limit, choices as text. Anything else is sent as written, for the server to refuse. */
export function parseValues(text, h) {
  return String(text).split(",").map((v) => v.trim()).filter((v) => v !== "").map((v) => {
    if (h.choices || h.type === "string") return v;
    if (h.nullable && NONE_WORDS.includes(v.toLowerCase())) return null;
    const number = Number(v);
    return Number.isFinite(number) ? number : v;
  });
}

/** What a hyperparameter allows, in short, for its hint. */
function allowed(h) {
  if (h.choices) return `any of ${h.choices.join(", ")}`;
  const low = h.minimum ?? null;
  const high = h.maximum ?? null;
  const range = low === null ? (high === null ? "" : `at most ${high}`)
    : `${h.exclusive_minimum ? "above " : ""}${low}${high === null ? " or more" : ` to ${high}`}`;
  return [range, h.nullable ? `"none": ${NO_LIMIT}` : ""].filter(Boolean).join("; ");
}

/** A hyperparameter's row: the values to try, and (for a number, in a random search) a range to draw from. */
function spaceRow(h) {
  const id = spaceInputId(h.name);
  const example = h.choices ? h.choices.slice(0, 2).join(", ")
    : h.default === null ? `2, 4, ${NO_LIMIT}` : formatNumber(h.default);
  const values = el("input", { id, name: `space.${h.name}`, type: "text", placeholder: `e.g. ${example}`,
    "aria-describedby": `${id}-hint`, autocomplete: "off" });
  const range = h.choices ? null : el("div", { class: "range", "data-range": h.name },
    el("label", { for: `${id}-low`, text: "low" }),
    el("input", { id: `${id}-low`, name: `space.${h.name}.low`, type: "number", step: "any" }),
    el("label", { for: `${id}-high`, text: "high" }),
    el("input", { id: `${id}-high`, name: `space.${h.name}.high`, type: "number", step: "any" }),
    el("label", { class: "inline", for: `${id}-log` },
      el("input", { id: `${id}-log`, name: `space.${h.name}.log`, type: "checkbox" }), "log scale"));
  const hint = [h.description, allowed(h), `default ${formatNumber(h.default ?? NO_LIMIT)}`].filter(Boolean).join(" · ");
  return el("div", { class: "space-row", "data-hyperparameter": h.name },
    el("label", { for: id, text: h.name }), values, range, el("small", { id: `${id}-hint`, class: "hint", text: hint }));
}

const chosenType = () => catalog?.model_types.find((t) => t.name === byId("tune-model-type").value);
const search = () => byId("tune-search").value;

/** Show what the search kind takes: n_trials and the ranges for a random search only. */
function showSearchFields() {
  const random = search() === "random";
  byId("tune-n-trials-box").hidden = !random;
  byId("tune-n-trials").disabled = !random; // a grid tries every combination: the field is not sent, nor checked
  for (const range of document.querySelectorAll("#tune-space-inputs .range")) range.hidden = !random;
  byId("tune-space-legend").textContent = random
    ? "Values to draw from (comma-separated), or a range low to high; empty: the default"
    : "Values to try, comma-separated (every combination); empty: the default";
}

function renderSpace() {
  const type = chosenType();
  byId("tune-space-inputs").replaceChildren(...(type?.hyperparameters ?? []).map(spaceRow));
  showSearchFields();
}

let loading = null;

/** Fill the model type select (once; a failed read is tried again on the next call). */
export function loadTuningTypes() {
  loading ??= fillTypes().then((done) => { if (!done) loading = null; });
  return loading;
}

async function fillTypes() {
  try {
    catalog = await modelTypes();
  } catch (error) {
    showError(`The model types could not be read: ${error.message}`);
    return false;
  }
  const select = byId("tune-model-type");
  select.replaceChildren(...catalog.model_types.map((t) => el("option", { value: t.name, text: t.name.replaceAll("_", " ") })));
  select.value = catalog.default;
  byId("tune-cv-folds").max = String(catalog.max_cv_folds);
  renderSpace();
  return true;
}

/** The space the form describes: per hyperparameter with values (or, in a random search, a range), those. */
export function spaceFromForm() {
  const space = {};
  const random = search() === "random";
  for (const h of chosenType()?.hyperparameters ?? []) {
    const id = spaceInputId(h.name);
    if (random && !h.choices) {
      const low = byId(`${id}-low`).value;
      const high = byId(`${id}-high`).value;
      if (low !== "" || high !== "") { // a range; a bound left out is the server's to refuse (its detail says so)
        space[h.name] = { ...(low !== "" ? { low: Number(low) } : {}), ...(high !== "" ? { high: Number(high) } : {}),
          log: byId(`${id}-log`).checked };
        continue;
      }
    }
    const values = parseValues(byId(id).value, h);
    if (values.length) space[h.name] = values;
  }
  return space;
}

/** The POST /tune body the form describes. */
export function tuneRequest() {
  const body = {
    model_type: byId("tune-model-type").value,
    space: spaceFromForm(),
    search: search(),
    metric: byId("tune-metric").value,
    cv_folds: Number(byId("tune-cv-folds").value || 0),
    promote: byId("tune-promote").checked,
  };
  if (byId("tune-test-size").value !== "") body.test_size = Number(byId("tune-test-size").value);
  if (body.search === "random") body.n_trials = Number(byId("tune-n-trials").value);
  return body;
}

function showError(message) {
  const box = byId("tune-error");
  box.textContent = message;
  box.hidden = !message;
}

/** The field a refusal names first (a hyperparameter, space.<name>, or a setting), marked invalid. */
function markInvalid(message) {
  const detail = message.replace(/^\d+: /u, "");
  const fields = [["model_type", "tune-model-type"], ["search", "tune-search"], ["n_trials", "tune-n-trials"],
    ["metric", "tune-metric"], ["cv_folds", "tune-cv-folds"], ["test_size", "tune-test-size"],
    ...(chosenType()?.hyperparameters ?? []).map((h) => [h.name, spaceInputId(h.name)])];
  let first = null;
  for (const [name, id] of fields) {
    const found = new RegExp(`(^|[\\s'"(.])${name}(?=$|[\\s'".:,)])`, "u").exec(detail);
    if (found && (!first || found.index < first.index)) first = { id, index: found.index };
  }
  if (first) byId(first.id).setAttribute("aria-invalid", "true");
}

function render(progress) {
  byId("tuning-progress").hidden = false;
  byId("tune-title").textContent = `Tuning ${progress.tuning_id}`;
  byId("tune-open").dataset.runId = progress.tuning_id;
  const state = byId("tune-state");
  state.textContent = progress.status;
  state.className = `badge state ${progress.status}`;
  byId("tune-meta").textContent = describeTuning(progress);
  byId("tune-bar").max = progress.n_trials;
  byId("tune-bar").value = progress.trials_done;
  byId("tune-count").textContent = formatTrialsDone(progress);
  byId("tune-outcome-text").textContent = outcomeText(progress);
  byId("tune-outcome").replaceChildren(...outcomeStats(progress));
  byId("tune-cancel").hidden = !isActive(progress);
  byId("tune-cancel").disabled = progress.status !== "running";
  byId("tune-trials-head").replaceChildren(trialsHead(progress));
  byId("tune-trials-body").replaceChildren(...trialRows(progress, openRun));
  drawChart(CHART, tuningChartConfig(progress));
  byId("tune-form").querySelector("button[type=submit]").disabled = isActive(progress);
}

async function poll(id) {
  if (id !== following) return;
  let progress;
  try {
    progress = await api(`/tune/${encodeURIComponent(id)}`);
  } catch (error) {
    if (id !== following) return;
    byId("tune-outcome-text").textContent = `The progress could not be read (${error.message}).`;
    if (!error.message.startsWith("404")) timer = setTimeout(() => poll(id), POLL_MS); // tried again
    else byId("tune-form").querySelector("button[type=submit]").disabled = false;
    return;
  }
  if (id !== following) return;
  render(progress);
  if (isActive(progress)) timer = setTimeout(() => poll(id), POLL_MS);
  else await afterTuningHook(progress);
}

/** Show a tuning's progress in the card, read again every POLL_MS until it ends. */
export function followTuning(id, progress = null) {
  clearTimeout(timer);
  following = id;
  if (progress) {
    render(progress);
    if (isActive(progress)) timer = setTimeout(() => poll(id), POLL_MS);
  } else {
    poll(id);
  }
}

/** A tuning still running when the page opens (started before a reload, or in another tab) is followed. */
async function followRunningTuning() {
  try {
    const running = (await tuningRuns(5)).find((r) => r.status === "RUNNING");
    if (running && following === null) followTuning(running.run_id);
  } catch (_) {
    // The runs card says why the runs cannot be read.
  }
}

async function cancel() {
  const button = byId("tune-cancel");
  button.disabled = true;
  try {
    const progress = await api(`/tune/${encodeURIComponent(following)}`, { method: "DELETE" });
    render(progress);
  } catch (error) {
    byId("tune-outcome-text").textContent = `Cancelling failed: ${error.message}`;
  }
}

/** Wire the form; `afterTuning` runs when a tuning starts and when it ends (a refresh of models and runs). */
export function initTuning({ afterTuning }) {
  afterTuningHook = afterTuning;
  const form = byId("tune-form");
  byId("tune-metric").replaceChildren(...METRICS.map(([value, text]) => el("option", { value, text })));
  byId("tune-model-type").addEventListener("change", renderSpace);
  byId("tune-search").addEventListener("change", showSearchFields);
  form.addEventListener("input", (e) => e.target.removeAttribute?.("aria-invalid"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const field of form.querySelectorAll("[aria-invalid]")) field.removeAttribute("aria-invalid");
    showError("");
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    let progress;
    try {
      progress = await api("/tune", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(tuneRequest()),
      });
    } catch (error) {
      markInvalid(error.message);
      showError(error.message);
      button.disabled = false;
      // Refused as another tuning runs in the server: show that one (its id is in the detail).
      const running = /^409: Tuning ([0-9a-f]{32}) /u.exec(error.message);
      if (running) followTuning(running[1]);
      return;
    }
    followTuning(progress.tuning_id, progress);
    await afterTuning(progress);
  });
  byId("tune-cancel").addEventListener("click", cancel);
  byId("tune-open").addEventListener("click", (e) => openRun(e.currentTarget.dataset.runId));
  showSearchFields();
  loadTuningTypes();
  followRunningTuning();
}
