"""A partition's feature counts against a training's reference profile: what drift needs of a Spark batch.

Runs on Spark's executors, where the platform may not be installed: it imports only numpy and pandas
(which pyspark's pandas functions need anyway) and is sent to the executors by value with the job,
never imported there. Its counts are the ones `drift.DriftAccumulator` adds chunk by chunk, so a
Spark batch's drift is computed as the single-process batch's is, from counts summed over partitions:

- a number: its values per profile bin (closed on the left), and per reference sample point the
  values below it and at or below it (the KS distance); blanks (NaN) are not counted;
- a text: its values per training category, then the others (unseen or blank) in the last bin, and
  how many of those held a text (not a blank).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd

COUNTS_COLUMN = "counts"
COUNTS_SCHEMA = f"{COUNTS_COLUMN} string"


def _zeros(spec: dict[str, Any]) -> dict[str, Any]:
    def zeros(n: int) -> np.ndarray:
        return np.zeros(n, dtype=np.int64)

    return {
        "numbers": {
            f["column"]: {
                "n": 0,
                "bins": zeros(len(f["cuts"]) + 1),
                "below": zeros(len(f["points"])),
                "at_or_below": zeros(len(f["points"])),
            }
            for f in spec["numbers"]
        },
        "texts": {f["column"]: {"n": 0, "counts": zeros(len(f["categories"]) + 1), "unseen": 0} for f in spec["texts"]},
    }


def _as_json(totals: dict[str, Any]) -> str:
    def plain(value: Any) -> Any:
        return value.tolist() if isinstance(value, np.ndarray) else value

    return json.dumps(
        {kind: {c: {k: plain(v) for k, v in counts.items()} for c, counts in totals[kind].items()} for kind in totals}
    )


def _add_numbers(total: dict[str, Any], values: np.ndarray, cuts: np.ndarray, points: np.ndarray) -> None:
    ordered = np.sort(values[~np.isnan(values)])
    under = np.searchsorted(ordered, cuts, side="left")
    total["n"] += len(ordered)
    total["bins"] += np.diff(np.concatenate(([0], under, [len(ordered)])))
    total["below"] += np.searchsorted(ordered, points, side="left")
    total["at_or_below"] += np.searchsorted(ordered, points, side="right")


def _add_texts(total: dict[str, Any], column: pd.Series, categories: list[str]) -> None:
    text = column.astype(object).where(column.notna(), "").astype(str).str.strip()
    lookup = {c: i for i, c in enumerate(categories)}
    codes = text.map(lookup).fillna(len(categories)).to_numpy(dtype=np.int64)
    total["n"] += len(codes)
    total["counts"] += np.bincount(codes, minlength=len(categories) + 1)
    total["unseen"] += int(((codes == len(categories)) & (text != "").to_numpy()).sum())


def partition_counter(spec: dict[str, Any]) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """For `mapInPandas`: one row per partition, its counts as JSON (`spec`: the features' columns, their
    profile's cuts and sample points, or a text's categories)."""
    numbers = [
        (f["column"], np.asarray(f["cuts"], dtype=float), np.asarray(f["points"], dtype=float)) for f in spec["numbers"]
    ]
    texts = [(f["column"], list(f["categories"])) for f in spec["texts"]]

    def count(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        totals = _zeros(spec)
        for frame in frames:
            for column, cuts, points in numbers:
                values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
                _add_numbers(totals["numbers"][column], values, cuts, points)
            for column, categories in texts:
                _add_texts(totals["texts"][column], frame[column], categories)
        yield pd.DataFrame({COUNTS_COLUMN: [_as_json(totals)]})

    return count


def sum_counts(spec: dict[str, Any], partitions: list[str]) -> dict[str, Any]:
    """The partitions' counts (their JSON) summed."""
    total = _zeros(spec)
    for text in partitions:
        part = json.loads(text)
        for kind in ("numbers", "texts"):
            for column, counts in part[kind].items():
                into = total[kind][column]
                for key, value in counts.items():
                    into[key] = into[key] + (np.asarray(value, dtype=np.int64) if isinstance(value, list) else value)
    return total
