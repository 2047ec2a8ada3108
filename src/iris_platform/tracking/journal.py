"""The on-disk journal of single-prediction records, between the server and the tracking worker.

The serving process appends one JSON line per prediction to numbered segment files before it
answers; once `os.write` returns, the record outlives a crash of the process. The tracking worker
(another process) reads the segments in order and, after a record is in MLflow, moves its
checkpoint past it and deletes finished segments. A server start always opens a new segment, so
a line torn by a crash (never acknowledged) can only sit at the end of a finished segment, where
the reader drops it.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import orjson

from iris_platform.tracking.records import InferenceRecord, JournalRecord

SEGMENT_BYTES = 16 * 1024 * 1024
CHECKPOINT_FILE = "checkpoint.json"
_SEGMENT = re.compile(r"^segment-(\d{8})\.jsonl$")
_READ_CHUNK = 4 * 1024 * 1024


def segment_name(number: int) -> str:
    return f"segment-{number:08d}.jsonl"


def segment_numbers(directory: Path) -> list[int]:
    return sorted(int(m.group(1)) for p in directory.iterdir() if (m := _SEGMENT.match(p.name)))


def encode(record: JournalRecord) -> bytes:
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)


def find_record(directories: list[Path], prediction_id: str) -> InferenceRecord | None:
    """The journaled record of a prediction, if a segment of these journals still holds it.

    A lookup, not the worker's read: it scans whole segments (a backlog is at most a few of them)
    and tolerates a segment deleted under it by the worker.
    """
    needle = prediction_id.encode()
    for directory in directories:
        if not directory.is_dir():
            continue
        for number in segment_numbers(directory):
            try:
                data = (directory / segment_name(number)).read_bytes()
            except FileNotFoundError:
                continue  # written to MLflow and removed meanwhile
            at = data.find(needle)
            while at >= 0:
                start, end = data.rfind(b"\n", 0, at) + 1, data.find(b"\n", at)
                if end >= 0:  # a torn last line was never acknowledged
                    try:
                        record = orjson.loads(data[start:end])
                    except orjson.JSONDecodeError:
                        record = None
                    if isinstance(record, dict) and record.get("prediction_id") == prediction_id:
                        return record  # type: ignore[return-value]
                at = data.find(needle, at + 1)
    return None


class JournalAppender:
    """The serving side: appends records, rotating to a new segment past SEGMENT_BYTES."""

    def __init__(self, directory: Path, fsync: bool = False, segment_bytes: int = SEGMENT_BYTES):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._fd = -1
        self._size = 0
        self.first_segment = 0
        self.segment = 0
        self.appended = 0  # records appended by this process

    def open(self) -> int:
        """Start a new segment after every existing one; returns its number."""
        existing = segment_numbers(self.directory)
        self.first_segment = (existing[-1] + 1) if existing else 1
        self._open_segment(self.first_segment)
        return self.first_segment

    def _open_segment(self, number: int) -> None:
        # A new segment is created, never reopened: were another writer ever on this journal, the two
        # would not share a segment.
        while True:
            try:
                fd = os.open(
                    self.directory / segment_name(number), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644
                )
                break
            except FileExistsError:
                number += 1
        if self._fd >= 0:
            os.close(self._fd)
        self._fd, self.segment, self._size = fd, number, 0

    def rotate(self) -> int:
        """Move on to a new segment and count appends from zero; returns the new segment's number."""
        with self._lock:
            self._open_segment(self.segment + 1)
            self.appended = 0
            return self.segment

    def append(self, record: JournalRecord) -> None:
        data = encode(record)
        with self._lock:
            if self._fd < 0:
                raise RuntimeError("the inference journal is closed")
            os.write(self._fd, data)  # one unbuffered write: durable past a crash of this process
            if self.fsync:
                os.fsync(self._fd)
            self.appended += 1
            self._size += len(data)
            if self._size >= self.segment_bytes:
                self._open_segment(self.segment + 1)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


