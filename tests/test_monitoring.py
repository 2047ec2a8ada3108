"""Monitoring in production: the reference profile of a training, drift on batches and windows of single
predictions (checked against scipy and an independent PSI), feedback labels, alerts and their webhook."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.helpers.api import FAST_TREES, assert_error, predict, predict_batch, train, wait_for_writer, wait_until
from tests.helpers.data import csv_bytes, iris_frame, read_json
from tests.helpers.drift import independent_psi
from tests.helpers.mlflow_reads import all_runs, download_artifact, read_artifact_csv, version_files
from tests.helpers.platform import Platform, open_platform

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


# -- an independent chi-square ----------------------------------------------------------------------


def chi_square_pvalue(counts: list[int], priors: list[float]) -> float:
    """Pearson's chi-square by hand: sum((O - E)^2 / E), k - 1 degrees of freedom."""
    observed = np.array(counts, dtype=float)
    expected = np.array(priors) * observed.sum()
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    return float(stats.chi2.sf(statistic, len(counts) - 1))


# -- a webhook receiver the tests start ------------------------------------------------------------


class Receiver:
    """A local HTTP server that records every JSON body POSTed to it; `delay` makes it slow."""

    def __init__(self, delay: float = 0.0):
        self.alerts: list[dict[str, Any]] = []
        self.delay = delay
        self.finished = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["content-length"]))
                outer.alerts.append(json.loads(body))
                if outer.delay:
                    threading.Event().wait(outer.delay)
                self.send_response(204)
                self.end_headers()
                outer.finished.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def refused_url() -> str:
    """A local port nothing listens on: connections to it are refused."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_address[1]
    server.server_close()
    return f"http://127.0.0.1:{port}/alerts"


# -- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture(scope="module")
def platform(tmp_path_factory, receiver) -> Iterator[Platform]:
    with open_platform(
        tmp_path_factory.mktemp("monitoring"), drift_window=20, feedback_min_labels=5, alert_webhook=receiver.url
    ) as platform:
        platform.trained = train(platform.client, n_estimators=FAST_TREES)  # type: ignore[attr-defined]
        yield platform


def profile_of(platform: Platform, tmp_path: Path) -> dict[str, Any]:
    run_id = platform.trained["run_id"]  # type: ignore[attr-defined]
    return read_json(download_artifact(platform.mlflow, run_id, "reference_profile.json", tmp_path))


def iris_rows() -> pd.DataFrame:
    return iris_frame(headers=FEATURES)[FEATURES]


def batch_run(platform: Platform, answer: dict[str, Any]):
    return platform.mlflow.get_run(answer["run_id"])


# -- the reference profile --------------------------------------------------------------------------


def test_training_logs_the_reference_profile_with_the_model(platform, tmp_path):
    profile = profile_of(platform, tmp_path)
    assert set(profile["features"]) == set(FEATURES)
    n_train = platform.trained["model_metadata"]["n_train"]
    assert profile["n_rows"] == n_train
    for feature, spec in profile["features"].items():
        assert 1 <= len(spec["bin_edges"]) <= 9 and spec["bin_edges"] == sorted(spec["bin_edges"]), feature
        assert len(spec["proportions"]) == len(spec["bin_edges"]) + 1
        assert sum(spec["proportions"]) == pytest.approx(1.0)
        assert len(spec["sample"]) == n_train  # fewer than 2,000 rows: every training value
        assert spec["mean"] == pytest.approx(np.mean(spec["sample"]))
        assert spec["std"] == pytest.approx(np.std(spec["sample"], ddof=1))
    assert sum(profile["class_priors"].values()) == pytest.approx(1.0)
    assert set(profile["class_priors"]) == {"setosa", "versicolor", "virginica"}
    confidence = profile["confidence"]
    assert confidence["n_rows"] == platform.trained["model_metadata"]["n_test"]
    assert 0.3 < confidence["mean"] <= 1.0 and sum(confidence["proportions"]) == pytest.approx(1.0)

    # The registered version holds the same file, at the top of its MLflow model.
    import mlflow.artifacts

    location = platform.mlflow.get_model_version_download_uri("iris_classifier", platform.trained["model_version"])
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"{location}/reference_profile.json",
        dst_path=str(tmp_path / "version"),
        tracking_uri=platform.settings.tracking_uri,
    )
    assert json.loads(Path(local).read_text()) == profile
    files = version_files(platform.mlflow, platform.trained["model_version"], tmp_path / "files")
    assert [json.loads(p.read_text()) for p in files.glob("*_reference_profile.json")] == [profile]
    # ... and the dashboard's run popup lists it.
    run = platform.client.get(f"/mlflow/run/{platform.trained['run_id']}").json()
    assert "reference_profile.json" in [a["path"] for a in run["artifacts"]]


# -- drift on batches -------------------------------------------------------------------------------


def test_a_batch_drawn_from_the_training_data_does_not_drift(platform, tmp_path):
    rows = iris_rows().sample(120, random_state=3)
    answer = predict_batch(platform.client, csv_bytes(rows))
    assert answer["drift"]["drift_detected"] is False
    run = batch_run(platform, answer)
    assert run.data.metrics["drift_detected"] == 0
    assert run.data.tags["drifted_features"] == ""
    assert "alert" not in run.data.tags
    profile = profile_of(platform, tmp_path)
    for feature in FEATURES:
        reference = profile["features"][feature]
        values = rows[feature].to_numpy()
        assert run.data.metrics[f"psi_{feature}"] == pytest.approx(independent_psi(reference, values), abs=1e-9)
        expected_p = stats.ks_2samp(values, reference["sample"]).pvalue
        assert run.data.metrics[f"ks_pvalue_{feature}"] == pytest.approx(expected_p, rel=1e-9)
    classes = list(profile["class_priors"])
    counts = [answer["batch_statistics"]["prediction_distribution"][c] for c in classes]
    expected = chi_square_pvalue(counts, [profile["class_priors"][c] for c in classes])
    assert run.data.metrics["class_drift_pvalue"] == pytest.approx(expected, rel=1e-9)


def test_petal_length_moved_by_two_centimetres_drifts_alone_and_alerts(platform, receiver, tmp_path):
    rows = iris_rows().sample(120, random_state=3)
    rows["petal_length"] = rows["petal_length"] + 2
    answer = predict_batch(platform.client, csv_bytes(rows))
    run = batch_run(platform, answer)
    assert run.data.metrics["drift_detected"] == 1
    assert run.data.tags["drifted_features"] == "petal_length"
    assert answer["drift"]["drifted_features"] == ["petal_length"]
    profile = profile_of(platform, tmp_path)
    shifted = profile["features"]["petal_length"]
    assert run.data.metrics["psi_petal_length"] == pytest.approx(
        independent_psi(shifted, rows["petal_length"].to_numpy()), abs=1e-9
    )
    assert run.data.metrics["psi_petal_length"] >= 0.2
    assert run.data.metrics["ks_pvalue_petal_length"] < 0.05
    # The alert is recorded on the run, and the webhook hears it.
    assert run.data.tags["alert"] == "drift_detected"
    assert "petal_length" in run.data.tags["alert_message"]
    sent = wait_until(
        lambda: [a for a in receiver.alerts if a["run_id"] == answer["run_id"]], 10, "the webhook's drift alert"
    )
    assert sent[0]["kind"] == "drift_detected"
    assert sent[0]["details"]["drifted_features"] == ["petal_length"]
    assert sent[0]["model_version"] == platform.trained["model_version"]


def test_a_large_batch_counts_its_ks_distance_as_scipy_computes_it(platform, tmp_path):
    """Past 10,000 rows the KS distance comes from counts, not kept values: it must still be scipy's."""
    rng = np.random.default_rng(7)
    base = iris_rows().to_numpy()
    values = base[rng.integers(0, len(base), 30_000)] + rng.normal(0, 0.05, (30_000, 4))
    rows = pd.DataFrame(np.round(values, 3), columns=FEATURES)
    run = batch_run(platform, predict_batch(platform.client, csv_bytes(rows)))
    profile = profile_of(platform, tmp_path)
    for feature in FEATURES:
        expected = stats.ks_2samp(rows[feature].to_numpy(), profile["features"][feature]["sample"])
        assert run.data.metrics[f"ks_pvalue_{feature}"] == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-300)


