"""The compiled (ONNX) serving path: the same probabilities and classes as scikit-learn, or scikit-learn itself."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier

from iris_platform.ml import compiled_model
from iris_platform.ml.compiled_model import CompiledModel, check_parity, convert, near_ties
from iris_platform.ml.data import load_iris_training_data
from iris_platform.ml.inference import Predictor, compiled_predictor
from iris_platform.ml.metadata import ModelMetadata
from iris_platform.ml.model_store import ModelStore, StoredModel, sha256_hex
from iris_platform.ml.text_features import FeatureLayout
from tests.helpers.api import FAST_TREES, assert_error, load_model, predict, train
from tests.helpers.data import IRIS_CLASSES, IRIS_FEATURES, SETOSA
from tests.helpers.platform import open_platform

TOLERANCE = 1e-5  # what the API promises


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with open_platform(tmp_path_factory.mktemp("compiled")) as platform:
        platform.trained = train(platform.client, n_estimators=FAST_TREES)
        yield platform


@pytest.fixture(scope="module")
def reference(platform):
    """The trained model as scikit-learn runs it, loaded from the saved .pkl."""
    store = ModelStore(platform.models_dir)
    return store.load(platform.trained["model_metadata"]["model_file"])


def sklearn_proba(estimator, X) -> np.ndarray:
    return estimator.predict_proba(pd.DataFrame(np.asarray(X, dtype=float), columns=IRIS_FEATURES))


def random_inputs(n: int, seed: int) -> np.ndarray:
    """Over the Iris ranges and well beyond them (negative, large), rounded like typed-in values."""
    X = load_iris_training_data().X.to_numpy()
    low, high = X.min(axis=0), X.max(axis=0)
    span = high - low
    rng = np.random.default_rng(seed)
    inside = rng.uniform(low - span, high + span, size=(n, X.shape[1]))
    return np.vstack([np.round(inside[: n // 2], 1), inside[n // 2 :], [[-1e6] * 4, [1e6] * 4, [0.0] * 4]])


def threshold_inputs(estimator, n: int, seed: int) -> np.ndarray:
    """Rows whose features sit exactly on (or one float step beside) the forest's split thresholds."""
    rng = np.random.default_rng(seed)
    thresholds = [[] for _ in IRIS_FEATURES]
    for tree in estimator.estimators_:
        for feature, threshold in zip(tree.tree_.feature, tree.tree_.threshold, strict=False):
            if feature >= 0:
                thresholds[feature].append(threshold)
    columns = []
    for values in thresholds:
        picked = rng.choice(np.array(values), size=n)
        step = rng.integers(-1, 2, size=n)
        columns.append(
            np.where(step < 0, np.nextafter(picked, -np.inf), np.where(step > 0, np.nextafter(picked, np.inf), picked))
        )
    return np.column_stack(columns)


def test_training_serves_the_compiled_model(platform):
    health = platform.client.get("/health").json()
    assert health["runtime"] == "onnxruntime"
    compiled = platform.trained["model_metadata"]["compiled"]
    assert compiled["runtime"] == "onnxruntime"
    assert compiled["parity_ok"] is True
    assert compiled["max_abs_diff"] <= compiled_model.PARITY_TOLERANCE
    assert compiled["class_mismatches"] == 0
    assert compiled["rows_checked"] == 150 + compiled_model.RANDOM_ROWS
    onnx_file = platform.models_dir / platform.trained["model_metadata"]["onnx_file"]
    assert sha256_hex(onnx_file.read_bytes()) == platform.trained["model_metadata"]["onnx_sha256"]


def test_the_apps_predictor_matches_scikit_learn_on_thousands_of_rows(platform, reference):
    predictor = platform.client.app.state.service.predictor
    assert predictor.runtime == "onnxruntime"
    X = np.vstack([random_inputs(3000, seed=1), threshold_inputs(reference.estimator, 1000, seed=2)])
    expected = sklearn_proba(reference.estimator, X)

    batch = predictor.predict_batch(X)  # the multi-threaded session
    assert np.abs(batch.probabilities - expected).max() <= TOLERANCE
    assert np.array_equal(batch.indexes, np.argmax(expected, axis=1))
    assert np.allclose(batch.confidences, expected.max(axis=1), atol=TOLERANCE)

    for row, want in zip(X[::10], expected[::10], strict=False):  # the single-row session
        got = predictor.predict_one(list(row))
        assert got.index == int(np.argmax(want))
        assert got.class_name == IRIS_CLASSES[int(np.argmax(want))]
        assert np.abs(np.array(list(got.probabilities.values())) - want).max() <= TOLERANCE


def test_predict_over_http_matches_scikit_learn(platform, reference):
    X = random_inputs(60, seed=3)
    expected = sklearn_proba(reference.estimator, X)
    for row, want in zip(X, expected, strict=False):
        body = predict(platform.client, dict(zip(IRIS_FEATURES, map(float, row), strict=False)))
        assert body["prediction"] == int(np.argmax(want))
        assert body["class_name"] == IRIS_CLASSES[int(np.argmax(want))]
        assert list(body["probabilities"]) == IRIS_CLASSES
        assert np.abs(np.array(list(body["probabilities"].values())) - want).max() <= TOLERANCE
        assert body["confidence"] == pytest.approx(want.max(), abs=TOLERANCE)


