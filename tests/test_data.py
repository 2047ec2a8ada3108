"""Unit tests of data loading and checking: column names, CSV uploads, training data, feature sets."""

import numpy as np
import pandas as pd
import pytest

from iris_platform.errors import InputError
from iris_platform.ml.data import load_iris_training_data, prepare_training_data, read_csv_upload
from iris_platform.ml.features import feature_columns, normalise_column_name, parse_features
from tests.helpers.data import IRIS_CLASSES, IRIS_FEATURES, SETOSA, SKLEARN_HEADERS, csv_bytes, iris_frame


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("sepal length (cm)", "sepal_length"),
        ("SepalLengthCm", "sepal_length"),
        ("petal_width", "petal_width"),
        ("PetalWidthCm", "petal_width"),
        ("Sepal.Length", "sepal_length"),
        ("petal width [mm]", "petal_width"),
        ("SEPAL LENGTH", "sepal_length"),
        ("  Species ", "species"),
    ],
)
def test_normalise_column_name(raw, expected):
    assert normalise_column_name(raw) == expected


def test_bundled_iris_has_normalised_features_and_class_names():
    data = load_iris_training_data()
    assert data.feature_names == IRIS_FEATURES
    assert list(data.X.columns) == IRIS_FEATURES
    assert data.class_names == IRIS_CLASSES
    assert len(data.y) == 150 and sorted(set(data.y.tolist())) == [0, 1, 2]


# -- read_csv_upload --------------------------------------------------------------------------------


def test_read_csv_upload_parses_and_strips_header_and_values():
    frame = read_csv_upload(b"\xef\xbb\xbf a , b\n1, 2\n3, 4\n", "f.csv")  # UTF-8 BOM, padded cells
    assert list(frame.columns) == ["a", "b"]
    assert frame.to_dict("list") == {"a": [1, 3], "b": [2, 4]}


@pytest.mark.parametrize(
    "content, fragments",
    [
        (b"", ["'data.csv'", "empty"]),
        (b"  \n\n", ["empty"]),
        (b"a,b,c\n", ["header but no data rows"]),
        ("sepal_length,species\n5.1,caf\u00e9\n".encode("latin-1"), ["not UTF-8"]),
        (b"a;b;c\n1;2;3\n", ["semicolon"]),
        (b"a,,c\n1,2,3\n", ["no name", "[2]"]),
        (b"a,b,a\n1,2,3\n", ["duplicate", "'a'"]),
        (b"a,b\n1,2\n3,4,5,6\n", ["could not be parsed"]),
        (b"a,b\n1,\x002\n", ["binary"]),
    ],
    ids=["empty", "blank", "header-only", "latin-1", "semicolon", "unnamed", "duplicate", "ragged", "binary"],
)
def test_read_csv_upload_refuses_bad_files_with_400(content, fragments):
    with pytest.raises(InputError) as raised:
        read_csv_upload(content, "data.csv")
    assert raised.value.status_code == 400
    for fragment in fragments:
        assert fragment.lower() in raised.value.detail.lower()


# -- prepare_training_data --------------------------------------------------------------------------


def test_sklearn_headers_and_prefixed_string_labels():
    data = prepare_training_data(iris_frame(SKLEARN_HEADERS, labels="prefixed"))
    assert data.feature_names == IRIS_FEATURES
    assert list(data.X.columns) == IRIS_FEATURES
    assert data.class_names == ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]
    assert data.target_column == "species"
    assert data.X.dtypes.map(lambda d: d.kind).tolist() == ["f"] * 4
    # Row i's class index points at that row's label.
    assert data.class_names[data.y[0]] == "Iris-setosa" and data.class_names[data.y[-1]] == "Iris-virginica"


def test_integer_labels_become_class_names_from_the_data():
    frame = iris_frame(labels="integers")
    frame["species"] = frame["species"].map({0: 10, 1: 20, 2: 30})
    data = prepare_training_data(frame)
    assert data.class_names == ["10", "20", "30"]
    assert np.array_equal(data.y, frame["species"].map({10: 0, 20: 1, 30: 2}).to_numpy())


def test_target_column_chosen_by_name_anywhere_in_the_file():
    frame = iris_frame(labels="names", target="Species")
    frame = frame[["Species", *IRIS_FEATURES]]  # target first, so "the last column" would be wrong
    for requested in ("Species", "species"):  # exact or normalised
        data = prepare_training_data(frame, requested)
        assert data.target_column == "Species"
        assert data.feature_names == IRIS_FEATURES
        assert data.class_names == IRIS_CLASSES


