// Chart.js charts: the class bars of a result card, and the two trends over the latest runs.
// Chart.js is the vendored UMD build (static/vendor/chart.umd.min.js), loaded before the modules as window.Chart.

import { api } from "./api.js";
import {
  M_ACCURACY, M_AVG_CONFIDENCE, M_F1, M_MIN_CONFIDENCE, M_PREDICTION_CONFIDENCE, RUN_TYPE_INFERENCE, RUN_TYPE_TRAINING,
} from "./contract.js";
import { el } from "./dom.js";
import { formatTime } from "./format.js";

export const CHART_RUNS = 200; // the runs each trend shows, newest
const charts = {}; // canvas id -> its Chart

/** A canvas for drawChart, in a box that sizes it. */
export function chartBox(id, label) {
  return el("div", { class: "chart-box" }, el("canvas", { id, role: "img", "aria-label": label }));
}

/** Draw (or redraw) the chart on the canvas with this id; nothing if the canvas or Chart.js is missing. */
export function drawChart(id, config) {
  charts[id]?.destroy();
  const canvas = document.getElementById(id);
  const Chart = globalThis.Chart;
  if (!canvas || typeof Chart === "undefined") return;
  charts[id] = new Chart(canvas, { ...config, options: { responsive: true, maintainAspectRatio: false, animation: false, ...config.options } });
}

/** Remove the chart on the canvas with this id (a figure that has nothing to show). */
export function clearChart(id) {
  charts[id]?.destroy();
  delete charts[id];
}

/** One bar per class. */
export function classBarChart(id, labels, values, axisLabel, max) {
  drawChart(id, {
    type: "bar",
    data: { labels, datasets: [{ label: axisLabel, data: values, backgroundColor: "#7c6ee6" }] },
    options: {
      plugins: { legend: { display: false } },
      scales: {
        x: { title: { display: true, text: "class" } },
        y: { beginAtZero: true, max, title: { display: true, text: axisLabel } },
      },
    },
  });
}

/** The Trends card: confidence per inference run, accuracy and F1 per training run, oldest first. */
export async function refreshCharts() {
  const fetchRuns = (type) => api(`/mlflow/runs?${new URLSearchParams({ run_type: type, max_results: String(CHART_RUNS) })}`);
  const [inference, training] = await Promise.all([fetchRuns(RUN_TYPE_INFERENCE), fetchRuns(RUN_TYPE_TRAINING)]);
  const timeAxis = { type: "category", title: { display: true, text: "run start time" }, ticks: { maxTicksLimit: 8 } };
  // A batch run has average and minimum confidences; a single prediction, its one confidence.
  const runs = inference.runs.slice().reverse();
  const confidence = (r, statistic) => r.metrics[statistic] ?? r.metrics[M_PREDICTION_CONFIDENCE] ?? null;
  drawChart("confidence-chart", {
    type: "line",
    data: {
      labels: runs.map((r) => formatTime(r.start_time)),
      datasets: [
        { label: "average confidence", data: runs.map((r) => confidence(r, M_AVG_CONFIDENCE)), borderColor: "#2f6fdb", backgroundColor: "#2f6fdb" },
        { label: "minimum confidence", data: runs.map((r) => confidence(r, M_MIN_CONFIDENCE)), borderColor: "#c0392b", backgroundColor: "#c0392b" },
      ],
    },
    options: { scales: { x: timeAxis, y: { min: 0, max: 1, title: { display: true, text: "confidence" } } } },
  });
  const trained = training.runs.slice().reverse();
  drawChart("training-chart", {
    type: "line",
    data: {
      labels: trained.map((r) => formatTime(r.start_time)),
      datasets: [
        { label: "accuracy", data: trained.map((r) => r.metrics[M_ACCURACY] ?? null), borderColor: "#2e9d57", backgroundColor: "#2e9d57" },
        { label: "F1 score", data: trained.map((r) => r.metrics[M_F1] ?? null), borderColor: "#764ba2", backgroundColor: "#764ba2" },
      ],
    },
    options: { scales: { x: timeAxis, y: { min: 0, max: 1, title: { display: true, text: "score" } } } },
  });
}
