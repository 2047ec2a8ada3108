"""The MLflow Model Registry decides what serves: versions, the `champion` alias, load/rollback, replicas.

Real MLflow throughout. One module fixture: replicas A and B, apps in separate folders sharing one sqlite
tracking store and polling the registry every 0.2 s; B starts, its models folder empty, before A trains
twice (5 trees, then FAST_TREES, so the two forests differ). Every app starts a tracking-worker process,
so the file keeps to three apps (A, B, and one started later) and two trainings.

The tests run in file order: those that move the champion come after those that read it, and each one
that needs a particular champion sets it up first.
"""

from __future__ import annotations

import json
import shutil
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest

from tests.helpers.api import FAST_TREES, assert_error, predict, train, wait_for_health, wait_for_writer, wait_until
from tests.helpers.data import SETOSA, VERSICOLOR, VIRGINICA, iris_frame, read_json
from tests.helpers.mlflow_reads import the_run_for_prediction, use_tracking_uri, version_files
from tests.helpers.platform import Platform, open_platform

REGISTERED_MODEL = "iris_classifier"  # the default of the setting registered_model
CHAMPION = "champion"
HISTORY_TAG = "iris.champion_history"
FOLLOW_S = 5.0  # how long a replica may take to serve a champion another replica moved
POLL_S = 0.2

# Iris rows where the two trainings' forests give other probabilities (row 138: another class), so an
# answer from the wrong version shows there.
DISCRIMINATING_ROWS = [70, 83, 133, 138]


# -- reading the platform and the registry --------------------------------------------------------------


def ok(response) -> dict[str, Any]:
    """The JSON of a 200 answer; anything else fails the test with the answer."""
    assert response.status_code == 200, response.text
    return response.json()


def health(platform: Platform) -> dict[str, Any]:
    return ok(platform.client.get("/health"))


def listing(platform: Platform) -> dict[str, Any]:
    return ok(platform.client.get("/models"))


def champion_of(platform: Platform) -> str:
    return str(platform.mlflow.get_registered_model(REGISTERED_MODEL).aliases[CHAMPION])


def history_of(platform: Platform) -> list[str]:
    return json.loads(platform.mlflow.get_registered_model(REGISTERED_MODEL).tags.get(HISTORY_TAG, "[]"))


def load_version(platform: Platform, version: str | int, *, form: bool = False) -> dict[str, Any]:
    """POST /load_model of a registered version (as JSON, or as a form field); expect success."""
    if form:
        return ok(platform.client.post("/load_model", data={"version": str(version)}))
    return ok(platform.client.post("/load_model", json={"version": int(version)}))


def rollback(platform: Platform) -> dict[str, Any]:
    return ok(platform.client.post("/models/rollback"))


def wait_until_serving(platform: Platform, version: str, timeout: float = FOLLOW_S) -> dict[str, Any]:
    return wait_for_health(platform.client, lambda h: h["model_version"] == version, timeout=timeout)


def assert_serving(platform: Platform, version: str) -> None:
    """The registry's champion, /health, GET /models and a prediction all say `version`."""
    assert champion_of(platform) == version
    assert health(platform)["model_version"] == version
    models = listing(platform)
    assert (models["champion"], models["model_version"]) == (version, version)
    assert [m["version"] for m in models["models"] if m["serving"]] == [version]
    assert [m["aliases"] for m in models["models"] if m["version"] == version] == [[CHAMPION]]
    assert predict(platform.client, SETOSA)["model_version"] == version


def iris_rows(indexes: list[int]) -> list[dict[str, float]]:
    frame = iris_frame()
    return [{k: float(v) for k, v in frame.iloc[i][list(SETOSA)].items()} for i in indexes]


def cached_files(platform: Platform, model_file: str) -> list[Path]:
    """A model's files in a replica's models folder: pkl, ONNX form, metadata, reference profile."""
    stem = model_file.removesuffix(".pkl")
    names = (model_file, f"{stem}.onnx", f"{stem}_metadata.json", f"{stem}_reference_profile.json")
    return [platform.models_dir / n for n in names]