@pytest.mark.parametrize(
    "frame, target, fragments",
    [
        (pd.DataFrame({"x": [1.0, 2.0, 3.0], "label": ["a", "a", "a"]}), None, ["only one class", "'a'"]),
        (pd.DataFrame({"x": [1.0, 2.0], "label": ["a", "b"]}), "colour", ["'colour'", "not a column", "'label'"]),
        (pd.DataFrame({"x": [1.0, "wide", 3.0], "label": ["a", "b", "a"]}), None, ["'x'", "numeric", "[2]", "wide"]),
        (pd.DataFrame({"x": [1.0, None, 3.0], "label": ["a", "b", "a"]}), None, ["'x'", "blank", "[2]"]),
        (pd.DataFrame({"x": [1.0, 2.0, 3.0], "label": [0.5, 1.0, 1.5]}), None, ["non-integer"]),
        (pd.DataFrame({"x": [1.0, 2.0, 3.0], "label": ["a", None, "b"]}), None, ["'label'", "blank", "[2]"]),
        (pd.DataFrame({"label": ["a", "b"]}), None, ["only the target column"]),
        (pd.DataFrame({"Petal Width": [1.0, 2.0], "petal_width": [1.0, 2.0], "y": ["a", "b"]}), None, ["normalise"]),
    ],
    ids=[
        "one-class",
        "no-such-target",
        "text-feature",
        "blank-feature",
        "float-target",
        "blank-target",
        "no-features",
        "colliding-names",
    ],
)
def test_prepare_training_data_refuses_unusable_data(frame, target, fragments):
    with pytest.raises(InputError) as raised:
        prepare_training_data(frame, target)
    assert 400 <= raised.value.status_code < 500
    for fragment in fragments:
        assert fragment.lower() in raised.value.detail.lower(), raised.value.detail


def test_csv_round_trip_through_upload_and_preparation():
    content = csv_bytes(iris_frame(SKLEARN_HEADERS, labels="prefixed"))
    data = prepare_training_data(read_csv_upload(content, "iris.csv"))
    assert data.feature_names == IRIS_FEATURES and len(data.y) == 150


# -- single feature sets and batch tables -----------------------------------------------------------


def test_parse_features_accepts_numbers_numeric_strings_and_unnormalised_names():
    values = {"Sepal Length (cm)": "5.1", "sepal_width": 3.5, "PetalLengthCm": 1.4, "petal_width": 0}
    assert parse_features(values, IRIS_FEATURES) == [5.1, 3.5, 1.4, 0.0]


@pytest.mark.parametrize(
    "change, fragments",
    [
        ({"petal_width": None}, ["'petal_width'", "null"]),
        ({"petal_width": True}, ["'petal_width'", "true"]),
        ({"petal_width": "wide"}, ["'petal_width'", "'wide'"]),
        ({"petal_width": "nan"}, ["'petal_width'", "finite"]),
        ({"petal_width": [1]}, ["'petal_width'", "number"]),
        ({"colour": 1.0}, ["unknown", "'colour'"]),
    ],
)
def test_parse_features_refuses_bad_values(change, fragments):
    with pytest.raises(InputError) as raised:
        parse_features({**SETOSA, **change}, IRIS_FEATURES)
    assert raised.value.status_code == 422
    for fragment in fragments:
        assert fragment.lower() in raised.value.detail.lower(), raised.value.detail


def test_parse_features_names_missing_features():
    values = {k: v for k, v in SETOSA.items() if k != "sepal_width"}
    with pytest.raises(InputError, match=r"(?i)missing feature\(s\) \['sepal_width'\]"):
        parse_features(values, IRIS_FEATURES)


def test_feature_columns_orders_columns_by_model_and_names_missing_ones():
    header = ["petal width (cm)", "id", "petal_length", "SepalWidthCm", "sepal length"]
    assert feature_columns(header, IRIS_FEATURES) == [
        "sepal length",
        "SepalWidthCm",
        "petal_length",
        "petal width (cm)",
    ]
    with pytest.raises(InputError, match="lacks the feature column.*'sepal_length'"):
        feature_columns([c for c in header if c != "sepal length"], IRIS_FEATURES)
    with pytest.raises(InputError, match="both normalise to 'sepal_length'"):
        feature_columns([*header, "Sepal Length (mm)"], IRIS_FEATURES)
