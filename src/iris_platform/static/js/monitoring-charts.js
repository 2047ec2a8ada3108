// The Monitoring section's charts, from GET /monitoring: PSI per feature with the threshold bands, one drift report's
// predicted classes against the training priors, the confidence trend, and feedback accuracy against test accuracy.

import { clearChart, drawChart } from "./charts.js";
import {
  M_AVG_CONFIDENCE, M_FEEDBACK_ACCURACY, M_TEST_ACCURACY, PERCENTAGE_PREFIX, PSI_PREFIX, percentageMetric, psiMetric,
} from "./contract.js";
import { formatTime } from "./format.js";
import { openRun } from "./run-dialog.js";

const COLORS = ["#2f6fdb", "#2e9d57", "#764ba2", "#e67e22", "#16a085", "#8e44ad", "#7f8c8d", "#d35400"];
const WARN = "#d4900b";
const ALERT = "#c0392b";
const REFERENCE = "#667085";
const TIME_AXIS = { type: "category", title: { display: true, text: "run start time" }, ticks: { maxTicksLimit: 8 } };

/** Shaded bands and labelled lines across the plot, behind the datasets. Chart.js has none built in and its
 * annotation plugin is not vendored, so this small one draws options.plugins.levels:
 * { bands: [{ from, to (null: up to the top), color }], lines: [{ value, color, label }] }. */
export const levelsPlugin = {
  id: "levels",
  beforeDatasetsDraw(chart, _args, options) {
    const { ctx, chartArea: area, scales: { y } } = chart;
    const at = (value) => Math.min(area.bottom, Math.max(area.top, y.getPixelForValue(value)));
    ctx.save();
    for (const band of options.bands ?? []) {
      const top = band.to === null || band.to === undefined ? area.top : at(band.to);
      const bottom = at(band.from);
      ctx.fillStyle = band.color;
      ctx.fillRect(area.left, top, area.right - area.left, bottom - top);
    }
    ctx.font = "11px system-ui, sans-serif";
    ctx.textAlign = "right";
    ctx.textBaseline = "bottom";
    for (const line of options.lines ?? []) {
      const pixel = y.getPixelForValue(line.value);
      if (!(pixel >= area.top && pixel <= area.bottom)) continue; // off the scale: nothing to mark
      ctx.strokeStyle = ctx.fillStyle = line.color;
      ctx.setLineDash([6, 4]);
      ctx.beginPath();
      ctx.moveTo(area.left, pixel);
      ctx.lineTo(area.right, pixel);
      ctx.stroke();
      if (line.label) ctx.fillText(line.label, area.right - 4, pixel - 2);
    }
    ctx.restore();
  },
};

/** The metric keys of `keys` that start with `prefix`, each with its name: the reference's (in its order, as keyOf
 * turns a name into a key), else what follows the prefix. */
export function namedKeys(keys, prefix, names, keyOf) {
  const known = (names ?? []).map(keyOf);
  const rank = (key) => (known.includes(key) ? known.indexOf(key) : known.length);
  return [...new Set(keys)].filter((key) => key.startsWith(prefix)).sort((a, b) => rank(a) - rank(b))
    .map((key) => ({ key, name: known.includes(key) ? names[known.indexOf(key)] : key.slice(prefix.length) }));
}

function series(label, data, color, extra = {}) {
  return { label, data, borderColor: color, backgroundColor: color, ...extra };
}

/** A constant the series is read against (a reference or a bound): dashed, without points. */
function level(label, data, color) {
  return series(label, data, color, { borderDash: [6, 4], pointRadius: 0, pointHitRadius: 0, pointStyle: "line" });
}

/** A line chart of runs over time: a point's tooltip names its run, and clicking it opens the run. */
function timeChart(id, runs, datasets, y, { plugins = [], options = {} } = {}) {
  drawChart(id, {
    type: "line",
    data: { labels: runs.map((r) => formatTime(r.time)), datasets },
    plugins,
    options: {
      spanGaps: true,
      onClick: (_event, elements) => { if (elements.length) openRun(runs[elements[0].index].run_id); },
      plugins: {
        legend: { labels: { usePointStyle: true } }, // a level's key is a line, not a box
        tooltip: { callbacks: { title: (items) => runs[items[0].dataIndex].run_name } },
        ...options,
      },
      scales: { x: TIME_AXIS, y },
    },
  });
}

