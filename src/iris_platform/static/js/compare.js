// Comparing training runs: the runs ticked in the table, side by side, with a button to serve each one's model.

import { api } from "./api.js";
import { el } from "./dom.js";
import { MISSING, formatDetail } from "./format.js";
import { loadModel } from "./models.js";
import { showError } from "./results.js";

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
