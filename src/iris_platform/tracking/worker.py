"""The tracking worker: a separate process that turns journaled prediction records into MLflow runs.

It runs in its own process so that MLflow's work (SQLAlchemy, serialisation) never holds the
serving process's GIL. While it keeps up it writes one `single_prediction_<timestamp>` run per
record. When more than `window_threshold` records are waiting, it writes them as one
`single_window` run per window of up to `window_max` records (same statistics as a batch run, and
an artifact listing every record), which catches up however fast predictions arrive.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import multiprocessing
import os
import time
from dataclasses import dataclass
from multiprocessing.context import SpawnContext
from multiprocessing.process import BaseProcess
from multiprocessing.sharedctypes import SynchronizedString
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any, cast

from iris_platform import metrics
from iris_platform.errors import StartupRefused
from iris_platform.redaction import describe, redact_logs
from iris_platform.tracking.journal import JournalAppender, JournalReader, find_record, segment_numbers
from iris_platform.tracking.monitoring import MonitorConfig
from iris_platform.tracking.records import FeedbackRecord, InferenceRecord, JournalRecord, is_feedback

log = logging.getLogger(__name__)

LOCK_FILE = "worker.lock"
# Held by the serving process for as long as it runs: one serving process per journal.
SERVER_LOCK_FILE = "server.lock"
# Each serving process journals to a journal of its own: the folder itself, else `p1`, `p2`... in it.
SLOT_PREFIX = "p"
MAX_SLOTS = 256
WORKER_NICENESS = 10

_ERROR_BYTES = 500


class JournalInUse(StartupRefused):
    """Every journal of the folder is held by a running process."""


def slot_dirs(journal_dir: Path) -> list[Path]:
    """Every journal of the folder: the folder itself, then its `p<N>` sub-journals in order."""
    subs = [p for p in journal_dir.glob(f"{SLOT_PREFIX}*") if p.is_dir() and p.name[len(SLOT_PREFIX) :].isdigit()]
    return [journal_dir, *sorted(subs, key=lambda p: int(p.name[len(SLOT_PREFIX) :]))]


def _try_lock(directory: Path) -> int:
    """The journal's server lock, taken without waiting; -1 when a running process holds it."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / SERVER_LOCK_FILE, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return -1
    return fd


def unwritten(directory: Path) -> int:
    """Records in a journal's segments after its checkpoint (counted on disk)."""
    return JournalReader(directory).count_before(2**62)


@dataclass(frozen=True)
class WorkerConfig:
    tracking_uri: str
    journal_dir: Path
    window_threshold: int
    window_max: int
    # In window mode, at most one window run per this many seconds (unless a window fills up):
    # fewer, larger runs leave the CPU to the server.
    window_seconds: float = 1.0
    retry_seconds: float = 1.0
    poll_seconds: float = 0.05
    monitor: MonitorConfig = MonitorConfig()


class SharedState:
    """Counters the worker publishes and the server reads, in shared memory."""

    def __init__(self, ctx: SpawnContext):
        self.done = ctx.Value("q", 0)  # records in MLflow, this worker's lifetime
        self.single_runs = ctx.Value("q", 0)
        self.window_runs = ctx.Value("q", 0)
        self.feedback_runs = ctx.Value("q", 0)
        self.drift_runs = ctx.Value("q", 0)
        # Records the worker's run started with (after the checkpoint, before `first_segment`): the
        # server's estimate at spawn, then the worker's own count once it holds the journal lock (an
        # orphaned worker of a crashed server may have written some of them in between).
        self.backlog = ctx.Value("q", 0)
        # The newest segment the server appends to: the worker reads no further.
        self.segment = ctx.Value("q", 0)
        self.error: SynchronizedString = ctx.Array("c", _ERROR_BYTES)  # type: ignore[assignment]  # "c": a string

    def set_error(self, message: str | None) -> None:
        self.error.value = (message or "").encode("utf-8", "replace")[: _ERROR_BYTES - 1]


def _model_of(record: JournalRecord) -> tuple[str, str | None, bool]:
    return record.get("model_path") or "", record.get("model_version"), is_feedback(record)


def _unit_size(records: list[JournalRecord], threshold: int) -> tuple[str, int]:
    """What to write next: one single run, one window of predictions of the same model, or the labels
    for one version that follow one another."""
    feedback = is_feedback(records[0])
    if len(records) <= threshold and not feedback:
        return "single", 1
    model = _model_of(records[0])
    size = 1
    while size < len(records) and _model_of(records[size]) == model:
        size += 1
    return ("feedback" if feedback else "window"), size


def _yield_cpu(pid: int | None) -> None:
    """Serving comes first: on a busy machine the worker waits, not the requests. Set by the server as
    soon as the worker is spawned, so that its imports (a second of CPU) also leave the server's start-up
    and the training process to go first."""
    if pid is None:  # not started
        return
    with contextlib.suppress(OSError):  # it is already more than nice, or has exited
        if os.getpriority(os.PRIO_PROCESS, pid) < WORKER_NICENESS:
            os.setpriority(os.PRIO_PROCESS, pid, WORKER_NICENESS)