# -- drift on windows of single predictions ---------------------------------------------------------


def test_every_drift_window_of_single_predictions_gets_a_drift_run(platform, tmp_path):
    rows = iris_rows().sample(20, random_state=11)
    rows["petal_length"] = rows["petal_length"] + 2
    ids = [predict(platform.client, row)["prediction_id"] for row in rows.to_dict("records")]
    wait_for_writer(platform.client)
    drift_runs = wait_until(
        lambda: all_runs(
            platform.mlflow,
            "iris_inference",
            "params.prediction_type = 'drift_window' and attributes.status = 'FINISHED'",  # complete
        ),
        20,
        "a drift window run",
    )
    run = drift_runs[0]
    assert run.data.metrics["drift_window_records"] == 20
    assert run.data.params["model_version"] == platform.trained["model_version"]
    profile = profile_of(platform, tmp_path)
    reference = profile["features"]["petal_length"]
    values = rows["petal_length"].to_numpy()
    assert run.data.metrics["psi_petal_length"] == pytest.approx(independent_psi(reference, values), abs=1e-9)
    assert run.data.metrics["ks_pvalue_petal_length"] == pytest.approx(
        stats.ks_2samp(values, reference["sample"]).pvalue, rel=1e-9
    )
    assert "petal_length" in run.data.tags["drifted_features"].split(",")
    assert run.data.metrics["drift_detected"] == 1
    assert run.data.metrics["window_start_ms"] == int(ids[0][:12], 16)
    assert run.data.metrics["window_end_ms"] == int(ids[-1][:12], 16)