def model_file_of(platform: Platform, version: str) -> str:
    return platform.mlflow.get_model_version(REGISTERED_MODEL, version).tags["iris.model_file"]


# -- the replicas ---------------------------------------------------------------------------------------


class Replicas:
    """A and B on one tracking store, and the answers of A's two trainings."""

    def __init__(self, tmp_path_factory, stack: ExitStack):
        self.tmp_path_factory = tmp_path_factory
        self.store = tmp_path_factory.mktemp("shared-store")
        self.stack = stack
        self.a = self.open("a")
        self.b = self.open("b")
        self.first: dict[str, Any] = {}
        self.second: dict[str, Any] = {}
        self.trained_at = 0.0

    def overrides(self) -> dict[str, Any]:
        return {"tracking_uri": f"sqlite:///{self.store}/mlflow.db", "model_poll_s": POLL_S}

    def open(self, label: str) -> Platform:
        return self.stack.enter_context(open_platform(self.tmp_path_factory.mktemp(label), **self.overrides()))

    @property
    def versions(self) -> tuple[str, str]:
        return self.first["model_version"], self.second["model_version"]

    def settle(self) -> str:
        """Wait until both replicas serve the registry's champion; returns it."""
        champion = champion_of(self.a)
        for replica in (self.a, self.b):
            wait_until_serving(replica, champion)
        return champion


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    with ExitStack() as stack:
        group = Replicas(tmp_path_factory, stack)
        assert not list(group.b.models_dir.glob("*.pkl"))
        assert health(group.b)["model_version"] is None
        group.first = train(group.a.client, n_estimators=5)
        group.second = train(group.a.client, n_estimators=FAST_TREES)
        group.trained_at = time.monotonic()
        yield group


# -- training registers; replicas follow ----------------------------------------------------------------


def test_a_replica_serves_the_champion_another_one_trained(replicas):
    a, b, second = replicas.a, replicas.b, replicas.second
    version = second["model_version"]
    remaining = FOLLOW_S - (time.monotonic() - replicas.trained_at)  # within 5 s of the training
    status = wait_until_serving(b, version, timeout=max(remaining, 0.1))
    assert status["model_registry_error"] is None
    model_file = second["model_metadata"]["model_file"]
    assert status["current_model"] == str(b.models_dir / model_file)
    for ours, theirs in zip(cached_files(b, model_file), cached_files(a, model_file), strict=True):
        assert ours.read_bytes() == theirs.read_bytes(), ours.name

    entry = next(m for m in listing(b)["models"] if m["version"] == version)
    assert (entry["serving"], entry["cached"], entry["aliases"]) == (True, True, [CHAMPION])
    assert (entry["run_id"], entry["metadata"]) == (second["run_id"], second["model_metadata"])
    for row in [SETOSA, *iris_rows(DISCRIMINATING_ROWS[2:])]:
        ours, theirs = predict(b.client, row), predict(a.client, row)
        assert ours["model_version"] == theirs["model_version"] == version
        assert ours["model_path"] == str(b.models_dir / model_file)
        assert (ours["prediction"], ours["class_name"]) == (theirs["prediction"], theirs["class_name"])
        assert ours["probabilities"] == pytest.approx(theirs["probabilities"])
    wait_for_writer(b.client)
    assert the_run_for_prediction(b.mlflow, ours["prediction_id"]).data.params["model_version"] == version


