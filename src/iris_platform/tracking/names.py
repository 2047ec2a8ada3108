"""Every MLflow name this platform writes: experiments, run names, params, metrics, tags, artifacts.

Users' MLflow queries and the stock MLflow UI depend on these exact strings; change none lightly.
"""

from __future__ import annotations

import re

TRAINING_EXPERIMENT = "iris_classification"
INFERENCE_EXPERIMENT = "iris_inference"
EXPERIMENTS = (TRAINING_EXPERIMENT, INFERENCE_EXPERIMENT)
# Both are tagged as machine-learning experiments, as MLflow's own training integrations tag theirs
# (MLflow's API and assistant read it; the 3.17 UI opens every experiment on its GenAI overview
# until the sidebar's "Model training" switch or `?workflowType=machine_learning` is used).
T_EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"

# Run inputs (MLflow datasets): the training table and each batch file, by the context they served.
DATASET_CONTEXT_TRAINING = "training"
DATASET_CONTEXT_INFERENCE = "inference"
IRIS_DATASET_NAME = "iris"

# Run names are "<prefix>_<timestamp>".
TRAINING_RUN_PREFIX = "training"
SINGLE_RUN_PREFIX = "single_prediction"
BATCH_RUN_PREFIX = "batch_prediction"
WINDOW_RUN_PREFIX = "single_window"

# Training params.
P_MODEL_TYPE = "model_type"
P_N_ESTIMATORS = "n_estimators"
P_TEST_SIZE = "test_size"
P_N_FEATURES = "n_features"
P_N_SAMPLES = "n_samples"
P_N_CLASSES = "n_classes"
P_DATA_SOURCE = "data_source"
P_INPUT_FILE = "input_file"
# An upload's columns left out of the features as row identifiers, comma-separated as the file names
# them; logged only when there are some (absent, not empty, means none: other runs' params are unchanged).
P_DROPPED_COLUMNS = "dropped_columns"
DATA_SOURCE_IRIS = "sklearn_iris"
DATA_SOURCE_CSV = "uploaded_csv"

# Training metrics (weighted averages on the held-out split).
M_ACCURACY = "accuracy"
M_PRECISION = "precision"
M_RECALL = "recall"
M_F1 = "f1_score"
TRAINING_METRICS = (M_ACCURACY, M_PRECISION, M_RECALL, M_F1)

# The platform's files of a model (pkl, metadata, ONNX form) go under this folder of the logged
# MLflow model, beside MLflow's own files, so the registered version holds both.
MODEL_FILES_ARTIFACT_DIR = "model_files"
# The MLflow model, servable with `mlflow models serve`: a pyfunc from code (tracking/mlflow_pyfunc.py)
# answering the columns of the batch predictions CSV (COL_PREDICTED_CLASS, COL_CONFIDENCE, prob_<class>).
MLFLOW_MODEL_NAME = "model"
# Its artifacts: the scikit-learn model (an mlflow.sklearn model in the skops format) and a JSON object
# of its feature, class and output column names. mlflow_pyfunc.py repeats these keys (it imports nothing
# of the platform); a test checks they agree.
MLFLOW_ESTIMATOR_ARTIFACT = "estimator"
MLFLOW_COLUMNS_ARTIFACT = "columns"

# The Model Registry: every training registers a version of the registered model (setting
# IRIS_REGISTERED_MODEL, default "iris_classifier"); the alias names the version every replica serves.
CHAMPION_ALIAS = "champion"
# Version tags: the platform's files in the version's `model_files/` and the held-out metrics.
T_VERSION_MODEL_FILE = "iris.model_file"
T_VERSION_SHA256 = "iris.sha256"
T_VERSION_METADATA_SHA256 = "iris.metadata_sha256"
T_VERSION_METRICS = "iris.metrics"
# Registered-model tag: the versions `champion` named before, oldest first (a JSON list), for rollback.
T_CHAMPION_HISTORY = "iris.champion_history"

# Inference params.
P_PREDICTION_TYPE = "prediction_type"
P_MODEL_PATH = "model_path"
P_MODEL_VERSION = "model_version"
P_TIMESTAMP = "timestamp"
P_PREDICTED_CLASS = "predicted_class"
PREDICTION_TYPE_SINGLE = "single"
PREDICTION_TYPE_BATCH = "batch"
# Many single predictions in one run, written when the tracking worker's backlog passes its bound.
PREDICTION_TYPE_WINDOW = "single_window"
P_WINDOW_END = "window_end"

# Single-prediction metrics.
M_PREDICTED_CLASS_INDEX = "predicted_class_index"
M_PREDICTION_CONFIDENCE = "prediction_confidence"
PROBABILITY_PREFIX = "probability_"

# Batch metrics.
M_TOTAL_SAMPLES = "total_samples"
M_AVG_CONFIDENCE = "avg_confidence"
M_MIN_CONFIDENCE = "min_confidence"
M_MAX_CONFIDENCE = "max_confidence"
M_UNIQUE_CLASSES = "unique_classes_predicted"
COUNT_PREFIX = "count_"
PERCENTAGE_PREFIX = "percentage_"

# Window metrics (besides the batch statistics): the window's span, for finding a prediction by time.
M_WINDOW_START_MS = "window_start_ms"
M_WINDOW_END_MS = "window_end_ms"

# Batch artifact: the predictions CSV and its extra columns.
PREDICTIONS_ARTIFACT = "predictions.csv"
# Window artifact: every record of the window, one row each.
WINDOW_ARTIFACT = "window_predictions.csv"
COL_PREDICTED_CLASS = "predicted_class"
COL_CONFIDENCE = "confidence"
PROB_COLUMN_PREFIX = "prob_"

# Tags.
T_PREDICTION_ID = "prediction_id"
T_FAILURE_REASON = "failure_reason"
T_WINDOW_FIRST_ID = "window_first_prediction_id"
T_WINDOW_RECORDS = "window_records"

# MLflow allows alphanumerics, underscores, dashes, periods, spaces, colons and slashes in keys.
_UNSAFE_KEY_CHARS = re.compile(r"[^0-9A-Za-z_\-. /:]")


def key_part(name: str) -> str:
    """A class name made safe to sit inside an MLflow metric key."""
    return _UNSAFE_KEY_CHARS.sub("_", str(name))


def probability_metric(class_name: str) -> str:
    return PROBABILITY_PREFIX + key_part(class_name)


def count_metric(class_name: str) -> str:
    return COUNT_PREFIX + key_part(class_name)


def percentage_metric(class_name: str) -> str:
    return PERCENTAGE_PREFIX + key_part(class_name)


def probability_column(class_name: str) -> str:
    return PROB_COLUMN_PREFIX + str(class_name)
