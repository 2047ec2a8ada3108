"""Where a command acts: the service on this machine's store (`Local`), or a running server (`Remote`, --url).

Both answer with the API's JSON and fail with `CommandError`, whose text is the API's `detail` for the
same cause: the local side builds it with the API's own functions, the remote side reads it.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import requests
from fastapi.exceptions import RequestValidationError
from mlflow.exceptions import MlflowException
from sqlalchemy.exc import SQLAlchemyError

from iris_platform.api import details
from iris_platform.api.routers.training import training_parameters
from iris_platform.config import Settings
from iris_platform.errors import InputError, StartupRefused
from iris_platform.redaction import describe, redact_uri
from iris_platform.service import IrisService
from iris_platform.tracking import names

CHUNK = 1 << 20
Progress = Callable[[int], None]  # told the bytes sent or written since its last call


class CommandError(Exception):
    """A command that failed: `detail` says why and what to do, as the API's answer does."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class Platform(Protocol):
    def train(self, csv: Path | None, fields: dict[str, str]) -> dict[str, Any]: ...
    def predict(self, features: dict[str, str]) -> dict[str, Any]: ...
    def batch(self, table: Path, output: Path | None, progress: Progress | None) -> dict[str, Any]: ...
    def runs(self, run_type: str | None, limit: int) -> dict[str, Any]: ...
    def models(self) -> dict[str, Any]: ...
    def promote(self, version: int) -> dict[str, Any]: ...
    def rollback(self) -> dict[str, Any]: ...
    def tune(self, request: dict[str, Any]) -> dict[str, Any]: ...
    def tuning(self, tuning_id: str) -> dict[str, Any]: ...
    def cancel_tuning(self, tuning_id: str) -> dict[str, Any]: ...
    def close(self) -> None: ...


def _read(path: Path, progress: Progress | None) -> Iterator[bytes]:
    with open(path, "rb") as source:
        while chunk := source.read(CHUNK):
            if progress is not None:
                progress(len(chunk))
            yield chunk


# -- a running server ----------------------------------------------------------------------------


