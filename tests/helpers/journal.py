"""Inference records as the app hands them to the tracking writer, and a journal a crashed process left."""

from __future__ import annotations

from pathlib import Path

from iris_platform.ml.features import parse_features
from iris_platform.ml.inference import Predictor
from iris_platform.ml.model_store import ModelStore
from iris_platform.service import prediction_record
from iris_platform.tracking.journal import JournalAppender
from iris_platform.tracking.records import InferenceRecord


def inference_record_for(models_dir: Path, features: dict[str, float]) -> InferenceRecord:
    """A real record: the current model of `models_dir` predicts `features`, as POST /predict would."""
    store = ModelStore(models_dir)
    current = store.current_filename()
    assert current is not None, f"no current model in {models_dir}"
    predictor = Predictor(store.load(current))
    values = parse_features(features, predictor.feature_names)
    return prediction_record(predictor, values, predictor.predict_one(values))


def leave_in_journal(journal_dir: Path, *records: InferenceRecord) -> None:
    """What a process that died before its writer drained leaves behind: records not marked done."""
    journal = JournalAppender(journal_dir)
    journal.open()
    for record in records:
        journal.append(record)
    journal.close()