def test_check_parity_on_the_training_data(reference):
    X = load_iris_training_data().X.to_numpy()
    compiled = CompiledModel(reference.onnx_bytes)
    report = check_parity(compiled, Predictor(reference).sklearn_proba, X)
    # The largest difference, worked out here from the two models' own answers.
    max_abs_diff = float(np.abs(compiled.predict_proba(X) - sklearn_proba(reference.estimator, X)).max())
    assert report.ok is True
    assert report.rows_checked == len(X) == 150
    assert report.class_mismatches == 0
    assert report.max_abs_diff == pytest.approx(max_abs_diff, rel=1e-6, abs=1e-12)
    assert 0.0 <= report.max_abs_diff <= compiled_model.PARITY_TOLERANCE
    assert report.as_dict() == {
        "runtime": "onnxruntime",
        "parity_ok": True,
        "max_abs_diff": pytest.approx(max_abs_diff, rel=1e-6, abs=1e-12),
        "rows_checked": 150,
        "class_mismatches": 0,
    }


# -- ties ---------------------------------------------------------------------------------------------


def test_near_ties_flags_exact_and_near_ties_only():
    proba = np.array(
        [
            [0.5, 0.5, 0.0],  # exact tie
            [0.6, 0.3, 0.1],  # clear winner
            [0.4, 0.4 + 1e-7, 0.2],  # within the margin
            [1 / 3, 1 / 3, 1 / 3],  # three-way tie
            [0.2, 0.4, 0.4],  # tie between the last two
            [0.45, 0.45 + 1e-3, 0.099],  # close, but beyond the margin
        ]
    )
    assert near_ties(proba).tolist() == [True, False, True, True, True, False]
    assert near_ties(np.ones((3, 1))).tolist() == [False, False, False]


@pytest.fixture(scope="module")
def two_tree_forest():
    """Two trees on a few Iris rows: their probabilities are 0, 0.5 or 1, so ties are everywhere."""
    data = load_iris_training_data()
    rows = np.r_[0:6, 50:56, 100:106]
    X, y = data.X.iloc[rows], data.y[rows]
    forest = RandomForestClassifier(n_estimators=2, random_state=3).fit(X, y)
    metadata = ModelMetadata(feature_names=IRIS_FEATURES, class_names=IRIS_CLASSES)
    return StoredModel(forest, metadata, "two_trees.pkl", convert(forest, FeatureLayout(IRIS_FEATURES)))


def test_a_compiled_predictor_resolves_ties_like_scikit_learn(two_tree_forest):
    assert two_tree_forest.onnx_bytes is not None
    predictor = Predictor(two_tree_forest, CompiledModel(two_tree_forest.onnx_bytes))
    assert predictor.runtime == "onnxruntime"
    X = random_inputs(4000, seed=4)
    expected = sklearn_proba(two_tree_forest.estimator, X)
    ties = near_ties(expected)
    assert ties.sum() > 100, "the two trees should disagree on many rows"

    batch = predictor.predict_batch(X)
    assert np.array_equal(batch.indexes, np.argmax(expected, axis=1))
    assert np.abs(batch.probabilities - expected).max() <= TOLERANCE
    for row in X[ties][:50]:  # single rows of exact ties: the first class of the tie, as scikit-learn says
        want = sklearn_proba(two_tree_forest.estimator, [row])[0]
        assert predictor.predict_one(list(row)).index == int(np.argmax(want))


class RoundedDifferently:
    """The real compiled model, its float rounding pushed the other way: a tie now favours the later class.

    Real forests rarely show this (onnxruntime sums in a different order than scikit-learn); the
    nudge makes every tie row one where the compiled argmax alone would differ from scikit-learn.
    """

    def __init__(self, compiled: CompiledModel):
        self.compiled = compiled

    def predict_proba(self, X):
        proba = self.compiled.predict_proba(X)
        return proba + 1e-8 * np.arange(proba.shape[1])


def test_rows_near_a_tie_are_answered_by_scikit_learn(two_tree_forest):
    nudged = RoundedDifferently(CompiledModel(two_tree_forest.onnx_bytes))
    predictor = Predictor(two_tree_forest, nudged)
    X = random_inputs(2000, seed=5)
    expected = sklearn_proba(two_tree_forest.estimator, X)
    ties = near_ties(expected)
    assert ties.any()
    assert (np.argmax(nudged.predict_proba(X), axis=1) != np.argmax(expected, axis=1))[ties].all()

    batch = predictor.predict_batch(X)
    assert np.array_equal(batch.indexes, np.argmax(expected, axis=1))
    assert np.array_equal(batch.probabilities[ties], expected[ties])  # scikit-learn's own numbers there
    assert np.abs(batch.probabilities - expected).max() <= TOLERANCE
    row = X[ties][0]
    assert predictor.predict_one(list(row)).index == int(np.argmax(expected[ties][0]))