class Remote:
    """A server's HTTP API at `url` (IRIS_API_TOKEN, if set, is sent as its bearer token)."""

    def __init__(self, url: str, token: str | None = None, timeout_s: float = 3600.0):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            response = self.session.request(method, self.url + path, timeout=self.timeout_s, **kwargs)
        except requests.RequestException as exc:
            raise CommandError(
                f"Cannot reach the server at {redact_uri(self.url)} ({describe(exc)}): start it with "
                "`iris-platform serve`, or give the address it answers at with --url."
            ) from None
        if response.status_code >= 400:
            try:
                detail = response.json()["detail"]
            except (ValueError, KeyError, TypeError):
                detail = f"HTTP {response.status_code}: {response.text[:300]}"
            raise CommandError(str(detail))
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        answer: dict[str, Any] = self._call(method, path, **kwargs).json()
        return answer

    def train(self, csv: Path | None, fields: dict[str, str]) -> dict[str, Any]:
        if csv is None:
            return self._json("POST", "/train", data=fields)
        with open(csv, "rb") as file:
            return self._json("POST", "/train", data=fields, files={"file": (csv.name, file, "text/csv")})

    def predict(self, features: dict[str, str]) -> dict[str, Any]:
        return self._json("POST", "/predict", data=features)

    def batch(self, table: Path, output: Path | None, progress: Progress | None) -> dict[str, Any]:
        # Streamed as it is read: a file of any size is never held in memory.
        boundary = uuid.uuid4().hex
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{table.name}"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()

        def body() -> Iterator[bytes]:
            yield head
            yield from _read(table, progress)
            yield f"\r\n--{boundary}--\r\n".encode()

        answer = self._json(
            "POST", "/predict_batch", data=body(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
        )
        if output is not None:
            with self._call("GET", answer["predictions_url"], stream=True) as response, open(output, "wb") as out:
                for chunk in response.iter_content(CHUNK):
                    out.write(chunk)
        return answer

    def runs(self, run_type: str | None, limit: int) -> dict[str, Any]:
        params: dict[str, Any] = {"max_results": limit}
        if run_type:
            params["run_type"] = run_type
        return self._json("GET", "/mlflow/runs", params=params)

    def models(self) -> dict[str, Any]:
        return self._json("GET", "/models")

    def promote(self, version: int) -> dict[str, Any]:
        return self._json("POST", "/load_model", json={"version": version})

    def rollback(self) -> dict[str, Any]:
        return self._json("POST", "/models/rollback")

    def tune(self, request: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/tune", json=request)

    def tuning(self, tuning_id: str) -> dict[str, Any]:
        return self._json("GET", f"/tune/{tuning_id}")

    def cancel_tuning(self, tuning_id: str) -> dict[str, Any]:
        return self._json("DELETE", f"/tune/{tuning_id}")

    def close(self) -> None:
        self.session.close()


# -- this machine's store ------------------------------------------------------------------------


class Local:
    """The service on the store and folders the settings name (MLFLOW_TRACKING_URI, IRIS_MODELS_DIR, ...), as
    `iris-platform serve` would use them; the serving parts start only for the commands that predict."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.service = IrisService(settings)
        self._started = False

    def _act(self, action: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        try:
            return action()
        except InputError as exc:
            raise CommandError(exc.detail) from None
        except StartupRefused as exc:  # as `serve` would refuse to start on these settings
            raise CommandError(str(exc)) from None
        except RequestValidationError as exc:
            raise CommandError(details.invalid_request(exc)) from None
        except (MlflowException, SQLAlchemyError) as exc:
            raise CommandError(details.tracking_unavailable(self.settings.tracking_uri, exc)) from None
        except OSError as exc:
            if exc.errno in details.DISK_FULL_ERRNOS:
                raise CommandError(details.DISK_FULL) from None
            if exc.errno in details.CANNOT_WRITE_ERRNOS:
                raise CommandError(details.cannot_write(exc)) from None
            raise CommandError(details.internal_error(exc)) from None

    def _serving(self) -> None:
        """The champion loaded, and the tracking worker that records each prediction in MLflow running."""
        if not self._started:
            self.service.start()
            self._started = True
        self.service.follower.check()  # the champion now, not at the follower's next look

    def train(self, csv: Path | None, fields: dict[str, str]) -> dict[str, Any]:
        def train() -> dict[str, Any]:
            parameters = training_parameters(fields, strict=False)  # as POST /train checks form fields
            content = csv.read_bytes() if csv is not None else None
            return self.service.train(content=content, filename=csv.name if csv else None, **parameters)

        return self._act(train)

    def predict(self, features: dict[str, str]) -> dict[str, Any]:
        def predict() -> dict[str, Any]:
            self._serving()
            return self.service.predict_one(features)

        return self._act(predict)

    def batch(self, table: Path, output: Path | None, progress: Progress | None) -> dict[str, Any]:
        def batch() -> dict[str, Any]:
            self._serving()
            with open(table, "rb") as source:  # read twice (its digest, then its rows): no progress by bytes
                answer = self.service.predict_batch(source, table.name)
            if output is not None:
                copied = self.service.download_artifact(
                    answer["run_id"], names.PREDICTIONS_ARTIFACT, str(output.parent)
                )
                if Path(copied).resolve() != output.resolve():
                    shutil.move(copied, output)
            return answer

        return self._act(batch)

    def spark_batch(self, source: str, output: str | None, master: str, step: Callable[[str], None]) -> dict[str, Any]:
        from iris_platform.spark.batch import predict_with_spark  # pyspark's imports: only for this command

        return self._act(lambda: predict_with_spark(self.settings, source, output, master, step))

    def runs(self, run_type: str | None, limit: int) -> dict[str, Any]:
        return self._act(
            lambda: {
                "status": "success",
                **self.service.query_runs(
                    experiment_name=None,
                    run_type=run_type,
                    search=None,
                    order_by="start_time",
                    descending=True,
                    page_size=limit,
                    page=1,
                ),
            }
        )

    def models(self) -> dict[str, Any]:
        return self._act(self.service.list_models)

    def promote(self, version: int) -> dict[str, Any]:
        return self._act(lambda: self.service.load_model(version=version))

    def rollback(self) -> dict[str, Any]:
        return self._act(self.service.rollback)

    def tune(self, request: dict[str, Any]) -> dict[str, Any]:
        return self._act(lambda: self.service.tune(**request))

    def tuning(self, tuning_id: str) -> dict[str, Any]:
        return self._act(lambda: self.service.tuning(tuning_id))

    def cancel_tuning(self, tuning_id: str) -> dict[str, Any]:
        return self._act(lambda: self.service.cancel_tuning(tuning_id))

    def close(self) -> None:
        self.service.stop()  # the tracking worker writes what this command journaled before it exits


def connect(url: str | None, settings: Settings) -> Platform:
    """The server at `url`, else the service on the settings' store."""
    if url:
        return Remote(url, settings.api_token)
    return Local(settings)
