"""The models folder: trained models as .pkl files beside their metadata, and which one is current.

A pickle is code, so a model is only ever unpickled from this folder and only when its SHA-256
matches the metadata this platform wrote when it trained it.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import InputError

MODEL_PREFIX = "iris_model_"
METADATA_SUFFIX = "_metadata.json"
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
    metadata: dict[str, Any]
    model_path: str  # as listed by GET /models and logged as `model_path`


class ModelStore:
    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def path_of(self, filename: str) -> str:
        return str(self.directory / filename)

    @staticmethod
    def metadata_name(model_filename: str) -> str:
        return model_filename[: -len(".pkl")] + METADATA_SUFFIX

    def save(self, estimator: Any, metadata: dict[str, Any], stamp: str) -> tuple[str, dict[str, Any], bytes, bytes]:
        """Write `iris_model_<stamp>.pkl` and its metadata; return (filename, metadata, pkl bytes, json bytes)."""
        filename = f"{MODEL_PREFIX}{stamp}.pkl"
        blob = pickle.dumps(estimator, protocol=pickle.HIGHEST_PROTOCOL)
        metadata = {**metadata, "model_file": filename, "sha256": sha256_hex(blob)}
        meta_blob = json.dumps(metadata, indent=2).encode()
        atomic_write(self.directory / filename, blob)
        try:
            atomic_write(self.directory / self.metadata_name(filename), meta_blob)
        except BaseException:
            (self.directory / filename).unlink(missing_ok=True)
            raise
        return filename, metadata, blob, meta_blob

    def remove(self, filename: str) -> None:
        (self.directory / filename).unlink(missing_ok=True)
        (self.directory / self.metadata_name(filename)).unlink(missing_ok=True)

    def list(self) -> list[dict[str, Any]]:
        """Every model of this platform in the folder (a .pkl with its metadata), newest first."""
        entries = []
        for pkl in self.directory.glob(f"{MODEL_PREFIX}*.pkl"):
            meta_path = self.directory / self.metadata_name(pkl.name)
            if not _MODEL_FILE.match(pkl.name) or not meta_path.is_file():
                continue
            try:
                metadata = json.loads(meta_path.read_text())
                stat = pkl.stat()
            except (OSError, ValueError):
                continue
            entries.append(
                {
                    "filename": pkl.name,
                    "path": self.path_of(pkl.name),
                    "size_kb": round(stat.st_size / 1024, 1),
                    "modified": datetime.fromtimestamp(stat.st_mtime, timezone.utc).isoformat(),
                    "metadata": metadata,
                }
            )
        entries.sort(key=lambda e: (e["metadata"].get("training_timestamp", ""), e["filename"]), reverse=True)
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
            raise InputError(f"Model '{filename}' or its metadata is missing from the models folder.", 404)
        except ValueError:
            raise InputError(f"The metadata of '{filename}' is not valid JSON: the model is refused.", 422)
        expected = metadata.get("sha256")
        if not expected or sha256_hex(blob) != expected:
            raise InputError(
                f"'{filename}' does not match the SHA-256 recorded in its metadata: the file changed "
                "after training, so it is refused and was not unpickled.",
                status_code=422,
            )
        estimator = pickle.loads(blob)
        return StoredModel(estimator=estimator, metadata=metadata, model_path=self.path_of(filename))

    def current_filename(self) -> str | None:
        try:
            return json.loads((self.directory / CURRENT_POINTER).read_text())["model_file"]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def set_current(self, filename: str) -> None:
        atomic_write(self.directory / CURRENT_POINTER, json.dumps({"model_file": filename}).encode())
