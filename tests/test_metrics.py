"""GET /metrics: Prometheus's text format, parsed with prometheus-client's own parser, and its values checked.

In process (TestClient) the app uses prometheus-client's ordinary registry, shared by every app the test
process builds: the checks compare a scrape before and after. A real server with `--workers 2` checks the
multiprocess answer: what both serving processes counted, in one scrape.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from prometheus_client import REGISTRY
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from iris_platform import metrics
from iris_platform.api.middleware.request_metrics import RequestMetrics
from iris_platform.server import METRICS_FOLDER_VARIABLE, prepare_metrics_folder
from tests.helpers.api import FAST_TREES, assert_error, predict, predict_batch, train
from tests.helpers.data import SETOSA, VIRGINICA, samples_csv
from tests.helpers.platform import open_platform
from tests.helpers.server_process import ServerProcess

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
PREDICT_200 = {"method": "POST", "route": "/predict", "status": "200"}


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def rose(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= found)


@pytest.fixture(scope="module")
def platform(trained_platform):
    metrics.configure(True)  # another module's app may have left it off
    return trained_platform


# -- requests ------------------------------------------------------------------------------------


def test_requests_are_counted_and_timed_by_route_template_and_status(platform):
    client = platform.client
    before = scrape(client)
    for features in (SETOSA, SETOSA, VIRGINICA, SETOSA, VIRGINICA):
        predict(client, features)
    for _ in range(2):
        assert client.post("/predict", json={"sepal_length": 5.1}).status_code == 422
    run_id = "0123456789abcdef" * 2
    assert client.get(f"/mlflow/run/{run_id}").status_code == 404
    after = scrape(client)

    assert rose(before, after, "iris_http_requests_total", **PREDICT_200) == 5
    assert rose(before, after, "iris_http_requests_total", method="POST", route="/predict", status="422") == 2
    assert rose(before, after, "iris_http_request_duration_seconds_count", **PREDICT_200) == 5
    assert rose(before, after, "iris_http_request_duration_seconds_sum", **PREDICT_200) > 0
    run = {"method": "GET", "route": "/mlflow/run/{run_id}", "status": "404"}
    assert rose(before, after, "iris_http_requests_total", **run) == 1
    assert not any(run_id in str(labels) for _, labels in after), "a raw path became a label value"
    # The scrape before this one was counted once it had answered.
    assert rose(before, after, "iris_http_requests_total", method="GET", route="/metrics", status="200") == 1


def test_the_latency_histogram_counts_every_request_the_counter_counts(platform):
    client = platform.client
    client.get("/health")
    client.get("/static/style.css")
    samples = scrape(client)
    series = [dict(labels) for name, labels in samples if name == "iris_http_requests_total"]
    assert {s["route"] for s in series} >= {"/health", "/static/{path}", "/predict"}
    for labels in series:
        count = value(samples, "iris_http_requests_total", **labels)
        assert value(samples, "iris_http_request_duration_seconds_count", **labels) == count, labels
        inf = value(samples, "iris_http_request_duration_seconds_bucket", **labels, le="+Inf")
        assert inf == count, labels


def test_requests_no_route_takes_and_refused_ones_get_bounded_labels(platform):
    client = platform.client
    before = scrape(client)
    for i in range(20):
        assert client.get(f"/no/such/path/{i}").status_code == 404
    assert client.put("/health").status_code == 405
    foreign = client.post("/predict", json=SETOSA, headers={"host": "evil.example"})
    assert foreign.status_code == 400  # refused by the cross-site guard, before any route
    after = scrape(client)
    assert rose(before, after, "iris_http_requests_total", method="GET", route="unmatched", status="404") == 20
    assert rose(before, after, "iris_http_requests_total", method="PUT", route="/health", status="405") == 1
    assert rose(before, after, "iris_http_requests_total", method="POST", route="/predict", status="400") == 1
    assert not any("/no/such" in str(labels) for _, labels in after)


# -- predictions ---------------------------------------------------------------------------------


def test_predictions_are_counted_by_class_and_model_version(platform):
    client = platform.client
    version = client.get("/health").json()["model_version"]
    before = scrape(client)
    for features in (SETOSA, SETOSA, SETOSA, VIRGINICA, VIRGINICA):
        predict(client, features)
    batch = predict_batch(client, samples_csv([SETOSA, VIRGINICA, VIRGINICA, VIRGINICA]))
    assert [row["class_name"] for row in batch["predictions"]] == ["setosa", "virginica", "virginica", "virginica"]
    after = scrape(client)

    def counted(class_name: str) -> float:
        return rose(before, after, "iris_predictions_total", model_version=version, class_name=class_name)

    assert counted("setosa") == 3 + 1
    assert counted("virginica") == 2 + 3
    assert counted("versicolor") == 0


# -- what the other parts record through metrics.py ------------------------------------------------


def test_the_recording_functions_show_up_with_their_labels(platform):
    client = platform.client
    before = scrape(client)
    metrics.set_drift("7", {"petal_length": 0.31, "sepal_width": 0.02}, True)
    metrics.set_drift(None, {"petal_length": 0.05}, False)
    metrics.set_feedback_accuracy("7", 0.85, 40)
    metrics.observe_tracking_write("window", 0.2)
    metrics.observe_tracking_write("window", 0.4)
    metrics.count_alert("drift")
    metrics.count_predictions("7", {"setosa": 2, "virginica": 0})
    after = scrape(client)

    assert value(after, "iris_drift_psi", model_version="7", feature="petal_length") == pytest.approx(0.31)
    assert value(after, "iris_drift_psi", model_version="7", feature="sepal_width") == pytest.approx(0.02)
    assert value(after, "iris_drift_detected", model_version="7") == 1
    assert value(after, "iris_drift_psi", model_version="none", feature="petal_length") == pytest.approx(0.05)
    assert ("iris_drift_detected", frozenset({("model_version", "none")})) in after
    assert value(after, "iris_drift_detected", model_version="none") == 0
    assert value(after, "iris_feedback_accuracy", model_version="7") == pytest.approx(0.85)
    assert value(after, "iris_feedback_labels", model_version="7") == 40
    assert rose(before, after, "iris_tracking_write_seconds_count", kind="window") == 2
    assert rose(before, after, "iris_tracking_write_seconds_sum", kind="window") == pytest.approx(0.6)
    assert rose(before, after, "iris_tracking_write_seconds_bucket", kind="window", le="0.25") == 1
    assert rose(before, after, "iris_alerts_total", kind="drift") == 1
    assert rose(before, after, "iris_predictions_total", model_version="7", class_name="setosa") == 2


def test_the_scrape_reports_the_serving_model_and_the_journal_backlog(platform):
    client = platform.client
    health = client.get("/health").json()
    samples = scrape(client)
    serving = {"version": health["model_version"], "model_path": health["current_model"], "runtime": health["runtime"]}
    assert value(samples, "iris_serving_model_info", **serving) == 1
    assert total(samples, "iris_serving_model_info") == 1  # one model serves here
    assert ("iris_journal_backlog_records", frozenset()) in samples
    assert value(samples, "iris_journal_backlog_records") >= 0


def test_the_serving_model_gauge_follows_a_change_of_model():
    metrics.configure(True)
    metrics.set_serving_model("1", "/models/a.pkl", "onnxruntime")
    metrics.set_serving_model("2", "/models/b.pkl", "sklearn")
    samples = parse(metrics.exposition().decode())
    assert value(samples, "iris_serving_model_info", version="2", model_path="/models/b.pkl", runtime="sklearn") == 1
    assert total(samples, "iris_serving_model_info") == 1  # the one before is gone (0 across processes)
    metrics.set_serving_model(None, None, None)
    assert total(parse(metrics.exposition().decode()), "iris_serving_model_info") == 0


# -- IRIS_METRICS=0 ------------------------------------------------------------------------------


@pytest.fixture
def metrics_off(tmp_path) -> Iterator:
    try:
        with open_platform(tmp_path, metrics=False) as platform:
            yield platform
    finally:
        metrics.configure(True)  # the switch is per process: the next test's app counts again


def test_with_metrics_off_nothing_is_counted_and_metrics_answers_404(metrics_off):
    client = metrics_off.client
    assert not any(m.cls is RequestMetrics for m in client.app.user_middleware)
    assert metrics.enabled() is False
    assert_error(client.get("/metrics"), 404, "IRIS_METRICS=1")

    def counted() -> list[float | None]:
        # What this process's registry holds (the app above would have counted into it).
        return [
            REGISTRY.get_sample_value(name, labels)
            for name, labels in (
                ("iris_http_requests_total", PREDICT_200),
                ("iris_http_requests_total", {"method": "POST", "route": "/train", "status": "200"}),
                ("iris_predictions_total", {"model_version": "1", "class_name": "setosa"}),
                ("iris_alerts_total", {"kind": "while-off"}),
                ("iris_tracking_write_seconds_count", {"kind": "while-off"}),
            )
        ]

    before = counted()
    train(client, n_estimators=FAST_TREES)
    predict(client, SETOSA)
    metrics.count_alert("while-off")
    metrics.observe_tracking_write("while-off", 1.0)
    metrics.count_predictions("1", {"setosa": 1})
    assert counted() == before


# -- the multiprocess folder (server.py) ------------------------------------------------------------


def test_a_folder_the_user_set_is_wiped_of_the_last_runs_files(tmp_path):
    folder = tmp_path / "prometheus"
    folder.mkdir()
    (folder / "counter_4242.db").write_bytes(b"stale")
    (folder / "gauge_livemax_4242.db").write_bytes(b"stale")
    (folder / "notes.txt").write_text("not ours")
    environ = {METRICS_FOLDER_VARIABLE: str(folder)}
    assert prepare_metrics_folder(environ) == (folder.resolve(), False)  # the user's: never removed
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    assert environ[METRICS_FOLDER_VARIABLE] == str(folder.resolve())


def test_without_a_folder_set_a_private_one_is_made():
    environ: dict[str, str] = {}
    folder, made_here = prepare_metrics_folder(environ)
    try:
        assert made_here and folder.is_dir() and not any(folder.iterdir())
        assert environ[METRICS_FOLDER_VARIABLE] == str(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# In a process of its own: the folder goes at a normal exit, and on SIGTERM, of which the process still dies
# (uvicorn raises it again after a graceful shutdown, and atexit does not run then).
_EXIT_CODE = """
import os, signal, sys, tempfile, time
from pathlib import Path
from iris_platform.server import remove_at_exit
folder = Path(tempfile.mkdtemp(prefix="iris-metrics-test-"))
print(folder, flush=True)
remove_at_exit(folder)
if sys.argv[1] == "sigterm":
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)
"""


@pytest.mark.parametrize(("how", "returncode"), [("exit", 0), ("sigterm", -signal.SIGTERM)])
def test_a_private_folder_is_removed_when_the_server_exits(how, returncode):
    done = subprocess.run([sys.executable, "-c", _EXIT_CODE, how], capture_output=True, text=True, timeout=60)
    folder = Path(done.stdout.strip())
    try:
        assert done.returncode == returncode, done.stderr
        assert folder.name.startswith("iris-metrics-test-") and not folder.exists()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# A scrape while another process creates its file of values (prometheus-client makes it empty, then sizes it):
# the file stays empty a moment here, as a process slowed down at the wrong time would leave it.
_CREATING_CODE = """
import os, sys, threading, time
from pathlib import Path
folder = Path(sys.argv[1])
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
from prometheus_client.mmap_dict import MmapedDict
from iris_platform import metrics
metrics.count_predictions("1", {"setosa": 2})  # this process's own values, in the folder
creating = folder / "counter_999999.db"
creating.touch()
threading.Timer(0.03, lambda: MmapedDict(str(creating)).close()).start()
text = metrics.exposition().decode()
print([line for line in text.splitlines() if line.startswith("iris_predictions_total")])
"""


def test_a_scrape_waits_out_a_file_of_values_being_created(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", _CREATING_CODE, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'iris_predictions_total{class_name="setosa",model_version="1"} 2.0' in done.stdout, done.stdout


# -- --workers 2: one scrape answers for every process -----------------------------------------------


def per_process_predict_requests(folder: Path) -> list[float]:
    """POST /predict 200s each process's own counter file holds (a file per process id)."""
    found = []
    for path in sorted(folder.glob("counter_*.db")):
        merged = MultiProcessCollector.merge([str(path)], accumulate=False)
        found.append(
            sum(
                s.value
                for family in merged
                for s in family.samples
                if s.name == "iris_http_requests_total" and s.labels == PREDICT_200
            )
        )
    return [n for n in found if n]


