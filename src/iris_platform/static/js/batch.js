// The "Batch prediction" card and its result: confidence statistics, the class distribution, the CSV link.

import { post } from "./api.js";
import { chartBox, classBarChart } from "./charts.js";
import { PREDICTIONS_ARTIFACT } from "./contract.js";
import { bar, el, stat } from "./dom.js";
import { formatCountShare, formatPercent } from "./format.js";
import { showResult, withBusy } from "./results.js";

function renderBatch(data) {
  const s = data.batch_statistics; // the answer's statistics, which the run logs as its metrics
  showResult("batch", "Batch prediction",
    el("div", { class: "stats" },
      stat("Samples", String(data.total_samples)), stat("Avg confidence", formatPercent(s.avg_confidence)),
      stat("Min confidence", formatPercent(s.min_confidence)), stat("Max confidence", formatPercent(s.max_confidence))),
    el("h3", { text: "Class distribution" }),
    chartBox("distribution-chart", "Predicted class distribution"),
    ...Object.entries(s.prediction_distribution).map(([name, count]) =>
      bar(name, count / data.total_samples, formatCountShare(count, data.total_samples))),
    el("p", { class: "run-meta" },
      `run ${data.run_id}${data.truncated ? ` · first ${data.predictions.length} rows shown · ` : " · "}`,
      el("a", { href: data.predictions_url, download: PREDICTIONS_ARTIFACT, text: "download predictions CSV" })));
  const dist = s.prediction_distribution;
  classBarChart("distribution-chart", Object.keys(dist), Object.values(dist), "rows predicted");
}

/** Wire the form; `afterBatch` runs (and is awaited) once the result is shown. */
export function initBatch({ afterBatch }) {
  document.getElementById("batch-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    withBusy(form, "Batch prediction", async () => {
      renderBatch(await post("/predict_batch", new FormData(form)));
      await afterBatch();
    });
  });
}
