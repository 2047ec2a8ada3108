// The "Saved models" card: the models folder, which one is serving, and loading another.

import { api, post } from "./api.js";
import { M_ACCURACY } from "./contract.js";
import { el } from "./dom.js";
import { formatNumber } from "./format.js";
import { loadHealth } from "./health.js";
import { IRIS_FEATURES, renderFeatureInputs } from "./predict.js";
import { showError, showResult } from "./results.js";

/** List the saved models; the prediction form follows the serving model's features. */
export async function loadModels() {
  const list = document.getElementById("models");
  try {
    const data = await api("/models");
    list.replaceChildren();
    const current = data.models.find((m) => m.is_current);
    renderFeatureInputs(current ? current.metadata.feature_names : IRIS_FEATURES);
    if (data.models.length === 0) list.append(el("li", { class: "empty", text: "No saved models yet." }));
    for (const model of data.models) {
      const meta = model.metadata || {};
      const info = el("div", {},
        el("div", { text: model.filename, class: model.is_current ? "current" : "" }),
        el("small", { text: `${meta.data_source ?? ""} · accuracy ${formatNumber(meta.metrics?.[M_ACCURACY])}${model.is_current ? " · serving" : ""}` }));
      const button = el("button", { type: "button", class: "secondary", text: model.is_current ? "Current" : "Load",
        "aria-label": `Load model ${model.filename}` });
      button.disabled = model.is_current;
      button.addEventListener("click", () => loadModel(model.path, button));
      list.append(el("li", {}, info, button));
    }
  } catch (error) {
    list.replaceChildren(el("li", { class: "empty", text: error.message }));
  }
}

/** Serve the model at `path` (a path GET /models lists); `button` stays disabled unless that fails. */
export async function loadModel(path, button) {
  button.disabled = true;
  try {
    const body = new FormData();
    body.append("model_path", path);
    const data = await post("/load_model", body);
    showResult("model", "Model loaded", el("p", { text: data.model_path }));
    await Promise.all([loadModels(), loadHealth()]);
  } catch (error) {
    showError("Loading the model", error);
    button.disabled = false;
  }
}
