"""Property tests (Hypothesis) of column-name normalisation, CSV reading and the feature values of POST /predict."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from iris_platform.errors import InputError
from iris_platform.ml.data import (
    RESERVED_FEATURE_NAMES,
    check_csv_header,
    normalise_column_name,
    prepare_training_data,
    read_csv_upload,
)
from iris_platform.ml.inference import Predictor
from iris_platform.ml.model_store import ModelStore

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

FLOAT32_MAX = float(np.finfo(np.float32).max)  # the largest value a decision tree compares
MIN_SHARE = 0.25  # each path of a property (valid input, invalid input) takes at least this share of examples
# Valid and invalid input are generated apart, half of the examples each: a mixed strategy can drift to one side.
HALF = settings(EXAMPLES, max_examples=EXAMPLES.max_examples // 2)


def assert_both_paths_taken(tally: Tally) -> None:
    """A property of valid and invalid input is tested only if a fair share of examples took each path."""
    total = sum(tally.outcomes.values())
    valid = sum(n for outcome, n in tally.outcomes.items() if outcome.startswith("valid"))
    assert total and min(valid, total - valid) >= MIN_SHARE * total, dict(tally.outcomes)


plain_names = st.from_regex(r"[A-Za-z][A-Za-z0-9 ._]{0,10}( \((cm|mm)\))?", fullmatch=True)
# A feature's name: letters first, neither a name every inference run records nor the target's.
feature_names = plain_names.filter(
    lambda name: normalise_column_name(name.strip()) not in RESERVED_FEATURE_NAMES | {"target"}
)
nameless = st.text(alphabet=" _-.()[]{}/%", min_size=1, max_size=8).filter(str.strip)  # no letter or digit
trainable = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False, width=64),  # measurement-like
    st.floats(-FLOAT32_MAX, FLOAT32_MAX, allow_nan=False, width=64),  # anything a tree compares, 3.4e38 included
)
too_large = st.floats(min_value=FLOAT32_MAX, exclude_min=True, allow_infinity=False).flatmap(
    lambda value: st.sampled_from([value, -value])
)
not_a_number = st.one_of(
    st.just(""),
    st.from_regex(r"[A-Za-z][A-Za-z ]{0,8}", fullmatch=True),  # a word (nan, inf and NA among them)
    st.sampled_from(["nan", "inf", "-Infinity", "1,5", "5 cm", "0x1F"]),
)
CSV_DEFECTS = {
    "no letters or digits in its name": nameless,
    "a value too large": too_large,
    "a cell that is not a finite number": not_a_number,
}


@st.composite
def frames(draw, defect: str | None = None):
    """(names, values by column, labels, the column at fault); a `defect` puts one fault in one column."""
    n_columns = draw(st.integers(1, 5))
    n_rows = draw(st.integers(2, 12))
    names = draw(
        st.lists(
            feature_names,
            min_size=n_columns,
            max_size=n_columns,
            unique_by=lambda name: normalise_column_name(name.strip()),
        )
    )
    values: dict[int, list] = {i: draw(st.lists(trainable, min_size=n_rows, max_size=n_rows)) for i in range(n_columns)}
    labels = ["setosa", "virginica"] + draw(
        st.lists(st.sampled_from(["setosa", "virginica", "3", "x y"]), min_size=n_rows - 2, max_size=n_rows - 2)
    )
    if defect is None:
        return names, values, labels, None
    column = draw(st.integers(0, n_columns - 1))
    if defect == "no letters or digits in its name":
        names[column] = draw(CSV_DEFECTS[defect])
    else:
        values[column][draw(st.integers(0, n_rows - 1))] = draw(CSV_DEFECTS[defect])
    return names, values, labels, names[column].strip()


defective_frames = st.sampled_from(sorted(CSV_DEFECTS)).flatmap(
    lambda defect: frames(defect).map(lambda frame: (defect, frame))
)


def test_csv_round_trip_keeps_values_or_names_the_bad_column(tally):
    """A random numeric frame reads back with the same values; one with a bad column is refused naming it."""

    def check(kind, names, values, labels, culprit):
        event(kind)
        table = pd.DataFrame({i: v for i, v in values.items()})
        table.columns = names
        table["target"] = labels
        content = table.to_csv(index=False).encode()
        if kind != "valid":
            with pytest.raises(InputError) as refused:  # impute=none: a blank or NaN cell is a fault too
                prepare_training_data(read_csv_upload(content, "random.csv"), "target", impute="none")
            assert 400 <= refused.value.status_code < 500, refused.value.status_code
            assert f"'{culprit}'" in refused.value.detail, (kind, culprit, refused.value.detail)
            tally(f"invalid, {kind}: refused naming the column")
            return
        features = [c for c in table.columns if c != "target"]
        # A column of one value is left out (nothing to learn from); a table of only such columns is refused.
        constant = [i for i, c in enumerate(features) if len(set(values[i])) == 1]
        if len(constant) == len(features):
            with pytest.raises(InputError, match="single value in every row"):
                prepare_training_data(read_csv_upload(content, "random.csv"), "target")
            tally("valid: every column of one value, refused")
            return
        data = prepare_training_data(read_csv_upload(content, "random.csv"), "target")  # no InputError
        kept = [i for i in range(len(features)) if i not in constant]
        assert data.constant_columns == [str(features[i]).strip() for i in constant]
        assert data.feature_names == [normalise_column_name(str(features[i]).strip()) for i in kept]
        assert not set(data.feature_names) & RESERVED_FEATURE_NAMES
        expected = np.array([values[i] for i in kept], dtype=float).T
        assert np.array_equal(data.X.to_numpy(), expected), (content, data.X)
        decoded = [data.class_names[i] for i in data.y]
        assert decoded == [str(v) for v in pd.read_csv(io.BytesIO(content))["target"]]
        tally("valid: same values back")

    @HALF
    @given(frame=frames())
    def valid(frame):
        check("valid", *frame)

    @HALF
    @given(example=defective_frames)
    def invalid(example):
        defect, frame = example
        check(defect, *frame)

    valid()
    invalid()
    assert_both_paths_taken(tally)


# -- POST /predict: one sample's feature values -------------------------------------------------------

IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
a_number = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),  # any finite double: beyond float32, the tree's edge
    st.integers(-(10**18), 10**18),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),  # a number in a string, as forms send them
)
not_a_finite_number = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(["", " ", "nan", "NaN", "inf", "-Infinity", "1_000", "\u0661\u0662", "5,1", "5.1 cm"]),
    st.builds(lambda head, tail: f"{head}x{tail}", st.text(max_size=5), st.text(max_size=5)),
    st.integers(min_value=10**309, max_value=10**1000),  # beyond any double
    st.lists(a_number, max_size=2),
    st.dictionaries(st.text(max_size=3), a_number, max_size=2),
)
samples = st.fixed_dictionaries({name: a_number for name in IRIS_FEATURES})


@st.composite
def samples_with_a_bad_value(draw):
    sample = draw(samples)
    culprit = draw(st.sampled_from(IRIS_FEATURES))
    sample[culprit] = draw(not_a_finite_number)
    return sample, culprit


def test_predict_answers_valid_values_and_refuses_others_naming_the_feature(trained_platform, tally):
    """POST /predict answers finite feature values with the model's prediction, refuses others naming the feature."""
    client = trained_platform.client
    serving = client.get("/models").json()["current_model"]
    # The expectation: the saved scikit-learn model, loaded apart from the server (which serves it compiled).
    reference = Predictor(ModelStore(trained_platform.models_dir).load(Path(serving).name))
    assert sorted(reference.feature_names) == sorted(IRIS_FEATURES)

    def check(kind, sample, culprit):
        event(kind)
        response = client.post("/predict", json=sample)
        if kind == "invalid":
            assert 400 <= response.status_code < 500, (sample, response.text)
            detail = response.json()["detail"]
            assert isinstance(detail, str) and f"'{culprit}'" in detail, (culprit, sample, detail)
            tally(f"invalid: {response.status_code} naming the feature")
            return
        assert response.status_code == 200, (sample, response.text)
        body = response.json()
        expected = reference.predict_one([float(sample[name]) for name in reference.feature_names])
        assert body["model_path"] == serving
        assert body["probabilities"].keys() == expected.probabilities.keys()
        assert np.allclose(list(body["probabilities"].values()), list(expected.probabilities.values()), atol=1e-5), (
            sample,
            body["probabilities"],
            expected.probabilities,
        )
        top = max(expected.probabilities.values())  # a tie may go either way between float32 and float64
        assert body["class_name"] in {c for c, p in expected.probabilities.items() if p >= top - 1e-5}, (sample, body)
        tally("valid: 200, the model's prediction")

    @HALF
    @given(sample=samples)
    def valid(sample):
        check("valid", sample, None)

    @HALF
    @given(bad=samples_with_a_bad_value())
    def invalid(bad):
        check("invalid", *bad)

    valid()
    invalid()
    assert_both_paths_taken(tally)


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
