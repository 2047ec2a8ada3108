// The dashboard's entry point (a module, so deferred: the document is parsed and Chart.js loaded when it runs).
// Forms that call the API, result cards, and the MLflow runs it reads back; each card is its own module.

import { initBatch } from "./batch.js";
import { initCompare } from "./compare.js";
import { loadHealth } from "./health.js";
import { initModels, loadModels } from "./models.js";
import { initPredict } from "./predict.js";
import { initRuns, refreshRuns } from "./runs.js";
import { initTrain } from "./train.js";

const AUTO_REFRESH_MS = 5000;
const TRACKING_DELAY_MS = 1500; // a single prediction's run is written by the server's background tracking worker
let autoRefreshTimer = null;

async function refreshAll() {
  await Promise.all([loadHealth(), loadModels(), refreshRuns()]);
}

function setAutoRefresh(on) {
  clearInterval(autoRefreshTimer);
  autoRefreshTimer = on ? setInterval(refreshAll, AUTO_REFRESH_MS) : null;
}

function initDialogs() {
  for (const id of ["run-dialog", "compare-dialog"]) {
    const dialog = document.getElementById(id);
    document.getElementById(`${id}-close`).addEventListener("click", () => dialog.close());
    dialog.addEventListener("click", (e) => { if (e.target === dialog) dialog.close(); });
  }
}

initRuns();
initTrain({ afterTraining: refreshAll });
initPredict({ afterPrediction: () => { setTimeout(refreshRuns, TRACKING_DELAY_MS); loadHealth(); } });
initBatch({ afterBatch: refreshRuns });
initCompare();
initModels();
initDialogs();
document.getElementById("refresh").addEventListener("click", refreshAll);
document.getElementById("auto-refresh").addEventListener("change", (e) => setAutoRefresh(e.target.checked));
refreshAll();
