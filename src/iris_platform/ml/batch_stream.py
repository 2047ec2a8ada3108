"""Batch prediction over a CSV file of any size, in chunks: read, predict, write, never all at once.

pyarrow's CSV reader yields record batches of a few megabytes; each batch's feature columns are
predicted and its rows, with the predicted class, confidence and every class probability, are
appended to the output CSV at once. Memory stays bounded by the batch size, not the file size.

The output's lines are put together here rather than by pyarrow's CSV writer, which quotes every
text cell (the input's numbers, read as text to keep them as written, came out as "4.6") and prints
float32 and float64 probabilities at different lengths. Here an input cell is written as it was,
quoted only when it holds a comma, a quote or a line break, and the confidence and every
probability with PROBABILITY_DECIMALS decimals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from iris_platform.batch_statistics import BatchResult, BatchStatistics, StatisticsAccumulator
from iris_platform.drift import DriftAccumulator
from iris_platform.errors import InputError
from iris_platform.ml.data import check_csv_header, numeric_column
from iris_platform.ml.features import feature_columns
from iris_platform.ml.inference import Predictor, prediction_rows
from iris_platform.ml.text_features import UNSEEN
from iris_platform.tracking import names

BLOCK_BYTES = 8 * 1024 * 1024
_HEAD_BYTES = 64 * 1024
# A header row may be longer than the first read (a file of thousands of columns); up to this is read to find its end.
MAX_HEADER_BYTES = 16 * 1024 * 1024
_ARROW_COLUMN = re.compile(r"CSV column #(\d+)")
# What to do about a value that runs across lines, whichever check finds it.
_ONE_ROW_PER_LINE = "close the quote, or remove the line breaks inside values; a batch file holds one row per line."
# The predictions file's confidence and class probabilities: one fixed format, "0.940000". Six
# decimals hold what the model tells apart (the compiled model computes in float32, whose last
# digits are noise) at one width for every value; the answer's inline rows keep the full floats.
PROBABILITY_DECIMALS = 6
# The inline rows' `input` objects hold at most this many values in all: a file of thousands of
# columns lists fewer rows (at least one) instead of an answer of hundreds of megabytes.
INLINE_INPUT_VALUES = 200_000
# What makes a CSV field need quotes: a quote, a comma, a line break.
_NEEDS_QUOTES = '[",\r\n]'
_QUOTE_BYTES = tuple(map(ord, '",\r\n'))
# An inline column is given as numbers only if no cell is zero-padded ("007") or an integer too long
# for a float to hold exactly: both are identifiers, whose text is what matches them to the file.
_KEEP_AS_TEXT = r"^[+-]?(0[0-9]|[0-9]{16,}$)"
# The most text of probabilities made at once (a block of rows is written in steps of this much).
_PROBABILITY_TEXT_BYTES = 64 * 1024 * 1024


@dataclass
class StreamedBatch:
    total: int
    statistics: BatchStatistics
    # The answer's inline rows: the prediction, and under `input` the row's kept input columns.
    first_rows: list[dict[str, Any]]
    # Input columns named like an added one (a predictions file sent again): the new values replace them.
    replaced_columns: list[str]
    # The rows' inputs and classes against the model's reference profile (None: the model has none).
    drift: DriftAccumulator | None = None
    # Per text feature, the cells holding a text the training never had (ignored by the model).
    unseen_categories: dict[str, int] = field(default_factory=dict)


def output_columns(classes: list[str]) -> list[str]:
    return [names.COL_PREDICTED_CLASS, names.COL_CONFIDENCE] + [names.probability_column(c) for c in classes]


def _arrow_error(exc: Exception, header: list[str], label: str) -> InputError:
    text = str(exc)
    match = _ARROW_COLUMN.search(text)
    if match and int(match.group(1)) < len(header):
        column = header[int(match.group(1))]
        if "conversion error to double" in text:
            value = text.rsplit(":", 1)[-1].strip()
            return InputError(f"Column '{column}' must be numeric, but holds {value}: fix or remove those cells.")
    if "out of sync with chunker" in text:
        return InputError(f"{label} has a value that runs across lines (an unclosed quote?): {_ONE_ROW_PER_LINE}", 400)
    if "UTF8" in text or "utf-8" in text.lower():
        return InputError(f"{label} is not UTF-8 text: save it as UTF-8.", 400)
    return InputError(
        f"{label} could not be parsed as CSV ({text}): check that every row has as many fields as the header.", 400
    )


def _as_numbers(column: pa.Array, name: str, first_row: int, blanks_allowed: bool) -> np.ndarray:
    if blanks_allowed:  # a blank cell is null, then NaN: the model fills it in
        column = pc.if_else(pc.equal(pc.utf8_trim_whitespace(column), ""), pa.scalar(None, pa.string()), column)
    try:
        return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        # Slow path, only to name the rows at fault.
        values = pd.Series(column.to_pylist(), index=range(first_row, first_row + len(column)))
        return numeric_column(values, name, blanks_allowed)


def _as_codes(
    column: pa.Array, name: str, categories: pa.Array, first_row: int, blanks_allowed: bool
) -> tuple[np.ndarray, int]:
    """A text feature's cells as codes (text_features.FeatureLayout), and how many hold a text unseen at training."""
    text = pc.utf8_trim_whitespace(column)
    blank = pc.equal(text, "")
    if not blanks_allowed and pc.any(blank).as_py():
        row = first_row + pc.index(blank, True).as_py() + 1
        raise InputError(f"Column '{name}' has a blank value in data row {row}: fill in or remove that row.")
    codes = pc.index_in(text, value_set=categories)  # null: a text the training never had
    unseen = pc.sum(pc.and_(pc.is_null(codes), pc.invert(blank))).as_py() or 0
    return pc.fill_null(codes, UNSEEN).to_numpy(zero_copy_only=False).astype(float), int(unseen)


