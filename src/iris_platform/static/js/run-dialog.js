// The run popup: one run's params, metrics, tags and artifacts (with download links), a training run's
// evaluation on its test split (evaluation.js) and its reference profile in short. A tuning's run (tag
// iris.run_kind "tuning") shows its trials (GET /tune/{id}); a trial's run links back to its tuning's.

import { api, artifactUrl } from "./api.js";
import { drawChart } from "./charts.js";
import {
  P_TRIAL, REFERENCE_PROFILE_ARTIFACT, RUN_KIND_TRIAL, RUN_KIND_TUNING, T_PARENT_RUN_ID, T_RUN_KIND,
} from "./contract.js";
import { el } from "./dom.js";
import { evaluationSection } from "./evaluation.js";
import { formatDetail, formatNumber, formatPercent } from "./format.js";
import { showError } from "./results.js";
import { describeTuning, outcomeStats, outcomeText, trialsTable, tuningChartConfig, tuningRuns } from "./tuning-view.js";

/** The popup's chart of a tuning's trials. */
export const TUNING_RUN_CHART = "tuning-run-chart";
/** The tuning runs looked through for a trial's (the newest that started before it). */
const PARENT_CANDIDATES = 100;

function keyValueTable(entries) {
  if (entries.length === 0) return el("p", { class: "empty", text: "None." });
  return el("table", {}, el("tbody", {}, ...entries.map(([k, v]) =>
    el("tr", {}, el("th", { text: k }), el("td", {}, v instanceof Node ? v : formatDetail(v))))));
}

function artifactLink(run, artifact) {
  return el("a", { href: artifactUrl(run.run_id, artifact.path), download: artifact.path.split("/").pop(),
    text: `download (${artifact.size_bytes ?? "?"} bytes)` });
}

/** A training run's reference profile (what monitoring compares predictions with), in short: each feature's
 * moments, the class priors, the confidence on the test split. Nothing for a run without one. */
async function profileSummary(run) {
  if (!run.artifacts.some((a) => a.path === REFERENCE_PROFILE_ARTIFACT)) return [];
  const title = el("h3", { text: "Reference profile" });
  try {
    const profile = await api(artifactUrl(run.run_id, REFERENCE_PROFILE_ARTIFACT));
    const columns = ["mean", "std", "min", "max"];
    const priors = Object.entries(profile.class_priors ?? {}).map(([name, share]) => `${name} ${formatPercent(share)}`);
    return [title,
      el("p", { class: "profile-meta", text: `${profile.n_rows} training rows · mean confidence on the test split ${formatPercent(profile.confidence?.mean)}` }),
      el("div", { class: "table-wrap" }, el("table", { class: "profile-table" },
        el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "feature" }), ...columns.map((c) => el("th", { scope: "col", text: c })))),
        el("tbody", {}, ...Object.entries(profile.features ?? {}).map(([name, f]) => el("tr", { "data-feature": name },
          el("th", { scope: "row", text: name }), ...profileCells(f, columns)))))),
      el("p", { class: "priors", text: `Class priors: ${priors.join(" · ")}` })];
  } catch (error) {
    return [title, el("p", { class: "empty", text: `The profile could not be read: ${error.message}` })];
  }
}

/** A numeric feature's moments; a text feature's categories with their training shares, across the row. */
function profileCells(feature, columns) {
  if (feature.kind !== "text") return columns.map((c) => el("td", { text: formatNumber(feature[c]) }));
  const shares = feature.categories.map((c, i) => `${c === "" ? "(blank)" : c} ${formatPercent(feature.proportions[i])}`);
  return [el("td", { colspan: String(columns.length), class: "categories", text: `text: ${shares.join(" · ")}` })];
}

