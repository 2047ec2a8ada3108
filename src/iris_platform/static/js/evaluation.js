// A training run's evaluation on its held-out split, in the run popup, from the run's evaluation/*.json artifacts:
// the confusion matrix as a heatmap table, precision, recall and F1 per class as bars, and for a two-class target
// the ROC and precision-recall curves. A run logged before these artifacts existed shows nothing.

import { api, artifactUrl } from "./api.js";
import { chartBox, clearChart, drawChart } from "./charts.js";
import {
  CONFUSION_MATRIX_ARTIFACT, EVALUATION_ARTIFACT_DIR, PER_CLASS_METRICS_ARTIFACT, PR_CURVE_ARTIFACT, ROC_CURVE_ARTIFACT,
} from "./contract.js";
import { el } from "./dom.js";
import { formatDetail, formatPercent } from "./format.js";

/** The popup's evaluation canvases. */
export const EVALUATION_CHARTS = Object.freeze({ perClass: "per-class-chart", roc: "roc-chart", pr: "pr-chart" });
const ARTIFACTS = [CONFUSION_MATRIX_ARTIFACT, PER_CLASS_METRICS_ARTIFACT, ROC_CURVE_ARTIFACT, PR_CURVE_ARTIFACT];
const PER_CLASS = [["precision", "precision", "#2f6fdb"], ["recall", "recall", "#2e9d57"], ["F1 score", "f1-score", "#764ba2"]];
const unitAxis = (text) => ({ type: "linear", min: 0, max: 1, title: { display: true, text } });

/** The ROC curve's title, with its area. */
export const rocTitle = (roc) => `ROC curve · AUC ${formatDetail(roc.auc)}`;
/** The precision-recall curve's title, with its average precision. */
export const prTitle = (pr) => `Precision-recall curve · average precision ${formatDetail(pr.average_precision)}`;

/** The confusion matrix, each cell shaded by its share of the true class's row (the class's recall on the diagonal). */
function heatmap(confusion) {
  const { labels, matrix } = confusion;
  const body = matrix.map((row, i) => {
    const total = row.reduce((a, b) => a + b, 0);
    return el("tr", {}, el("th", { scope: "row", text: labels[i] }), ...row.map((count, j) => {
      const share = total ? count / total : 0;
      const cell = el("td", { text: String(count), class: i === j ? "diagonal" : "",
        title: `true ${labels[i]}, predicted ${labels[j]}: ${count} (${formatPercent(share)} of the true ${labels[i]})` });
      cell.style.backgroundColor = `rgba(102, 126, 234, ${(0.08 + 0.82 * share).toFixed(3)})`; // CSSOM, as the CSP allows
      if (share > 0.55) cell.classList.add("dark");
      return cell;
    }));
  });
  return el("figure", { id: "confusion-figure" },
    el("figcaption", { text: `Confusion matrix: rows are the ${confusion.rows ?? "true class"}, columns the ${confusion.columns ?? "predicted class"}` }),
    el("div", { class: "table-wrap" }, el("table", { class: "heatmap" },
      el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "true \\ predicted" }),
        ...labels.map((l) => el("th", { scope: "col", text: l })))),
      el("tbody", {}, ...body))));
}

function perClassChart(metrics) {
  const names = Object.keys(metrics.classes);
  drawChart(EVALUATION_CHARTS.perClass, {
    type: "bar",
    data: {
      labels: names,
      datasets: PER_CLASS.map(([label, key, color]) => ({ label, data: names.map((n) => metrics.classes[n][key]), backgroundColor: color })),
    },
    options: { scales: { x: { title: { display: true, text: "class" } }, y: { min: 0, max: 1, title: { display: true, text: "score" } } } },
  });
}

