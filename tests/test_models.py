"""GET /models and POST /load_model: the saved models, switching between them, and what is refused."""

import pytest

from tests.helpers.api import FAST_TREES, assert_error, load_model, predict, train, wait_for_writer
from tests.helpers.data import SETOSA, read_json
from tests.helpers.mlflow_reads import the_run_for_prediction
from tests.helpers.platform import open_platform


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A platform with two trained models: (platform, older training, newer training)."""
    with open_platform(tmp_path_factory.mktemp("models")) as platform:
        older = train(platform.client, n_estimators=5)
        newer = train(platform.client, n_estimators=FAST_TREES)
        yield platform, older, newer


def current_model(platform):
    return platform.client.get("/health").json()["current_model"]


def listed(platform):
    response = platform.client.get("/models")
    assert response.status_code == 200, response.text
    return response.json()


def test_training_makes_the_new_model_current(models):
    platform, _, _ = models
    body = train(platform.client, n_estimators=3)
    assert current_model(platform) == body["model_path"]
    listing = listed(platform)
    assert listing["current_model"] == body["model_path"]
    assert listing["models"][0]["path"] == body["model_path"]  # newest first
    assert predict(platform.client, SETOSA)["model_path"] == body["model_path"]


def test_models_listing(models):
    platform, older, newer = models
    listing = listed(platform)
    by_path = {m["path"]: m for m in listing["models"]}
    assert {older["model_path"], newer["model_path"]} <= set(by_path)
    paths = [m["path"] for m in listing["models"]]
    assert paths.index(newer["model_path"]) < paths.index(older["model_path"])  # newest first
    serving = current_model(platform)  # from /health, not from the listing under test
    assert [m["path"] for m in listing["models"] if m["is_current"]] == [serving]
    assert listing["current_model"] == serving

    for body in (older, newer):
        entry = by_path[body["model_path"]]
        # The file the training wrote, named by its own answer: the listing's name and path must be that file's.
        pkl = platform.models_dir / body["model_metadata"]["model_file"]
        assert pkl.is_file()
        assert (entry["filename"], entry["path"]) == (pkl.name, str(pkl))
        assert entry["metadata"] == body["model_metadata"]
        assert entry["metadata"] == read_json(pkl.with_name(pkl.stem + "_metadata.json"))
        # The registered version the training answered, its run and its held-out metrics.
        assert (entry["version"], entry["run_id"]) == (body["model_version"], body["run_id"])
        assert entry["metrics"] == body["model_metadata"]["metrics"]
        assert entry["cached"] is True
    assert by_path[older["model_path"]]["metadata"]["n_estimators"] == 5


def test_loading_an_older_model_switches_predictions(models):
    platform, older, newer = models
    body = load_model(platform.client, older["model_path"])
    assert body["status"] == "success"
    assert body["model_path"] == older["model_path"]
    assert body["model_metadata"] == older["model_metadata"]
    # The metadata is answered as the file holds it, keys in the file's order.
    on_disk = read_json(platform.models_dir / older["model_metadata"]["model_file"].replace(".pkl", "_metadata.json"))
    assert list(body["model_metadata"].items()) == list(on_disk.items())
    assert current_model(platform) == older["model_path"]
    flags = {m["path"]: m["is_current"] for m in listed(platform)["models"]}
    assert flags[older["model_path"]] is True and flags[newer["model_path"]] is False

    prediction = predict(platform.client, SETOSA)
    assert prediction["model_path"] == older["model_path"]
    wait_for_writer(platform.client)
    run = the_run_for_prediction(platform.mlflow, prediction["prediction_id"])
    assert run.data.params["model_path"] == older["model_path"]

    load_model(platform.client, newer["model_metadata"]["model_file"])  # a listed filename works too
    assert predict(platform.client, SETOSA)["model_path"] == newer["model_path"]


@pytest.mark.parametrize(
    "requested",
    [
        lambda p, m: "../x.pkl",
        lambda p, m: "/etc/passwd",
        lambda p, m: "iris_model_20000101_000000_000000.pkl",
        lambda p, m: "current_model.json",
        lambda p, m: m["model_metadata"]["model_file"].replace(".pkl", "_metadata.json"),
        lambda p, m: f"{p.models_dir}/../{p.models_dir.name}/{m['model_metadata']['model_file']}",
        lambda p, m: f"../{p.models_dir.name}/{m['model_metadata']['model_file']}",
    ],
    ids=[
        "parent",
        "etc-passwd",
        "unknown-model",
        "pointer-file",
        "metadata-file",
        "dotdot-to-listed",
        "relative-dotdot",
    ],
)
def test_load_model_refuses_anything_not_listed(models, requested):
    platform, older, _ = models
    before = current_model(platform)
    response = platform.client.post("/load_model", data={"model_path": requested(platform, older)})
    assert 400 <= response.status_code < 500
    assert_error(response, response.status_code, "GET /models")
    assert current_model(platform) == before


def test_load_model_refuses_files_in_the_folder_that_are_not_listed(models, tmp_path):
    platform, older, _ = models
    pkl = platform.models_dir / older["model_metadata"]["model_file"]
    # Real model bytes under names GET /models does not list: not ours, no metadata, another folder.
    strays = [platform.models_dir / "notes.pkl", platform.models_dir / "iris_model_stray.pkl", tmp_path / pkl.name]
    for path in strays:
        path.write_bytes(pkl.read_bytes())
    listed_paths = {m["path"] for m in listed(platform)["models"]}
    before = current_model(platform)
    for requested in [str(path) for path in strays] + ["notes.pkl", "iris_model_stray.pkl"]:
        assert requested not in listed_paths
        response = platform.client.post("/load_model", data={"model_path": requested})
        assert_error(response, 404, "not one of the saved models")
    assert current_model(platform) == before


def test_load_model_refuses_a_model_changed_after_training(models):
    platform, older, _ = models
    tampered = train(platform.client, n_estimators=2)
    load_model(platform.client, older["model_path"])
    pkl = platform.models_dir / tampered["model_metadata"]["model_file"]
    pkl.write_bytes(pkl.read_bytes() + b"\n")
    assert tampered["model_path"] in {m["path"] for m in listed(platform)["models"]}

    response = platform.client.post("/load_model", data={"model_path": tampered["model_path"]})
    assert_error(response, 422, "SHA-256", pkl.name)
    assert current_model(platform) == older["model_path"]
    assert predict(platform.client, SETOSA)["model_path"] == older["model_path"]


@pytest.mark.parametrize("form", [{}, {"model_path": ""}], ids=["missing", "empty"])
def test_load_model_without_a_path_is_refused(models, form):
    platform, _, _ = models
    before = current_model(platform)
    response = platform.client.post("/load_model", data=form)
    assert response.status_code == 422
    assert "model_path" in response.text
    assert current_model(platform) == before
