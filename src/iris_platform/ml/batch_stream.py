"""Batch prediction over a CSV file of any size, in chunks: read, predict, write, never all at once.

pyarrow's CSV reader yields record batches of a few megabytes; each batch's feature columns are
predicted and its rows, with the predicted class, confidence and every class probability, are
appended to the output CSV at once. Memory stays bounded by the batch size, not the file size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from iris_platform.batch_statistics import BatchResult, BatchStatistics, StatisticsAccumulator
from iris_platform.errors import InputError
from iris_platform.ml.data import check_csv_header, numeric_column
from iris_platform.ml.features import feature_columns
from iris_platform.ml.inference import Predictor, prediction_rows
from iris_platform.tracking import names

BLOCK_BYTES = 8 * 1024 * 1024
_HEAD_BYTES = 64 * 1024
# A header row may be longer than the first read (a file of thousands of columns); up to this is read to find its end.
MAX_HEADER_BYTES = 16 * 1024 * 1024
_ARROW_COLUMN = re.compile(r"CSV column #(\d+)")
# What to do about a value that runs across lines, whichever check finds it.
_ONE_ROW_PER_LINE = "close the quote, or remove the line breaks inside values; a batch file holds one row per line."


@dataclass
class StreamedBatch:
    total: int
    statistics: BatchStatistics
    first_rows: list[dict[str, Any]]
    # Input columns named like an added one (a predictions file sent again): the new values replace them.
    replaced_columns: list[str]


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


def _as_numbers(column: pa.Array, name: str, first_row: int) -> np.ndarray:
    try:
        return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        # Slow path, only to name the rows at fault.
        values = pd.Series(column.to_pylist(), index=range(first_row, first_row + len(column)))
        return numeric_column(values, name)


def _features(batch: pa.RecordBatch, columns: list[str], first_row: int) -> np.ndarray:
    X = np.column_stack([_as_numbers(batch.column(c), c, first_row) for c in columns])
    bad = ~np.isfinite(X)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise InputError(
            f"Column '{columns[col]}' has a blank, NaN or infinite value in data row {first_row + int(row) + 1}: "
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
    first_rows: list[dict[str, Any]] = []
    class_array = pa.array(classes, type=pa.string())
    writer = None
    seen = 0
    try:
        with open(output, "wb") as sink:
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
                X = _features(batch, features, seen)
                result = predictor.predict_batch(X)
                totals.add(result)
                if len(first_rows) < keep_rows:
                    first_rows.extend(prediction_rows(result, classes, seen, limit=keep_rows - len(first_rows)))
                out = _output_batch(batch, result, classes, class_array)
                if writer is None:
                    writer = pacsv.CSVWriter(sink, out.schema, write_options=pacsv.WriteOptions(quoting_header="none"))
                writer.write_batch(out)
                seen += batch.num_rows
            if writer is not None:
                writer.close()
    except BaseException:
        output.unlink(missing_ok=True)
        raise
    if seen == 0:
        output.unlink(missing_ok=True)
        raise InputError(f"{label} has a header but no data rows: add at least one row.", 400)
    added = set(output_columns(classes))
    return StreamedBatch(
        total=seen,
        statistics=totals.result(),
        first_rows=first_rows,
        replaced_columns=[c for c in header if c in added],
    )


def _output_batch(
    batch: pa.RecordBatch, result: BatchResult, classes: list[str], class_array: pa.Array
) -> pa.RecordBatch:
    added = [class_array.take(pa.array(result.indexes)), pa.array(result.confidences, type=pa.float64())]
    added += [pa.array(result.probabilities[:, i]) for i in range(len(classes))]
    added_names = output_columns(classes)
    kept = [i for i, name in enumerate(batch.schema.names) if name not in added_names]  # no duplicate names
    columns = [batch.column(i) for i in kept] + added
    fields = [batch.schema.field(i) for i in kept] + [
        pa.field(n, a.type) for n, a in zip(added_names, added, strict=False)
    ]
    return pa.RecordBatch.from_arrays(columns, schema=pa.schema(fields))
