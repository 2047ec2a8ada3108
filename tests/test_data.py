"""Unit tests of data loading and checking: column names, CSV uploads, training data, feature sets."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iris_platform.errors import InputError
from iris_platform.ml.data import load_iris_training_data, prepare_training_data, read_csv_upload
from iris_platform.ml.features import feature_columns, normalise_column_name, parse_features
from iris_platform.ml.metadata import ModelMetadata
from tests.helpers.data import IRIS_CLASSES, IRIS_FEATURES, SETOSA, SKLEARN_HEADERS, csv_bytes, iris_frame

KAGGLE_CSV = Path(__file__).resolve().parents[1] / "examples" / "Iris.csv"
KAGGLE_HEADER = ["Id", "SepalLengthCm", "SepalWidthCm", "PetalLengthCm", "PetalWidthCm", "Species"]
PREFIXED_CLASSES = ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]


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
        (
            pd.DataFrame({"x": [1.0, None, 3.0], "label": ["a", "b", "a"]}),
            None,
            ["'x'", "blank", "[2]", "impute=median"],
        ),
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
        prepare_training_data(frame, target, impute="none")  # blanks refused, as asked
    assert 400 <= raised.value.status_code < 500
    for fragment in fragments:
        assert fragment.lower() in raised.value.detail.lower(), raised.value.detail


def test_non_integer_default_target_names_target_column():
    frame = pd.DataFrame({"label": [0, 1, 0], "x": [0.5, 1.0, 1.5]})  # integer labels first, a float last
    with pytest.raises(InputError, match=r"non-integer.*last column \('x'\).*target_column was not given"):
        prepare_training_data(frame)
    with pytest.raises(InputError) as raised:
        prepare_training_data(frame, "x")
    assert "non-integer" in raised.value.detail and "target_column was not given" not in raised.value.detail


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


# -- row identifiers: left out of the features ------------------------------------------------------


def kaggle_frame() -> pd.DataFrame:
    return read_csv_upload(KAGGLE_CSV.read_bytes(), KAGGLE_CSV.name)


def test_kaggle_iris_csv_trains_on_the_four_measurements_without_its_id():
    frame = kaggle_frame()
    assert list(frame.columns) == KAGGLE_HEADER and frame["Id"].tolist() == list(range(1, 151))
    data = prepare_training_data(frame)
    assert data.dropped_columns == ["Id"]
    assert data.feature_names == IRIS_FEATURES and list(data.X.columns) == IRIS_FEATURES
    assert data.X.to_numpy().tolist() == load_iris_training_data().X.to_numpy().tolist()
    assert data.target_column == "Species" and data.class_names == PREFIXED_CLASSES


@pytest.mark.parametrize("keep", ["Id", "id", " Id ,", ["Id"]], ids=["as-named", "normalised", "padded", "list"])
def test_keep_columns_keeps_an_identifier_as_a_feature(keep):
    data = prepare_training_data(kaggle_frame(), keep_columns=keep)
    assert data.dropped_columns == []
    assert data.feature_names == ["id", *IRIS_FEATURES]
    assert data.X["id"].tolist() == [float(i) for i in range(1, 151)]


def test_keep_columns_naming_no_column_is_refused_with_the_columns():
    with pytest.raises(InputError) as raised:
        prepare_training_data(kaggle_frame(), keep_columns="Id,colour,Size")
    assert raised.value.status_code == 422
    detail = raised.value.detail
    assert "keep_columns" in detail and "['colour', 'Size']" in detail and str(KAGGLE_HEADER) in detail


def with_column(name: str, values, rows: int = 150) -> pd.DataFrame:
    """The Iris table (150 rows) with one more column first."""
    frame = iris_frame().iloc[np.linspace(0, 149, rows).astype(int)].reset_index(drop=True)  # every class
    frame.insert(0, name, values)
    return frame


SHUFFLED = np.random.default_rng(7).permutation(150)


@pytest.mark.parametrize(
    "name, values",
    [
        ("row", list(range(1, 151))),  # 1..n, any name
        ("n", list(range(150))),  # 0..n-1
        ("row", (SHUFFLED + 1).tolist()),  # 1..n in any order
        ("Unnamed: 0", list(range(150))),  # a pandas index saved as a column
        ("index", (SHUFFLED * 7 + 1000).tolist()),  # named so, unique integers
        ("ID", [f"A-{i:03d}" for i in range(150)]),  # named so, unique text
        ("sample_id", (SHUFFLED * 3 + 5).tolist()),  # <name>_id, unique integers
        ("RowId", list(range(1, 151))),
        ("name", [f"penguin {i}" for i in (SHUFFLED + 1)]),  # any name, a different text in every row
    ],
    ids=["1..n", "0..n-1", "shuffled", "unnamed-0", "index", "text-id", "name_id", "RowId", "unique-text"],
)
def test_identifier_columns_are_left_out(name, values):
    data = prepare_training_data(with_column(name, values))
    assert data.dropped_columns == [name]
    assert data.feature_names == IRIS_FEATURES


@pytest.mark.parametrize(
    "name, values, rows",
    [
        ("petals", [i % 7 for i in range(150)], 150),  # integers with repeats
        ("year", list(range(2001, 2151)), 150),  # unique consecutive, but not row numbers
        ("row", [*range(1, 150), 151], 150),  # one gap: not row numbers
        ("count", list(range(1, 10)), 9),  # 1..n in a file too small to tell row numbers from a measurement
        ("size", [float(i) for i in range(1, 151)], 150),  # written as decimals: a measurement
        ("store_id", [i % 5 for i in range(150)], 150),  # <name>_id with repeats: a category
        ("id", [i / 10 for i in range(150)], 150),  # named id, but decimals
    ],
    ids=["repeats", "year", "gap", "small-file", "floats", "name_id-repeats", "decimal-id"],
)
def test_real_features_are_never_left_out(name, values, rows):
    data = prepare_training_data(with_column(name, values, rows))
    assert data.dropped_columns == []
    assert data.feature_names == [normalise_column_name(name), *IRIS_FEATURES]
    assert data.X[normalise_column_name(name)].tolist() == [float(v) for v in values]


def test_text_repeated_across_rows_is_a_feature_and_a_small_files_unique_text_too():
    colours = [["red", "green", "blue"][i % 3] for i in range(150)]
    assert prepare_training_data(with_column("colour", colours)).text_features == ["colour"]
    few = prepare_training_data(with_column("label", [f"t{i}" for i in range(9)], 9))  # too few rows to tell
    assert few.dropped_columns == [] and few.text_features == ["label"]


def test_a_file_of_identifiers_only_is_refused_naming_keep_columns():
    frame = pd.DataFrame({"id": range(1, 21), "label": ["a", "b"] * 10})
    with pytest.raises(InputError) as raised:
        prepare_training_data(frame)
    assert raised.value.status_code == 422
    assert "['id']" in raised.value.detail and "keep_columns=id" in raised.value.detail
    assert prepare_training_data(frame, keep_columns="id").feature_names == ["id"]


def test_old_metadata_without_dropped_columns_still_loads():
    metadata = ModelMetadata.from_dict({"feature_names": IRIS_FEATURES, "class_names": IRIS_CLASSES}, "old.pkl")
    assert metadata.dropped_columns == []
    assert "dropped_columns" not in metadata.to_dict()  # answered as read
    fresh = ModelMetadata(feature_names=IRIS_FEATURES, class_names=IRIS_CLASSES, dropped_columns=["Id"])
    assert ModelMetadata.from_dict(fresh.to_dict(), "new.pkl").dropped_columns == ["Id"]


# -- the target not in the last column --------------------------------------------------------------


def test_target_first_without_target_column_names_the_text_column():
    frame = kaggle_frame()[["Species", "SepalLengthCm", "SepalWidthCm", "PetalLengthCm", "PetalWidthCm"]]
    with pytest.raises(InputError) as raised:
        prepare_training_data(frame)
    assert raised.value.status_code == 422
    detail = raised.value.detail
    assert "Column 'Species' holds text" in detail
    assert "the last column ('PetalWidthCm') was taken as the target" in detail
    assert "target_column=Species" in detail
    assert prepare_training_data(frame, "Species").feature_names == IRIS_FEATURES


def test_two_text_columns_without_target_column_are_both_named():
    frame = iris_frame()[["species", *IRIS_FEATURES]].assign(colour="red")[["species", "colour", *IRIS_FEATURES]]
    with pytest.raises(InputError) as raised:
        prepare_training_data(frame)
    detail = raised.value.detail
    assert "['species', 'colour'] hold text" in detail and "target_column" in detail and "'petal_width'" in detail


def test_a_text_column_beside_a_text_target_is_a_text_feature():
    colours = ["red", "green", "blue"] * 50
    frame = iris_frame().assign(colour=colours)[["colour", *IRIS_FEATURES, "species"]]
    data = prepare_training_data(frame)
    assert data.text_features == ["colour"] and data.feature_names == ["colour", *IRIS_FEATURES]
    assert data.X["colour"].tolist() == colours
    assert data.preprocessing == "one_hot_encoding"


def test_a_text_column_of_one_value_is_left_out_as_constant():
    frame = iris_frame().assign(colour="red")[["colour", *IRIS_FEATURES, "species"]]
    data = prepare_training_data(frame)
    assert data.constant_columns == ["colour"] and data.text_features == []


def test_a_few_words_in_a_numeric_column_keep_the_numeric_message():
    frame = iris_frame()
    frame["sepal_length"] = frame["sepal_length"].astype(object)
    frame.loc[7, "sepal_length"] = "n/a cm"
    with pytest.raises(InputError) as raised:
        prepare_training_data(frame)
    assert "Column 'sepal_length' must be numeric, but data row(s) [8]" in raised.value.detail


# -- stray double quotes ----------------------------------------------------------------------------

HEADER_LINE = ",".join(IRIS_FEATURES) + ",species\n"


@pytest.mark.parametrize(
    "body, fragments",
    [
        (
            '5.1,3.5,1.4,0.2,setosa\n4.9,3.0,1.4,0.2,virginica\n"6.0,2.9,4.5,1.5,versicolor\n4.7,3.2,1.3,0.2,setosa\n',
            ["unclosed double quote in data row 3 (line 4)", "column 'sepal_length'", "close the quote"],
        ),
        (
            '5.1,3.5,1.4,0.2,"setosa\n4.9,3.0,1.4,0.2,virginica\n',
            ["unclosed double quote in data row 1 (line 2)", "column 'species'"],
        ),
        (  # a quoted value with a line break and a blank line before it: data rows and lines count apart
            '5.1,3.5,1.4,0.2,"set\nosa"\n\n4.9,3.0,1.4,0.2,virginica\n4.7,"3.2,1.3,0.2,setosa\n',
            ["unclosed double quote in data row 3 (line 6)", "column 'sepal_width'"],
        ),
        (  # closed on a later line, leaving a row of the wrong width
            '5.1,3.5,1.4,0.2,setosa\n"4.9,3.0,1.4,0.2,virginica\n5.1,3.5,1.4,0.2,setosa\n4.9,"3",1,0.2,x,y,z\n',
            ["double quote in data row 2 (line 3)", "lines 3 to 5", "close the quote"],
        ),
    ],
    ids=["first-column", "last-column", "after-line-break-and-blank-line", "closed-lines-later"],
)
def test_a_stray_double_quote_is_named_with_its_row_and_line(body, fragments):
    with pytest.raises(InputError) as raised:
        read_csv_upload((HEADER_LINE + body).encode(), "data.csv")
    assert raised.value.status_code == 400
    assert raised.value.detail.startswith("'data.csv' has ")
    for fragment in fragments:
        assert fragment in raised.value.detail, raised.value.detail


def test_a_stray_quote_closed_by_a_later_one_is_hinted_at_in_the_numeric_message():
    body = '5.1,3.5,1.4,0.2,setosa\n"4.9,3.0,1.4,0.2,virginica\n5.1,3.5,1.4,0.2,"setosa\n4.9,3.0,1.4,0.2,virginica\n'
    with pytest.raises(InputError) as raised:
        prepare_training_data(read_csv_upload((HEADER_LINE + body).encode(), "data.csv"))
    assert "Column 'sepal_length' must be numeric, but data row(s) [2]" in raised.value.detail
    assert "runs across lines" in raised.value.detail and "double quote" in raised.value.detail


def test_a_quoted_value_with_a_line_break_is_read_as_one_value():
    body = '5.1,3.5,1.4,0.2,"set\nosa"\n4.9,3.0,1.4,0.2,virginica\n'
    frame = read_csv_upload((HEADER_LINE + body).encode(), "data.csv")
    assert frame["species"].tolist() == ["set\nosa", "virginica"]


def test_blank_cells_are_kept_for_the_model_to_impute_and_counted():
    frame = pd.DataFrame(
        {"x": [1.0, None, 3.0, 4.0, None], "z": [" ", "2", "3", "4", "5"], "label": ["a", "b", "a", "b", "a"]}
    )
    data = prepare_training_data(frame)  # impute=median, the default
    assert data.imputed_cells == {"x": 2, "z": 1}  # a blank text cell in a numeric column is a blank too
    assert data.preprocessing == "median_imputation" and data.impute == "median"
    assert np.isnan(data.X["x"].to_numpy()).tolist() == [False, True, False, False, True]
    complete = prepare_training_data(frame.fillna(0.0).assign(z=[1, 2, 3, 4, 5]))
    assert complete.imputed_cells == {} and complete.preprocessing == "none"


def test_infinite_cells_are_refused_even_with_imputation():
    frame = pd.DataFrame({"x": [1.0, float("inf"), 3.0], "label": ["a", "b", "a"]})
    with pytest.raises(InputError, match=r"'x' has infinite values in data row\(s\) \[2\]"):
        prepare_training_data(frame)


def test_constant_columns_are_left_out_and_named():
    frame = pd.DataFrame(
        {
            "x": [1.0, 2.0, 3.0, 4.0],
            "year": [2007, 2007, 2007, 2007],
            "empty": [None, None, None, None],
            "label": ["a", "b", "a", "b"],
        }
    )
    data = prepare_training_data(frame)
    assert data.feature_names == ["x"] and list(data.X.columns) == ["x"]
    assert data.constant_columns == ["year", "empty"] and data.imputed_cells == {}
    with pytest.raises(InputError, match="single value in every row"):
        prepare_training_data(frame[["year", "empty", "label"]])


def test_an_unknown_impute_choice_is_refused_with_the_choices():
    with pytest.raises(InputError, match="impute must be one of 'median', 'none', got 'mean'"):
        prepare_training_data(pd.DataFrame({"x": [1.0, 2.0], "label": ["a", "b"]}), impute="mean")


def test_an_id_column_with_a_blank_cell_is_still_left_out():
    # One blank cell makes pandas read the ids as floats: they still only identify rows.
    frame = pd.DataFrame({"id": [1, 2, None, 4], "x": [1.0, 2.0, 3.0, 4.5], "label": ["a", "b", "a", "b"]})
    data = prepare_training_data(frame)
    assert data.dropped_columns == ["id"] and data.feature_names == ["x"]


def test_the_impute_hint_is_given_for_blank_cells_only():
    blank = pd.DataFrame({"x": [1.0, None, 3.0], "label": ["a", "b", "a"]})
    with pytest.raises(InputError, match="send impute=median"):
        prepare_training_data(blank, impute="none")
    infinite = pd.DataFrame({"x": [1.0, float("inf"), 3.0], "label": ["a", "b", "a"]})
    with pytest.raises(InputError) as raised:
        prepare_training_data(infinite, impute="none")
    assert "infinite" in raised.value.detail and "impute" not in raised.value.detail
