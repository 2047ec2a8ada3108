// The Monitoring section: GET /monitoring's drift reports, feedback accuracy and alerts (of one model version, or
// all), against the serving model's reference (its training profile) and the server's thresholds.

import { api } from "./api.js";
import { ALERT_ACCURACY_DROP, ALERT_DRIFT, M_AVG_CONFIDENCE, M_DRIFT_DETECTED, M_FEEDBACK_ACCURACY } from "./contract.js";
import { el, stat } from "./dom.js";
import { MISSING, formatDateTime, formatPercent, formatTime } from "./format.js";
import { drawClasses, drawConfidence, drawFeedback, drawPsi, figureNote } from "./monitoring-charts.js";
import { openRun } from "./run-dialog.js";
import { view, writeView } from "./view.js";

export const MONITORING_RUNS = 200; // the newest runs of each kind the view asks for
/** What the alert list calls each alert kind (an unknown kind is shown as it is). */
export const ALERT_KINDS = { [ALERT_DRIFT]: "drift detected", [ALERT_ACCURACY_DROP]: "accuracy drop" };
const DRIFT_FIGURES = [["psi-figure", "psi-chart"], ["class-figure", "class-chart"], ["confidence-figure", "confidence-trend-chart"]];

let shown = null; // the answer on the page, for the report select
let latestRequest = 0; // an older answer arriving after a newer one is dropped

function emptyState(data) {
  const version = view.modelVersion ? ` for version ${view.modelVersion}` : "";
  const steps = el("ol", {},
    data.reference ? null : el("li", { text: "Train a model: Dashboard, then Train a model." }),
    el("li", { text: `Predict a batch CSV (Dashboard, then Batch prediction), or make single predictions: every ${data.thresholds.drift_window} single predictions of a version make one drift report.` }),
    el("li", { text: 'Send true labels for feedback accuracy: POST /feedback with {"prediction_id": "…", "true_label": "…"}.' }));
  const title = data.reference ? `Nothing recorded${version} yet.` : "No model yet.";
  return [el("h3", { text: title }), steps];
}

function renderReference(data) {
  const t = data.thresholds;
  const ref = data.reference;
  const serving = ref ? `Reference: version ${ref.model_version} (serving) · test accuracy ${formatPercent(ref.test_accuracy)} · ` : "";
  document.getElementById("monitoring-reference").textContent = `${serving}PSI warning ${t.psi_warn}, alert ${t.psi_alert} · `
    + `KS p-value below ${t.p_value} · accuracy alert ${formatPercent(t.feedback_alert_drop)} below test accuracy after ${t.feedback_min_labels} labels`;
  document.getElementById("psi-caption").textContent = `PSI per feature per drift report: amber from ${t.psi_warn} (warning), red from ${t.psi_alert} (alert)`;
}

function renderSummary(data) {
  const last = (points, metric) => points.at(-1)?.metrics[metric];
  document.getElementById("monitoring-summary").replaceChildren(
    stat("Drift reports", String(data.drift.length)),
    stat("With drift", String(data.drift.filter((p) => p.metrics[M_DRIFT_DETECTED] === 1).length)),
    stat("Latest avg confidence", formatPercent(last(data.drift, M_AVG_CONFIDENCE))),
    stat("Latest feedback accuracy", formatPercent(last(data.feedback, M_FEEDBACK_ACCURACY))),
    stat("Alerts", String(data.alerts.length)));
}

/** The report select (newest first), keeping the chosen report while it is still listed; the class chart follows it. */
function renderReports(data) {
  const select = document.getElementById("monitoring-window");
  const chosen = select.value;
  select.replaceChildren(...data.drift.slice().reverse().map((p) =>
    el("option", { value: p.run_id, text: `${formatTime(p.time)} · ${p.run_name}` })));
  if (data.drift.some((p) => p.run_id === chosen)) select.value = chosen;
  drawChosenReport();
}

function drawChosenReport() {
  const id = document.getElementById("monitoring-window").value;
  const point = shown?.drift.find((p) => p.run_id === id);
  if (point) drawClasses(point, shown.reference);
}

