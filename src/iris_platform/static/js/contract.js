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
export const P_PREPROCESSING = "preprocessing";
export const P_N_NUMERIC_FEATURES = "n_numeric_features";
export const P_N_TEXT_FEATURES = "n_text_features";
export const PREPROCESSING_MEDIAN_IMPUTATION = "median_imputation";
export const PREPROCESSING_ONE_HOT_ENCODING = "one_hot_encoding";
export const PREPROCESSING_NONE = "none";
export const PREPROCESSING_SEPARATOR = "+";
export const P_IMPUTE = "impute";
export const P_CONSTANT_COLUMNS = "constant_columns";
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
// A batch scored by Spark: its engine, its Spark master, the folder its predictions went to.
export const P_ENGINE = "engine";
export const ENGINE_SPARK = "spark";
export const P_SPARK_MASTER = "spark_master";
export const P_OUTPUT_PATH = "output_path";

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
// A Spark batch's artifacts: the first rows of its predictions, and its output folder's manifest.
export const PREDICTIONS_SAMPLE_ARTIFACT = "predictions_sample.csv";
export const OUTPUT_MANIFEST_ARTIFACT = "output_manifest.json";
export const COL_PREDICTED_CLASS = "predicted_class";
export const COL_CONFIDENCE = "confidence";
export const PROB_COLUMN_PREFIX = "prob_";

// Monitoring. The training's reference profile (an artifact of the training run).
export const REFERENCE_PROFILE_ARTIFACT = "reference_profile.json";
// Drift metrics on every batch, single_window and drift window run; feature names pass through keyPart.
export const PSI_PREFIX = "psi_";
export const KS_PVALUE_PREFIX = "ks_pvalue_";
export const CHI2_PVALUE_PREFIX = "chi2_pvalue_";
export const UNSEEN_CATEGORIES_PREFIX = "unseen_categories_";
export const M_CLASS_DRIFT_PVALUE = "class_drift_pvalue";
export const M_DRIFT_DETECTED = "drift_detected";
export const T_DRIFTED_FEATURES = "drifted_features";
export const T_DRIFT_WARNED_FEATURES = "drift_warned_features";
export const T_DRIFT_THRESHOLDS = "drift_thresholds";
export const DRIFT_RUN_PREFIX = "drift_window";
export const PREDICTION_TYPE_DRIFT = "drift_window";
export const M_DRIFT_WINDOW_RECORDS = "drift_window_records";
// Feedback labels: one feedback run per unit of labels the worker writes, per version.
export const FEEDBACK_RUN_PREFIX = "feedback";
export const PREDICTION_TYPE_FEEDBACK = "feedback";
export const M_FEEDBACK_ACCURACY = "feedback_accuracy";
export const M_FEEDBACK_COUNT = "feedback_count";
export const M_FEEDBACK_LABELS = "feedback_labels";
export const M_FEEDBACK_CORRECT = "feedback_correct";
export const M_TEST_ACCURACY = "test_accuracy";
export const FEEDBACK_ARTIFACT = "feedback.csv";
export const T_FEEDBACK_FIRST_ID = "feedback_first_id";
export const T_FEEDBACK_RECORDS = "feedback_records";
export const T_FEEDBACK_WINDOW = "feedback_window";
export const P_TRUE_LABEL = "true_label";
export const P_LABELLED_PREDICTION_ID = "prediction_id";
export const P_BATCH_RUN_ID = "batch_run_id";
export const P_ROW = "row";
export const T_FEEDBACK_ALERTING = "feedback_alerting";
// Alerts: a run that raised one carries its kind and message.
export const T_ALERT = "alert";
export const T_ALERT_MESSAGE = "alert_message";
export const ALERT_DRIFT = "drift_detected";
export const ALERT_ACCURACY_DROP = "accuracy_drop";

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
export const psiMetric = (feature) => PSI_PREFIX + keyPart(feature);
export const ksPvalueMetric = (feature) => KS_PVALUE_PREFIX + keyPart(feature);
export const chi2PvalueMetric = (feature) => CHI2_PVALUE_PREFIX + keyPart(feature);
export const unseenMetric = (feature) => UNSEEN_CATEGORIES_PREFIX + keyPart(feature);

// Cross-validation (cv_folds >= 2): per training metric, its mean and standard deviation over the folds.
export const P_CV_FOLDS = "cv_folds";
/** cv_accuracy_mean, cv_f1_score_std, ... */
export const cvMetric = (metric, statistic) => `cv_${metric}_${statistic}`;

// Training evidence: how the model does class by class on the held-out split (artifacts under evaluation/).
export const EVALUATION_ARTIFACT_DIR = "evaluation";
export const CONFUSION_MATRIX_ARTIFACT = "confusion_matrix.json";
export const PER_CLASS_METRICS_ARTIFACT = "per_class_metrics.json";
// Two-class targets only: the curves, and their areas as metrics.
export const ROC_CURVE_ARTIFACT = "roc_curve.json";
export const PR_CURVE_ARTIFACT = "precision_recall_curve.json";
export const M_ROC_AUC = "roc_auc";
export const M_AVERAGE_PRECISION = "average_precision";

// Tuning (POST /tune): a parent run in the training experiment, a child run per trial (MLflow's nested runs:
// the child's tag mlflow.parentRunId names the parent).
export const TUNING_RUN_PREFIX = "tuning";
export const TRIAL_RUN_PREFIX = "trial";
export const T_PARENT_RUN_ID = "mlflow.parentRunId";
export const T_RUN_KIND = "iris.run_kind";
export const RUN_KIND_TUNING = "tuning";
export const RUN_KIND_TRIAL = "trial";
export const P_SEARCH = "search";
export const P_SEARCH_SPACE = "search_space";
export const P_TUNING_METRIC = "tuning_metric";
export const P_N_TRIALS = "n_trials";
export const P_PROMOTE = "promote";
export const P_TRIAL = "trial";
export const M_TRIAL_SCORE = "trial_score";
export const M_BEST_SCORE = "best_score";
export const T_TUNING_STATUS = "tuning_status";
export const T_TUNING_CANCEL = "tuning_cancel_requested";
export const T_TUNING_BEST_RUN = "tuning_best_run_id";
export const T_TUNING_MODEL_VERSION = "tuning_model_version";

// ---- the runs API (not MLflow's own names) ----------------------------------------------------

// A listed run's run_type and the run_type filter: "training" runs are TRAINING_EXPERIMENT's, "inference" INFERENCE_EXPERIMENT's.
export const RUN_TYPE_TRAINING = "training";
export const RUN_TYPE_INFERENCE = "inference";
// order_by: a run attribute, "samples" (an inference run's total_samples, a training run's n_samples), or a metric.
export const ORDER_BY_START_TIME = "start_time";
export const ORDER_BY_SAMPLES = "samples";
export const METRIC_ORDER_PREFIX = "metrics.";
export const orderByMetric = (metric) => METRIC_ORDER_PREFIX + metric;
