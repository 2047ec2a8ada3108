// The "Saved models" card: the registered versions, which one serves, loading another, rolling back.

import { api, post } from "./api.js";
import { CHAMPION_ALIAS, M_ACCURACY, PREPROCESSING_MEDIAN_IMPUTATION, PREPROCESSING_SEPARATOR } from "./contract.js";
import { el } from "./dom.js";
import { formatNumber } from "./format.js";
import { loadHealth } from "./health.js";
import { IRIS_FEATURES, renderFeatureInputs } from "./predict.js";
import { showError, showResult } from "./results.js";

/** List the registered versions; the prediction form follows the serving model's features. */
export async function loadModels() {
  const list = document.getElementById("models");
  const rollback = document.getElementById("rollback");
  try {
    const data = await api("/models");
    list.replaceChildren();
    const current = data.models.find((m) => m.is_current);
    const steps = (current?.metadata?.preprocessing ?? "").split(PREPROCESSING_SEPARATOR);
    renderFeatureInputs(current?.metadata ? current.metadata.feature_names : IRIS_FEATURES,
      steps.includes(PREPROCESSING_MEDIAN_IMPUTATION), current?.metadata?.text_categories ?? {});
    if (data.registry_error) list.append(el("li", { class: "empty", text: `Model registry unreachable: ${data.registry_error}` }));
    if (data.models.length === 0) list.append(el("li", { class: "empty", text: "No saved models yet." }));
    for (const model of data.models) {
      const meta = model.metadata || {};
      const version = model.version === null ? "not registered" : `version ${model.version}`;
      const aliases = model.aliases.length ? ` · ${model.aliases.join(", ")}` : "";
      const info = el("div", {},
        el("div", { text: model.filename, class: model.is_current ? "current" : "" }),
        el("small", { text: `${version}${aliases} · ${meta.data_source ?? ""} · accuracy ${formatNumber(model.metrics?.[M_ACCURACY])}${model.is_current ? " · serving" : ""}` }));
      const button = el("button", { type: "button", class: "secondary", text: model.is_current ? "Current" : "Load",
        "aria-label": `Load model ${model.filename}` });
      button.disabled = model.is_current;
      button.addEventListener("click", () => loadModel(model, button));
      list.append(el("li", {}, info, button));
    }
    // Rolling back needs a version the champion named before: at least two registered versions.
    rollback.disabled = !data.models.some((m) => m.aliases.includes(CHAMPION_ALIAS)) || data.models.filter((m) => m.version !== null).length < 2;
  } catch (error) {
    list.replaceChildren(el("li", { class: "empty", text: error.message }));
  }
}

/** Make `model` (an entry of GET /models) the champion; `button` stays disabled unless that fails. */
export async function loadModel(model, button) {
  button.disabled = true;
  try {
    const body = model.version === null ? { model_path: model.path } : { version: Number(model.version) };
    const data = await api("/load_model", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    showResult("model", "Model loaded", el("p", { text: `version ${data.model_version} · ${data.model_path}` }));
    await Promise.all([loadModels(), loadHealth()]);
  } catch (error) {
    showError("Loading the model", error);
    button.disabled = false;
  }
}

/** Move the champion back to the version it named before. */
export async function rollBack(button) {
  button.disabled = true;
  try {
    const data = await post("/models/rollback", new FormData());
    showResult("model", "Rolled back", el("p", { text: `version ${data.model_version} serves again (was ${data.previous_version})` }));
  } catch (error) {
    showError("Rolling back", error);
  }
  await Promise.all([loadModels(), loadHealth()]);
}

/** Wire the Roll back button. */
export function initModels() {
  const button = document.getElementById("rollback");
  button.addEventListener("click", () => rollBack(button));
}
