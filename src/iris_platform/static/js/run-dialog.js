// The run popup: one run's params, metrics, tags and artifacts (with download links).

import { api } from "./api.js";
import { el } from "./dom.js";
import { formatDetail } from "./format.js";
import { showError } from "./results.js";

function keyValueTable(entries) {
  if (entries.length === 0) return el("p", { class: "empty", text: "None." });
  return el("table", {}, el("tbody", {}, ...entries.map(([k, v]) =>
    el("tr", {}, el("th", { text: k }), el("td", {}, v instanceof Node ? v : formatDetail(v))))));
}

function artifactLink(run, artifact) {
  return el("a", {
    href: `/mlflow/run/${encodeURIComponent(run.run_id)}/artifacts/${artifact.path.split("/").map(encodeURIComponent).join("/")}`,
    download: artifact.path.split("/").pop(), text: `download (${artifact.size_bytes ?? "?"} bytes)` });
}

export async function openRun(runId) {
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
      el("h3", { text: "Artifacts" }), keyValueTable(run.artifacts.map((a) => [a.path, artifactLink(run, a)])));
    if (!dialog.open) dialog.showModal();
  } catch (error) {
    showError("Opening the run", error);
  }
}
