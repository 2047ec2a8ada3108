"""Serving the registry's champion: fetch a version's files into the models folder, check them, swap.

Every replica runs a `ChampionFollower`: every IRIS_MODEL_POLL_S seconds it asks the registry which
version `champion` names, and when that is not the version serving here it downloads the version's
files (unless the models folder, a cache, holds them already), verifies their SHA-256 against the
version's tags, runs the ONNX parity check on this machine, and swaps the model whole.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable

from iris_platform.ml.inference import Predictor, compiled_predictor, training_bounds
from iris_platform.ml.model_store import ModelStore
from iris_platform.redaction import describe
from iris_platform.tracking.registry import ModelRegistry

log = logging.getLogger(__name__)


def fetch_version(registry: ModelRegistry, store: ModelStore, version: str) -> Predictor:
    """The version's model, ready to serve: from the cache or downloaded, verified and parity-checked."""
    files = registry.version_files(version)
    if not store.holds(files.model_file, files.sha256, files.metadata_sha256):
        folder = registry.download(version, store.directory)
        try:
            store.adopt(folder, files.model_file, files.sha256, files.metadata_sha256)
        finally:
            shutil.rmtree(folder.parent, ignore_errors=True)  # the download's own temporary folder
    stored = store.load(files.model_file)  # checks the metadata's SHA-256 before unpickling
    if stored.metadata.sha256 != files.sha256:
        raise RuntimeError(f"{files.model_file} in the models folder is not version {version}'s file")
    predictor, _ = compiled_predictor(stored, training_bounds(stored))
    predictor.version = version
    return predictor


class ChampionFollower:
    """A thread that keeps this process serving the version `champion` names."""

    def __init__(
        self,
        registry: ModelRegistry,
        store: ModelStore,
        *,
        poll_s: float,
        serving_version: Callable[[], str | None],
        swap: Callable[[Predictor], None],
        lock: threading.Lock,
    ):
        self.registry = registry
        self.store = store
        self.poll_s = poll_s
        self._serving_version = serving_version
        self._swap = swap
        self._lock = lock  # also held by training, load_model and rollback while they move the alias
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="iris-champion-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.check()
            self._stop.wait(self.poll_s)

    def check(self) -> str | None:
        """One look at the registry; swaps when `champion` moved. Returns the champion seen (None on error)."""
        try:
            with self._lock:
                champion = self.registry.champion()
                if champion is not None and champion != self._serving_version():
                    predictor = fetch_version(self.registry, self.store, champion)
                    self._swap(predictor)
                    log.info("serving version %s of %s (the champion)", champion, self.registry.name)
            if self.last_error is not None:
                log.info("the model registry answers again")
            self.last_error = None
            return champion
        except Exception as exc:  # registry unreachable, or a version that fails its checks
            message = describe(exc)
            if message != self.last_error:  # log each new error once, not every poll
                log.warning("following the champion of %s failed: %s", self.registry.name, message)
            self.last_error = message
            return None