function alertRow(alert) {
  const row = el("tr", { class: "alert", tabindex: "0", "data-run-id": alert.run_id, "aria-label": `Open run ${alert.run_name}` },
    el("td", { text: formatDateTime(alert.time) }),
    el("td", {}, el("span", { class: `badge ${alert.kind}`, text: ALERT_KINDS[alert.kind] ?? String(alert.kind) })),
    el("td", { class: "message", text: alert.message ?? "" }),
    el("td", { text: alert.model_version ?? MISSING }));
  row.addEventListener("click", () => openRun(alert.run_id));
  row.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); openRun(alert.run_id); } });
  return row;
}

function render(data) {
  shown = data;
  renderReference(data);
  const nothing = data.drift.length === 0 && data.feedback.length === 0 && data.alerts.length === 0;
  const empty = document.getElementById("monitoring-empty");
  empty.hidden = !nothing;
  empty.replaceChildren(...(nothing ? emptyState(data) : []));
  document.getElementById("monitoring-content").hidden = nothing;
  document.getElementById("monitoring-summary").hidden = nothing;
  renderSummary(data);

  const noDrift = data.drift.length ? null
    : `No drift report yet: predict a batch CSV, or make ${data.thresholds.drift_window} single predictions (one drift window).`;
  for (const [figure, canvas] of DRIFT_FIGURES) figureNote(figure, canvas, noDrift);
  document.getElementById("monitoring-window").disabled = !data.drift.length;
  if (data.drift.length) {
    drawPsi(data.drift, data.reference, data.thresholds);
    drawConfidence(data.drift, data.reference);
  }
  renderReports(data);
  figureNote("feedback-figure", "feedback-chart", data.feedback.length ? null
    : 'No feedback yet: send a prediction\'s true label with POST /feedback {"prediction_id": "…", "true_label": "…"}.');
  if (data.feedback.length) drawFeedback(data.feedback, data.thresholds);

  document.getElementById("alerts").replaceChildren(...(data.alerts.length ? data.alerts.map(alertRow)
    : [el("tr", {}, el("td", { colspan: "4", class: "empty", text: "No alerts." }))]));
}

/** The version filter: every registered version, the serving one marked; a version from the URL is kept. */
function renderVersions(models) {
  const select = document.getElementById("monitoring-version");
  const versions = models.filter((m) => m.version !== null)
    .map((m) => ({ version: String(m.version), serving: m.is_current }))
    .sort((a, b) => Number(b.version) - Number(a.version));
  if (view.modelVersion && !versions.some((v) => v.version === view.modelVersion)) versions.push({ version: view.modelVersion });
  select.replaceChildren(el("option", { value: "", text: "All versions" }),
    ...versions.map((v) => el("option", { value: v.version, text: `version ${v.version}${v.serving ? " (serving)" : ""}` })));
  select.value = view.modelVersion;
}

/** Read the monitoring view again (for the URL's model version) and draw it. */
export async function refreshMonitoring() {
  const request = ++latestRequest;
  const query = new URLSearchParams({ limit: String(MONITORING_RUNS) });
  if (view.modelVersion) query.set("model_version", view.modelVersion);
  try {
    const [data, models] = await Promise.all([
      api(`/monitoring?${query}`),
      api("/models").catch(() => ({ models: [] })), // the filter only; the view stands without it
    ]);
    if (request !== latestRequest) return;
    renderVersions(models.models);
    render(data);
    document.getElementById("monitoring-refreshed").textContent = `Last refreshed ${formatTime()}`;
  } catch (error) {
    if (request !== latestRequest) return;
    const empty = document.getElementById("monitoring-empty");
    empty.replaceChildren(el("p", { class: "empty", text: `Monitoring could not be read: ${error.message}` }));
    empty.hidden = false;
  }
}

/** Wire the version filter, the report select and the Refresh button (the section's tab refreshes on opening). */
export function initMonitoring() {
  document.getElementById("monitoring-version").addEventListener("change", (e) => {
    view.modelVersion = e.target.value;
    writeView();
    refreshMonitoring();
  });
  document.getElementById("monitoring-window").addEventListener("change", drawChosenReport);
  document.getElementById("monitoring-refresh").addEventListener("click", refreshMonitoring);
}
