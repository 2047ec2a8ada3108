// The dashboard's entry point (a module, so deferred: the document is parsed and Chart.js loaded when it runs).
// Two sections (sections.js): the Dashboard (forms that call the API, result cards, the tuning card, and the MLflow
// runs it reads back; each card is its own module) and Monitoring (drift, feedback accuracy and alerts).

import { initBatch } from "./batch.js";
import { initCompare } from "./compare.js";
import { loadHealth } from "./health.js";
import { initModels, loadModels } from "./models.js";
import { initMonitoring, refreshMonitoring } from "./monitoring.js";
import { initPredict } from "./predict.js";
import { initRuns, refreshRuns } from "./runs.js";
import { initSections } from "./sections.js";
import { initTrain, loadModelTypes } from "./train.js";
import { initTuning, loadTuningTypes } from "./tuning.js";
import { view } from "./view.js";

const AUTO_REFRESH_MS = 5000;
const TRACKING_DELAY_MS = 1500; // a single prediction's run is written by the server's background tracking worker
let autoRefreshTimer = null;

async function refreshAll() {
  await Promise.all([loadHealth(), loadModels(), refreshRuns(), loadModelTypes(), loadTuningTypes()]);
}

function setAutoRefresh(on) {
  clearInterval(autoRefreshTimer);
  autoRefreshTimer = on ? setInterval(() => {
    refreshAll();
    if (view.section === "monitoring") refreshMonitoring();
  }, AUTO_REFRESH_MS) : null;
}

function initDialogs() {
  for (const id of ["run-dialog", "compare-dialog"]) {
    const dialog = document.getElementById(id);
    document.getElementById(`${id}-close`).addEventListener("click", () => dialog.close());
    dialog.addEventListener("click", (e) => { if (e.target === dialog) dialog.close(); });
  }
}

initRuns(); // first: it reads the view (section, tab, search...) from the URL
initSections({ monitoring: refreshMonitoring }); // opening Monitoring reads it again
initMonitoring();
initTrain({ afterTraining: refreshAll });
initTuning({ afterTuning: refreshAll }); // when a tuning starts (its run is listed) and when it ends (its model)
initPredict({ afterPrediction: () => { setTimeout(refreshRuns, TRACKING_DELAY_MS); loadHealth(); } });
initBatch({ afterBatch: refreshRuns });
initCompare();
initModels();
initDialogs();
document.getElementById("refresh").addEventListener("click", refreshAll);
document.getElementById("auto-refresh").addEventListener("change", (e) => setAutoRefresh(e.target.checked));
refreshAll();
