"""The MLflow Model Registry: the versions of the registered model, and its `champion` alias.

Every training registers a version whose artifacts hold the MLflow model and the platform's own
files (pkl, metadata, ONNX form) under `model_files/`; the alias `champion` names the version every
replica serves. The aliases `champion` pointed at before are kept, newest last, in a tag of the
registered model, so a rollback can move it back.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

from iris_platform.errors import InputError
from iris_platform.tracking import names
from iris_platform.tracking.store import TrackingStore, is_not_found

HISTORY_LIMIT = 100  # champions remembered for rollback (a tag value holds at most 5,000 characters)
_PAGE = 1000


@dataclass(frozen=True)
class VersionFiles:
    """What a version says about its platform files: checked against the files before serving them."""

    version: str
    run_id: str | None
    model_file: str
    sha256: str  # of the pkl
    metadata_sha256: str  # of the metadata JSON, which pins the ONNX file's hash, the classes and features
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RegistryState:
    champion: str | None
    history: list[str]
    aliases: dict[str, list[str]]  # version -> its aliases


def _files_of(version: ModelVersion) -> VersionFiles:
    tags = version.tags or {}
    model_file = tags.get(names.T_VERSION_MODEL_FILE)
    sha256 = tags.get(names.T_VERSION_SHA256)
    metadata_sha256 = tags.get(names.T_VERSION_METADATA_SHA256)
    if not model_file or not sha256 or not metadata_sha256:
        raise InputError(
            f"Version {version.version} of the registered model '{version.name}' was not registered by this "
            f"platform's training (it lacks the tags {names.T_VERSION_MODEL_FILE}, {names.T_VERSION_SHA256} and "
            f"{names.T_VERSION_METADATA_SHA256}): it is refused.",
            422,
        )
    try:
        metrics = {str(k): float(v) for k, v in json.loads(tags.get(names.T_VERSION_METRICS) or "{}").items()}
    except (ValueError, TypeError, AttributeError):
        metrics = {}
    return VersionFiles(str(version.version), version.run_id, model_file, sha256, metadata_sha256, metrics)


class ModelRegistry:
    def __init__(self, store: TrackingStore, name: str):
        self.store = store
        self.name = name

    # -- writing ---------------------------------------------------------------------------

    def register(
        self,
        *,
        run_id: str,
        model_uri: str,
        model_file: str,
        sha256: str,
        metadata_sha256: str,
        metrics: dict[str, float],
    ) -> str:
        """A new version of the registered model from a training's logged model; returns its number."""
        client = self.store.client
        try:
            client.create_registered_model(
                self.name, description="Iris ML platform models; the alias `champion` is the one served."
            )
        except MlflowException as exc:  # it exists already (the usual case), or another replica made it
            if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise
        tags = {
            names.T_VERSION_MODEL_FILE: model_file,
            names.T_VERSION_SHA256: sha256,
            names.T_VERSION_METADATA_SHA256: metadata_sha256,
            names.T_VERSION_METRICS: json.dumps(metrics),
        }
        model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/") else None
        version = client.create_model_version(self.name, model_uri, run_id=run_id, tags=tags, model_id=model_id)
        return str(version.version)

    def promote(self, version: str) -> str | None:
        """Point `champion` at `version`, remembering the one it leaves; returns that one."""
        state = self.state()
        if state.champion != version:
            if state.champion is not None:
                self._set_history([*state.history, state.champion])
            self.store.client.set_registered_model_alias(self.name, names.CHAMPION_ALIAS, version)
        return state.champion

    def rollback_target(self) -> str:
        """The version `champion` named before its last move; 409 when there is none."""
        state = self.state()
        history = [v for v in state.history if v != state.champion]
        if not history:
            raise InputError(
                f"'{self.name}' has no earlier champion to roll back to: load a version with "
                'POST /load_model {"version": N} instead.',
                409,
            )
        return history[-1]

    def rollback(self, target: str) -> str | None:
        """Move `champion` back to `target` (from `rollback_target`), dropping it and anything after it
        from the history; returns the version left."""
        state = self.state()
        history = state.history
        cut = len(history) - 1 - history[::-1].index(target) if target in history else len(history)
        self._set_history(history[:cut])
        self.store.client.set_registered_model_alias(self.name, names.CHAMPION_ALIAS, target)
        return state.champion

    def _set_history(self, history: list[str]) -> None:
        value = json.dumps(history[-HISTORY_LIMIT:])
        self.store.client.set_registered_model_tag(self.name, names.T_CHAMPION_HISTORY, value)

    # -- reading ---------------------------------------------------------------------------

    def state(self) -> RegistryState:
        """The champion, its history and every alias; all empty before the first registration."""
        try:
            model = self.store.client.get_registered_model(self.name)
        except MlflowException as exc:
            if is_not_found(exc):
                return RegistryState(None, [], {})
            raise
        aliases: dict[str, list[str]] = {}
        for alias, version in (model.aliases or {}).items():
            aliases.setdefault(str(version), []).append(alias)
        try:
            history = [str(v) for v in json.loads((model.tags or {}).get(names.T_CHAMPION_HISTORY) or "[]")]
        except (ValueError, TypeError):
            history = []
        champion = (model.aliases or {}).get(names.CHAMPION_ALIAS)
        return RegistryState(str(champion) if champion is not None else None, history, aliases)

    def champion(self) -> str | None:
        return self.state().champion

    def version_files(self, version: str) -> VersionFiles:
        try:
            found = self.store.client.get_model_version(self.name, version)
        except MlflowException as exc:
            if is_not_found(exc):
                raise InputError(
                    f"The registered model '{self.name}' has no version {version}: pick a `version` listed "
                    "by GET /models.",
                    404,
                ) from None
            raise
        return _files_of(found)

    def version_of_run(self, run_id: str) -> str | None:
        """The version a training run registered, if any."""
        found = self.store.client.search_model_versions(f"name = '{self.name}' and run_id = '{run_id}'")
        return str(max(int(v.version) for v in found)) if found else None

    def versions(self) -> list[tuple[VersionFiles, int]]:
        """Every version of this platform's registered model, newest first, with its creation time (ms)."""
        client = self.store.client
        out: list[tuple[VersionFiles, int]] = []
        token = None
        while True:
            page = client.search_model_versions(
                f"name = '{self.name}'", max_results=_PAGE, order_by=["version_number DESC"], page_token=token
            )
            for version in page:
                try:
                    out.append((_files_of(version), int(version.creation_timestamp or 0)))
                except InputError:
                    continue  # registered by hand, not by this platform: not servable here
            token = page.token
            if not token:
                return out

    def download(self, version: str, destination: Path) -> Path:
        """Download a version's platform files into a new folder under `destination`; returns it."""
        import mlflow.artifacts

        location = self.store.client.get_model_version_download_uri(self.name, version)
        folder = Path(tempfile.mkdtemp(prefix=".download-", dir=destination))
        try:
            return Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=f"{location.rstrip('/')}/{names.MODEL_FILES_ARTIFACT_DIR}",
                    dst_path=str(folder),
                    tracking_uri=self.store.tracking_uri,
                )
            )
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)  # a failed download leaves nothing behind
            raise


def describe_version(files: VersionFiles, created_ms: int, state: RegistryState, serving: str | None) -> dict[str, Any]:
    """One entry of GET /models."""
    return {
        "version": files.version,
        "run_id": files.run_id,
        "filename": files.model_file,
        "metrics": files.metrics,
        "aliases": sorted(state.aliases.get(files.version, [])),
        "created_ms": created_ms,
        "serving": files.version == serving,
    }
