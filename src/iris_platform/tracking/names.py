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
# What the saved model does before its classifier, its steps joined by "+": "median_imputation" (blank
# cells of the training table filled in, numbers with the column's median and text as a category of its
# own, also at prediction), "one_hot_encoding" (text features), or "none"; the features it takes by kind.
P_PREPROCESSING = "preprocessing"
P_N_NUMERIC_FEATURES = "n_numeric_features"
P_N_TEXT_FEATURES = "n_text_features"
PREPROCESSING_MEDIAN_IMPUTATION = "median_imputation"
PREPROCESSING_ONE_HOT_ENCODING = "one_hot_encoding"
PREPROCESSING_NONE = "none"
PREPROCESSING_SEPARATOR = "+"
# An upload's choice for blank numeric cells ("median" or "none"), and its columns left out because they
# hold one value in every row (comma-separated, logged only when there are some).
P_IMPUTE = "impute"
P_CONSTANT_COLUMNS = "constant_columns"
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
# A batch scored by Spark (`iris-platform batch --engine spark`): its engine, the Spark master it ran
# on, and the folder its predictions were written to (they stay there, not in MLflow).
P_ENGINE = "engine"
ENGINE_SPARK = "spark"
P_SPARK_MASTER = "spark_master"
P_OUTPUT_PATH = "output_path"

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
# A Spark batch's artifacts: the first rows of its predictions, and what its output folder holds.
PREDICTIONS_SAMPLE_ARTIFACT = "predictions_sample.csv"
OUTPUT_MANIFEST_ARTIFACT = "output_manifest.json"
COL_PREDICTED_CLASS = "predicted_class"
COL_CONFIDENCE = "confidence"
PROB_COLUMN_PREFIX = "prob_"

# Monitoring. The training's reference profile: a top-level artifact of the training run and of its
# logged MLflow model (so of the registered version), and a file of the platform's model files.
REFERENCE_PROFILE_ARTIFACT = "reference_profile.json"
# Drift metrics on every batch run, every `single_window` run and every drift window run.
PSI_PREFIX = "psi_"
KS_PVALUE_PREFIX = "ks_pvalue_"
# A text feature's test is chi-square, of its categories' counts against the training proportions.
CHI2_PVALUE_PREFIX = "chi2_pvalue_"
M_CLASS_DRIFT_PVALUE = "class_drift_pvalue"
M_DRIFT_DETECTED = "drift_detected"
# Comma-separated feature names ("" when none): drifted (PSI at the alert level and KS p below the bound),
# and warned (PSI at the warning level only).
T_DRIFTED_FEATURES = "drifted_features"
T_DRIFT_WARNED_FEATURES = "drift_warned_features"
# The thresholds a drift report used, as a JSON object.
T_DRIFT_THRESHOLDS = "drift_thresholds"
# Every IRIS_DRIFT_WINDOW single predictions of one version (written one run each), a drift window run.
DRIFT_RUN_PREFIX = "drift_window"
PREDICTION_TYPE_DRIFT = "drift_window"
M_DRIFT_WINDOW_RECORDS = "drift_window_records"
# Feedback labels: one `feedback_<timestamp>` run per unit of labels the worker writes, per version.
FEEDBACK_RUN_PREFIX = "feedback"
PREDICTION_TYPE_FEEDBACK = "feedback"
M_FEEDBACK_ACCURACY = "feedback_accuracy"  # over the version's last IRIS_FEEDBACK_WINDOW labels
M_FEEDBACK_COUNT = "feedback_count"  # labels in that window
M_FEEDBACK_LABELS = "feedback_labels"  # labels this run holds
M_FEEDBACK_CORRECT = "feedback_correct"  # of them, those the model predicted right
M_TEST_ACCURACY = "test_accuracy"  # the version's held-out accuracy, for comparison
FEEDBACK_ARTIFACT = "feedback.csv"
T_FEEDBACK_FIRST_ID = "feedback_first_id"
T_FEEDBACK_RECORDS = "feedback_records"
# The version's window as a string of 1 (right) and 0 (wrong), oldest first: the next run continues it.
T_FEEDBACK_WINDOW = "feedback_window"
P_TRUE_LABEL = "true_label"
P_LABELLED_PREDICTION_ID = "prediction_id"
P_BATCH_RUN_ID = "batch_run_id"
P_ROW = "row"
T_FEEDBACK_ALERTING = "feedback_alerting"  # "1" while the window's accuracy is below the alert bound
# Alerts: a run that raised one carries its kind and message; every alert is also sent to IRIS_ALERT_WEBHOOK.
T_ALERT = "alert"
T_ALERT_MESSAGE = "alert_message"
ALERT_DRIFT = "drift_detected"
ALERT_ACCURACY_DROP = "accuracy_drop"

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


def psi_metric(feature: str) -> str:
    return PSI_PREFIX + key_part(feature)


def ks_pvalue_metric(feature: str) -> str:
    return KS_PVALUE_PREFIX + key_part(feature)


def chi2_pvalue_metric(feature: str) -> str:
    return CHI2_PVALUE_PREFIX + key_part(feature)


# On a batch run of a model with text features: per text feature, the rows holding a text the
# training never had (the model ignores it).
UNSEEN_CATEGORIES_PREFIX = "unseen_categories_"


def unseen_metric(feature: str) -> str:
    return UNSEEN_CATEGORIES_PREFIX + key_part(feature)


# Cross-validation (cv_folds >= 2): per training metric, its mean and standard deviation over the folds.
P_CV_FOLDS = "cv_folds"


def cv_metric(metric: str, statistic: str) -> str:
    """cv_accuracy_mean, cv_f1_score_std, ..."""
    return f"cv_{metric}_{statistic}"


# Training evidence: how the model does class by class on the held-out split.
EVALUATION_ARTIFACT_DIR = "evaluation"
CONFUSION_MATRIX_ARTIFACT = "confusion_matrix.json"
PER_CLASS_METRICS_ARTIFACT = "per_class_metrics.json"
# Two-class targets only: the curves, and their areas as metrics.
ROC_CURVE_ARTIFACT = "roc_curve.json"
PR_CURVE_ARTIFACT = "precision_recall_curve.json"
M_ROC_AUC = "roc_auc"
M_AVERAGE_PRECISION = "average_precision"

# Tuning (POST /tune): a parent run in the training experiment, a child run per trial (MLflow's nested
# runs: the child's tag mlflow.parentRunId names the parent).
TUNING_RUN_PREFIX = "tuning"
TRIAL_RUN_PREFIX = "trial"
T_PARENT_RUN_ID = "mlflow.parentRunId"
T_RUN_KIND = "iris.run_kind"  # on tuning runs and their trials
RUN_KIND_TUNING = "tuning"
RUN_KIND_TRIAL = "trial"
P_SEARCH = "search"  # grid or random
P_SEARCH_SPACE = "search_space"  # the space as sent, JSON
P_TUNING_METRIC = "tuning_metric"  # what the trials are ranked by: accuracy, ... or cv_<metric>_mean
P_N_TRIALS = "n_trials"
P_PROMOTE = "promote"
P_TRIAL = "trial"  # a trial's number, from 1
M_TRIAL_SCORE = "trial_score"  # on the parent, one step per trial
M_BEST_SCORE = "best_score"  # on the parent, the best so far, one step per trial
T_TUNING_STATUS = "tuning_status"  # running, finished, cancelled, failed
T_TUNING_CANCEL = "tuning_cancel_requested"  # set by DELETE /tune/{id}; read between trials
T_TUNING_BEST_RUN = "tuning_best_run_id"
T_TUNING_MODEL_VERSION = "tuning_model_version"
