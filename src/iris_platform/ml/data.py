"""Reading and checking tabular input: the bundled Iris data and uploaded training CSV files.

Every check raises InputError with a message that names the column, row or value to fix.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

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
from iris_platform.ml.metadata import preprocessing_of

_SHOW = 5  # how many offending rows or values a message lists
# Training reads the whole file into a table, fits, converts and parity-checks a model of every
# column: at 20,000 columns that takes about a minute. Nothing this platform trains needs that many.
MAX_TRAINING_COLUMNS = 1000
# Columns that only identify rows are left out of the features: a file sorted by class gives its row
# numbers away as the answer, and no flower sent to /predict has one. Named so (normalised) ...
_IDENTIFIER_NAMES = frozenset({"id", "index", "row_id", "row_index", "row_number"})
_PANDAS_INDEX_NAME = re.compile(r"unnamed_\d+(_\d+)?")  # "Unnamed: 0", pandas' name for a saved index
# ... (or "<something>_id") and holding unique integers or unique text; or, under any name, the row
# numbers themselves: unique integers from 0 or 1 up, with no gap (in any order), or text different in
# every row (names, codes: one-hot encoding learns nothing from a text seen once), in a file of at
# least this many rows (in a small file, 1, 2, 3 may well be a measurement).
_MIN_ROWS_FOR_ROW_NUMBERS = 10
# What a blank numeric cell of a training file becomes: the column's median (the model's first step
# fills it in, at training and at prediction), or a refusal that names the rows.
IMPUTE_CHOICES = ("median", "none")
DEFAULT_IMPUTE = "median"
# A text column becomes one model input per distinct text (one-hot): beyond this many it is more
# likely names or free text than categories, which one-hot encoding cannot learn from.
MAX_TEXT_CATEGORIES = 200


@dataclass
class TrainingData:
    X: pd.DataFrame  # columns named by normalised feature names: floats, and text (str) for text features
    y: np.ndarray  # class indexes 0..k-1
    feature_names: list[str]
    class_names: list[str]
    target_column: str
    # The file's columns left out of the features as row identifiers, as the file names them.
    dropped_columns: list[str] = field(default_factory=list)
    # Columns left out because they hold one value (or none) in every row: nothing to learn from.
    constant_columns: list[str] = field(default_factory=list)
    # Blank cells per feature (normalised name): a number's filled in with the column's median by the
    # model, a text's taken as the category "" (blank).
    imputed_cells: dict[str, int] = field(default_factory=dict)
    impute: str | None = None  # an upload's choice for blank cells (IMPUTE_CHOICES)
    # The features (normalised names) that hold text: one-hot encoded by the model.
    text_features: list[str] = field(default_factory=list)

    @property
    def numeric_features(self) -> list[str]:
        return [f for f in self.feature_names if f not in self.text_features]

    @property
    def preprocessing(self) -> str:
        """The steps the saved model runs before the classifier (metadata.preprocessing_of)."""
        return preprocessing_of(imputes=bool(self.imputed_cells), one_hot=bool(self.text_features))


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
        raise _parser_error(content, header, label, exc) from exc
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


def _parser_error(content: bytes, header: list[str], label: str, exc: Exception) -> InputError:
    """pandas' parser failed: name the row of a stray double quote if one is to blame, else pass its reason on.

    Only on this failure path is the file scanned again, by Python's csv module (which counts lines and
    reads quotes as pandas does): a quote that opens a value and is never closed makes the rest of the
    file one value (pandas: "EOF inside string"); one closed only on a later line joins the rows between
    into a row of the wrong width.
    """
    found = _quote_run_on(content.decode("utf-8-sig"), header, to_the_end="EOF inside string" in str(exc))
    if found is None:
        return InputError(
            f"{label} could not be parsed as CSV ({exc}): check that every row has as many fields as the header.", 400
        )
    row, line, column, last_line = found
    where = f"data row {row} (line {line})" + (f", column '{column}'" if column else "")
    if last_line is None:
        return InputError(f"{label} has an unclosed double quote in {where}: close the quote or remove it.", 400)
    return InputError(
        f"{label} has a double quote in {where} that is not closed on its line, so lines {line} to {last_line} "
        "were read as one row: close the quote on its line or remove it.",
        400,
    )


def _quote_run_on(text: str, header: list[str], to_the_end: bool) -> tuple[int, int, str | None, int | None] | None:
    """(data row, line, column, last line) of the row whose quoted value runs on past its line.

    With `to_the_end`, the value runs to the end of the file, so it is the last row's last field (and the
    last line is None). Otherwise, the first row that spans lines and has not the header's width.
    Data rows are counted as pandas counts them: blank lines skipped.
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    data_row, previous_line, header_seen = 0, 0, False
    last: tuple[int, int, list[str]] | None = None
    try:
        for record in reader:
            first_line, previous_line = previous_line + 1, reader.line_num
            if not record or not header_seen:
                header_seen = header_seen or bool(record)
                continue
            data_row += 1
            last = (data_row, first_line, record)
            if not to_the_end and reader.line_num > first_line and len(record) != len(header):
                broken = next((i for i, v in enumerate(record) if "\n" in v or "\r" in v), len(record) - 1)
                return data_row, first_line, _column_at(header, broken), reader.line_num
    except csv.Error:  # a NUL byte, say: pandas' own reason is then the better one
        return None
    if to_the_end and last is not None:
        row, line, record = last
        return row, line, _column_at(header, len(record) - 1), None
    return None