def test_every_single_window_run_carries_the_drift_of_its_records(tmp_path):
    """A worker behind its bound writes `single_window` runs: each is compared with the profile on its own."""
    with open_platform(tmp_path, writer_window_threshold=0) as platform:
        trained = train(platform.client, n_estimators=FAST_TREES)
        rows = iris_rows().sample(40, random_state=2)
        rows["petal_length"] += 2
        for row in rows.to_dict("records"):
            predict(platform.client, row)
        wait_for_writer(platform.client)
        windows = all_runs(platform.mlflow, "iris_inference", "params.prediction_type = 'single_window'")
        assert windows and sum(int(w.data.tags["window_records"]) for w in windows) == 40
        run_id = trained["run_id"]
        profile = read_json(download_artifact(platform.mlflow, run_id, "reference_profile.json", tmp_path / "p"))
        reference = profile["features"]["petal_length"]
        for window in windows:
            table = read_artifact_csv(platform.mlflow, window.info.run_id, "window_predictions.csv", tmp_path / "w")
            values = table["petal_length"].to_numpy()
            metrics = window.data.metrics
            assert metrics["psi_petal_length"] == pytest.approx(independent_psi(reference, values), abs=1e-9)
            expected = stats.ks_2samp(values, reference["sample"]).pvalue
            assert metrics["ks_pvalue_petal_length"] == pytest.approx(expected, rel=1e-9)
            assert metrics["drift_detected"] in (0, 1) and "drifted_features" in window.data.tags


# -- feedback ---------------------------------------------------------------------------------------