def run_worker(config: WorkerConfig, shared: SharedState, stop: Event, parent_pid: int, first_segment: int) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s tracking-worker: %(message)s")
    redact_logs()
    config.journal_dir.mkdir(parents=True, exist_ok=True)
    _yield_cpu(os.getpid())  # if the server could not
    # One worker per journal: a worker orphaned by a crashed server finishes before the next starts.
    with open(config.journal_dir / LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _drain(config, shared, stop, parent_pid, first_segment)


def _drain(config: WorkerConfig, shared: SharedState, stop: Event, parent_pid: int, first_segment: int) -> None:
    # Imported here: the worker is a spawned process, and only it writes prediction runs.
    from iris_platform.tracking.prediction_runs import PredictionRunWriter
    from iris_platform.tracking.store import TrackingStore

    reader = JournalReader(config.journal_dir)
    shared.backlog.value = reader.count_before(first_segment)  # exact now: no other worker runs
    store = TrackingStore(config.tracking_uri)
    runs = PredictionRunWriter(store, config.monitor)
    verify = True  # the first unit after a start or a failure may already be in MLflow
    last_window = 0.0
    while True:
        stopping = stop.is_set() or os.getppid() != parent_pid
        reader.all_final = stopping
        reader.last_segment = shared.segment.value
        records = reader.peek(config.window_max)
        if not records:
            if stopping:
                runs.alerts.close()  # alerts still queued for the webhook get their chance
                return
            time.sleep(config.poll_seconds)
            continue
        try:
            written = 0
            if verify:
                written = runs.written_unit_size(records[0])
                verify = False
            if not written:
                kind, size = _unit_size(records, config.window_threshold)
                wait = last_window + config.window_seconds - time.monotonic()
                if kind == "window" and size < config.window_max and wait > 0 and not stopping:
                    time.sleep(min(wait, config.poll_seconds * 4))  # let the window fill
                    continue
                unit = records[:size]
                started = time.perf_counter()
                if kind == "single":
                    runs.write_single(cast(InferenceRecord, unit[0]))
                    counter = shared.single_runs
                elif kind == "feedback":
                    runs.write_feedback(cast(list[FeedbackRecord], unit))
                    counter = shared.feedback_runs
                else:
                    runs.write_window(cast(list[InferenceRecord], unit))
                    counter = shared.window_runs
                    last_window = time.monotonic()
                metrics.observe_tracking_write(kind, time.perf_counter() - started)
                with counter.get_lock():
                    counter.value += 1
                written = size
            reader.commit(written)
            with shared.done.get_lock():
                shared.done.value += written
            started = time.perf_counter()
            if runs.flush_drift_windows():
                metrics.observe_tracking_write("drift", time.perf_counter() - started)
                with shared.drift_runs.get_lock():
                    shared.drift_runs.value += 1
            shared.set_error(None)
        except Exception as exc:  # tracking store down or refusing: keep the records, retry
            verify = True
            store.reset_connections()  # else a connection opened during the outage may keep failing
            shared.set_error(describe(exc))  # credentials masked, as /health shows it
            log.warning("writing to MLflow failed, retrying in %.1fs: %s", config.retry_seconds, exc)
            if stopping:
                return  # shutting down (or orphaned): the journal keeps the records for the next start
            time.sleep(config.retry_seconds)


class TrackingWriter:
    """The serving side: journals each record and keeps one tracking worker process running.

    Every serving process (several with `--workers N`, or two servers started in one folder) holds a
    journal of its own, so no process waits on another's; a journal whose process died is drained by
    the next process that claims it, or adopted by a running one.
    """

    def __init__(self, config: WorkerConfig, fsync: bool = False):
        self.folder = config.journal_dir
        self.config = config
        self.fsync = fsync
        self.journal = JournalAppender(config.journal_dir, fsync=fsync)
        self._ctx = multiprocessing.get_context("spawn")
        self._shared = SharedState(self._ctx)
        self._stop = self._ctx.Event()
        self._process: BaseProcess | None = None
        self._segment = 0  # the newest segment told to the worker
        self._server_lock = -1
        self._adopted: list[tuple[Path, BaseProcess, int]] = []  # orphaned journals being drained

    def claim_journal(self) -> None:
        """Hold the first journal of the folder no running process holds (the folder itself, else `p<N>`)."""
        if self._server_lock >= 0:
            return
        for index in range(MAX_SLOTS):
            directory = self.folder if index == 0 else self.folder / f"{SLOT_PREFIX}{index}"
            fd = _try_lock(directory)
            if fd >= 0:
                self._server_lock = fd
                self.config = dataclasses.replace(self.config, journal_dir=directory)
                self.journal = JournalAppender(directory, fsync=self.fsync)
                return
        raise JournalInUse(
            f"All {MAX_SLOTS} journals of {self.folder} are held by running processes: set IRIS_JOURNAL_DIR "
            "to another folder, or stop some of them."
        )

    def start(self) -> None:
        self.claim_journal()
        self._spawn(self.journal.open())
        self.adopt_orphans()

    def adopt_orphans(self) -> None:
        """Drain the journals that hold records but no running process (their process died, or the server
        restarted with fewer workers): one worker each, which writes them and exits."""
        for directory in slot_dirs(self.folder):
            if directory == self.config.journal_dir or any(d == directory for d, _, _ in self._adopted):
                continue
            fd = _try_lock(directory)
            if fd < 0:
                continue
            if not unwritten(directory):
                os.close(fd)
                continue
            config = dataclasses.replace(self.config, journal_dir=directory)
            stop = self._ctx.Event()
            stop.set()  # drain what is there, then exit
            numbers = segment_numbers(directory)
            first_segment = (numbers[-1] + 1) if numbers else 1
            shared = SharedState(self._ctx)
            shared.segment.value = first_segment
            process = self._ctx.Process(
                target=run_worker,
                args=(config, shared, stop, os.getpid(), first_segment),
                name="iris-tracking-adopted",
                daemon=True,
            )
            process.start()
            _yield_cpu(process.pid)
            log.info("draining the journal %s left by a stopped process", directory)
            self._adopted.append((directory, process, fd))

    def _release_adopted(self) -> None:
        for entry in list(self._adopted):
            _, process, fd = entry
            if not process.is_alive():
                os.close(fd)
                self._adopted.remove(entry)

    def journals(self) -> list[dict[str, Any]]:
        """Every journal of the folder: the records it still owes MLflow, and whether this process writes it."""
        self._release_adopted()
        out = []
        for directory in slot_dirs(self.folder):
            own = directory == self.config.journal_dir
            try:
                pending = self.pending if own else unwritten(directory)
            except OSError:
                pending = 0  # removed while being read
            out.append({"journal": str(directory), "pending": pending, "this_process": own})
        return out

    def _spawn(self, first_segment: int) -> None:
        """A worker for the records after the checkpoint; the server appends from `first_segment` on."""
        self._shared.segment.value = self._segment = first_segment
        # An estimate (records an earlier process or worker left unwritten) until the worker counts.
        self._shared.backlog.value = JournalReader(self.config.journal_dir).count_before(first_segment)
        self._shared.done.value = 0
        self._process = self._ctx.Process(
            target=run_worker,
            args=(self.config, self._shared, self._stop, os.getpid(), first_segment),
            name="iris-tracking-worker",
            daemon=True,
        )
        self._process.start()
        _yield_cpu(self._process.pid)

    def ensure_running(self) -> None:
        """Restart the worker if it died; the journal still holds every record it had not written."""
        if self._process is not None and not self._process.is_alive() and not self._stop.is_set():
            log.warning("tracking worker exited (code %s); restarting it", self._process.exitcode)
            # Count afresh: everything before a new segment is the new worker's backlog.
            self._spawn(self.journal.rotate())
        if not self._stop.is_set():
            self.adopt_orphans()  # a sibling process that died and was not replaced

    def submit(self, record: JournalRecord) -> None:
        self.journal.append(record)
        if self.journal.segment != self._segment:  # rotated past SEGMENT_BYTES: the worker may read on
            self._shared.segment.value = self._segment = self.journal.segment

    def find_unwritten(self, prediction_id: str) -> InferenceRecord | None:
        """A prediction's record while it waits in a journal of the folder (any process's) for MLflow."""
        return find_record(slot_dirs(self.folder), prediction_id)

    @property
    def pending(self) -> int:
        """Records journaled but not yet in MLflow."""
        return max(0, self._shared.backlog.value + self.journal.appended - self._shared.done.value)

    @property
    def last_error(self) -> str | None:
        return self._shared.error.value.decode("utf-8", "replace") or None

    def stats(self) -> dict[str, Any]:
        return {
            "single_runs": self._shared.single_runs.value,
            "window_runs": self._shared.window_runs.value,
            "feedback_runs": self._shared.feedback_runs.value,
            "drift_runs": self._shared.drift_runs.value,
            "worker_alive": bool(self._process and self._process.is_alive()),
        }

    def stop(self, timeout: float = 30.0) -> None:
        """Stop appending, let the worker write what is journaled (within `timeout`), then stop it."""
        self.journal.close()
        self._stop.set()
        if self._process is not None:
            self._process.join(timeout)
            if self._process.is_alive():
                log.warning("tracking worker still busy after %.0fs; the journal keeps the rest", timeout)
                self._process.terminate()
                self._process.join(5)
        for _, process, _ in self._adopted:
            process.join(max(1.0, timeout / 2))
        self._release_adopted()
        if self._server_lock >= 0:
            os.close(self._server_lock)  # releases the journal for the next process
            self._server_lock = -1