def _column_at(header: list[str], index: int) -> str | None:
    return header[index] if 0 <= index < len(header) else None


def numeric_column(series: pd.Series, name: str, blanks_allowed: bool = False, hint: str = "") -> np.ndarray:
    """The column as floats; text that is no number is refused, and blanks too unless `blanks_allowed`
    (they are then NaN, to be imputed); infinite values always."""
    if not pd.api.types.is_numeric_dtype(series):  # text cells: a blank one is missing, not a bad number
        series = series.where(series.astype(str).str.strip() != "", None)
    values = pd.to_numeric(series, errors="coerce")
    bad_text = values.isna() & series.notna()
    if bad_text.any():
        rows = list(series.index[bad_text][:_SHOW])
        samples = [str(v) for v in series[bad_text].head(_SHOW)]
        if any("\n" in v or "\r" in v for v in samples):
            # A stray double quote closed only by a later one: the lines between were read as one value.
            raise InputError(
                f"Column '{name}' must be numeric, but data row(s) {[r + 1 for r in rows]} hold {samples}, "
                "a value that runs across lines: is a double quote left unclosed there? Close it or remove it."
            )
        raise InputError(
            f"Column '{name}' must be numeric, but data row(s) {[r + 1 for r in rows]} hold {samples}: "
            "fix or remove those cells."
        )
    array = values.to_numpy(dtype=float)
    missing = np.isinf(array) if blanks_allowed else ~np.isfinite(array)
    if missing.any() and blanks_allowed:
        rows = list(series.index[missing][:_SHOW] + 1)
        raise InputError(
            f"Column '{name}' has infinite values in data row(s) {[int(r) for r in rows]}: fix or remove those cells."
        )
    if missing.any():
        rows = list(series.index[missing][:_SHOW] + 1)  # the index: a streamed block's rows start past 0
        raise InputError(
            f"Column '{name}' has blank, NaN or infinite values in data row(s) {[int(r) for r in rows]}: "
            f"fill in or remove those rows{hint if np.isnan(array).any() else ''}."
        )
    return array


def _find_column(frame: pd.DataFrame, columns: dict[str, str], wanted: str) -> str | None:
    """The file's column named `wanted`, exactly or once normalised."""
    if wanted in frame.columns:
        return wanted
    return columns.get(normalise_column_name(wanted))


def _resolve_target(frame: pd.DataFrame, columns: dict[str, str], target_column: str | None) -> str:
    if target_column is None or not target_column.strip():
        return frame.columns[-1]
    wanted = target_column.strip()
    found = _find_column(frame, columns, wanted)
    if found is not None:
        return found
    raise InputError(
        f"target_column '{wanted[:200]}' is not a column of the file; its columns are {column_list(frame.columns)}."
    )


