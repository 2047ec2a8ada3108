"""The models folder: trained models as .pkl files beside their metadata, and which one is current.

A pickle is code, so a model is only ever unpickled from this folder and only when its SHA-256
matches the metadata this platform wrote when it trained it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import pickle
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from iris_platform.errors import InputError
from iris_platform.ml.metadata import ModelMetadata

MODEL_PREFIX = "iris_model_"
METADATA_SUFFIX = "_metadata.json"
PROFILE_SUFFIX = "_reference_profile.json"
CURRENT_POINTER = "current_model.json"
_MODEL_FILE = re.compile(r"^iris_model_[0-9A-Za-z_]+\.pkl$")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary name and rename, so a crash or full disk never leaves a partial file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class StoredModel:
    estimator: Any
    metadata: ModelMetadata
    model_path: str  # as listed by GET /models and logged as `model_path`
    onnx_bytes: bytes | None = None  # the compiled model, when training could convert it
    profile: dict[str, Any] | None = None  # the training data's reference profile (drift.py), if saved


class ModelStore:
    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def path_of(self, filename: str) -> str:
        return str(self.directory / filename)

    @staticmethod
    def metadata_name(model_filename: str) -> str:
        return model_filename[: -len(".pkl")] + METADATA_SUFFIX

    @staticmethod
    def onnx_name(model_filename: str) -> str:
        return model_filename[: -len(".pkl")] + ".onnx"

    @staticmethod
    def profile_name(model_filename: str) -> str:
        return model_filename[: -len(".pkl")] + PROFILE_SUFFIX

    def _extra_names(self, filename: str) -> tuple[str, str]:
        return self.onnx_name(filename), self.profile_name(filename)

    def save(
        self,
        estimator: Any,
        metadata: ModelMetadata,
        *,
        stamp: str,
        onnx_bytes: bytes | None = None,
        profile: dict[str, Any] | None = None,
    ) -> tuple[str, ModelMetadata, dict[str, bytes]]:
        """Write `iris_model_<stamp>.pkl`, its metadata and (if given) its ONNX form and reference profile.

        Returns the pkl's filename, the metadata as written, and every file written by name.
        """
        filename = f"{MODEL_PREFIX}{stamp}.pkl"
        blob = pickle.dumps(estimator, protocol=pickle.HIGHEST_PROTOCOL)
        files = {filename: blob}
        metadata = dataclasses.replace(metadata, model_file=filename, sha256=sha256_hex(blob))
        if onnx_bytes is not None:
            files[self.onnx_name(filename)] = onnx_bytes
            metadata = dataclasses.replace(
                metadata, onnx_file=self.onnx_name(filename), onnx_sha256=sha256_hex(onnx_bytes)
            )
        if profile is not None:
            profile_bytes = json.dumps(profile).encode()
            files[self.profile_name(filename)] = profile_bytes
            metadata = dataclasses.replace(
                metadata, profile_file=self.profile_name(filename), profile_sha256=sha256_hex(profile_bytes)
            )
        files[self.metadata_name(filename)] = json.dumps(metadata.to_dict(), indent=2).encode()
        try:
            for name, data in files.items():  # the metadata last: a model is listed only once complete
                atomic_write(self.directory / name, data)
        except BaseException:
            with contextlib.suppress(OSError):  # the folder itself is gone or broken: the write's error says so
                self.remove(filename)
            raise
        return filename, metadata, files

    def files_of(self, filename: str) -> dict[str, bytes]:
        """A saved model's files by name (pkl, ONNX form and profile if any, metadata), as `save` returned them."""
        names = (filename, *self._extra_names(filename), self.metadata_name(filename))
        return {name: (self.directory / name).read_bytes() for name in names if (self.directory / name).is_file()}

    def remove(self, filename: str) -> None:
        for name in (self.metadata_name(filename), filename, *self._extra_names(filename)):
            (self.directory / name).unlink(missing_ok=True)

    def list(self) -> list[dict[str, Any]]:
        """Every model of this platform in the folder (a .pkl with its metadata), newest first."""
        entries: list[dict[str, Any]] = []
        for pkl in self.directory.glob(f"{MODEL_PREFIX}*.pkl"):
            meta_path = self.directory / self.metadata_name(pkl.name)
            if not _MODEL_FILE.match(pkl.name) or not meta_path.is_file():
                continue
            try:
                metadata = json.loads(meta_path.read_text())
                stat = pkl.stat()
            except (OSError, ValueError):
                continue
            if not isinstance(metadata, dict):
                continue  # not metadata this platform wrote
            entries.append(
                {
                    "filename": pkl.name,
                    "path": self.path_of(pkl.name),
                    "size_kb": round(stat.st_size / 1024, 1),
                    "modified": datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(),
                    "metadata": metadata,
                }
            )
        entries.sort(key=lambda e: (str(e["metadata"].get("training_timestamp", "")), e["filename"]), reverse=True)
        return entries

    def resolve(self, requested: str) -> str:
        """The filename of a listed model named by its path or filename; anything else is refused."""
        requested = (requested or "").strip()
        for entry in self.list():
            if requested in (entry["path"], entry["filename"]):
                return entry["filename"]
        raise InputError(
            f"'{requested[:200]}' is not one of the saved models: pick a `path` listed by GET /models.",
            status_code=404,
        )

    def load(self, filename: str) -> StoredModel:
        if not _MODEL_FILE.match(filename):
            raise InputError(f"'{filename[:200]}' is not a model file of this platform.", status_code=404)
        pkl = self.directory / filename
        meta_path = self.directory / self.metadata_name(filename)
        try:
            metadata = json.loads(meta_path.read_text())
            blob = pkl.read_bytes()
        except FileNotFoundError:
            raise InputError(f"Model '{filename}' or its metadata is missing from the models folder.", 404) from None
        except ValueError:
            raise InputError(f"The metadata of '{filename}' is not valid JSON: the model is refused.", 422) from None
        if not isinstance(metadata, dict):
            raise InputError(f"The metadata of '{filename}' is not a JSON object: the model is refused.", 422)
        expected = metadata.get("sha256")
        if not expected or sha256_hex(blob) != expected:
            raise InputError(
                f"'{filename}' does not match the SHA-256 recorded in its metadata: the file changed "
                "after training, so it is refused and was not unpickled.",
                status_code=422,
            )
        onnx_bytes = None
        if metadata.get("onnx_file"):
            with contextlib.suppress(FileNotFoundError):  # missing: serve with scikit-learn
                onnx_bytes = (self.directory / self.onnx_name(filename)).read_bytes()
            if onnx_bytes is not None and sha256_hex(onnx_bytes) != metadata.get("onnx_sha256"):
                raise InputError(
                    f"The ONNX file of '{filename}' does not match the SHA-256 recorded in its metadata: "
                    "the model is refused.",
                    status_code=422,
                )
        profile = self._profile(filename, metadata)
        typed = ModelMetadata.from_dict(metadata, filename)  # refuses what training cannot have written
        estimator = pickle.loads(blob)
        return StoredModel(estimator, typed, self.path_of(filename), onnx_bytes, profile)

    def _profile(self, filename: str, metadata: dict[str, Any]) -> dict[str, Any] | None:
        """The model's reference profile, when its metadata names one; missing or altered: no drift, not refused."""
        if not metadata.get("profile_file"):
            return None
        try:
            data = (self.directory / self.profile_name(filename)).read_bytes()
            if sha256_hex(data) != metadata.get("profile_sha256"):
                return None
            profile = json.loads(data)
        except (OSError, ValueError):
            return None
        return profile if isinstance(profile, dict) else None

    def holds(self, filename: str, sha256: str, metadata_sha256: str) -> bool:
        """Whether the folder holds `filename` and its metadata with these SHA-256s, and the ONNX file the
        and profile files the metadata names with their recorded hashes (a complete cache entry; anything less
        is fetched again)."""
        try:
            metadata_bytes = (self.directory / self.metadata_name(filename)).read_bytes()
            if (
                sha256_hex(metadata_bytes) != metadata_sha256
                or sha256_hex((self.directory / filename).read_bytes()) != sha256
            ):
                return False
            metadata = json.loads(metadata_bytes)
            for key, name in (("onnx", self.onnx_name(filename)), ("profile", self.profile_name(filename))):
                if metadata.get(f"{key}_file") and sha256_hex((self.directory / name).read_bytes()) != metadata.get(
                    f"{key}_sha256"
                ):
                    return False
            return True
        except (OSError, ValueError, AttributeError):
            return False

    def adopt(self, folder: Path, filename: str, sha256: str, metadata_sha256: str) -> None:
        """Move a downloaded model's files from `folder` (inside this folder) into place.

        The pkl and the metadata must have the SHA-256s their registered version records (the metadata
        pins the ONNX file's hash, checked when the model is loaded); the metadata moves last, so a
        model is listed only once complete.
        """
        if not _MODEL_FILE.match(filename):
            raise InputError(f"'{filename[:200]}' is not a model file of this platform.", 422)
        pkl, metadata = folder / filename, folder / self.metadata_name(filename)
        if not pkl.is_file() or not metadata.is_file():
            raise InputError(f"The registry's copy of '{filename}' lacks the model file or its metadata.", 422)
        for path, expected in ((pkl, sha256), (metadata, metadata_sha256)):
            if sha256_hex(path.read_bytes()) != expected:
                raise InputError(
                    f"The registry's copy of '{path.name}' does not match the SHA-256 its version records: the "
                    "artifact changed after training, so the model is refused and was not unpickled.",
                    422,
                )
        for name in (*self._extra_names(filename), filename, self.metadata_name(filename)):
            if (folder / name).is_file():
                os.replace(folder / name, self.directory / name)

    def current(self) -> tuple[str | None, str | None]:
        """The model file this folder served last, and its registered version (None if unknown)."""
        try:
            data = json.loads((self.directory / CURRENT_POINTER).read_text())
            version = data.get("version")
            return str(data["model_file"]), str(version) if version is not None else None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None, None

    def current_filename(self) -> str | None:
        return self.current()[0]

    def set_current(self, filename: str, version: str | None = None) -> None:
        pointer = {"model_file": filename, "version": version}
        atomic_write(self.directory / CURRENT_POINTER, json.dumps(pointer).encode())
