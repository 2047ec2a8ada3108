// The "Predict one flower" card: an input per feature of the serving model, and the prediction's result card.

import { post } from "./api.js";
import { chartBox, classBarChart } from "./charts.js";
import { bar, el, stat } from "./dom.js";
import { formatPercent } from "./format.js";
import { showResult, withBusy } from "./results.js";

/** The features of scikit-learn's Iris, shown until a model says otherwise, and a setosa to start from. */
export const IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"];
const IRIS_DEFAULTS = { sepal_length: 5.1, sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 };

/** An input per feature; a value typed in already is kept for a feature of the same name. A model that
 * imputes takes a blank field (it fills in the training median), so then no field is required. A text
 * feature (one of `textCategories`) gets a text input offering the categories it was trained on. */
export function renderFeatureInputs(features, blanksAllowed = false, textCategories = {}) {
  const box = document.getElementById("feature-inputs");
  const previous = Object.fromEntries([...box.querySelectorAll("input")].map((i) => [i.name, i.value]));
  box.replaceChildren();
  for (const name of features) {
    const id = `feature-${name}`;
    const categories = textCategories[name];
    const required = blanksAllowed ? {} : { required: "" };
    if (categories) {
      const listId = `${id}-categories`;
      const value = previous[name] ?? categories.find((c) => c !== "") ?? "";
      box.append(el("div", {},
        el("label", { for: id, text: name }),
        el("input", { id, name, type: "text", list: listId, value, autocomplete: "off",
          placeholder: categories.filter((c) => c !== "").slice(0, 3).join(", "), ...required }),
        el("datalist", { id: listId }, ...categories.filter((c) => c !== "").map((c) => el("option", { value: c })))));
      continue;
    }
    const value = previous[name] ?? IRIS_DEFAULTS[name] ?? "";
    box.append(el("div", {},
      el("label", { for: id, text: name }),
      el("input", { id, name, type: "number", step: "any", value: String(value),
        ...(blanksAllowed ? { placeholder: "blank: the training median" } : required) })));
  }
}

function renderPrediction(data) {
  const names = Object.keys(data.probabilities);
  showResult("prediction", "Prediction",
    el("div", { class: "big", text: data.class_name }),
    el("div", { class: "stats" }, stat("Confidence", formatPercent(data.confidence)), stat("Class index", String(data.prediction))),
    chartBox("probability-chart", "Class probabilities"),
    ...Object.entries(data.probabilities).map(([name, p]) => bar(name, p, formatPercent(p))),
    data.out_of_range_features?.length
      ? el("p", { class: "run-meta", text: `Outside the training range: ${data.out_of_range_features.join(", ")}` })
      : null,
    Object.keys(data.unseen_categories ?? {}).length
      ? el("p", { class: "run-meta unseen-categories", text: `Not seen in training, so ignored by the model: ${
        Object.entries(data.unseen_categories).map(([feature, text]) => `${feature} = ${text}`).join(", ")}` })
      : null,
    el("p", { class: "run-meta", text: `prediction id ${data.prediction_id}` }));
  classBarChart("probability-chart", names, names.map((n) => data.probabilities[n]), "probability", 1);
}

/** Wire the form; `afterPrediction` runs once a prediction is shown. */
export function initPredict({ afterPrediction }) {
  renderFeatureInputs(IRIS_FEATURES);
  document.getElementById("predict-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    withBusy(form, "Prediction", async () => {
      renderPrediction(await post("/predict", new FormData(form)));
      afterPrediction();
    });
  });
}
