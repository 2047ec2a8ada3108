// The "Train a model" card and its result: the held-out metrics and the confusion matrix.

import { post } from "./api.js";
import { M_ACCURACY, M_F1, M_PRECISION, M_RECALL } from "./contract.js";
import { el, stat } from "./dom.js";
import { formatPercent } from "./format.js";
import { showResult, withBusy } from "./results.js";

// The /train answer carries the run's metrics under their MLflow names.
const SHOWN_METRICS = [["Accuracy", M_ACCURACY], ["Precision", M_PRECISION], ["Recall", M_RECALL], ["F1 score", M_F1]];

function renderTraining(data) {
  const classes = data.model_metadata.class_names;
  const matrix = el("table", {},
    el("thead", {}, el("tr", {}, el("th", { text: "true \\ predicted" }), ...classes.map((c) => el("th", { text: c })))),
    el("tbody", {}, ...data.confusion_matrix.map((row, i) =>
      el("tr", {}, el("th", { text: classes[i] }), ...row.map((n) => el("td", { text: String(n) }))))));
  showResult("training", "Training result",
    el("div", { class: "stats" }, ...SHOWN_METRICS.map(([label, metric]) => stat(label, formatPercent(data[metric])))),
    el("p", { class: "run-meta", text: `run ${data.run_id} · ${data.model_path}` }),
    el("h3", { text: "Confusion matrix" }), matrix);
}

/** Wire the form; `afterTraining` runs (and is awaited) once the result is shown. */
export function initTrain({ afterTraining }) {
  document.getElementById("train-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    withBusy(form, "Training", async () => {
      const body = new FormData(form);
      if (!form.querySelector("#train-file").files.length) body.delete("file");
      if (!body.get("target_column")) body.delete("target_column");
      renderTraining(await post("/train", body));
      await afterTraining();
    });
  });
}
