// How a tuning (GET /tune/{id}) is shown, in the Tuning card while it runs and in its parent run's popup:
// a line about it, its outcome, a chart of each trial's score and the best so far, and a table of its trials.

import { api } from "./api.js";
import { ORDER_BY_START_TIME, P_SEARCH_SPACE, RUN_TYPE_TRAINING, TUNING_RUN_PREFIX } from "./contract.js";
import { el, stat } from "./dom.js";
import { MISSING, formatDetail, formatHyperparameter } from "./format.js";

/** The statuses of a tuning still at work: the page polls it until it leaves them. */
export const ACTIVE_STATUSES = Object.freeze(["running", "cancelling"]);
/** The statuses of a trial that has ended. */
const DONE_TRIALS = ["finished", "failed"];

export const isActive = (progress) => ACTIVE_STATUSES.includes(progress.status);

/** The newest tunings' runs (as GET /mlflow/runs lists them), newest first: runs named tuning_... with a search
 * space (the listing carries params, not tags). */
export async function tuningRuns(count) {
  const query = new URLSearchParams({ run_type: RUN_TYPE_TRAINING, search: `${TUNING_RUN_PREFIX}_`,
    order_by: ORDER_BY_START_TIME, order: "desc", max_results: String(count) });
  return (await api(`/mlflow/runs?${query}`)).runs.filter((r) => r.params[P_SEARCH_SPACE] !== undefined);
}

/** A trial's hyperparameters in one line: "n_estimators=3, max_depth=no limit". */
export const formatTrialHyperparameters = (hyperparameters) =>
  Object.entries(hyperparameters ?? {}).map(([name, value]) => `${name}=${formatHyperparameter(value)}`).join(", ");

/** "3 / 4 trials done". */
export const formatTrialsDone = (progress) => `${progress.trials_done} / ${progress.n_trials} trials done`;

/** The tuning in one line: model type, search, what ranks the trials, the folds. */
export function describeTuning(progress) {
  const folds = progress.cv_folds ? ` · ${progress.cv_folds}-fold cross-validation` : "";
  return `${progress.model_type} · ${progress.search} search · ranked by ${progress.scored_by}${folds}`;
}

/** Per trial (in order), the best score of the trials done up to it; null for a trial not done yet. */
export function bestSoFar(trials) {
  let best = null;
  return trials.map((t) => {
    if (t.status === "finished" && typeof t.score === "number" && (best === null || t.score > best)) best = t.score;
    return DONE_TRIALS.includes(t.status) ? best : null;
  });
}

/** What came of the tuning: the best trial and score, and once registered its version and whether it serves. */
export function outcomeStats(progress) {
  const best = progress.best;
  const out = [
    stat("Trials done", `${progress.trials_done} / ${progress.n_trials}`),
    stat("Best trial", best ? String(best.trial) : MISSING),
    stat(`Best ${progress.scored_by}`, best ? formatDetail(best.score) : MISSING),
  ];
  if (progress.status === "finished") {
    out.push(stat("Registered version", progress.model_version ?? MISSING), stat("Promoted", progress.promoted ? "yes" : "no"));
  }
  return out;
}

/** What the tuning's status means, in a sentence. */
export function outcomeText(progress) {
  switch (progress.status) {
    case "running": return `Running trial ${Math.min(progress.trials_done + 1, progress.n_trials)} of ${progress.n_trials}…`;
    case "cancelling": return "Cancelling after the current trial…";
    case "finished":
      return `Finished: the best trial's model is registered as version ${progress.model_version}`
        + (progress.promoted ? " and promoted to champion." : " (not promoted: the champion is unchanged).");
    case "cancelled": return "Cancelled: the finished trials stay; nothing was registered.";
    case "failed": return `Failed: ${progress.error ?? "see the trials' errors"}`;
    default: return progress.status;
  }
}

/** The chart of the trials' scores and the best so far, by trial number (for drawChart). */
export function tuningChartConfig(progress) {
  const trials = progress.trials;
  return {
    type: "line",
    data: {
      labels: trials.map((t) => String(t.trial)),
      datasets: [
        { label: "trial score", data: trials.map((t) => (typeof t.score === "number" ? t.score : null)),
          borderColor: "#2f6fdb", backgroundColor: "#2f6fdb", showLine: false, pointRadius: 4 },
        { label: "best so far", data: bestSoFar(trials), borderColor: "#2e9d57", backgroundColor: "#2e9d57",
          stepped: true, pointRadius: 0 },
      ],
    },
    options: {
      scales: {
        x: { title: { display: true, text: "trial" } },
        y: { suggestedMax: 1, title: { display: true, text: progress.scored_by } },
      },
    },
  };
}

/** One row per trial: number, hyperparameters, status, score, and a button opening its run (once it has one).
 * The best trial's row is marked. `onOpen(runId)` opens a run. */
export function trialRows(progress, onOpen) {
  const bestTrial = progress.best?.trial;
  return progress.trials.map((t) => {
    const best = t.trial === bestTrial;
    const open = t.run_id
      ? el("button", { type: "button", class: "secondary link", "aria-label": `Open trial ${t.trial}'s run`, text: "Open run" })
      : null;
    open?.addEventListener("click", () => onOpen(t.run_id));
    const status = el("td", { class: "trial-status" }, el("span", { text: t.status }),
      best ? el("span", { class: "badge best", text: "best" }) : null);
    const row = el("tr", { class: `trial ${t.status}${best ? " best" : ""}`, "data-trial": String(t.trial) },
      el("th", { scope: "row", text: String(t.trial) }),
      el("td", { class: "trial-hyperparameters", text: t.status === "pending" && !Object.keys(t.hyperparameters ?? {}).length
        ? MISSING : formatTrialHyperparameters(t.hyperparameters) }),
      status,
      el("td", { class: "trial-score", text: typeof t.score === "number" ? formatDetail(t.score) : MISSING }),
      el("td", { class: "trial-run" }, open));
    if (t.run_id) row.dataset.runId = t.run_id;
    if (t.error) row.title = t.error;
    return row;
  });
}

/** The head of the trials table, naming the metric the trials are ranked by. */
export function trialsHead(progress) {
  return el("tr", {}, ...["Trial", "Hyperparameters", "Status", progress.scored_by, "Run"].map((text) =>
    el("th", { scope: "col", text })));
}

/** The whole trials table (the run popup's). */
export function trialsTable(progress, onOpen) {
  return el("div", { class: "table-wrap" }, el("table", { class: "trials-table" },
    el("caption", { class: "visually-hidden", text: "The tuning's trials; the best is marked" }),
    el("thead", {}, trialsHead(progress)), el("tbody", {}, ...trialRows(progress, onOpen))));
}
