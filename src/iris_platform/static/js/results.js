// The result cards under the forms: one per kind (training, prediction, batch, model, error), newest first.

import { el } from "./dom.js";

export function showResult(kind, title, ...content) {
  const results = document.getElementById("results");
  const card = el("article", { class: `card result ${kind}`, "data-result": kind }, el("h3", { text: title }), ...content);
  results.querySelector(`[data-result="${kind}"]`)?.remove();
  results.querySelector('[data-result="error"]')?.remove();
  results.prepend(card);
}

export function showError(action, error) {
  showResult("error", `${action} failed`, el("p", { text: error.message }));
}

/** Run a form's action with its submit button disabled; a failure becomes an error card. */
export async function withBusy(form, action, work) {
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try { await work(); } catch (error) { showError(action, error); } finally { button.disabled = false; }
}