/** A tuning's run: its trials as GET /tune/{id} reads them, with their chart (drawn once shown). */
async function tuningSection(run) {
  const title = el("h3", { text: "Tuning" });
  try {
    const progress = await api(`/tune/${encodeURIComponent(run.run_id)}`);
    return {
      elements: [title,
        el("p", { class: "run-meta tuning-summary", text: `${progress.status} · ${describeTuning(progress)}` }),
        el("p", { class: "outcome", text: outcomeText(progress) }),
        el("div", { class: "stats tuning-outcome" }, ...outcomeStats(progress)),
        el("div", { class: "chart-box" }, el("canvas", { id: TUNING_RUN_CHART, role: "img", "aria-label": "Each trial's score and the best so far" })),
        trialsTable(progress, openRun)],
      draw: () => drawChart(TUNING_RUN_CHART, tuningChartConfig(progress)),
    };
  } catch (error) {
    return { elements: [title, el("p", { class: "empty", text: `The tuning could not be read: ${error.message}` })], draw: () => {} };
  }
}

/** The tuning a trial's run belongs to, and its progress. The run's tag mlflow.parentRunId names it where the runs
 * API passes it on; else it is the tuning run that started before the trial, ended after it, and lists it. */
async function parentTuning(run) {
  const named = run.parent_run_id ?? run.tags[T_PARENT_RUN_ID];
  if (named) return { id: named, progress: await api(`/tune/${encodeURIComponent(named)}`) };
  const started = Date.parse(run.start_time);
  const candidates = (await tuningRuns(PARENT_CANDIDATES)).filter((r) =>
    Date.parse(r.start_time) <= started && (!r.end_time || Date.parse(r.end_time) >= started));
  for (const candidate of candidates) {
    const progress = await api(`/tune/${encodeURIComponent(candidate.run_id)}`);
    if (progress.trials.some((t) => t.run_id === run.run_id)) return { id: candidate.run_id, name: candidate.run_name, progress };
  }
  return null;
}

/** A trial's run: which trial of which tuning, with a link to the tuning's run. */
async function trialSection(run) {
  const title = el("h3", { text: "Tuning" });
  const number = run.params[P_TRIAL];
  try {
    const parent = await parentTuning(run);
    if (!parent) return [title, el("p", { class: "empty trial-of", text: `Trial ${number}: its tuning run was not found.` })];
    const link = el("button", { type: "button", class: "link parent-run", "data-run-id": parent.id,
      text: parent.name ?? parent.id });
    link.addEventListener("click", () => openRun(parent.id));
    const best = parent.progress.best?.run_id === run.run_id;
    return [title, el("p", { class: "trial-of" }, `Trial ${number} of ${parent.progress.n_trials} of the tuning `, link,
      best ? el("span", { class: "badge best", text: "best" }) : null)];
  } catch (error) {
    return [title, el("p", { class: "empty trial-of", text: `Its tuning could not be read: ${error.message}` })];
  }
}

export async function openRun(runId) {
  const dialog = document.getElementById("run-dialog");
  const body = document.getElementById("run-dialog-body");
  try {
    const run = await api(`/mlflow/run/${encodeURIComponent(runId)}`);
    const kind = run.tags?.[T_RUN_KIND];
    const [evaluation, profile, tuning, trial] = await Promise.all([
      evaluationSection(run), profileSummary(run),
      kind === RUN_KIND_TUNING ? tuningSection(run) : { elements: [], draw: () => {} },
      kind === RUN_KIND_TRIAL ? trialSection(run) : []]);
    document.getElementById("run-dialog-title").textContent = run.run_name;
    body.replaceChildren(
      el("p", { class: "run-meta", text: `${run.experiment_name} · ${run.status} · ${run.start_time} · ${run.run_id}` }),
      ...trial, ...tuning.elements,
      el("h3", { text: "Params" }), keyValueTable(Object.entries(run.params).sort()),
      el("h3", { text: "Metrics" }), keyValueTable(Object.entries(run.metrics).sort()),
      ...evaluation.elements,
      el("h3", { text: "Tags" }), keyValueTable(Object.entries(run.tags).sort()),
      el("h3", { text: "Artifacts" }), keyValueTable(run.artifacts.map((a) => [a.path, artifactLink(run, a)])),
      ...profile);
    if (!dialog.open) dialog.showModal();
    evaluation.draw(); // once its canvases are on the page and shown, so Chart.js sizes them
    tuning.draw();
  } catch (error) {
    showError("Opening the run", error);
  }
}
