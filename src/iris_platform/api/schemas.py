"""The answers' shapes, for the OpenAPI document and to check that routes answer what they say.

/predict's answer is built by hand on its hot path (api/routers/prediction.predict, which the lane in
api/middleware/predict_lane.py calls); its model here only documents it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from iris_platform.service import (
    DEFAULT_MODEL_TYPE,
    HYPERPARAMETERS,
    IMPUTE_CHOICES,
    MAX_CV_FOLDS,
    MAX_TRIALS,
    MODEL_TYPES,
    SEARCHES,
    TUNING_METRICS,
)
from iris_platform.tracking import names


class ErrorResponse(BaseModel):
    """Every 4xx and 5xx answer: one sentence that says what was wrong and what to do."""

    detail: str = Field(description="What was wrong and how to fix it.", examples=["No model is loaded yet: ..."])


def _widest_bounds(own: list[Any]) -> dict[str, Any]:
    """The JSON Schema bounds that admit every model type's values of one hyperparameter (max_iter is up to
    1000 for hist_gradient_boosting, 100000 for logistic_regression); the service checks each type's own."""
    if any(h.choices for h in own):
        return {"enum": list(dict.fromkeys(c for h in own for c in h.choices))}
    out: dict[str, Any] = {}
    if all(h.low is not None for h in own):
        low = min(h.low for h in own)
        out["exclusiveMinimum" if all(h.low_open for h in own if h.low == low) else "minimum"] = low
    if all(h.high is not None for h in own):
        out["maximum"] = max(h.high for h in own)
    return out


def _hyperparameter_fields() -> dict[str, Any]:
    """One optional field per hyperparameter of any model type; the service checks it applies and is in range
    (its refusal names the field, the model type and the allowed values), the schema documents the bounds."""
    fields: dict[str, Any] = {}
    for name, h in HYPERPARAMETERS.items():
        takers = {t.name: own for t in MODEL_TYPES.values() if (own := t.hyperparameter(name)) is not None}
        shown = ", ".join(f"{k}: {'null' if t.default is None else t.default}" for k, t in takers.items())
        groups: dict[tuple[str, str], list[str]] = {}
        for k, t in takers.items():
            groups.setdefault((t.description, t.allowed()), []).append(k)
        if len(groups) == 1:
            described = f"{h.description}; for {', '.join(takers)}"
        else:  # the same name with another meaning or range by model type: say each
            described = "; ".join(f"{d} for {', '.join(ks)}: {allowed}" for (d, allowed), ks in groups.items())
        fields[name] = (
            h.kind | None,
            Field(
                default=None,
                description=f"{described} (defaults: {shown})",
                json_schema_extra=_widest_bounds(list(takers.values())),
            ),
        )
    return fields


# POST /train's parameters: JSON (training on the bundled Iris data) or form fields (with a CSV file as
# multipart form data). Either way the same checks apply and an unknown field is refused.
TrainParameters = create_model(
    "TrainParameters",
    __config__=ConfigDict(extra="forbid"),
    __doc__="POST /train's parameters: the model type, its hyperparameters, the split and, with a CSV file, "
    "its target column.",
    model_type=(
        str,
        Field(
            default=DEFAULT_MODEL_TYPE,
            description="The classifier to train; each takes the hyperparameters that name it",
            json_schema_extra={"enum": list(MODEL_TYPES)},
        ),
    ),
    **_hyperparameter_fields(),
    test_size=(
        float,
        Field(
            default=0.2,
            description="Fraction of rows held out for the metrics",
            json_schema_extra={"exclusiveMinimum": 0, "exclusiveMaximum": 1},
        ),
    ),
    cv_folds=(
        int,
        Field(
            default=0,
            description="Stratified cross-validation folds (2 or more, at most the smallest class's rows), "
            "logged as cv_<metric>_mean and cv_<metric>_std beside the held-out metrics; 0: none",
            json_schema_extra={"minimum": 0, "maximum": MAX_CV_FOLDS},
        ),
    ),
    target_column=(
        str | None,
        Field(
            default=None,
            min_length=1,
            max_length=1000,
            description="Class column of the uploaded CSV (default: its last column); only with a file",
        ),
    ),
    keep_columns=(
        str | None,
        Field(
            default=None,
            min_length=1,
            max_length=10_000,
            description="Comma-separated columns of the uploaded CSV to keep as features although they look like "
            "row identifiers (named id, index, row_id, <name>_id or Unnamed: 0 and unique; or unique row numbers "
            "1..n or 0..n-1), which are otherwise left out and listed in the answer's dropped_columns; only with "
            "a file",
        ),
    ),
    impute=(
        str | None,
        Field(
            default=None,
            description="Blank cells of the uploaded CSV's numeric columns: median (the default) fills them with the "
            "column's median, in a first step of the saved model that fills blanks the same way at prediction; none "
            "refuses the file, naming the rows; only with a file",
            json_schema_extra={"enum": list(IMPUTE_CHOICES)},
        ),
    ),
)


