// The server's state in the top bar: up or not, the model serving, and records not yet in MLflow.

import { api } from "./api.js";

export async function loadHealth() {
  const box = document.getElementById("health");
  try {
    const health = await api("/health");
    const version = health.model_version ? ` (version ${health.model_version})` : "";
    const model = health.model_loaded ? `model: ${health.current_model.split("/").pop()}${version}` : "no model yet: train one";
    box.textContent = `● ${health.status} · ${model} · ${health.pending_inference_records} record(s) waiting for MLflow`;
  } catch (error) {
    box.textContent = `Server unreachable: ${error.message}`;
  }
}