def test_each_training_registers_a_version_and_makes_it_champion(replicas, tmp_path):
    platform, first, second = replicas.a, replicas.first, replicas.second
    assert replicas.versions == ("1", "2")
    registered = platform.mlflow.get_registered_model(REGISTERED_MODEL)
    assert registered.aliases == {CHAMPION: 2}
    assert json.loads(registered.tags[HISTORY_TAG]) == ["1"]  # the second training moved it from the first

    for body in (first, second):
        metadata = body["model_metadata"]
        version = platform.mlflow.get_model_version(REGISTERED_MODEL, body["model_version"])
        assert version.run_id == body["run_id"]
        assert version.source == metadata["mlflow_model_uri"]
        assert version.tags["iris.model_file"] == metadata["model_file"] == Path(body["model_path"]).name
        assert version.tags["iris.sha256"] == metadata["sha256"]
        assert json.loads(version.tags["iris.metrics"]) == metadata["metrics"]
        assert metadata["metrics"] == {k: body[k] for k in ("accuracy", "precision", "recall", "f1_score")}

        # The version's artifacts hold the platform's files, byte for byte those of the models folder...
        files = version_files(platform.mlflow, body["model_version"], tmp_path / body["model_version"])
        pkl, onnx, meta, profile = (p.name for p in cached_files(platform, metadata["model_file"]))
        assert sorted(p.name for p in files.iterdir()) == sorted([pkl, onnx, meta, profile])
        for name in (pkl, onnx, profile):
            assert (files / name).read_bytes() == (platform.models_dir / name).read_bytes()
        assert read_json(files / meta) == metadata
        # ... beside the MLflow model itself.
        location = Path(platform.mlflow.get_model_version_download_uri(REGISTERED_MODEL, body["model_version"]))
        assert (location / "MLmodel").is_file()

    models = listing(platform)
    assert models["registered_model"] == REGISTERED_MODEL
    assert models["registry_error"] is None
    assert (models["champion"], models["model_version"], models["current_model"]) == ("2", "2", second["model_path"])
    assert [m["version"] for m in models["models"]] == ["2", "1"]  # newest first
    assert [m["version"] for m in models["models"] if m["serving"]] == ["2"]
    assert [m["version"] for m in models["models"] if m["is_current"]] == ["2"]
    assert [m["aliases"] for m in models["models"]] == [[CHAMPION], []]
    for entry, body in zip(models["models"], (second, first), strict=True):
        assert (entry["run_id"], entry["path"], entry["filename"]) == (
            body["run_id"],
            body["model_path"],
            body["model_metadata"]["model_file"],
        )
        assert entry["metrics"] == body["model_metadata"]["metrics"]
        assert (entry["cached"], entry["metadata"]) == (True, body["model_metadata"])
        created = platform.mlflow.get_model_version(REGISTERED_MODEL, entry["version"]).creation_timestamp
        assert entry["created_ms"] == created

    status = health(platform)
    assert (status["model_version"], status["current_model"]) == ("2", second["model_path"])
    assert status["model_registry_error"] is None


# -- load_model refusals --------------------------------------------------------------------------------