class HyperparameterOut(BaseModel):
    name: str
    type: str = Field(description="integer, number or string")
    default: Any
    description: str
    minimum: float | None = None
    exclusive_minimum: bool = Field(default=False, description="The minimum itself is refused")
    maximum: float | None = None
    choices: list[str] | None = None
    nullable: bool = Field(default=False, description="null is allowed (no limit)")


class ModelTypeOut(BaseModel):
    name: str = Field(description="The model_type to send to POST /train")
    estimator_class: str = Field(description="Its scikit-learn class, logged as the run's param model_type")
    hyperparameters: list[HyperparameterOut]


class ModelTypesResponse(BaseModel):
    default: str
    max_cv_folds: int
    model_types: list[ModelTypeOut]


class TuneRequest(BaseModel):
    """POST /tune: a model type, the values of its hyperparameters to try, and the metric to rank by."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "model_type": "random_forest",
                    "search": "grid",
                    "space": {"n_estimators": [10, 50], "max_depth": [2, 4, None]},
                    "metric": "accuracy",
                },
                {
                    "model_type": "logistic_regression",
                    "search": "random",
                    "n_trials": 8,
                    "space": {"C": {"low": 0.01, "high": 100, "log": True}},
                    "metric": "f1_score",
                    "cv_folds": 5,
                    "promote": True,
                },
            ]
        },
    )

    model_type: str = Field(description="The model type to tune", json_schema_extra={"enum": list(MODEL_TYPES)})
    space: dict[str, list[Any] | dict[str, Any]] = Field(
        description="Per hyperparameter of the model type, the values to try (a list); for a random search also a "
        'range {"low": ..., "high": ..., "log": false}. Hyperparameters left out keep their defaults.'
    )
    search: str = Field(
        default="grid",
        description=f"grid: every combination (at most {MAX_TRIALS}); random: n_trials draws",
        json_schema_extra={"enum": list(SEARCHES)},
    )
    n_trials: int | None = Field(
        default=None,
        description="Trials of a random search (required for it; not for a grid)",
        json_schema_extra={"minimum": 1, "maximum": MAX_TRIALS},
    )
    metric: str = Field(
        default="accuracy",
        description="The held-out metric the trials are ranked by (its cross-validated mean with cv_folds)",
        json_schema_extra={"enum": list(TUNING_METRICS)},
    )
    cv_folds: int = Field(default=0, json_schema_extra={"minimum": 0, "maximum": MAX_CV_FOLDS})
    test_size: float = Field(default=0.2, json_schema_extra={"exclusiveMinimum": 0, "exclusiveMaximum": 1})
    promote: bool = Field(default=False, description="Make the best trial's registered version the champion")


class TuningTrial(BaseModel):
    trial: int
    run_id: str | None = Field(description="The trial's child run (None until it starts)")
    status: str = Field(description="pending, running, finished or failed")
    hyperparameters: dict[str, Any]
    score: float | None
    metrics: dict[str, float]
    error: str | None


class TuningProgress(BaseModel):
    tuning_id: str = Field(description="The tuning's parent run id in iris_classification")
    status: str = Field(description="running, cancelling, finished, cancelled or failed")
    model_type: str
    search: str
    metric: str
    scored_by: str = Field(description="The metric the trials are ranked by: the cv mean with cv_folds")
    cv_folds: int
    n_trials: int
    trials_done: int
    best: TuningTrial | None
    model_version: str | None = Field(description="The best trial's registered version, once registered")
    promoted: bool
    started: str | None
    finished: str | None
    error: str | None
    trials: list[TuningTrial]


class PredictResponse(BaseModel):
    status: str
    prediction: int
    class_name: str
    confidence: float
    probabilities: dict[str, float]
    prediction_id: str
    model_path: str
    model_version: str | None
    out_of_range_features: list[str]
    unseen_categories: dict[str, str] = Field(
        description="Text features given a text the training never had, with that text: the model ignores it "
        "(its one-hot inputs are all 0)"
    )


class BatchStatisticsOut(BaseModel):
    total_samples: int
    avg_confidence: float
    min_confidence: float
    max_confidence: float
    unique_classes_predicted: int
    prediction_distribution: dict[str, int]
    prediction_percentages: dict[str, float]


class BatchPredictionRow(BaseModel):
    """One row of the file with its prediction, as the answer lists it inline."""

    sample_index: int = Field(description="The row's position among the file's data rows, from 0.")
    input: dict[str, int | float | str | None] = Field(
        description=(
            "The row's input columns that predictions.csv keeps (every column but one named like an added "
            "column, see `replaced_columns`), by their names in the file's header, in the file's order. "
            "A feature is the number predicted on. Another column is given as numbers when every non-blank "
            "cell of the listed rows is one (integers as integers, a blank cell as null) and none looks like "
            "an identifier (zero-padded like 007, or an integer of 16 digits or more); otherwise as the text "
            "written. Nested so that a column named like a field of the row (`confidence`) clashes with none."
        ),
        examples=[{"sample_id": "s00000001", "sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4}],
    )
    prediction: int = Field(description="The predicted class's index in the model's class names.")
    class_name: str = Field(description="The predicted class (predictions.csv's `predicted_class`).")
    confidence: float = Field(description="The predicted class's probability, in full (the CSV has 6 decimals).")
    probabilities: dict[str, float] = Field(description="Every class's probability, by class name.")


class DriftOut(BaseModel):
    """Drift of many predictions' inputs and classes against the model's training data (reference profile)."""

    n: int = Field(description="Rows compared.")
    psi: dict[str, float] = Field(
        description="Population stability index per feature over 10 training quantile bins (a text feature: over "
        "its categories and one bin of texts the training never had)."
    )
    ks_pvalue: dict[str, float] = Field(
        description="Two-sample Kolmogorov-Smirnov p-value per numeric feature against the training sample."
    )
    chi2_pvalue: dict[str, float] = Field(
        description="Chi-square p-value per text feature of its categories' counts against the training "
        "proportions (0 when a text the training never had appears)."
    )
    class_drift_pvalue: float | None = Field(
        description="Chi-square p-value of the predicted class counts against the training class priors."
    )
    drifted_features: list[str] = Field(
        description="Features whose PSI reaches IRIS_DRIFT_PSI_ALERT with a KS (text: chi-square) p-value below "
        "IRIS_DRIFT_P_VALUE."
    )
    warned_features: list[str] = Field(description="Other features whose PSI reaches IRIS_DRIFT_PSI_WARN.")
    class_drift: bool = Field(description="Whether the class p-value is below IRIS_DRIFT_P_VALUE.")
    drift_detected: bool = Field(description="A drifted feature or class drift: an alert was raised.")
    class_shares: dict[str, float] = Field(description="Share of the rows predicted as each class.")
    confidence_mean: float | None = Field(description="Mean confidence of the predictions.")


class BatchResponse(BaseModel):
    status: str
    run_id: str
    model_path: str
    model_version: str | None
    total_samples: int
    truncated: bool = Field(description="Whether the file has more rows than `predictions` lists.")
    predictions: list[BatchPredictionRow] = Field(
        description=(
            "The file's first rows, at most IRIS_BATCH_INLINE_ROWS of them (fewer for a file of very many "
            "columns: the rows' `input` objects hold at most 200,000 values in all); every row is in "
            "predictions.csv."
        )
    )
    predictions_url: str = Field(
        description=(
            "Downloads predictions.csv, the run's artifact: every row, its kept input columns as written "
            "(quoted only when a cell holds a comma, a quote or a line break), then `predicted_class`, "
            "`confidence` and `prob_<class>` for every class, each probability with 6 decimals."
        )
    )
    replaced_columns: list[str] = Field(
        description=(
            "Input columns named like an added column (a predictions file sent again): the new values replace them."
        )
    )
    unseen_categories: dict[str, int] = Field(
        description="Per text feature, the rows holding a text the training never had (the model ignores it); "
        "logged as the run's unseen_categories_<feature> metrics"
    )
    batch_statistics: BatchStatisticsOut
    drift: DriftOut | None = Field(
        description="The rows against the training data (null for a model trained before reference profiles)."
    )


# The held-out metrics sit at the top level of the answer, under their MLflow names, after model_path.
TrainResponse = create_model(  # type: ignore[call-overload]
    "TrainResponse",
    status=(str, ...),
    run_id=(str, ...),
    model_path=(str, ...),
    model_version=(str, ...),
    **{metric: (float, ...) for metric in names.TRAINING_METRICS},
    # With cv_folds: each metric's mean and standard deviation over the folds.
    **{
        names.cv_metric(metric, statistic): (float | None, None)
        for metric in names.TRAINING_METRICS
        for statistic in ("mean", "std")
    },
    # A two-class target's areas under its ROC and precision-recall curves.
    **{metric: (float | None, None) for metric in (names.M_ROC_AUC, names.M_AVERAGE_PRECISION)},
    model_type=(str, Field(description="The model type trained (its scikit-learn class is model_metadata's)")),
    hyperparameters=(dict[str, Any], Field(description="Its hyperparameters, those given and the defaults")),
    cv_folds=(int, ...),
    runtime=(str, Field(description="What serves it: onnxruntime (compiled, parity checked) or scikit-learn")),
    classification_report=(dict[str, Any], ...),
    confusion_matrix=(list[list[int]], ...),
    # The upload's columns left out of the features as row identifiers, as the file names them.
    dropped_columns=(list[str], ...),
    constant_columns=(list[str], Field(description="The upload's columns left out because they hold one value")),
    preprocessing=(
        str,
        Field(
            description="Before the classifier, its steps joined by '+': median_imputation, one_hot_encoding "
            "(text features), or none"
        ),
    ),
    imputed_cells=(
        dict[str, int],
        Field(description="Per feature, the blank cells filled in (a number's with its median, a text's as blank)"),
    ),
    text_features=(
        dict[str, list[str]],
        Field(description="Per text feature, the categories its one-hot encoding learned (any other text is ignored)"),
    ),
    model_metadata=(dict[str, Any], ...),
)


class ModelEntry(BaseModel):
    version: str | None  # None: a model file of the folder that no registered version holds
    run_id: str | None
    filename: str
    path: str
    metrics: dict[str, float]
    aliases: list[str]
    created_ms: int | None
    serving: bool  # whether this process serves it
    is_current: bool  # the same, under its earlier name
    cached: bool  # whether the models folder holds its files
    metadata: dict[str, Any] | None  # the metadata file, when cached


class ModelsResponse(BaseModel):
    registered_model: str
    champion: str | None
    model_version: str | None
    current_model: str | None
    models: list[ModelEntry]
    registry_error: str | None  # set when the registry is unreachable: only the cached files are listed


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prediction_id: str | None = Field(default=None, pattern="^[0-9a-f]{32}$")
    run_id: str | None = Field(default=None, pattern="^[0-9a-f]{32}$")
    row: int | None = Field(default=None, ge=0, le=10**15)
    true_label: str = Field(min_length=1, max_length=250)

    @field_validator("row", mode="before")
    @classmethod
    def _row_not_a_boolean(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("row must be a whole number")
        return value


class FeedbackResponse(BaseModel):
    status: str = Field(description='"accepted": journaled; the tracking worker writes it to MLflow.')
    feedback_id: str
    prediction_id: str | None
    run_id: str | None
    row: int | None
    true_label: str
    predicted_class: str
    correct: bool
    model_version: str | None


class MonitoringPoint(BaseModel):
    run_id: str
    run_name: str | None
    time: str | None
    time_ms: int | None
    prediction_type: str | None = Field(description='"batch", "single_window", "drift_window" or "feedback".')
    model_version: str | None
    metrics: dict[str, float]
    tags: dict[str, str]


class MonitoringAlert(BaseModel):
    run_id: str
    run_name: str | None
    time: str | None
    kind: str | None = Field(description='"drift_detected" or "accuracy_drop".')
    message: str | None
    model_version: str | None


class MonitoringResponse(BaseModel):
    drift: list[MonitoringPoint] = Field(
        description="Runs with a drift report (batch, single_window, drift_window), oldest first."
    )
    feedback: list[MonitoringPoint] = Field(description="Feedback runs, oldest first.")
    alerts: list[MonitoringAlert] = Field(description="Runs that raised an alert, newest first.")
    thresholds: dict[str, int | float] = Field(description="The drift and feedback settings the reports used.")
    reference: dict[str, Any] | None = Field(
        description="The serving model's version, features, classes, class priors, test accuracy and mean confidence."
    )


class LoadModelRequest(BaseModel):
    # At most a 32-bit integer: MLflow's stores hold version numbers as such.
    version: int | None = Field(default=None, ge=1, le=2**31 - 1)
    model_path: str | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _not_a_boolean(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("a version is a number, not true or false")
        return value


class LoadModelResponse(BaseModel):
    status: str
    model_path: str
    model_version: str
    previous_version: str | None
    runtime: str
    model_metadata: dict[str, Any]


class TrackingWorkerStats(BaseModel):
    single_runs: int
    window_runs: int
    feedback_runs: int = Field(description="Runs of feedback labels written.")
    drift_runs: int = Field(description="Drift window runs written (one per IRIS_DRIFT_WINDOW single predictions).")
    worker_alive: bool


class JournalBacklog(BaseModel):
    journal: str
    pending: int
    this_process: bool


class HealthResponse(BaseModel):
    status: str
    model_loaded: bool
    current_model: str | None
    model_version: str | None
    runtime: str | None
    tracking_uri: str
    pending_inference_records: int
    journals: list[JournalBacklog]
    tracking_error: str | None
    # Why this replica cannot follow the registry's champion (unreachable, a version that fails its checks).
    model_registry_error: str | None
    tracking_worker: TrackingWorkerStats


class ReadyResponse(BaseModel):
    ready: bool
    detail: str


class Experiment(BaseModel):
    experiment_id: str
    name: str
    artifact_location: str | None
    lifecycle_stage: str
    creation_time: str | None


class ExperimentsResponse(BaseModel):
    status: str
    experiments: list[Experiment]


class RunSummary(BaseModel):
    run_id: str
    experiment_name: str
    run_name: str | None
    run_type: str
    status: str
    start_time: str | None
    end_time: str | None
    params: dict[str, str]
    metrics: dict[str, float]


class Artifact(BaseModel):
    path: str
    size_bytes: int | None


class RunDetail(RunSummary):
    tags: dict[str, str]
    artifacts: list[Artifact]


class RunsPage(BaseModel):
    status: str
    runs: list[RunSummary]
    total: int
    page: int
    pages: int


class Summary(BaseModel):
    status: str
    total_runs: int
    training_runs: int
    inference_runs: int
    avg_accuracy: float | None


class PredictionLookup(BaseModel):
    status: str = Field(description='"success" once an MLflow run holds it; "pending" while its journal still does')
    prediction_id: str
    run: RunSummary | None = Field(description="The single or window run that holds it; null while pending")
    record: dict[str, Any] | None = Field(
        description="The prediction's row, from its window run's CSV or from the journal; null for a single run"
    )
