"""The background tracking writer: single predictions reach MLflow off the request path.

A prediction's record is appended to an on-disk journal before the caller gets its answer, then
queued for one worker thread that writes it to MLflow and marks it done in the journal. At start-up
the journal's unmarked records are replayed; a record that may already have reached MLflow (the
process died between writing the run and marking it) is looked up by its `prediction_id` first,
so replay never writes a prediction twice.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)

JOURNAL_FILE = "inference_journal.jsonl"
# Rewrite the journal without its finished records once it holds this many lines.
COMPACT_AFTER_LINES = 10_000


class Journal:
    """An append-only file of records and done-marks; what is not marked done survives a crash."""

    def __init__(self, directory: Path, fsync: bool = False):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / JOURNAL_FILE
        self.fsync = fsync
        self._lock = threading.Lock()
        self._pending: dict[str, dict[str, Any]] = {}
        self._lines = 0
        self._fd = -1

    def open(self) -> list[dict[str, Any]]:
        """Read what an earlier process left undone, rewrite the file to just that, and return it."""
        pending: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            with open(self.path, "rb") as handle:
                for raw in handle:
                    try:
                        entry = json.loads(raw)
                    except ValueError:
                        continue  # a line torn by a crash was never acknowledged
                    if "done" in entry:
                        pending.pop(entry["done"], None)
                    elif "record" in entry:
                        pending[entry["record"]["prediction_id"]] = entry["record"]
        with self._lock:
            self._pending = pending
            self._rewrite()
        return list(pending.values())

    def _rewrite(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as handle:
            for record in self._pending.values():
                handle.write(self._line({"record": record}))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self._lines = len(self._pending)

    @staticmethod
    def _line(entry: dict[str, Any]) -> bytes:
        return (json.dumps(entry, separators=(",", ":")) + "\n").encode()

    def _append(self, data: bytes) -> None:
        # One unbuffered write: once it returns, the line outlives a crash of this process.
        os.write(self._fd, data)
        if self.fsync:
            os.fsync(self._fd)
        self._lines += 1

    def append(self, record: dict[str, Any]) -> None:
        data = self._line({"record": record})
        with self._lock:
            self._append(data)
            self._pending[record["prediction_id"]] = record

    def mark_done(self, prediction_id: str) -> None:
        data = self._line({"done": prediction_id})
        with self._lock:
            self._pending.pop(prediction_id, None)
            if not self._pending:
                os.ftruncate(self._fd, 0)  # nothing owed: start the file afresh
                self._lines = 0
            elif self._lines >= COMPACT_AFTER_LINES:
                self._rewrite()
            else:
                self._append(data)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


class TrackingWriter:
    """One worker thread that drains queued inference records into MLflow."""

    def __init__(self, journal: Journal, write: Callable[[dict[str, Any]], Any],
                 already_written: Callable[[dict[str, Any]], bool], retry_seconds: float = 1.0):
        self.journal = journal
        self._write = write
        self._already_written = already_written
        self._retry_seconds = retry_seconds
        self._queue: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    def start(self) -> int:
        """Replay the journal's unfinished records, then start draining; returns how many were replayed."""
        replayed = self.journal.open()
        for record in replayed:
            self._queue.put((record, True))
        self._thread = threading.Thread(target=self._run, name="tracking-writer", daemon=True)
        self._thread.start()
        return len(replayed)

    def submit(self, record: dict[str, Any]) -> None:
        """Journal the record (durable from here on), then queue it for MLflow."""
        self.journal.append(record)
        self._queue.put((record, False))

    @property
    def pending(self) -> int:
        return self.journal.pending

    def stop(self, timeout: float = 30.0) -> None:
        """Flush what is queued (within `timeout`), then stop; anything left stays in the journal."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._stop.set()
            self._thread.join(5)
        self.journal.close()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            record, maybe_written = item
            while not self._stop.is_set():
                try:
                    if not (maybe_written and self._already_written(record)):
                        self._write(record)
                    self.journal.mark_done(record["prediction_id"])
                    self.last_error = None
                    break
                except Exception as exc:  # backend down: keep the record, retry later
                    self.last_error = f"{type(exc).__name__}: {exc}"[:500]
                    log.warning("tracking write failed, will retry: %s", self.last_error)
                    maybe_written = True
                    self._stop.wait(self._retry_seconds)