/** One line per feature; amber from psi_warn, red from psi_alert. Log scale: a drifted feature's PSI can be 50
 * times the alert level, which would flatten every other line and both bands on a linear axis. */
export function drawPsi(points, reference, thresholds) {
  const features = namedKeys(points.flatMap((p) => Object.keys(p.metrics)), PSI_PREFIX, reference?.feature_names, psiMetric);
  const { psi_warn: warn, psi_alert: alert } = thresholds;
  timeChart("psi-chart", points,
    features.map(({ key, name }, i) => series(name, points.map((p) => p.metrics[key] ?? null), COLORS[i % COLORS.length])),
    { type: "logarithmic", suggestedMin: warn / 10, suggestedMax: alert * 2, title: { display: true, text: "PSI (log scale)" } },
    {
      plugins: [levelsPlugin],
      options: {
        levels: {
          bands: [{ from: warn, to: alert, color: "rgba(245, 185, 66, .2)" }, { from: alert, to: null, color: "rgba(192, 57, 43, .1)" }],
          lines: [{ value: warn, color: WARN, label: `warning ${warn}` }, { value: alert, color: ALERT, label: `alert ${alert}` }],
        },
      },
    });
}

/** A drift report's share of each predicted class beside the training priors, in percent. */
export function drawClasses(point, reference) {
  const priors = reference?.class_priors ?? {};
  const keys = [...Object.keys(point.metrics), ...Object.keys(priors).map(percentageMetric)];
  const classes = namedKeys(keys, PERCENTAGE_PREFIX, reference?.class_names ?? Object.keys(priors), percentageMetric);
  const datasets = [series(`predicted (${point.run_name})`, classes.map((c) => point.metrics[c.key] ?? null), "#7c6ee6")];
  if (reference?.class_priors) {
    datasets.push(series(`training priors (version ${reference.model_version})`,
      classes.map((c) => (c.name in priors ? priors[c.name] * 100 : null)), REFERENCE));
  }
  drawChart("class-chart", {
    type: "bar",
    data: { labels: classes.map((c) => c.name), datasets },
    options: {
      scales: {
        x: { title: { display: true, text: "class" } },
        y: { beginAtZero: true, max: 100, title: { display: true, text: "% of predictions" } },
      },
    },
  });
}

/** Average confidence per drift report, and the serving model's mean confidence on its test split. */
export function drawConfidence(points, reference) {
  const datasets = [series("average confidence", points.map((p) => p.metrics[M_AVG_CONFIDENCE] ?? null), "#2f6fdb")];
  const mean = reference?.confidence_mean;
  if (typeof mean === "number") datasets.push(level(`reference mean (version ${reference.model_version})`, points.map(() => mean), REFERENCE));
  timeChart("confidence-trend-chart", points, datasets, { min: 0, max: 1, title: { display: true, text: "confidence" } });
}

/** Feedback accuracy per feedback run, its version's test accuracy, and the alert bound (test accuracy - drop). */
export function drawFeedback(points, thresholds) {
  const test = points.map((p) => p.metrics[M_TEST_ACCURACY] ?? null);
  timeChart("feedback-chart", points, [
    series("feedback accuracy", points.map((p) => p.metrics[M_FEEDBACK_ACCURACY] ?? null), "#2e9d57"),
    level("test accuracy", test, REFERENCE),
    level("alert bound", test.map((t) => (t === null ? null : t - thresholds.feedback_alert_drop)), ALERT),
  ], { min: 0, max: 1, title: { display: true, text: "accuracy" } });
}

/** A figure shows its chart or, given a note, says instead why there is none. */
export function figureNote(figureId, canvasId, note) {
  const figure = document.getElementById(figureId);
  figure.querySelector(".chart-box").hidden = Boolean(note);
  const empty = figure.querySelector("p.empty");
  empty.hidden = !note;
  empty.textContent = note || "";
  if (note) clearChart(canvasId);
}