def feedback(platform: Platform, **body: Any) -> dict[str, Any]:
    response = platform.client.post("/feedback", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def feedback_runs(platform: Platform) -> list:
    return all_runs(platform.mlflow, "iris_inference", "params.prediction_type = 'feedback'")


def test_feedback_for_a_single_prediction_is_journaled_and_logged(platform):
    answer = predict(platform.client, iris_rows().iloc[0].to_dict())
    before = len(feedback_runs(platform))
    accepted = feedback(platform, prediction_id=answer["prediction_id"], true_label="setosa")
    assert accepted["status"] == "accepted"
    assert accepted["predicted_class"] == answer["class_name"] == "setosa"
    assert accepted["correct"] is True and accepted["model_version"] == answer["model_version"]
    wait_for_writer(platform.client)
    runs = wait_until(lambda: feedback_runs(platform)[before:] or None, 20, "the feedback run")
    run = max(feedback_runs(platform), key=lambda r: r.info.start_time)
    assert run.data.params["prediction_id"] == answer["prediction_id"]
    assert run.data.params["true_label"] == "setosa"
    assert run.data.params["model_version"] == answer["model_version"]
    assert run.data.metrics["feedback_labels"] == 1 and run.data.metrics["feedback_correct"] == 1
    assert run.data.metrics["test_accuracy"] == pytest.approx(platform.trained["accuracy"])
    assert runs


def test_feedback_for_a_batch_row_reads_its_prediction(platform):
    rows = iris_rows().iloc[[0, 60, 120]]
    answer = predict_batch(platform.client, csv_bytes(rows))
    accepted = feedback(platform, run_id=answer["run_id"], row=2, true_label="virginica")
    assert accepted["predicted_class"] == answer["predictions"][2]["class_name"] == "virginica"
    assert accepted["row"] == 2 and accepted["run_id"] == answer["run_id"]


def test_bad_feedback_is_refused_with_what_to_fix(platform):
    answer = predict(platform.client, iris_rows().iloc[0].to_dict())
    unknown = "0" * 12 + "f" * 20
    assert_error(platform.client.post("/feedback", json={"prediction_id": unknown, "true_label": "setosa"}), 404)
    detail = assert_error(
        platform.client.post("/feedback", json={"prediction_id": answer["prediction_id"], "true_label": "rose"}),
        422,
        "rose",
    )
    assert "setosa" in detail and "virginica" in detail
    assert_error(platform.client.post("/feedback", json={"true_label": "setosa"}), 422, "prediction_id")
    assert_error(
        platform.client.post("/feedback", json={"run_id": "a" * 32, "row": 0, "true_label": "setosa"}), 404, "run"
    )
    batch = predict_batch(platform.client, csv_bytes(iris_rows().iloc[:3]))
    assert_error(
        platform.client.post("/feedback", json={"run_id": batch["run_id"], "row": 3, "true_label": "setosa"}),
        422,
        "row 3",
    )


def test_an_accuracy_drop_raises_one_alert(platform, receiver):
    """Wrong labels for a version: once its window accuracy falls 10 points below its test accuracy, an
    alert is recorded on that feedback run and sent; the following labels do not repeat it."""
    answer = predict(platform.client, iris_rows().iloc[0].to_dict())  # setosa
    for _ in range(12):
        feedback(platform, prediction_id=answer["prediction_id"], true_label="virginica")
    wait_for_writer(platform.client)
    alerted = wait_until(
        lambda: [r for r in feedback_runs(platform) if r.data.tags.get("alert") == "accuracy_drop"],
        20,
        "an accuracy-drop alert",
    )
    assert len(alerted) == 1
    run = alerted[0]
    assert run.data.metrics["feedback_accuracy"] <= run.data.metrics["test_accuracy"] - 0.10
    assert run.data.metrics["feedback_count"] >= 5
    sent = wait_until(
        lambda: [a for a in receiver.alerts if a["kind"] == "accuracy_drop"], 10, "the webhook's accuracy alert"
    )
    assert sent[0]["run_id"] == run.info.run_id
    assert sent[0]["details"]["feedback_accuracy"] == pytest.approx(run.data.metrics["feedback_accuracy"])


def test_the_monitoring_view_lists_series_and_alerts(platform):
    rows = iris_rows().sample(60, random_state=4)
    rows["petal_length"] += 2
    batch = predict_batch(platform.client, csv_bytes(rows))
    view = platform.client.get("/monitoring").json()
    assert view["thresholds"]["drift_window"] == 20 and isinstance(view["thresholds"]["drift_window"], int)
    assert batch["run_id"] in {p["run_id"] for p in view["drift"]}
    assert view["thresholds"]["psi_warn"] == 0.1 and view["thresholds"]["psi_alert"] == 0.2
    assert view["reference"]["model_version"] == platform.trained["model_version"]
    assert sum(view["reference"]["class_priors"].values()) == pytest.approx(1.0)
    assert any(p["prediction_type"] == "batch" for p in view["drift"])
    times = [p["time_ms"] for p in view["drift"]]
    assert times == sorted(times)
    kinds = {a["kind"] for a in view["alerts"]}
    assert "drift_detected" in kinds
    for alert in view["alerts"]:
        assert platform.mlflow.get_run(alert["run_id"]).data.tags["alert"] == alert["kind"]


# -- a receiver that is down or slow ----------------------------------------------------------------


def test_a_refusing_receiver_loses_no_alert_from_mlflow(tmp_path):
    with open_platform(tmp_path, alert_webhook=refused_url()) as platform:
        train(platform.client, n_estimators=FAST_TREES)
        rows = iris_rows().sample(60, random_state=5)
        rows["petal_length"] += 2
        answer = predict_batch(platform.client, csv_bytes(rows))
        assert platform.mlflow.get_run(answer["run_id"]).data.tags["alert"] == "drift_detected"
        # The predictions go on while the sender retries.
        assert predict(platform.client, iris_rows().iloc[0].to_dict())["class_name"] == "setosa"


def test_a_slow_receiver_does_not_delay_the_answer(tmp_path):
    with Receiver(delay=3.0) as slow, open_platform(tmp_path, alert_webhook=slow.url) as platform:
        train(platform.client, n_estimators=FAST_TREES)
        rows = iris_rows().sample(60, random_state=5)
        rows["petal_length"] += 2
        predict_batch(platform.client, csv_bytes(rows))
        # The answer came back while the receiver still holds the alert's request.
        assert not slow.finished.is_set()
        slow.finished.wait(10)
        assert slow.alerts and slow.alerts[0]["kind"] == "drift_detected"


def test_the_metrics_endpoint_shows_the_batch_drift(platform):
    from prometheus_client.parser import text_string_to_metric_families

    rows = iris_rows().sample(60, random_state=9)
    rows["petal_length"] += 2
    run = batch_run(platform, predict_batch(platform.client, csv_bytes(rows)))
    text = platform.client.get("/metrics").text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    version = platform.trained["model_version"]
    for feature in FEATURES:
        key = ("iris_drift_psi", (("feature", feature), ("model_version", version)))
        assert samples[key] == pytest.approx(run.data.metrics[f"psi_{feature}"])
    assert samples[("iris_drift_detected", (("model_version", version),))] == 1
    assert samples[("iris_alerts_total", (("kind", "drift_detected"),))] >= 1


# -- exactly once, across restarts ------------------------------------------------------------------


def test_a_journaled_label_is_written_once_and_its_window_continues_after_a_restart(tmp_path):
    from iris_platform.tracking.records import new_feedback
    from tests.helpers.journal import leave_in_journal

    with open_platform(tmp_path) as platform:
        trained = train(platform.client, n_estimators=FAST_TREES)
        answer = predict(platform.client, iris_rows().iloc[0].to_dict())
        feedback(platform, prediction_id=answer["prediction_id"], true_label="setosa")
        wait_for_writer(platform.client)
    # A label acknowledged by a process that died before its worker wrote it.
    left = new_feedback(
        prediction_id=answer["prediction_id"],
        batch_run_id=None,
        row=None,
        true_label="virginica",
        predicted_class="setosa",
        model_version=trained["model_version"],
        model_path=trained["model_path"],
    )
    leave_in_journal(tmp_path / "journal", left)  # type: ignore[arg-type]
    for _ in range(2):  # the second start finds it written and writes nothing again
        with open_platform(tmp_path) as platform:
            wait_for_writer(platform.client)
            runs = feedback_runs(platform)
    assert len(runs) == 2
    latest = [r for r in runs if r.data.tags["feedback_first_id"] == left["feedback_id"]]
    assert len(latest) == 1
    metrics = latest[0].data.metrics
    # The window went on from the first process's label: one right, one wrong.
    assert metrics["feedback_count"] == 2 and metrics["feedback_accuracy"] == 0.5
    assert latest[0].data.tags["feedback_window"] == "10"
