"""Property tests (Hypothesis) of column-name normalisation and CSV reading."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iris_platform.errors import InputError
from iris_platform.ml.data import (
    RESERVED_FEATURE_NAMES,
    check_csv_header,
    normalise_column_name,
    prepare_training_data,
    read_csv_upload,
)

# `tally` is a function-scoped fixture on purpose: it adds up every example of the test.
EXAMPLES = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
SNAKE = re.compile(r"^(?:[a-z0-9]+(?:_[a-z0-9]+)*)?$")
UNITS = {"cm", "mm", "in", "inch", "inches"}


class Tally:
    """Counts what a property's examples came to, for docs/RELIABILITY.md."""

    def __init__(self):
        self.outcomes: Counter = Counter()

    def __call__(self, outcome: str) -> None:
        self.outcomes[outcome] += 1


@pytest.fixture
def tally(request, results):
    counter = Tally()
    yield counter
    results.property(
        name=request.node.function.__doc__.strip().splitlines()[0].rstrip("."),
        examples=sum(counter.outcomes.values()),
        outcomes=counter.outcomes,
    )


# -- normalise_column_name -------------------------------------------------------------------------

names_of_anything = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.sampled_from(list("aAbBzZ09 _-.()[]{}/%cmin")), max_size=30),
)


@EXAMPLES
@given(name=names_of_anything)
def test_normalisation_is_idempotent_and_snake_case(name, tally):
    """normalise_column_name is idempotent and returns [a-z0-9_] only, no leading, trailing or double underscore."""
    once = normalise_column_name(name)
    assert normalise_column_name(once) == once
    assert SNAKE.match(once), once
    tally("empty" if not once else "snake_case name")


words = st.lists(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=8).filter(lambda w: w not in UNITS),
    min_size=1,
    max_size=4,
)


@EXAMPLES
@given(words=words, unit=st.sampled_from(["cm", "mm", "in"]))
def test_spellings_of_one_name_agree(words, unit, tally):
    """'x y (cm)', camelCase, PascalCaseCm, spaces, upper case and dots of one name normalise alike."""
    expected = "_".join(words)
    spellings = {
        "spaces": " ".join(words),
        "unit in brackets": f"{' '.join(words)} ({unit})",
        "unit in square brackets": f"{' '.join(words)} [{unit}]",
        "camelCase": words[0] + "".join(w.capitalize() for w in words[1:]),
        "PascalCase + unit": "".join(w.capitalize() for w in words) + unit.capitalize(),
        "UPPER CASE": " ".join(words).upper(),
        "dots": ".".join(w.capitalize() for w in words),
        "snake_case + unit": "_".join(words) + f"_{unit}",
        "padded": f"  {' '.join(words)}  ",
    }
    for kind, spelling in spellings.items():
        assert normalise_column_name(spelling) == expected, (kind, spelling)
    tally(f"{len(spellings)} spellings agreed")


# -- read_csv_upload + prepare_training_data ----------------------------------------------------------

plain_names = st.from_regex(r"[A-Za-z][A-Za-z0-9 ._]{0,10}( \((cm|mm)\))?", fullmatch=True)
column_names = st.one_of(
    plain_names,
    plain_names,
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=12),
)
finite = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False, width=64),  # measurement-like
    st.floats(allow_nan=False, allow_infinity=False, width=64),  # any finite double, 1e308 included
)


@st.composite
def frames(draw):
    n_columns = draw(st.integers(1, 5))
    n_rows = draw(st.integers(2, 12))
    names = draw(
        st.lists(
            column_names,
            min_size=n_columns,
            max_size=n_columns,
            unique_by=lambda name: normalise_column_name(name.strip()),
        )
    )
    values = {i: draw(st.lists(finite, min_size=n_rows, max_size=n_rows)) for i in range(n_columns)}
    labels = ["setosa", "virginica"] + draw(
        st.lists(st.sampled_from(["setosa", "virginica", "3", "x y"]), min_size=n_rows - 2, max_size=n_rows - 2)
    )
    return names, values, labels


@EXAMPLES
@given(frame=frames())
def test_csv_round_trip_keeps_values_or_says_why(frame, tally):
    """A random numeric frame written by pandas reads back with the same values, or a clear InputError."""
    names, values, labels = frame
    table = pd.DataFrame({i: v for i, v in values.items()})
    table.columns = names
    table["target"] = labels
    content = table.to_csv(index=False).encode()
    try:
        data = prepare_training_data(read_csv_upload(content, "random.csv"), "target")
    except InputError as error:
        assert error.status_code in (400, 422) and error.detail.strip()
        tally(f"InputError {error.status_code}: {_reason(error.detail)}")
        return
    features = [c for c in table.columns if c != "target"]
    assert data.feature_names == [normalise_column_name(str(c).strip()) for c in features]
    assert not set(data.feature_names) & RESERVED_FEATURE_NAMES
    expected = np.array([values[i] for i in range(len(names))], dtype=float).T
    assert np.array_equal(data.X.to_numpy(), expected), (content, data.X)
    decoded = [data.class_names[i] for i in data.y]
    assert decoded == [str(v) for v in pd.read_csv(io.BytesIO(content))["target"]]
    tally("same values back")


def _reason(detail: str) -> str:
    for words in ("too large", "no letters", "no name", "clash", "both normalise", "could not be parsed", "empty"):
        if words in detail:
            return words
    return detail[:40]


# -- check_csv_header ---------------------------------------------------------------------------------


def csv_like_bytes():
    line = st.lists(st.text(max_size=8), max_size=6).map(lambda cells: ",".join(cells))
    return st.lists(line, max_size=4).map(lambda lines: "\n".join(lines).encode())


@EXAMPLES
@given(
    head=st.one_of(st.binary(max_size=200), csv_like_bytes(), st.text(max_size=60).map(lambda t: t.encode("utf-16"))),
    truncated=st.booleans(),
)
def test_check_csv_header_raises_only_input_error(head, truncated, tally):
    """check_csv_header raises nothing but InputError (400) for arbitrary bytes."""
    try:
        header = check_csv_header(head, "'random.csv'", truncated=truncated)
    except InputError as error:
        assert error.status_code == 400 and error.detail.startswith("'random.csv'")
        tally("InputError 400")
        return
    assert isinstance(header, list) and all(isinstance(h, str) and h for h in header)
    assert len(set(header)) == len(header)
    first = next(csv.reader(io.StringIO(head.decode("utf-8-sig", errors="ignore"), newline="")), [])
    assert [h.strip() for h in first] == header or truncated
    tally("header returned")
