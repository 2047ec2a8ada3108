"""Trainings in a process of their own, spawned before the server's own imports and warmed meanwhile.

The first training after start-up otherwise pays about 1.5 s of one-time work after /health answers
(importing scikit-learn, skl2onnx and skops, MLflow's first model save), on the core the server runs
on. Spawned first, this process pays it on the other core while the server starts; its trainings also
leave the server's GIL to the requests it serves. The server sends a training's request here, then
loads the model it saved and serves it (IrisService.train).

Only this module's `_start` and `_train` run in the training process, with a Trainer of their own on
the same tracking store, models folder and registry.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import pickle
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any

from iris_platform.config import Settings
from iris_platform.errors import InputError
from iris_platform.redaction import describe, redact_logs

if TYPE_CHECKING:  # imported in the training process only: the server spawns it before its own imports
    from iris_platform.trainer import Trainer

log = logging.getLogger(__name__)
LOG_FORMAT = "%(asctime)s %(levelname)s training-process[%(process)d]: %(message)s"
PARENT_POLL_S = 1.0
_SPAWN = multiprocessing.get_context("spawn")  # no fork of a process that runs threads
RUN_ID_BYTES = 64  # an MLflow run id is 32 hex digits
_trainer: Trainer | None = None  # in the training process: the trainer that runs there


class TrainingProcessLost(InputError):
    run_id: str | None = None  # the run the training had open, which the server ends FAILED

    def __init__(self, cause: str, run_id: str | None = None):
        super().__init__(
            f"The training process stopped before it answered ({cause}); a new one has been started: "
            "send the training again.",
            status_code=503,
        )
        self.run_id = run_id


class TrainingProcess:
    """One process, spawned at once, that runs one training at a time (Trainer.train)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._lock = threading.Lock()
        self._closed = False
        # The run a training has open in the process (written there, read here once it has died).
        self._open_run = _SPAWN.RawArray("c", RUN_ID_BYTES)
        self._pool = self._spawn()

    def _spawn(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=_SPAWN,
            initializer=_start,
            initargs=(self.settings, os.getpid(), self._open_run),
        )
        pool.submit(int)  # the pool spawns on its first task: now, so that it warms up while the server starts
        return pool

    def train(self, request: dict[str, Any]) -> dict[str, Any]:
        """The training's answer, as Trainer.train gives it; its errors raised here as they were there."""
        with self._lock:
            pool = self._pool
        try:
            answer: dict[str, Any] = pool.submit(_train, request).result()
        except BrokenProcessPool as exc:
            with self._lock:
                run_id = self._open_run.value.decode() or None
                if self._pool is pool and not self._closed:
                    pool.shutdown(wait=False)
                    self._open_run.value = b""
                    self._pool = self._spawn()
            log.warning("the training process stopped: %s; a new one was started", exc)
            raise TrainingProcessLost(describe(exc), run_id) from exc
        return answer

    def pid(self) -> int:
        """The training process's id (it answers after its warm-up and any training queued before)."""
        with self._lock:
            pool = self._pool
        return pool.submit(os.getpid).result()

    def close(self) -> None:
        """Let a training in progress end, then stop the process (a second call does nothing)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)


# -- in the training process ---------------------------------------------------------------------


def _start(settings: Settings, server_pid: int, open_run: Any) -> None:
    gc.disable()  # while the imports and the warm-up build what lives as long as the process (server.main)
    # The server decides when this process ends: a Ctrl-C or a SIGTERM sent to the whole process group
    # must not kill a training the server still waits for. If the server dies, so does this process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_exit_with, args=(server_pid,), name="iris-parent-watch", daemon=True).start()
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    redact_logs()
    from iris_platform.ml.model_store import ModelStore
    from iris_platform.tracking.registry import ModelRegistry
    from iris_platform.tracking.store import TrackingStore
    from iris_platform.trainer import Trainer

    global _trainer
    tracking = TrackingStore(settings.tracking_uri)
    registry = ModelRegistry(tracking, settings.registered_model)
    _trainer = Trainer(settings, tracking, ModelStore(settings.models_dir), registry, model_lock=threading.Lock())

    def tell(run_id: str) -> None:
        open_run.value = run_id.encode()[:RUN_ID_BYTES]

    _trainer.on_run = tell
    started = time.perf_counter()
    try:
        Trainer.warm_up()
    except Exception:  # only a head start: the first training then pays its own way
        log.warning("warming up the training path failed", exc_info=True)
    try:  # the server has made the store's schema by now (or waits for it: TrackingStore.client's lock)
        _trainer.runs.store.ensure_experiments()
    except Exception as exc:  # down: the first training says so, as in the server
        log.warning("the tracking store is not reachable yet: %s", describe(exc))
    log.info("ready: the training path warmed up in %.1f s", time.perf_counter() - started)
    gc.freeze()  # what the imports made lives as long as the process: no full collection walks it again
    gc.enable()


def _exit_with(server_pid: int) -> None:
    """End this process, mid-training too, once the server that spawned it is gone (as an in-process
    training would end with it): it would otherwise train and promote for no one."""
    while os.getppid() == server_pid:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def _train(request: dict[str, Any]) -> dict[str, Any]:
    assert _trainer is not None, "the training process has not started"
    try:
        return _trainer.train(**request)
    except Exception as exc:
        raise _portable(exc) from None


def _portable(exc: Exception) -> Exception:
    """`exc` as the server can receive it: itself when it pickles whole, else the same kind of error
    (a tracking store's error stays one, so it is answered 503 as in process)."""
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError

    tracking_error = isinstance(exc, MlflowException | SQLAlchemyError)
    if tracking_error:
        assert _trainer is not None
        _trainer.runs.store.reset_connections()  # as the server does after a tracking error of its own
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        if tracking_error:
            return MlflowException(describe(exc))
        return RuntimeError(f"{type(exc).__name__}: {exc}")
