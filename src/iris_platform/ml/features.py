"""Feature columns and values: names normalised to snake_case, the model's columns found in a table,
one feature set parsed from a form or JSON object.

Every check raises InputError with a message that names the column or value to fix.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Mapping
from functools import lru_cache
from typing import Any

import numpy as np

from iris_platform.errors import InputError
from iris_platform.tracking import names

_UNITS_IN_BRACKETS = re.compile(r"[\(\[\{][^\)\]\}]*[\)\]\}]")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_ALNUM = re.compile(r"[^0-9a-z]+")
_UNIT_SUFFIXES = {"cm", "mm", "in", "inch", "inches"}
_SHOW_COLUMNS = 20  # how many column names a message lists
# The largest magnitude a tree can compare: scikit-learn's trees work in float32.
FLOAT32_MAX = float(np.finfo(np.float32).max)
# Inference runs log each feature as a param beside these; a feature may not take their names.
RESERVED_FEATURE_NAMES = frozenset(
    {
        names.P_PREDICTION_TYPE,
        names.P_MODEL_PATH,
        names.P_TIMESTAMP,
        names.P_PREDICTED_CLASS,
        names.P_INPUT_FILE,
        names.P_WINDOW_END,
    }
)


@lru_cache(maxsize=4096)  # the same few names arrive with every prediction
def normalise_column_name(name: Any) -> str:
    """'sepal length (cm)' and 'SepalLengthCm' both become 'sepal_length'."""
    text = _UNITS_IN_BRACKETS.sub(" ", str(name)).strip()
    text = _CAMEL_BOUNDARY.sub("_", text).lower()
    tokens = [t for t in _NON_ALNUM.split(text) if t]
    while len(tokens) > 1 and tokens[-1] in _UNIT_SUFFIXES:
        tokens.pop()
    return "_".join(tokens)


def column_list(columns: Iterable[Any]) -> str:
    """Column names for a message: all of a few, the first ones of many (a file may have thousands)."""
    columns = [str(c) for c in columns]
    if len(columns) <= _SHOW_COLUMNS:
        return str(columns)
    return f"{str(columns[:_SHOW_COLUMNS])[:-1]}, ... ({len(columns):,} in all)]"


def normalised_columns(columns: Iterable[Any], *, allow_unnamed: bool = False) -> dict[str, str]:
    """Map normalised name -> original column name; two columns may not normalise to one name.

    A training file's columns all become features, so each needs a name; a batch file's other
    columns are only carried through (`allow_unnamed`).
    """
    mapping: dict[str, str] = {}
    for column in columns:
        key = normalise_column_name(column)
        if not key and not allow_unnamed:
            raise InputError(f"Column '{column}' has no letters or digits in its name: rename it.")
        if key in mapping:
            raise InputError(f"Columns '{mapping[key]}' and '{column}' both normalise to '{key}': rename one of them.")
        mapping[key] = column
    return mapping


def feature_columns(columns: list[str], feature_names: list[str]) -> list[str]:
    """The table's columns holding the model's features, in the model's order; other columns are ignored."""
    by_name = normalised_columns(columns, allow_unnamed=True)
    missing = [f for f in feature_names if f not in by_name]
    if missing:
        raise InputError(
            f"The file lacks the feature column(s) {column_list(missing)}; the model needs "
            f"{column_list(feature_names)} and the file has {column_list(columns)}."
        )
    return [by_name[f] for f in feature_names]


def _as_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or value is None:
        raise InputError(f"Feature '{name}' must be a number, got {json_repr(value)}.")
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:  # a JSON integer beyond any float, such as 10**400
            digits = int(int(value).bit_length() * 0.30103) + 1
            raise InputError(
                f"Feature '{name}' must be a finite number, got an integer of about {digits} digits."
            ) from None
    elif isinstance(value, str):
        text = value.strip()
        try:
            # float() also reads "1_000" and non-ASCII digits such as "١٢"; in a form field those are typos.
            if "_" in text or not text.isascii():
                raise ValueError(text)
            number = float(text)
        except ValueError:
            raise InputError(f"Feature '{name}' must be a number, got {json_repr(value)}.") from None
    else:
        raise InputError(f"Feature '{name}' must be a number, got {json_repr(value)}.")
    if not math.isfinite(number):
        raise InputError(f"Feature '{name}' must be a finite number, got {json_repr(value)}.")
    return number


def json_repr(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value[:40])
    return repr(value)[:40]


def _as_text(name: str, value: Any) -> str:
    """A text feature's value: text, stripped (a number is taken as written: a category may be "3")."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return str(value)
    raise InputError(
        f"Feature '{name}' must be a non-blank text (one of the categories the model was trained on), "
        f"got {json_repr(value)}."
    )


def parse_features(
    values: Mapping[str, Any],
    feature_names: list[str],
    blanks_allowed: bool = False,
    text_features: Collection[str] = (),
) -> list[float | str]:
    """One feature set from a form or JSON object, checked against the model's features: numbers, and text
    for `text_features`. With `blanks_allowed` (a model that imputes), null or an empty field is a blank:
    NaN for a number, "" for a text, for the model to fill in."""
    given: dict[str, Any] = {}
    for key, value in values.items():
        name = normalise_column_name(key)
        if name in given:
            raise InputError(f"Feature '{name}' is given twice: send each feature once.")
        given[name] = value
    missing = [f for f in feature_names if f not in given]
    unknown = [k for k in given if k not in feature_names]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing feature(s) {missing}")
        if unknown:
            parts.append(f"unknown field(s) {unknown}")
        raise InputError(f"{' and '.join(parts).capitalize()}: send exactly the model's features {feature_names}.")
    parsed: list[float | str] = []
    for f in feature_names:
        if blanks_allowed and _is_blank(given[f]):
            parsed.append("" if f in text_features else math.nan)
        elif f in text_features:
            parsed.append(_as_text(f, given[f]))
        else:
            parsed.append(_as_number(f, given[f]))
    return parsed


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())