def _resolve_kept(frame: pd.DataFrame, columns: dict[str, str], keep_columns: str | Sequence[str] | None) -> set[str]:
    """The columns `keep_columns` (comma-separated, or a list) names, as the file names them."""
    wanted = keep_columns.split(",") if isinstance(keep_columns, str) else list(keep_columns or [])
    wanted = [w.strip() for w in wanted if w.strip()]
    found = {w: _find_column(frame, columns, w) for w in wanted}
    missing = [w[:200] for w, column in found.items() if column is None]
    if missing:
        raise InputError(
            f"keep_columns names {column_list(missing)}, not column(s) of the file; "
            f"its columns are {column_list(frame.columns)}."
        )
    return {column for column in found.values() if column is not None}


def _is_identifier(series: pd.Series, key: str) -> bool:
    """Whether a column only identifies rows (see _IDENTIFIER_NAMES): never a feature to learn from."""
    integers = pd.api.types.is_integer_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if key in _IDENTIFIER_NAMES or key.endswith("_id") or _PANDAS_INDEX_NAME.fullmatch(key):
        if integers:
            return bool(series.is_unique)
        if pd.api.types.is_float_dtype(series):  # integers with a blank cell read as floats: still ids
            filled = series.dropna()
            return bool(len(filled)) and bool((filled == filled.round()).all()) and bool(filled.is_unique)
        # Unique text ("A-001"): an identifier, and no feature a forest can take anyway.
        return _is_text(series) and series.notna().all() and bool(series.is_unique)
    if len(series) < _MIN_ROWS_FOR_ROW_NUMBERS or not series.is_unique:
        return False
    if _is_text(series):  # a different text in every row: it names the rows
        return bool(series.notna().all())
    if not integers:
        return False
    low, high = int(series.min()), int(series.max())
    return low in (0, 1) and high - low == len(series) - 1  # unique, so every integer between: row numbers


def _is_text(series: pd.Series) -> bool:
    """Whether a column holds text: most of its filled cells are not numbers (not a typo in a numeric column)."""
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return False
    cells = series.dropna().astype(str).str.strip()
    cells = cells[cells != ""]
    if cells.empty:
        return False
    return int(pd.to_numeric(cells, errors="coerce").isna().sum()) * 2 > len(cells)


def _check_text_features(frame: pd.DataFrame, texts: list[str], target: str, target_given: bool) -> None:
    """The target taken by default (the last column) is numeric and text columns (`texts`) are left among the
    features: such a column is most likely the class column, placed elsewhere; training on it as a feature
    needs the target named."""
    if not texts or target_given or _is_text(frame[target]):
        return
    taken = f"the last column ('{target}') was taken as the target because target_column was not given"
    if len(texts) == 1:
        raise InputError(
            f"Column '{texts[0]}' holds text and {taken}: send target_column={texts[0]} if it holds the classes, "
            f"or target_column={target} to learn from '{texts[0]}' as a text feature."
        )
    raise InputError(
        f"Columns {column_list(texts)} hold text and {taken}: send target_column naming the one that holds the "
        "classes (the others are then text features)."
    )


def text_column(series: pd.Series, name: str, blanks_allowed: bool, hint: str = "") -> np.ndarray:
    """A text feature's cells as stripped text; a blank cell is "" (a category of its own), refused unless
    `blanks_allowed`; a column of too many distinct texts is refused."""
    cells = series.astype(object).where(series.notna(), "").astype(str).str.strip()
    blank = cells == ""
    if blank.any() and not blanks_allowed:
        rows = [int(r) + 1 for r in series.index[blank][:_SHOW]]
        raise InputError(f"Column '{name}' has blank values in data row(s) {rows}: fill in or remove those rows{hint}.")
    distinct = cells.nunique()
    if distinct > MAX_TEXT_CATEGORIES:
        raise InputError(
            f"Column '{name}' holds {distinct:,} different texts: a text column is one-hot encoded, one model input "
            f"per text, and at most {MAX_TEXT_CATEGORIES} are taken; remove the column or group its values."
        )
    return cells.to_numpy(dtype=object)


def _encode_target(series: pd.Series, name: str, hint: str = "") -> tuple[np.ndarray, list[str]]:
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
                f"so the target must be class labels (integers or text){hint}."
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


def check_impute(impute: str) -> str:
    if impute not in IMPUTE_CHOICES:
        raise InputError(
            f"impute must be one of {', '.join(repr(c) for c in IMPUTE_CHOICES)}, got {str(impute)[:100]!r}: "
            "median fills a numeric column's blank cells with its median, none refuses them."
        )
    return impute