def _features(
    batch: pa.RecordBatch,
    columns: list[str],
    first_row: int,
    blanks_allowed: bool,
    text: dict[int, pa.Array],
    unseen: list[int],
) -> np.ndarray:
    """The block's feature matrix; `text`: a text feature's categories by its position, whose unseen
    texts are added to `unseen` (per position)."""
    parts = []
    for i, c in enumerate(columns):
        if i in text:
            codes, n_unseen = _as_codes(batch.column(c), c, text[i], first_row, blanks_allowed)
            unseen[i] += n_unseen
            parts.append(codes)
        else:
            parts.append(_as_numbers(batch.column(c), c, first_row, blanks_allowed))
    X = np.column_stack(parts)
    bad = np.isinf(X) if blanks_allowed else ~np.isfinite(X)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        what = "an infinite" if blanks_allowed else "a blank, NaN or infinite"
        raise InputError(
            f"Column '{columns[col]}' has {what} value in data row {first_row + int(row) + 1}: "
            "fill in or remove that row."
        )
    return X


def _check_one_row_per_line(batch: pa.RecordBatch, header: list[str], first_row: int, label: str) -> None:
    """Refuse a value that spans lines: pyarrow reads an unclosed quote to the end of the file as one
    cell, which would silently drop every row after it."""
    for name, column in zip(header, batch.columns, strict=False):
        if not pa.types.is_string(column.type):
            continue
        # A scan of the column's bytes is ~20x cheaper than a per-cell search; that only finds the row.
        cells = np.frombuffer(column.buffers()[2] or b"", dtype=np.uint8)
        if not ((cells == 10).any() or (cells == 13).any()):
            continue
        broken = pc.or_(pc.match_substring(column, "\n"), pc.match_substring(column, "\r"))
        if pc.any(broken).as_py():
            row = first_row + pc.index(broken, True).as_py() + 1
            raise InputError(
                f"{label}: the value of column '{name}' in data row {row} runs across lines (an unclosed quote?): "
                + _ONE_ROW_PER_LINE,
                400,
            )


def _read_head(source: BinaryIO, label: str) -> bytes:
    """The start of the file, through the end of the header row (which may be longer than one read)."""
    head = source.read(_HEAD_BYTES)
    while len(head) % _HEAD_BYTES == 0 and head and b"\n" not in head and b"\x00" not in head:
        if len(head) >= MAX_HEADER_BYTES:
            raise InputError(
                f"{label} has a header row longer than {MAX_HEADER_BYTES // 1024 // 1024} MB: "
                "is it a CSV file? Drop columns the model does not need.",
                400,
            )
        more = source.read(_HEAD_BYTES)
        if not more:
            break
        head += more
    source.seek(0)
    return head


