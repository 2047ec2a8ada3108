"""The data a run used, as MLflow dataset inputs: the training table, a batch file.

MLflow's UI shows them in a run's Dataset column and page (name, digest, source, schema), so a run
says what it learnt from or scored, not only in the platform's own params.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, BinaryIO

import pandas as pd
from mlflow.entities import Dataset, DatasetInput, InputTag
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from iris_platform.tracking import names

_DIGEST_CHARS = 8  # MLflow's own digests are this long


def _source(uri: str) -> Any:
    """MLflow's "local" dataset source: the UI shows its `uri`, here the data's name.

    Built directly: a bare string given to from_pandas is resolved with a warning, and a file name
    with a colon or a space resolves to no source at all. MLflow makes the class at run time (one
    per artifact scheme), so it is found in MLflow's registry of sources.
    """
    from mlflow.data import get_registered_sources

    local = next(s for s in get_registered_sources() if s._get_source_type() == "local")
    return local(uri)  # type: ignore[operator]


def training_input(features: pd.DataFrame, labels: list[str], *, target: str, name: str, source: str) -> DatasetInput:
    """The table a model was fitted on (its features and the target, as class names)."""
    from mlflow.data.pandas_dataset import from_pandas

    table = features.copy()
    table[target] = labels
    dataset = from_pandas(table, source=_source(source), name=name, targets=target, digest=table_digest(table))
    return DatasetInput(dataset._to_mlflow_entity(), [InputTag(MLFLOW_DATASET_CONTEXT, names.DATASET_CONTEXT_TRAINING)])


def table_digest(table: pd.DataFrame) -> str:
    """The same rows under the same column names give the same digest, wherever they came from.

    (MLflow's own digest of a pandas table warns under pandas 3, and hashes only the first rows.)
    """
    digest = hashlib.sha256("\x1f".join(map(str, table.columns)).encode())
    digest.update(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:_DIGEST_CHARS]


def file_digest(handle: BinaryIO) -> str:
    """SHA-256 of a seekable file's bytes (read in chunks), left at its start."""
    handle.seek(0)
    digest = hashlib.file_digest(handle, "sha256").hexdigest()  # type: ignore[arg-type]
    handle.seek(0)
    return digest


def batch_input(*, name: str, sha256: str, rows: int) -> DatasetInput:
    """A batch file: never loaded whole, so described by its name, its bytes' digest and its size."""
    source = _source(name)
    dataset = Dataset(
        name=name,
        digest=sha256[:_DIGEST_CHARS],
        source_type=source._get_source_type(),
        source=source.to_json(),
        profile=json.dumps({"num_rows": int(rows)}),
    )
    return DatasetInput(dataset, [InputTag(MLFLOW_DATASET_CONTEXT, names.DATASET_CONTEXT_INFERENCE)])