REFUSALS: dict[str, tuple[dict[str, Any], int, tuple[str, ...]]] = {
    "unknown-version": ({"json": {"version": 99}}, 404, ("GET /models", "99")),
    "version-0": ({"json": {"version": 0}}, 422, ('"version"', "whole number")),
    "negative": ({"json": {"version": -1}}, 422, ('"version"',)),
    "fraction": ({"json": {"version": 1.5}}, 422, ('"version"',)),
    "letters": ({"json": {"version": "abc"}}, 422, ('"version"',)),
    "form-letters": ({"data": {"version": "abc"}}, 422, ('"version"',)),
    "form-0": ({"data": {"version": "0"}}, 422, ('"version"',)),
    "both": ({"json": {"version": 1, "model_path": "iris_model_x.pkl"}}, 422, ("version", "model_path")),
    "extra-field": ({"json": {"version": 1, "force": True}}, 422, ('"version"',)),
    "neither": ({"json": {}}, 422, ("version", "model_path")),
    "not-an-object": ({"json": [1]}, 400, ("object", '"version"')),
    "bad-json": ({"content": b'{"version": ', "headers": {"content-type": "application/json"}}, 400, ("JSON",)),
    "text-plain": ({"content": b'{"version": 1}', "headers": {"content-type": "text/plain"}}, 415, ("JSON", "form")),
    "no-body": ({}, 422, ("version",)),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_load_model_refusals_leave_the_champion_where_it_is(replicas, case):
    platform = replicas.a
    request, status, fragments = REFUSALS[case]
    before = champion_of(platform)
    assert health(platform)["model_version"] == before
    assert_error(platform.client.post("/load_model", **request), status, *fragments)
    assert champion_of(platform) == before
    assert history_of(platform) == ["1"]
    assert health(platform)["model_version"] == before


def test_a_version_registered_by_hand_is_neither_listed_nor_loaded(replicas):
    """A version without the platform's tags (registered in the MLflow UI, say) is not servable here."""
    platform, first = replicas.a, replicas.first
    before = champion_of(platform)
    foreign = platform.mlflow.create_model_version(
        REGISTERED_MODEL, first["model_metadata"]["mlflow_model_uri"], run_id=first["run_id"]
    )
    assert str(foreign.version) not in {m["version"] for m in listing(platform)["models"]}
    response = platform.client.post("/load_model", json={"version": int(foreign.version)})
    assert_error(response, 422, f"version {foreign.version}", "iris.sha256", "refused")
    assert champion_of(platform) == before
    assert health(platform)["model_version"] == before


# -- stock MLflow ---------------------------------------------------------------------------------------


def test_stock_mlflow_loads_the_champion_and_predicts_as_the_api(replicas):
    platform = replicas.a
    champion = replicas.settle()
    rows = [SETOSA, VERSICOLOR, VIRGINICA, *iris_rows(DISCRIMINATING_ROWS)]
    answers = [predict(platform.client, row) for row in rows]
    assert {a["model_version"] for a in answers} == {champion}
    assert [a["prediction"] for a in answers[:3]] == [0, 1, 2]

    previous_uri = mlflow.get_tracking_uri()
    use_tracking_uri(platform.settings.tracking_uri)
    try:
        assert mlflow.get_registry_uri() == platform.settings.tracking_uri
        model = mlflow.pyfunc.load_model(f"models:/{REGISTERED_MODEL}@{CHAMPION}")
        predicted = model.predict(pd.DataFrame(rows, columns=list(SETOSA)))
    finally:
        mlflow.set_tracking_uri(previous_uri)
    assert model.metadata.run_id == platform.mlflow.get_model_version(REGISTERED_MODEL, champion).run_id
    assert list(predicted["predicted_class"]) == [a["class_name"] for a in answers]


# -- moving the champion: load_model, rollback; the other replica follows -------------------------------


def test_load_model_and_rollback_move_the_champion(replicas):
    a, b = replicas.a, replicas.b
    (v1, v2), (first, second) = replicas.versions, (replicas.first, replicas.second)
    # As the two trainings left it (the tests before moved nothing; this makes sure).
    a.mlflow.set_registered_model_alias(REGISTERED_MODEL, CHAMPION, v2)
    a.mlflow.set_registered_model_tag(REGISTERED_MODEL, HISTORY_TAG, json.dumps([v1]))
    replicas.settle()

    loaded = load_version(a, v1)
    assert (loaded["status"], loaded["model_version"], loaded["previous_version"]) == ("success", v1, v2)
    assert (loaded["model_path"], loaded["model_metadata"]) == (first["model_path"], first["model_metadata"])
    assert loaded["runtime"] == health(a)["runtime"] == "onnxruntime"
    assert_serving(a, v1)
    assert history_of(a) == [v1, v2]
    prediction = predict(a.client, iris_rows([138])[0])
    assert (prediction["model_version"], prediction["model_path"]) == (v1, first["model_path"])
    wait_for_writer(a.client)
    params = the_run_for_prediction(a.mlflow, prediction["prediction_id"]).data.params
    assert (params["model_version"], params["model_path"]) == (v1, first["model_path"])
    wait_until_serving(b, v1)

    back = rollback(a)
    assert (back["model_version"], back["previous_version"], back["model_path"]) == (v2, v1, second["model_path"])
    assert back["model_metadata"] == second["model_metadata"]
    assert_serving(a, v2)
    assert history_of(a) == [v1]
    wait_until_serving(b, v2)

    back = rollback(a)
    assert (back["model_version"], back["previous_version"]) == (v1, v2)
    assert_serving(a, v1)
    assert history_of(a) == []

    assert_error(a.client.post("/models/rollback"), 409, "roll back", "load_model")
    assert_serving(a, v1)
    assert history_of(a) == []
    wait_until_serving(b, v1)


def test_load_model_on_one_replica_moves_the_others(replicas):
    a, b = replicas.a, replicas.b
    serving = replicas.settle()
    other = next(v for v in replicas.versions if v != serving)
    loaded = load_version(b, other, form=True)  # the dashboard's form
    assert (loaded["model_version"], loaded["previous_version"]) == (other, serving)
    assert champion_of(a) == other
    assert history_of(a)[-1] == serving
    started = time.monotonic()
    wait_until_serving(a, other)
    assert time.monotonic() - started < FOLLOW_S
    assert predict(a.client, VIRGINICA)["model_version"] == other
    assert health(a)["model_registry_error"] is None


def test_a_replica_started_later_serves_the_champion(replicas, tmp_path):
    champion = replicas.settle()
    model_file = model_file_of(replicas.a, champion)
    with open_platform(tmp_path, **replicas.overrides()) as late:
        assert not list(late.models_dir.glob("*.pkl"))
        status = wait_until_serving(late, champion)
        assert status["model_registry_error"] is None
        assert status["current_model"] == str(late.models_dir / model_file)
        assert (late.models_dir / model_file).read_bytes() == (replicas.a.models_dir / model_file).read_bytes()
        assert predict(late.client, SETOSA)["model_version"] == champion


def test_a_replica_refuses_a_version_changed_in_the_registry(replicas):
    a, b = replicas.a, replicas.b
    serving = replicas.settle()
    target = next(v for v in replicas.versions if v != serving)
    model_file = model_file_of(a, target)
    location = Path(a.mlflow.get_model_version_download_uri(REGISTERED_MODEL, target))
    registry_copy = location / "model_files" / model_file
    original = registry_copy.read_bytes()
    for path in cached_files(b, model_file):  # B must fetch the registry's copy
        path.unlink(missing_ok=True)
    registry_copy.write_bytes(original + b"tampered")
    try:
        # A still holds the file as trained, so A may make it champion; B must refuse the registry's copy.
        assert load_version(a, target)["model_version"] == target
        status = wait_for_health(b.client, lambda h: h["model_registry_error"] is not None, timeout=FOLLOW_S)
        assert "SHA-256" in status["model_registry_error"], status
        assert model_file in status["model_registry_error"], status
        assert status["model_version"] == serving
        assert predict(b.client, SETOSA)["model_version"] == serving
        assert not (b.models_dir / model_file).exists()  # refused before it was moved into the cache
        models = listing(b)
        assert (models["champion"], models["model_version"]) == (target, serving)
        assert [m["version"] for m in models["models"] if m["serving"]] == [serving]
        time.sleep(3 * POLL_S)  # a few more polls: still refused, still serving the previous version
        status = health(b)
        assert (status["model_version"], "SHA-256" in (status["model_registry_error"] or "")) == (serving, True)
    finally:
        registry_copy.write_bytes(original)
    status = wait_until_serving(b, target)
    # Checked once B serves (the follower retries every poll, so a download may be in flight before).
    assert not list(b.models_dir.glob(".download-*"))  # the refused downloads left nothing behind
    assert status["model_registry_error"] is None
    assert (b.models_dir / model_file).read_bytes() == (a.models_dir / model_file).read_bytes() == original
    assert predict(b.client, SETOSA)["model_version"] == target


# -- a registry copy that changed, or cannot be fetched ------------------------------------------------


def _refetch_on_b(replicas, version: str) -> None:
    """Drop B's cached copy of `version` and move the champion off it, so B fetches it afresh next time."""
    a, b = replicas.a, replicas.b
    for path in cached_files(b, model_file_of(a, version)):
        path.unlink(missing_ok=True)
    other = next(v for v in replicas.versions if v != version)
    if champion_of(a) == version:
        load_version(a, other)
        wait_until_serving(b, other)


def test_a_replica_refuses_a_version_whose_registry_metadata_changed(replicas):
    a, b = replicas.a, replicas.b
    serving = replicas.settle()
    target = next(v for v in replicas.versions if v != serving)
    model_file = model_file_of(a, target)
    location = Path(a.mlflow.get_model_version_download_uri(REGISTERED_MODEL, target))
    registry_metadata = location / "model_files" / cached_files(a, model_file)[2].name
    original = registry_metadata.read_bytes()
    changed = json.loads(original)
    changed["class_names"] = list(reversed(changed["class_names"]))
    for path in cached_files(b, model_file):
        path.unlink(missing_ok=True)
    registry_metadata.write_text(json.dumps(changed))
    try:
        assert load_version(a, target)["model_version"] == target
        status = wait_for_health(
            b.client, lambda h: h["model_registry_error"] is not None or h["model_version"] == target, FOLLOW_S
        )
        assert predict(a.client, SETOSA)["class_name"] == "setosa"
        assert predict(b.client, SETOSA)["class_name"] == "setosa"
        assert status["model_version"] == serving, status
        assert status["model_registry_error"] is not None
    finally:
        registry_metadata.write_bytes(original)
        _refetch_on_b(replicas, target)  # B's cache and memory may hold the changed metadata


def test_failed_downloads_leave_no_folders_in_the_models_folder(replicas):
    a, b = replicas.a, replicas.b
    serving = replicas.settle()
    target = next(v for v in replicas.versions if v != serving)
    files = Path(a.mlflow.get_model_version_download_uri(REGISTERED_MODEL, target)) / "model_files"
    hidden = files.with_name("model_files.hidden")
    for path in cached_files(b, model_file_of(a, target)):
        path.unlink(missing_ok=True)
    files.rename(hidden)
    try:
        assert load_version(a, target)["model_version"] == target  # A serves its own copy
        status = wait_for_health(b.client, lambda h: h["model_registry_error"] is not None, timeout=FOLLOW_S)
        assert status["model_version"] == serving
        time.sleep(3 * POLL_S)  # a few more failed polls
        assert health(b)["model_version"] == serving
        # A poll may be downloading right now (its folder exists for a moment); a leaked folder stays.
        wait_until(lambda: not any(b.models_dir.glob(".download-*")), 3 * POLL_S, "no download folder left")
    finally:
        hidden.rename(files)
        wait_until_serving(b, target)
        for leftover in b.models_dir.glob(".download-*"):
            shutil.rmtree(leftover, ignore_errors=True)


# -- load_model's request: values pydantic alone would take --------------------------------------------


def test_load_model_refuses_a_boolean_version(replicas):
    a = replicas.a
    v2 = replicas.versions[1]
    load_version(a, v2)  # not version 1, so a `true` taken for 1 shows
    response = a.client.post("/load_model", json={"version": True})
    assert_error(response, 422, '"version"')
    assert champion_of(a) == v2
    assert health(a)["model_version"] == v2


def test_load_model_refuses_a_huge_version_as_the_callers_mistake(replicas):
    a = replicas.a
    before = champion_of(a)
    response = a.client.post("/load_model", json={"version": 2**63})
    assert 400 <= response.status_code < 500, response.text
    assert "version" in response.json()["detail"]
    assert champion_of(a) == before
