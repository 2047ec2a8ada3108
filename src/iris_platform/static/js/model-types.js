// The model types POST /train trains and their hyperparameters (GET /model_types), read once and shared by the
// training form and the comparison table.

import { api } from "./api.js";

let pending = null;

/** GET /model_types' answer; a failed read is tried again on the next call. */
export function modelTypes() {
  pending ??= api("/model_types").catch((error) => { pending = null; throw error; });
  return pending;
}

/** The model type a run's model_type param (its scikit-learn class) names, if the server knows it. */
export const byEstimatorClass = (catalog, estimatorClass) =>
  catalog?.model_types.find((t) => t.estimator_class === estimatorClass);