@dataclass(frozen=True)
class Position:
    segment: int
    offset: int


class JournalReader:
    """The worker side: reads records after the checkpoint, in order, and commits progress."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.checkpoint = self._load_checkpoint()
        self._read = self.checkpoint
        self._buffer: deque[tuple[JournalRecord, Position]] = deque()
        # Set when no more records will be appended (the server stopped): the newest segment is final.
        self.all_final = False
        # The newest segment of the server this reader works for: later ones belong to a newer server
        # (started after a crash while this worker was still draining) and are left to its worker.
        self.last_segment: int | None = None

    def _load_checkpoint(self) -> Position:
        try:
            data = json.loads((self.directory / CHECKPOINT_FILE).read_text())
            return Position(int(data["segment"]), int(data["offset"]))
        except (OSError, ValueError, KeyError, TypeError):
            numbers = segment_numbers(self.directory)
            return Position(numbers[0] if numbers else 1, 0)

    def _is_final(self, segment: int) -> bool:
        return self.all_final or self._has_later_segment(segment)

    def _read_more(self, limit: int) -> None:
        while len(self._buffer) < limit:
            path = self.directory / segment_name(self._read.segment)
            final = self._is_final(self._read.segment)  # checked before reading: see module doc
            try:
                with open(path, "rb") as handle:
                    handle.seek(self._read.offset)
                    chunk = handle.read(_READ_CHUNK)
            except FileNotFoundError:
                chunk = b""
            complete = chunk[: chunk.rfind(b"\n") + 1]
            offset = self._read.offset
            for line in complete.splitlines(keepends=True):
                offset += len(line)
                try:
                    record = orjson.loads(line)
                except ValueError:
                    continue  # unreadable: never acknowledged as written
                self._buffer.append((record, Position(self._read.segment, offset)))
            self._read = Position(self._read.segment, offset)
            if len(chunk) == _READ_CHUNK:
                continue  # more of this segment to read
            if final and self._has_later_segment(self._read.segment):  # also skips a missing segment
                self._read = Position(self._next_segment(self._read.segment), 0)
                continue  # a torn tail of a finished segment is dropped with it
            return

    def _later_segments(self, segment: int) -> list[int]:
        limit = self.last_segment
        return [n for n in segment_numbers(self.directory) if n > segment and (limit is None or n <= limit)]

    def _has_later_segment(self, segment: int) -> bool:
        return bool(self._later_segments(segment))

    def _next_segment(self, segment: int) -> int:
        return min(self._later_segments(segment))

    def peek(self, limit: int) -> list[JournalRecord]:
        """Up to `limit` records after the checkpoint, without consuming them."""
        if len(self._buffer) < limit:
            self._read_more(limit)
        return [record for record, _ in list(self._buffer)[:limit]]

    def commit(self, count: int) -> None:
        """The first `count` peeked records are in MLflow: move the checkpoint past them."""
        position = self.checkpoint
        for _ in range(count):
            _, position = self._buffer.popleft()
        self.checkpoint = position
        tmp = self.directory / (CHECKPOINT_FILE + ".tmp")
        tmp.write_text(json.dumps({"segment": position.segment, "offset": position.offset}))
        os.replace(tmp, self.directory / CHECKPOINT_FILE)
        for number in segment_numbers(self.directory):
            if number < position.segment:
                (self.directory / segment_name(number)).unlink(missing_ok=True)

    def count_before(self, segment: int) -> int:
        """Records after the checkpoint in segments older than `segment` (finished ones)."""
        total = 0
        for number in segment_numbers(self.directory):
            if self.checkpoint.segment <= number < segment:
                with open(self.directory / segment_name(number), "rb") as handle:
                    if number == self.checkpoint.segment:
                        handle.seek(self.checkpoint.offset)
                    total += handle.read().count(b"\n")
        return total
