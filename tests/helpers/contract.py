"""The names of the platform's MLflow contract, as the tests expect them.

Spelled out here on purpose instead of imported from `iris_platform.tracking.names`: users' MLflow
queries and the stock MLflow UI depend on these exact strings, so a key renamed in the source must
fail the tests rather than silently change what they look for.
"""

from __future__ import annotations

TRAINING_EXPERIMENT = "iris_classification"
INFERENCE_EXPERIMENT = "iris_inference"
EXPERIMENTS = (TRAINING_EXPERIMENT, INFERENCE_EXPERIMENT)
TRAINING_METRICS = ("accuracy", "precision", "recall", "f1_score")
# POST /train's answer, key by key: these first, then what was measured (cv_*, curve areas), then the rest.
TRAINING_ANSWER_HEAD = ["status", "run_id", "model_path", "model_version", *TRAINING_METRICS]
TRAINING_ANSWER_TAIL = [
    "model_type",
    "hyperparameters",
    "cv_folds",
    "runtime",
    "classification_report",
    "confusion_matrix",
    "dropped_columns",
    "constant_columns",
    "preprocessing",
    "imputed_cells",
    "text_features",
    "model_metadata",
]
# The model types /train takes, in the order GET /model_types lists them.
MODEL_TYPE_NAMES = [
    "random_forest",
    "extra_trees",
    "hist_gradient_boosting",
    "gradient_boosting",
    "logistic_regression",
    "svc",
    "knn",
]
PREDICTION_ID_TAG = "prediction_id"
