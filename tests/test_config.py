"""Settings: each reads its own environment variable, empty means the default, bad values name the variable."""

import dataclasses
from pathlib import Path

import pytest

from iris_platform.config import DEFAULT_TRACKING_URI, Settings
from iris_platform.redaction import redact_uri

# Each setting names its variable in its field's metadata: the one place config.py reads them from.
VARIABLES = [f.metadata["env"] for f in dataclasses.fields(Settings) if "env" in f.metadata]


def test_defaults_without_any_variable():
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.tracking_uri == DEFAULT_TRACKING_URI
    assert settings.models_dir == Path("models") and settings.port == 8000 and settings.api_token is None


def test_each_setting_reads_its_variable():
    environ = {
        "IRIS_HOST": "0.0.0.0",
        "IRIS_PORT": "9100",
        "MLFLOW_TRACKING_URI": "postgresql://u:p@db/mlflow",
        "IRIS_MODELS_DIR": "/srv/models",
        "IRIS_JOURNAL_DIR": "/srv/journal",
        "IRIS_JOURNAL_FSYNC": "true",
        "IRIS_WRITER_WINDOW_THRESHOLD": "7",
        "IRIS_WRITER_WINDOW_MAX": "70",
        "IRIS_BATCH_INLINE_ROWS": "3",
        "IRIS_API_TOKEN": "secret",
        "IRIS_MAX_UPLOAD_MB": "1.5",
        "IRIS_MAX_BATCH_UPLOAD_MB": "2",
        "IRIS_ACCESS_LOG": "1",
        "IRIS_HEADER_TIMEOUT_S": "2.5",
        "IRIS_REGISTERED_MODEL": "fraud_model",
        "IRIS_MODEL_POLL_S": "0.5",
        "IRIS_WORKERS": "3",
        "IRIS_QUERY_DATABASE_URI": "postgresql://reader:p@db/mlflow",
        "IRIS_ALLOWED_HOSTS": "iris.example.com, *.corp.example,,10.0.0.0/8",
        "IRIS_CORS_ALLOWED_ORIGINS": "https://app.example.com",
        "IRIS_DRIFT_WINDOW": "250",
        "IRIS_DRIFT_PSI_WARN": "0.15",
        "IRIS_DRIFT_PSI_ALERT": "0.3",
        "IRIS_DRIFT_P_VALUE": "0.01",
        "IRIS_FEEDBACK_WINDOW": "50",
        "IRIS_FEEDBACK_MIN_LABELS": "10",
        "IRIS_FEEDBACK_ALERT_DROP": "0.05",
        "IRIS_ALERT_WEBHOOK": "https://hooks.example.com/iris",
        "IRIS_METRICS": "0",
        "IRIS_TRAINING_PROCESS": "false",
    }
    settings = Settings.from_env(environ)
    assert settings == Settings(
        host="0.0.0.0",
        port=9100,
        tracking_uri="postgresql://u:p@db/mlflow",
        models_dir=Path("/srv/models"),
        journal_dir=Path("/srv/journal"),
        journal_fsync=True,
        writer_window_threshold=7,
        writer_window_max=70,
        batch_inline_rows=3,
        api_token="secret",
        max_upload_mb=1.5,
        max_batch_upload_mb=2.0,
        access_log=True,
        header_timeout_s=2.5,
        registered_model="fraud_model",
        model_poll_s=0.5,
        workers=3,
        query_database_uri="postgresql://reader:p@db/mlflow",
        allowed_hosts=("iris.example.com", "*.corp.example", "10.0.0.0/8"),
        cors_allowed_origins=("https://app.example.com",),
        drift_window=250,
        drift_psi_warn=0.15,
        drift_psi_alert=0.3,
        drift_p_value=0.01,
        feedback_window=50,
        feedback_min_labels=10,
        feedback_alert_drop=0.05,
        alert_webhook="https://hooks.example.com/iris",
        metrics=False,
        training_process=False,
    )
    # Every variable above is one setting's, and every setting with a variable is above.
    assert set(VARIABLES) == set(environ)


def test_empty_variables_keep_defaults_and_overrides_win():
    settings = Settings.from_env({"IRIS_PORT": " ", "IRIS_API_TOKEN": ""}, port=1234)
    assert settings.port == 1234 and settings.api_token is None


def test_a_bad_value_names_its_variable():
    with pytest.raises(ValueError, match="IRIS_PORT='eighty'"):
        Settings.from_env({"IRIS_PORT": "eighty"})


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf"])
def test_the_header_timeout_must_be_a_bound(text):
    # server.py turns this ValueError into one line and exit status 2 (tests/test_slow_clients.py starts it so).
    with pytest.raises(ValueError, match=r"IRIS_HEADER_TIMEOUT_S: .* write a number of seconds above 0"):
        Settings.from_env({"IRIS_HEADER_TIMEOUT_S": text})
    assert Settings.from_env({"IRIS_HEADER_TIMEOUT_S": "0.5"}).header_timeout_s == 0.5


@pytest.mark.parametrize("text, expected", [("false", False), ("0", False), ("no", False), ("YES", True), ("on", True)])
def test_booleans(text, expected):
    assert Settings.from_env({"IRIS_JOURNAL_FSYNC": text}).journal_fsync is expected


def test_redact_uri_hides_only_the_password():
    assert redact_uri("postgresql://user:pw@host:5432/db") == "postgresql://user:***@host:5432/db"
    assert redact_uri("sqlite:///mlflow.db") == "sqlite:///mlflow.db"


def test_the_readme_documents_every_variable():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    missing = [v for v in VARIABLES if f"`{v}`" not in readme]
    assert not missing, f"README's configuration table lacks {missing}"


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"IRIS_DRIFT_PSI_WARN": "0.3", "IRIS_DRIFT_PSI_ALERT": "0.2"}, "IRIS_DRIFT_PSI_WARN"),
        ({"IRIS_DRIFT_P_VALUE": "1.5"}, "IRIS_DRIFT_P_VALUE"),
        ({"IRIS_DRIFT_WINDOW": "0"}, "IRIS_DRIFT_WINDOW"),
    ],
)
def test_monitoring_thresholds_out_of_range_name_their_variable(environ, variable):
    with pytest.raises(ValueError, match=variable):
        Settings.from_env(environ)