/** A curve through (x[i], y[i]), with a dashed reference line. */
function curveChart(id, title, { x, y, xLabel, yLabel, label, reference }) {
  drawChart(id, {
    type: "line",
    data: {
      datasets: [
        { label, data: x.map((v, i) => ({ x: v, y: y[i] })), borderColor: "#764ba2", backgroundColor: "#764ba2", pointRadius: 0, borderWidth: 2 },
        { label: reference.label, data: reference.points, borderColor: "#98a2b3", backgroundColor: "#98a2b3", borderDash: [5, 5], pointRadius: 0, borderWidth: 1 },
      ],
    },
    options: {
      plugins: { title: { display: true, text: title } },
      scales: { x: unitAxis(xLabel), y: unitAxis(yLabel) },
    },
  });
}

/** The positive class's share of the test rows: a classifier that guesses has this precision. */
function positiveShare(pr, perClass) {
  const support = perClass?.classes?.[pr.positive_class]?.support;
  return support !== undefined && perClass.n_test ? support / perClass.n_test : null;
}

/**
 * The evaluation of a training run: `elements` for the popup and `draw`, which draws its charts once the
 * elements are on the page. Nothing for a run without evaluation artifacts.
 */
export async function evaluationSection(run) {
  const clear = () => Object.values(EVALUATION_CHARTS).forEach(clearChart);
  const present = new Set(run.artifacts.map((a) => a.path));
  const found = ARTIFACTS.filter((name) => present.has(`${EVALUATION_ARTIFACT_DIR}/${name}`));
  if (found.length === 0) return { elements: [], draw: clear };
  const title = el("h3", { text: "Evaluation on the test split" });
  let files;
  try {
    files = Object.fromEntries(await Promise.all(found.map(async (name) =>
      [name, await api(artifactUrl(run.run_id, `${EVALUATION_ARTIFACT_DIR}/${name}`))])));
  } catch (error) {
    return { elements: [title, el("p", { class: "empty", text: `The evaluation could not be read: ${error.message}` })], draw: clear };
  }
  const confusion = files[CONFUSION_MATRIX_ARTIFACT];
  const perClass = files[PER_CLASS_METRICS_ARTIFACT];
  const roc = files[ROC_CURVE_ARTIFACT];
  const pr = files[PR_CURVE_ARTIFACT];
  const figures = [];
  if (confusion) figures.push(heatmap(confusion));
  if (perClass) {
    figures.push(el("figure", { id: "per-class-figure" },
      el("figcaption", { text: `Precision, recall and F1 per class (${perClass.n_test} test rows)` }),
      chartBox(EVALUATION_CHARTS.perClass, "Precision, recall and F1 score of each class on the test split")));
  }
  if (roc) {
    figures.push(el("figure", { id: "roc-figure" },
      el("figcaption", { text: `True positive rate against false positive rate; positive class ${roc.positive_class}` }),
      chartBox(EVALUATION_CHARTS.roc, `${rocTitle(roc)}: true positive rate against false positive rate`)));
  }
  if (pr) {
    figures.push(el("figure", { id: "pr-figure" },
      el("figcaption", { text: `Precision against recall; positive class ${pr.positive_class}` }),
      chartBox(EVALUATION_CHARTS.pr, `${prTitle(pr)}: precision against recall`)));
  }
  const draw = () => {
    clear();
    if (perClass) perClassChart(perClass);
    if (roc) {
      curveChart(EVALUATION_CHARTS.roc, rocTitle(roc), {
        x: roc.false_positive_rate, y: roc.true_positive_rate, xLabel: "false positive rate", yLabel: "true positive rate",
        label: `ROC (${roc.positive_class})`, reference: { label: "chance", points: [{ x: 0, y: 0 }, { x: 1, y: 1 }] },
      });
    }
    if (pr) {
      const share = positiveShare(pr, perClass);
      curveChart(EVALUATION_CHARTS.pr, prTitle(pr), {
        x: pr.recall, y: pr.precision, xLabel: "recall", yLabel: "precision", label: `precision-recall (${pr.positive_class})`,
        reference: { label: "chance", points: share === null ? [] : [{ x: 0, y: share }, { x: 1, y: share }] },
      });
    }
  };
  return { elements: [title, el("div", { class: "evaluation" }, ...figures)], draw };
}