def prepare_training_data(
    frame: pd.DataFrame,
    target_column: str | None = None,
    keep_columns: str | Sequence[str] | None = None,
    impute: str = DEFAULT_IMPUTE,
) -> TrainingData:
    """The features and classes of an uploaded table. Row identifiers (see _IDENTIFIER_NAMES) are left out of
    the features, but for those `keep_columns` names (comma-separated, or a list; names as in the file or
    normalised); so are columns of one value. With impute=median blank numeric cells are kept (NaN) for the
    model's imputer; with impute=none they are refused."""
    check_impute(impute)
    columns = normalised_columns(frame.columns)
    target = _resolve_target(frame, columns, target_column)
    target_given = bool(target_column and target_column.strip())
    kept = _resolve_kept(frame, columns, keep_columns)
    candidates = [c for c in frame.columns if c != target]
    dropped = [c for c in candidates if c not in kept and _is_identifier(frame[c], normalise_column_name(c))]
    feature_columns = [c for c in candidates if c not in dropped]
    if not feature_columns and dropped:
        raise InputError(
            f"The file has no feature column but {column_list(dropped)}, left out as row identifiers (unique "
            f"row numbers or ids): add the measurements to learn from, or send keep_columns={','.join(dropped)} "
            "to train on them."
        )
    if not feature_columns:
        raise InputError("The file has only the target column: add at least one feature column.")
    clashing = [c for c in feature_columns if normalise_column_name(c) in RESERVED_FEATURE_NAMES]
    if clashing:
        raise InputError(
            f"Column(s) {clashing} would clash with the names every inference run records "
            f"{sorted(RESERVED_FEATURE_NAMES)}: rename them."
        )
    texts = [c for c in feature_columns if _is_text(frame[c])]
    _check_text_features(frame, texts, target, target_given)
    blanks_allowed = impute == "median"
    numeric_hint = "" if blanks_allowed else ", or send impute=median to fill them with the column's median"
    text_hint = "" if blanks_allowed else ", or send impute=median to take a blank as a category of its own"
    features: dict[str, np.ndarray] = {
        normalise_column_name(c): (
            text_column(frame[c], c, blanks_allowed, text_hint)
            if c in texts
            else numeric_column(frame[c], c, blanks_allowed, numeric_hint)
        )
        for c in feature_columns
    }
    constant = [c for c, values in zip(feature_columns, features.values(), strict=True) if _is_constant(values)]
    if constant and len(constant) == len(feature_columns):
        raise InputError(
            f"Every feature column ({column_list(constant)}) holds a single value in every row, or none: "
            "nothing to learn from; add columns that vary between rows."
        )
    for column in constant:
        del features[normalise_column_name(column)]
    feature_columns = [c for c in feature_columns if c not in constant]
    text_features = [normalise_column_name(c) for c in feature_columns if c in texts]
    for column, values in zip(feature_columns, features.values(), strict=False):
        if column in texts:
            continue
        huge = np.abs(values) > FLOAT32_MAX
        if huge.any():
            rows = [int(r) + 1 for r in frame.index[huge][:_SHOW]]
            raise InputError(
                f"Column '{column}' has values too large to train on (beyond +/-{FLOAT32_MAX:.4g}, the largest a "
                f"decision tree compares) in data row(s) {rows}: fix or remove those cells."
            )
    hint = (
        ""
        if target_given
        else f"; the last column ('{target}') was taken as the target because target_column was not given: "
        "send target_column naming the column that holds the classes"
    )
    y, class_names = _encode_target(frame[target], target, hint)
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
        dropped_columns=dropped,
        constant_columns=constant,
        impute=impute,
        imputed_cells={f: n for f, values in features.items() if (n := int(_blank(values).sum()))},
        text_features=text_features,
    )


def _blank(values: np.ndarray) -> np.ndarray:
    return values == "" if values.dtype == object else np.isnan(values)


def _is_constant(values: np.ndarray) -> bool:
    """One value, or none, in every filled cell: a column a model cannot learn from."""
    if values.dtype == object:  # text: a blank is a category of its own
        return len(set(values.tolist())) <= 1
    filled = values[~np.isnan(values)]
    return filled.size == 0 or bool(np.all(filled == filled[0]))