def post_predictions(url: str, count: int, threads: int = 4) -> list[str]:
    """`count` predictions, each on a connection of its own (so either process may take it): the classes."""
    classes: list[str] = []
    lock = threading.Lock()

    def send(index: int) -> None:
        for i in range(index, count, threads):
            answer = httpx2.post(f"{url}/predict", json=SETOSA if i % 3 else VIRGINICA, timeout=30)
            assert answer.status_code == 200, answer.text
            with lock:
                classes.append(answer.json()["class_name"])

    workers = [threading.Thread(target=send, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert len(classes) == count, "some predictions did not answer"
    return classes


@pytest.mark.slow
def test_with_two_workers_one_scrape_counts_the_predictions_of_both_processes(tmp_path):
    server = ServerProcess(tmp_path, IRIS_WORKERS="2", PROMETHEUS_MULTIPROC_DIR=None)
    folder: Path | None = None
    try:
        server.wait_healthy(timeout=120)
        found = re.search(r"metrics of every process are gathered in (\S+)", server.output(20000))
        assert found, server.output()
        folder = Path(found.group(1))
        assert folder.is_dir() and folder.name.startswith("iris-metrics-")
        trained = httpx2.post(f"{server.url}/train", data={"n_estimators": str(FAST_TREES)}, timeout=120)
        assert trained.status_code == 200, trained.text
        version = trained.json()["model_version"]
        deadline = time.monotonic() + 30  # the other process follows the registry's champion
        while {httpx2.get(f"{server.url}/health").json()["model_version"] for _ in range(8)} != {version}:
            assert time.monotonic() < deadline, "both processes did not come to serve the new model"
            time.sleep(0.2)

        classes: list[str] = []
        while len(per_process_predict_requests(folder)) < 2:  # until both processes have answered some
            assert len(classes) < 600, f"one process took every prediction: {per_process_predict_requests(folder)}"
            classes += post_predictions(server.url, 40)
        # A request is counted once its answer went out: the last one may lag its answer by a moment.
        deadline = time.monotonic() + 5
        while sum(per_process := per_process_predict_requests(folder)) < len(classes):
            assert time.monotonic() < deadline, (per_process, len(classes))
            time.sleep(0.05)

        samples = parse(httpx2.get(f"{server.url}/metrics").text)  # answered by one of them
        assert value(samples, "iris_http_requests_total", **PREDICT_200) == len(classes) == sum(per_process)
        assert value(samples, "iris_http_request_duration_seconds_count", **PREDICT_200) == len(classes)
        assert total(samples, "iris_serving_model_info", version=version) == 1
        assert ("iris_journal_backlog_records", frozenset()) in samples  # one series, whatever the processes
    finally:
        server.stop()
    assert folder is not None
    deadline = time.monotonic() + 10
    while folder.exists():  # removed by the server as it exits
        assert time.monotonic() < deadline, f"{folder} was left behind"
        time.sleep(0.1)
    # The predictions by class, as both processes' services counted them.
    for class_name in set(classes):
        counted = value(samples, "iris_predictions_total", model_version=version, class_name=class_name)
        assert counted == classes.count(class_name), class_name
    assert total(samples, "iris_predictions_total", model_version=version) == len(classes)
