"""Reading and checking tabular input: the bundled Iris data and uploaded training CSV files.

Every check raises InputError with a message that names the column, row or value to fix.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from iris_platform.errors import InputError
from iris_platform.ml.features import (
    FLOAT32_MAX,
    RESERVED_FEATURE_NAMES,
    column_list,
    normalise_column_name,
    normalised_columns,
)

_SHOW = 5  # how many offending rows or values a message lists
# Training reads the whole file into a table, fits, converts and parity-checks a model of every
# column: at 20,000 columns that takes about a minute. Nothing this platform trains needs that many.
MAX_TRAINING_COLUMNS = 1000


@dataclass
class TrainingData:
    X: pd.DataFrame  # float columns named by normalised feature names
    y: np.ndarray  # class indexes 0..k-1
    feature_names: list[str]
    class_names: list[str]
    target_column: str


def load_iris_training_data() -> TrainingData:
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    X = iris.data.astype(float)
    X.columns = [normalise_column_name(c) for c in X.columns]
    return TrainingData(
        X=X,
        y=iris.target.to_numpy(dtype=np.int64),
        feature_names=list(X.columns),
        class_names=[str(n) for n in iris.target_names],
        target_column="species",
    )


def check_csv_header(head: bytes, label: str, truncated: bool = False) -> list[str]:
    """Check the start of an uploaded file: UTF-8 text, comma-separated, each column named once.

    Returns the header's column names. With `truncated`, `head` is the first bytes of a larger file.
    """
    if not head or not head.strip():
        raise InputError(f"{label} is empty: upload a CSV file with a header row and at least one data row.", 400)
    if b"\x00" in head:
        raise InputError(
            f"{label} is binary, not UTF-8 CSV text: upload a comma-separated CSV file saved as UTF-8.", 400
        )
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if not truncated or exc.start < len(head) - 3:  # not just a character cut at the end of `head`
            raise InputError(
                f"{label} is not UTF-8 text: upload a comma-separated CSV file saved as UTF-8.", 400
            ) from exc
        text = head[: exc.start].decode("utf-8-sig")
    try:  # newline="": rows may end in \r\n, \n or a lone \r (Excel's old "CSV (Macintosh)")
        header = [h.strip() for h in next(csv.reader(io.StringIO(text, newline="")), [])]
    except csv.Error as exc:
        raise InputError(f"{label} could not be parsed as CSV ({exc}): check its header row.", 400) from exc
    if len(header) == 1 and ";" in header[0]:
        raise InputError(f"{label} looks semicolon-delimited: save it with commas as the separator.", 400)
    if len(header) == 1 and "\t" in header[0]:
        raise InputError(f"{label} looks tab-delimited: save it with commas as the separator.", 400)
    blank = [i + 1 for i, h in enumerate(header) if not h]
    if blank:
        raise InputError(f"{label} has a header with no name at column(s) {blank}: name every column.", 400)
    duplicates = sorted(h for h, n in Counter(header).items() if n > 1)  # not header.count: 20,000 columns
    if duplicates:
        raise InputError(f"{label} has duplicate column names {duplicates}: give each column its own name.", 400)
    return header


def read_csv_upload(content: bytes, filename: str | None = None) -> pd.DataFrame:
    """Parse an uploaded CSV file; refuse what is not comma-separated UTF-8 text with a header and rows."""
    label = f"'{filename}'" if filename else "The uploaded file"
    header = check_csv_header(content, label)
    if len(header) > MAX_TRAINING_COLUMNS + 1:  # checked before parsing: a wide file is slow to parse
        raise InputError(
            f"{label} has {len(header):,} columns: this platform trains on at most {MAX_TRAINING_COLUMNS:,} "
            "feature columns (plus the target); drop the columns the model does not need."
        )
    try:
        frame = pd.read_csv(io.BytesIO(content), skipinitialspace=True, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise InputError(
            f"{label} is empty: upload a CSV file with a header row and at least one data row.", 400
        ) from None
    except pd.errors.ParserError as exc:
        raise InputError(
            f"{label} could not be parsed as CSV ({exc}): check that every row has as many fields as the header.", 400
        ) from exc
    if not isinstance(frame.index, pd.RangeIndex):
        # pandas takes a first data row with one field more than the header as a row index: refuse it.
        raise InputError(
            f"{label} could not be parsed as CSV (data row 1 has more fields than the header's "
            f"{len(header)}): check that every row has as many fields as the header.",
            400,
        )
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise InputError(f"{label} has a header but no data rows: add at least one row.", 400)
    return frame


def numeric_column(series: pd.Series, name: str) -> np.ndarray:
    if not pd.api.types.is_numeric_dtype(series):  # text cells: a blank one is missing, not a bad number
        series = series.where(series.astype(str).str.strip() != "", None)
    values = pd.to_numeric(series, errors="coerce")
    bad_text = values.isna() & series.notna()
    if bad_text.any():
        rows = list(series.index[bad_text][:_SHOW])
        samples = [str(v) for v in series[bad_text].head(_SHOW)]
        raise InputError(
            f"Column '{name}' must be numeric, but data row(s) {[r + 1 for r in rows]} hold {samples}: "
            "fix or remove those cells."
        )
    array = values.to_numpy(dtype=float)
    missing = ~np.isfinite(array)
    if missing.any():
        rows = list(series.index[missing][:_SHOW] + 1)  # the index: a streamed block's rows start past 0
        raise InputError(
            f"Column '{name}' has blank, NaN or infinite values in data row(s) {[int(r) for r in rows]}: "
            "fill in or remove those rows."
        )
    return array


def _resolve_target(frame: pd.DataFrame, columns: dict[str, str], target_column: str | None) -> str:
    if target_column is None or not target_column.strip():
        return frame.columns[-1]
    wanted = target_column.strip()
    if wanted in frame.columns:
        return wanted
    key = normalise_column_name(wanted)
    if key in columns:
        return columns[key]
    raise InputError(
        f"target_column '{wanted[:200]}' is not a column of the file; its columns are {column_list(frame.columns)}."
    )


def _encode_target(series: pd.Series, name: str) -> tuple[np.ndarray, list[str]]:
    if series.isna().any():
        rows = [int(r) + 1 for r in series.index[series.isna()][:_SHOW]]
        raise InputError(f"Target column '{name}' is blank in data row(s) {rows}: give every row a class.")
    if pd.api.types.is_bool_dtype(series):
        series = series.astype(str)
    if pd.api.types.is_numeric_dtype(series):
        numbers = series.to_numpy(dtype=float)
        if not np.all(np.isfinite(numbers)) or not np.all(numbers == np.round(numbers)):
            raise InputError(
                f"Target column '{name}' holds non-integer numbers: this platform trains classifiers, "
                "so the target must be class labels (integers or text)."
            )
        labels = numbers.astype(np.int64)
        classes = np.unique(labels)
        names = [str(int(c)) for c in classes]
    else:
        labels = series.astype(str).str.strip().to_numpy()
        classes = np.unique(labels)
        names = [str(c) for c in classes]
    indexes = np.searchsorted(classes, labels).astype(np.int64)
    return indexes, names


def prepare_training_data(frame: pd.DataFrame, target_column: str | None = None) -> TrainingData:
    columns = normalised_columns(frame.columns)
    target = _resolve_target(frame, columns, target_column)
    feature_columns = [c for c in frame.columns if c != target]
    if not feature_columns:
        raise InputError("The file has only the target column: add at least one numeric feature column.")
    clashing = [c for c in feature_columns if normalise_column_name(c) in RESERVED_FEATURE_NAMES]
    if clashing:
        raise InputError(
            f"Column(s) {clashing} would clash with the names every inference run records "
            f"{sorted(RESERVED_FEATURE_NAMES)}: rename them."
        )
    features = {normalise_column_name(c): numeric_column(frame[c], c) for c in feature_columns}
    for column, values in zip(feature_columns, features.values(), strict=False):
        huge = np.abs(values) > FLOAT32_MAX
        if huge.any():
            rows = [int(r) + 1 for r in frame.index[huge][:_SHOW]]
            raise InputError(
                f"Column '{column}' has values too large to train on (beyond +/-{FLOAT32_MAX:.4g}, the largest a "
                f"decision tree compares) in data row(s) {rows}: fix or remove those cells."
            )
    y, class_names = _encode_target(frame[target], target)
    if len(class_names) < 2:
        raise InputError(
            f"Target column '{target}' has only one class ({class_names[0]!r}): a classifier needs at least two."
        )
    return TrainingData(
        X=pd.DataFrame(features),
        y=y,
        feature_names=list(features),
        class_names=class_names,
        target_column=target,
    )