# -- falling back to scikit-learn -------------------------------------------------------------------


def test_a_model_without_onnx_or_with_unusable_onnx_is_served_by_scikit_learn(reference, two_tree_forest):
    X = load_iris_training_data().X.to_numpy()
    cases = {
        "none": None,
        "garbage": b"this is not an ONNX model",
        "another model": two_tree_forest.onnx_bytes,  # a valid ONNX model that fails the parity check
    }
    for name, onnx_bytes in cases.items():
        stored = StoredModel(reference.estimator, reference.metadata, reference.model_path, onnx_bytes)
        predictor, report = compiled_predictor(stored, X)
        assert predictor.compiled is None, name
        assert predictor.runtime == "scikit-learn", name
        assert report["runtime"] == "scikit-learn", name
        if name == "another model":
            assert report["parity_ok"] is False
        else:
            assert report.get("reason"), name
        got = predictor.predict_batch(X)
        expected = sklearn_proba(reference.estimator, X)
        assert np.array_equal(got.probabilities, expected), name
        assert np.array_equal(got.indexes, np.argmax(expected, axis=1)), name


def registry_copy(platform, version: str) -> Path:
    """The `model_files/` folder of a registered version in the artifact store (a local folder here)."""
    return Path(platform.mlflow.get_model_version_download_uri("iris_classifier", version)) / "model_files"


def version_from_changed_registry_copy(platform, change) -> tuple[str, str]:
    """Train a version, let `change(folder, model_file)` alter the registry's copy of its files, and drop
    the cached copy so loading it downloads again; the platform's first model serves meanwhile."""
    trained = train(platform.client, n_estimators=FAST_TREES)
    load_model(platform.client, platform.trained["model_path"])
    model_file = trained["model_metadata"]["model_file"]
    change(registry_copy(platform, trained["model_version"]), model_file)
    ModelStore(platform.models_dir).remove(model_file)
    return trained["model_version"], model_file


def test_load_version_falls_back_or_refuses_by_the_onnx_file(platform, two_tree_forest):
    models_dir = platform.models_dir
    setosa = [list(SETOSA.values())]
    try:
        # ONNX file missing from the version: served by scikit-learn.
        def drop_onnx(folder, model_file):
            (folder / ModelStore.onnx_name(model_file)).unlink()

        missing, model_file = version_from_changed_registry_copy(platform, drop_onnx)
        loaded = platform.client.post("/load_model", json={"version": int(missing)}).json()
        assert (loaded["model_version"], loaded["runtime"]) == (missing, "scikit-learn")
        assert platform.client.get("/health").json()["runtime"] == "scikit-learn"
        body = predict(platform.client, SETOSA)
        assert (body["model_path"], body["model_version"]) == (str(models_dir / model_file), missing)
        expected = sklearn_proba(ModelStore(models_dir).load(model_file).estimator, setosa)[0]
        assert list(body["probabilities"].values()) == pytest.approx(list(expected), abs=TOLERANCE)

        # Another model's ONNX file with its hash written into the metadata: the metadata no longer matches
        # the SHA-256 its version pins, so the copy is refused (the parity check at load, which would also
        # catch it, is tested on compiled_predictor above).
        def other_onnx(folder, model_file):
            (folder / ModelStore.onnx_name(model_file)).write_bytes(two_tree_forest.onnx_bytes)
            metadata_path = folder / ModelStore.metadata_name(model_file)
            metadata = json.loads(metadata_path.read_text())
            metadata["onnx_sha256"] = sha256_hex(two_tree_forest.onnx_bytes)
            metadata_path.write_text(json.dumps(metadata))

        other, _ = version_from_changed_registry_copy(platform, other_onnx)
        assert_error(platform.client.post("/load_model", json={"version": int(other)}), 422, "SHA-256", "metadata")

        # A tampered ONNX file: refused before anything is loaded; the serving model stays.
        def tamper_onnx(folder, model_file):
            onnx_path = folder / ModelStore.onnx_name(model_file)
            onnx_path.write_bytes(onnx_path.read_bytes() + b"\0")

        tampered, _ = version_from_changed_registry_copy(platform, tamper_onnx)
        serving = platform.client.get("/health").json()
        response = platform.client.post("/load_model", json={"version": int(tampered)})
        assert_error(response, 422, "SHA-256", "ONNX")
        after = platform.client.get("/health").json()
        assert (after["current_model"], after["model_version"]) == (serving["current_model"], serving["model_version"])

        # A tampered pkl: refused by the version's own SHA-256, never unpickled.
        def tamper_pkl(folder, model_file):
            (folder / model_file).write_bytes((folder / model_file).read_bytes() + b"\n")

        tampered, _ = version_from_changed_registry_copy(platform, tamper_pkl)
        assert_error(platform.client.post("/load_model", json={"version": int(tampered)}), 422, "SHA-256")
        assert platform.client.get("/health").json()["model_version"] == serving["model_version"]
    finally:
        restored = load_model(platform.client, platform.trained["model_path"])
    assert restored["runtime"] == "onnxruntime"
