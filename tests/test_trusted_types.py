"""The types skops is told to trust when MLflow saves a model: computed once per structure of model in a
process, reused by models alike, and completed when such a model holds a type the first one did not."""

from __future__ import annotations

import mlflow.sklearn
import numpy as np
import pytest
import skops.io
from sklearn.ensemble import RandomForestClassifier
from sklearn.neighbors import KNeighborsClassifier

from iris_platform.tracking import run_writer
from iris_platform.tracking.run_writer import models_alike, skops_trusted_types


@pytest.fixture(autouse=True)
def _no_types_known(monkeypatch):
    monkeypatch.setattr(run_writer, "_TRUSTED_TYPES", {})


def rows(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return X, (X[:, 0] > 0).astype(int)


def save_and_load(estimator, folder):
    run_writer._save_sklearn_model(estimator, folder, pip_requirements=[])
    return mlflow.sklearn.load_model(str(folder))


def test_models_alike_reuse_the_types_found_for_the_first(tmp_path, monkeypatch):
    X, y = rows()
    first = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    loaded = save_and_load(first, tmp_path / "first")
    assert loaded.predict_proba(X) == pytest.approx(first.predict_proba(X))
    key = models_alike(first)
    assert run_writer._TRUSTED_TYPES[key] == sorted(skops_trusted_types(first))
    # The next forest is saved with the types known: no dump of its own to find them.
    dumps = []
    monkeypatch.setattr(run_writer, "skops_trusted_types", lambda e: dumps.append(e) or [])
    second = RandomForestClassifier(n_estimators=5, max_depth=2, random_state=1).fit(X, y)
    assert models_alike(second) == key
    assert save_and_load(second, tmp_path / "second").predict_proba(X) == pytest.approx(second.predict_proba(X))
    assert dumps == []


def test_a_type_models_alike_did_not_hold_is_found_and_added(tmp_path):
    X, y = rows()
    brute = KNeighborsClassifier(n_neighbors=3, algorithm="brute").fit(X, y)
    save_and_load(brute, tmp_path / "brute")
    key = models_alike(brute)
    known = list(run_writer._TRUSTED_TYPES[key])
    # Same classes, but a fitted k-d tree inside: MLflow's reload refuses it with the types known ...
    tree = KNeighborsClassifier(n_neighbors=3, algorithm="kd_tree").fit(X, y)
    assert models_alike(tree) == key
    new = set(skops.io.get_untrusted_types(data=skops.io.dumps(tree))) - set(known)
    assert new, "a k-d tree holds a type a brute-force model does not"
    # ... so they are computed for it, saved with it and kept for the next ones.
    loaded = save_and_load(tree, tmp_path / "tree")
    assert loaded.predict_proba(X) == pytest.approx(tree.predict_proba(X))
    assert new <= set(run_writer._TRUSTED_TYPES[key]) and set(known) <= set(run_writer._TRUSTED_TYPES[key])


def test_foreign_types_are_still_refused(tmp_path):
    X, y = rows()
    forest = RandomForestClassifier(n_estimators=2, random_state=0).fit(X, y)
    forest.extra = {frozenset({1})}  # builtins.frozenset: a type skops does not trust by default
    with pytest.raises(RuntimeError, match=r"refusing to trust .*builtins\.frozenset"):
        run_writer._save_sklearn_model(forest, tmp_path / "foreign", pip_requirements=[])
