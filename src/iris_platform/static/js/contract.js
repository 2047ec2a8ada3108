// Every MLflow name the platform writes, as src/iris_platform/tracking/names.py spells it, under the same
// constant names (functions in camelCase: probability_metric -> probabilityMetric). The page reads MLflow
// runs only through these; tests/browser/test_page_modules.py fails when this file and names.py differ.
// Below them, the few names of the server's runs API (GET /mlflow/runs) built from them.

export const TRAINING_EXPERIMENT = "iris_classification";
export const INFERENCE_EXPERIMENT = "iris_inference";
export const EXPERIMENTS = Object.freeze([TRAINING_EXPERIMENT, INFERENCE_EXPERIMENT]);
export const T_EXPERIMENT_KIND = "mlflow.experimentKind";
export const EXPERIMENT_KIND = "custom_model_development";

// Run inputs (MLflow datasets).
export const DATASET_CONTEXT_TRAINING = "training";
export const DATASET_CONTEXT_INFERENCE = "inference";
export const IRIS_DATASET_NAME = "iris";

// Run names are "<prefix>_<timestamp>".
export const TRAINING_RUN_PREFIX = "training";
export const SINGLE_RUN_PREFIX = "single_prediction";
export const BATCH_RUN_PREFIX = "batch_prediction";
export const WINDOW_RUN_PREFIX = "single_window";

// Training params.
export const P_MODEL_TYPE = "model_type";
export const P_N_ESTIMATORS = "n_estimators";
export const P_TEST_SIZE = "test_size";
export const P_N_FEATURES = "n_features";
export const P_N_SAMPLES = "n_samples";
export const P_N_CLASSES = "n_classes";
export const P_DATA_SOURCE = "data_source";
export const P_INPUT_FILE = "input_file";
export const P_DROPPED_COLUMNS = "dropped_columns";
export const DATA_SOURCE_IRIS = "sklearn_iris";
export const DATA_SOURCE_CSV = "uploaded_csv";

// Training metrics (weighted averages on the held-out split).
export const M_ACCURACY = "accuracy";
export const M_PRECISION = "precision";
export const M_RECALL = "recall";
export const M_F1 = "f1_score";
export const TRAINING_METRICS = Object.freeze([M_ACCURACY, M_PRECISION, M_RECALL, M_F1]);

// Training artifacts.
export const MODEL_FILES_ARTIFACT_DIR = "model_files";
export const MLFLOW_MODEL_NAME = "model";
export const MLFLOW_ESTIMATOR_ARTIFACT = "estimator";
export const MLFLOW_COLUMNS_ARTIFACT = "columns";
export const CHAMPION_ALIAS = "champion";
export const T_VERSION_MODEL_FILE = "iris.model_file";
export const T_VERSION_SHA256 = "iris.sha256";
export const T_VERSION_METADATA_SHA256 = "iris.metadata_sha256";
export const T_VERSION_METRICS = "iris.metrics";
export const T_CHAMPION_HISTORY = "iris.champion_history";

// Inference params.
export const P_PREDICTION_TYPE = "prediction_type";
export const P_MODEL_PATH = "model_path";
export const P_MODEL_VERSION = "model_version";
export const P_TIMESTAMP = "timestamp";
export const P_PREDICTED_CLASS = "predicted_class";
export const PREDICTION_TYPE_SINGLE = "single";
export const PREDICTION_TYPE_BATCH = "batch";
export const PREDICTION_TYPE_WINDOW = "single_window";
export const P_WINDOW_END = "window_end";

// Single-prediction metrics.
export const M_PREDICTED_CLASS_INDEX = "predicted_class_index";
export const M_PREDICTION_CONFIDENCE = "prediction_confidence";
export const PROBABILITY_PREFIX = "probability_";

// Batch metrics.
export const M_TOTAL_SAMPLES = "total_samples";
export const M_AVG_CONFIDENCE = "avg_confidence";
export const M_MIN_CONFIDENCE = "min_confidence";
export const M_MAX_CONFIDENCE = "max_confidence";
export const M_UNIQUE_CLASSES = "unique_classes_predicted";
export const COUNT_PREFIX = "count_";
export const PERCENTAGE_PREFIX = "percentage_";

// Window metrics.
export const M_WINDOW_START_MS = "window_start_ms";
export const M_WINDOW_END_MS = "window_end_ms";

// Batch and window artifacts, and their extra columns.
export const PREDICTIONS_ARTIFACT = "predictions.csv";
export const WINDOW_ARTIFACT = "window_predictions.csv";
export const COL_PREDICTED_CLASS = "predicted_class";
export const COL_CONFIDENCE = "confidence";
export const PROB_COLUMN_PREFIX = "prob_";

// Tags.
export const T_PREDICTION_ID = "prediction_id";
export const T_FAILURE_REASON = "failure_reason";
export const T_WINDOW_FIRST_ID = "window_first_prediction_id";
export const T_WINDOW_RECORDS = "window_records";

// MLflow allows alphanumerics, underscores, dashes, periods, spaces, colons and slashes in keys.
const UNSAFE_KEY_CHARS = /[^0-9A-Za-z_\-. /:]/gu; // "u": one "_" per character, as Python, not per UTF-16 unit

/** A class name made safe to sit inside an MLflow metric key. */
export const keyPart = (name) => String(name).replace(UNSAFE_KEY_CHARS, "_");
export const probabilityMetric = (className) => PROBABILITY_PREFIX + keyPart(className);
export const countMetric = (className) => COUNT_PREFIX + keyPart(className);
export const percentageMetric = (className) => PERCENTAGE_PREFIX + keyPart(className);
export const probabilityColumn = (className) => PROB_COLUMN_PREFIX + String(className);

// ---- the runs API (not MLflow's own names) ----------------------------------------------------

// A listed run's run_type and the run_type filter: "training" runs are TRAINING_EXPERIMENT's, "inference" INFERENCE_EXPERIMENT's.
export const RUN_TYPE_TRAINING = "training";
export const RUN_TYPE_INFERENCE = "inference";
// order_by: a run attribute, "samples" (an inference run's total_samples, a training run's n_samples), or a metric.
export const ORDER_BY_START_TIME = "start_time";
export const ORDER_BY_SAMPLES = "samples";
export const METRIC_ORDER_PREFIX = "metrics.";
export const orderByMetric = (metric) => METRIC_ORDER_PREFIX + metric;
