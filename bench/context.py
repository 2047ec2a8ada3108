"""What the goals share: the settings, the servers, what was learnt so far, and the rows and notes."""

from __future__ import annotations

import pickle
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import servers
from bench.config import Config
from bench.console import log
from bench.report import Row
from bench.servers import Server
from bench.wrk import WrkResult


@dataclass
class TrainedModel:
    """The model the training goal left on our server, as its response described it."""

    uri: str | None  # model_metadata.mlflow_model_uri, what the anchor serves
    class_names: list[str]
    feature_names: list[str]
    file: Path

    def load_estimator(self) -> Any:
        with open(self.file, "rb") as handle:
            return pickle.load(handle)  # the model this run just trained, in our own temp dir


class Context:
    def __init__(self, cfg: Config, keep: bool = False):
        self.cfg = cfg
        self.keep = keep
        self.rows: list[Row] = []
        self.notes: list[str] = []
        self.details: list[str] = []
        self.servers: list[Server] = []  # started and not yet stopped
        self.tmpdirs: list[Path] = []
        self.health_warnings: set[str] = set()
        # Filled in by the goals as they go.
        self.workdir: Path | None = None
        self.ours: Server | None = None
        self.anchor: Server | None = None
        self.startup_s: float | None = None
        self.anchor_startup_s: float | None = None
        self.anchor_rps16: float | None = None  # mlflow models serve at 16 connections (goal 1)
        self.our_p50_1: float | None = None  # ms, our /predict at 1 connection (goal 1): the edge guard's anchor
        self.model: TrainedModel | None = None
        self.our_predict_runs: list[WrkResult] = []  # every wrk run against our /predict
        self.extra_predict_ok = 0  # /predict calls the bench made itself that answered 2xx
        self.batch_streams = False  # a 1,000,000-row answer came back truncated

    # what the later goals need from the earlier ones

    def our_server(self) -> Server:
        if self.ours is None:
            raise RuntimeError("our server was not started")
        return self.ours

    def work(self) -> Path:
        if self.workdir is None:
            raise RuntimeError("no working directory yet")
        return self.workdir

    def trained(self) -> TrainedModel:
        if self.model is None:
            raise RuntimeError("no model was trained")
        return self.model

    # output

    def note(self, text: str) -> None:
        log("NOTE: " + text)
        self.notes.append(text)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        log(
            f"  -> [{row.goal}] {row.what}: ours {row.ours} | anchor {row.anchor} | {row.ratio} | "
            f"goal {row.target} | {row.result}"
        )

    # temporary directories and servers

    def mkdtemp(self, prefix: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=prefix))
        self.tmpdirs.append(path)
        return path

    def launch(self, server: Server) -> Server:
        self.servers.append(server)  # registered first, so cleanup stops it even if start fails
        server.start()
        return server

    def stop_server(self, server: Server | None) -> None:
        if server is None:
            return
        log(f"stopping {server.name}")
        server.stop()
        if server in self.servers:
            self.servers.remove(server)

    def check_server_log(self, server: Server) -> None:
        for text in servers.log_findings(server, self.keep):
            self.note(text)

    def cleanup(self) -> None:
        for server in list(self.servers):
            try:
                self.stop_server(server)
            except Exception as exc:
                log(f"could not stop {server.name}: {exc}")
        for path in self.tmpdirs:
            if self.keep:
                log(f"kept {path}")
            else:
                shutil.rmtree(path, ignore_errors=True)

    # our server's tracking backlog

    def health(self, timeout: float = 5.0) -> dict[str, Any] | None:
        return servers.health(self.our_server(), timeout)

    def pending(self, timeout: float = 5.0) -> tuple[bool, int | None]:
        return servers.pending(self.our_server(), self.health_warnings, timeout)

    def wait_drained(self, limit: float) -> float | None:
        return servers.wait_drained(self.our_server(), self.health_warnings, limit)

    def settle(self) -> None:
        """Let the tracking backlog of the previous load clear before the next measurement (bounded)."""
        waited = self.wait_drained(self.cfg.settle_max)
        if waited is None:
            _, count = self.pending()
            self.note(
                f"backlog not cleared within {self.cfg.settle_max:.0f} s between load runs "
                f"(pending_inference_records = {count}); the next run shares the CPU with the writer"
            )
        elif waited > 1:
            log(f"  backlog cleared after {waited:.1f} s")