def predict_csv(
    source: BinaryIO, filename: str | None, predictor: Predictor, output: Path, *, keep_rows: int
) -> StreamedBatch:
    """Predict every row of `source` into the CSV file `output`; raise InputError on bad input."""
    label = f"'{filename}'" if filename else "The uploaded file"
    head = _read_head(source, label)
    header = check_csv_header(head, label, truncated=len(head) % _HEAD_BYTES == 0)
    features = feature_columns(header, predictor.feature_names)
    classes = predictor.class_names
    added = output_columns(classes)
    # Input columns named like an added one are dropped (the new values replace them); no duplicate names.
    kept = [c for c in header if c not in added]
    inline_limit = min(keep_rows, max(1, INLINE_INPUT_VALUES // max(1, len(kept))))
    # Every column as text: the output keeps the input's cells as they were written.
    column_types = {c: pa.string() for c in header}
    try:
        reader = pacsv.open_csv(
            source,
            # The header as checked (names stripped, " id" is "id"): pyarrow's own names would keep the
            # spaces, miss `column_types` and guess other types.
            read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES, encoding="utf8", column_names=header, skip_rows=1),
            parse_options=pacsv.ParseOptions(delimiter=","),
            convert_options=pacsv.ConvertOptions(column_types=column_types, strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, pa.ArrowKeyError) as exc:
        raise _arrow_error(exc, header, label) from exc

    totals = StatisticsAccumulator(classes)
    drift = DriftAccumulator(predictor.profile, predictor.feature_names) if predictor.profile else None
    layout = predictor.layout
    text = {i: pa.array(layout.categories[f], pa.string()) for i, f in layout.text_positions.items()}
    unseen = [0] * len(features)
    # A text feature's inline value is its text as written, not its code.
    inline = _InlineRows(kept, {c: i for i, c in enumerate(features) if i not in text}, classes, inline_limit)
    class_cells = pa.array([_csv_field(c) for c in classes], type=pa.string())
    seen = 0
    try:
        with open(output, "wb") as sink:
            sink.write((",".join(_csv_field(c) for c in kept + added) + "\n").encode())
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                except (pa.ArrowInvalid, pa.ArrowKeyError) as exc:
                    raise _arrow_error(exc, header, label) from exc
                if batch.num_rows == 0:
                    continue
                _check_one_row_per_line(batch, header, seen, label)
                X = _features(batch, features, seen, predictor.imputes_blanks, text, unseen)
                result = predictor.predict_batch(X)
                totals.add(result)
                if drift is not None:
                    drift.add(X, result.indexes, result.confidences)
                inline.add(batch, X, result, seen)
                cells = [_csv_text(batch.column(c)) for c in kept]
                cells.append(class_cells.take(pa.array(result.indexes)))
                _write_rows(sink, cells, result)
                seen += batch.num_rows
    except BaseException:
        output.unlink(missing_ok=True)
        raise
    if seen == 0:
        output.unlink(missing_ok=True)
        raise InputError(f"{label} has a header but no data rows: add at least one row.", 400)
    return StreamedBatch(
        total=seen,
        statistics=totals.result(),
        first_rows=inline.rows(),
        replaced_columns=[c for c in header if c in added],
        drift=drift,
        unseen_categories={layout.feature_names[i]: unseen[i] for i in text},
    )


class _InlineRows:
    """The answer's first rows: each row's prediction, and under `input` its kept input columns.

    A numeric feature is the number predicted on; another column (a text feature too) is given as
    numbers (int where every cell is an integer, else float, a blank cell as null) when every non-blank
    cell of the listed rows is one, and as the text written otherwise. One type per column, decided
    once all rows are in.
    """

    def __init__(self, kept: list[str], numeric: dict[str, int], classes: list[str], limit: int):
        self.kept = kept
        self.position = numeric  # a numeric feature's column in X
        self.classes = classes
        self.limit = limit
        self.predictions: list[dict[str, Any]] = []
        self.features: list[np.ndarray] = []
        self.text: dict[str, list[str]] = {c: [] for c in kept if c not in self.position}

    def add(self, batch: pa.RecordBatch, X: np.ndarray, result: BatchResult, first_row: int) -> None:
        take = self.limit - len(self.predictions)
        if take <= 0:
            return
        self.predictions += prediction_rows(result, self.classes, first_row, limit=take)
        self.features.append(X[:take].copy())
        for name, cells in self.text.items():
            cells += batch.column(name).slice(0, take).to_pylist()

    def rows(self) -> list[dict[str, Any]]:
        if not self.predictions:
            return []
        X = np.concatenate(self.features)
        columns = [
            _numbers(X[:, self.position[c]]) if c in self.position else _json_values(self.text[c]) for c in self.kept
        ]
        inputs = [dict(zip(self.kept, values, strict=True)) for values in zip(*columns, strict=True)]
        # `input` second, after `sample_index`: the row's own fields can never clash with a column's name.
        return [
            {"sample_index": row["sample_index"], "input": values, **row}
            for row, values in zip(self.predictions, inputs, strict=True)
        ]


def _numbers(values: np.ndarray) -> list[float | None]:
    """A feature's inline values; a blank cell (NaN, filled in by the model) is null: JSON has no NaN."""
    return [None if v != v else v for v in values.tolist()]


def _json_values(cells: list[str]) -> list[Any]:
    """One non-feature column of the inline rows: numbers if every non-blank cell is one, else the text."""
    text = pa.array(cells, type=pa.string())
    blank = pc.equal(text, "")
    written = text.filter(pc.invert(blank))
    if len(written) == 0 or pc.any(pc.match_substring_regex(written, _KEEP_AS_TEXT)).as_py():
        return cells
    numbers = pc.if_else(blank, pa.scalar(None, pa.string()), text)  # a blank cell of a number column: null
    try:
        return pc.cast(numbers, pa.int64()).to_pylist()
    except pa.ArrowInvalid:
        pass
    try:
        floats = pc.cast(numbers, pa.float64())
    except pa.ArrowInvalid:
        return cells
    # "nan" and "inf" parse, but JSON has no such numbers.
    return floats.to_pylist() if pc.all(pc.is_finite(floats)).as_py() else cells


def _csv_field(text: str) -> str:
    """One CSV field: as it is, or quoted (its quotes doubled) when it holds a comma, a quote or a line break."""
    return '"' + text.replace('"', '""') + '"' if re.search(_NEEDS_QUOTES, text) else text


def _csv_text(column: pa.Array) -> pa.Array:
    """`_csv_field` of every cell of a text column; a scan of its bytes spares the usual column the search."""
    data = np.frombuffer(column.buffers()[2] or b"", dtype=np.uint8)
    if not any((data == byte).any() for byte in _QUOTE_BYTES):
        return column
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(column, '"', '""'), '"', "")
    return pc.if_else(pc.match_substring_regex(column, _NEEDS_QUOTES), quoted, column)


def _probability_fields(result: BatchResult) -> pa.Array:
    """Each row's end of line, ",<confidence>,<prob_1>,...,<prob_n>\\n", every value (0 to 1) with
    PROBABILITY_DECIMALS decimals ("0.940000"): fixed-width text made digit by digit in numpy, several
    times faster than formatting floats one by one."""
    values = np.column_stack([result.confidences, result.probabilities]).astype(np.float64)
    rest = np.rint(np.clip(values, 0.0, 1.0) * 10**PROBABILITY_DECIMALS).astype(np.int64)
    rows, count = rest.shape
    field = PROBABILITY_DECIMALS + 3  # ",0.940000"
    fields = np.empty((rows, count, field), dtype=np.uint8)
    fields[:, :, 0] = ord(",")
    fields[:, :, 2] = ord(".")
    for position in range(field - 1, 2, -1):
        rest, digit = np.divmod(rest, 10)
        fields[:, :, position] = digit + ord("0")
    fields[:, :, 1] = rest + ord("0")  # 0 or 1
    text = np.empty((rows, count * field + 1), dtype=np.uint8)
    text[:, :-1] = fields.reshape(rows, count * field)
    text[:, -1] = ord("\n")
    width = text.shape[1]
    offsets = np.arange(0, (rows + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(rows, pa.py_buffer(offsets), pa.py_buffer(text))


def _write_rows(sink: BinaryIO, cells: list[pa.Array], result: BatchResult) -> None:
    """Append the rows of `cells` (each cell already a CSV field) and `result` to `sink`, as many at a
    time as keep the probabilities' text within _PROBABILITY_TEXT_BYTES (one step for a few classes;
    a model of very many classes takes several, and no text array passes the 2 GB of 32-bit offsets)."""
    width = result.probabilities.shape[1] + 1
    step = max(1, _PROBABILITY_TEXT_BYTES // (width * (PROBABILITY_DECIMALS + 3) + 1))
    rows = len(result.indexes)
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        part = result
        if (start, stop) != (0, rows):
            part = BatchResult(
                result.indexes[start:stop], result.confidences[start:stop], result.probabilities[start:stop]
            )
        _write_lines(sink, [c.slice(start, stop - start) for c in cells], _probability_fields(part))


def _write_lines(sink: BinaryIO, cells: list[pa.Array], ends: pa.Array) -> None:
    """Append one CSV line per row to `sink`: the columns `cells` (each cell already a CSV field), then `ends`."""
    parts: list[Any] = []
    for column in cells:
        parts += [column, ","]
    parts[-1] = ends  # which begins with its own comma
    lines = pc.binary_join_element_wise(*parts, "")  # the last argument is the separator
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset : lines.offset + len(lines) + 1]
    sink.write(memoryview(lines.buffers()[2])[offsets[0] : offsets[-1]])
