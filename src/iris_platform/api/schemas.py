"""The answers' shapes, for the OpenAPI document and to check that routes answer what they say.

/predict's answer is built by hand on its hot path (api/routers/prediction.predict, which the lane in
api/middleware/predict_lane.py calls); its model here only documents it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from iris_platform.service import MAX_ESTIMATORS
from iris_platform.tracking import names


class ErrorResponse(BaseModel):
    """Every 4xx and 5xx answer: one sentence that says what was wrong and what to do."""

    detail: str = Field(description="What was wrong and how to fix it.", examples=["No model is loaded yet: ..."])


class TrainParameters(BaseModel):
    """POST /train's parameters: JSON (training on the bundled Iris data) or form fields (with a CSV file
    as multipart form data). Either way the same checks apply and an unknown field is refused."""

    model_config = ConfigDict(extra="forbid")

    # The bounds are documented here and checked by the service, whose refusal names both ends.
    n_estimators: int = Field(
        default=100,
        description="Trees in the random forest",
        json_schema_extra={"minimum": 1, "maximum": MAX_ESTIMATORS},
    )
    test_size: float = Field(
        default=0.2,
        description="Fraction of rows held out for the metrics",
        json_schema_extra={"exclusiveMinimum": 0, "exclusiveMaximum": 1},
    )
    target_column: str | None = Field(
        default=None,
        min_length=1,
        max_length=1000,
        description="Class column of the uploaded CSV (default: its last column); only with a file",
    )
    keep_columns: str | None = Field(
        default=None,
        min_length=1,
        max_length=10_000,
        description="Comma-separated columns of the uploaded CSV to keep as features although they look like "
        "row identifiers (named id, index, row_id, <name>_id or Unnamed: 0 and unique; or unique row numbers "
        "1..n or 0..n-1), which are otherwise left out and listed in the answer's dropped_columns; only with a file",
    )


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
    batch_statistics: BatchStatisticsOut


# The held-out metrics sit at the top level of the answer, under their MLflow names, after model_path.
TrainResponse = create_model(  # type: ignore[call-overload]
    "TrainResponse",
    status=(str, ...),
    run_id=(str, ...),
    model_path=(str, ...),
    model_version=(str, ...),
    **{metric: (float, ...) for metric in names.TRAINING_METRICS},
    classification_report=(dict[str, Any], ...),
    confusion_matrix=(list[list[int]], ...),
    # The upload's columns left out of the features as row identifiers, as the file names them.
    dropped_columns=(list[str], ...),
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
