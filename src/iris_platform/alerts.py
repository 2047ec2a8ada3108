"""Alerts leaving the platform: a JSON POST to IRIS_ALERT_WEBHOOK for every alert, from a thread of its own.

The alert is already recorded in MLflow (tags on the run that raised it) before it is sent, so a
receiver that is down or slow costs only its own delivery: `send` never blocks, each delivery is
retried a bounded number of times, and when the queue is full the alert is dropped with a log line.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from typing import Any

log = logging.getLogger(__name__)

ATTEMPTS = 4  # the first try and three retries
BACKOFF_S = (0.5, 1.0, 2.0)
TIMEOUT_S = 3.0
QUEUE_SIZE = 1000


class AlertSender:
    def __init__(self, url: str | None, *, timeout_s: float = TIMEOUT_S, backoff_s: tuple[float, ...] = BACKOFF_S):
        self.url = url
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self.delivered = 0
        self.failed = 0
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def send(self, alert: dict[str, Any]) -> None:
        """Queue `alert` for the webhook; returns at once (nothing to do without a webhook)."""
        if not self.url:
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._deliver_all, name="iris-alert-webhook", daemon=True)
                self._thread.start()
        try:
            self._queue.put_nowait(alert)
        except queue.Full:
            self.failed += 1
            log.warning("alert webhook queue full: alert %s not sent (it stays recorded in MLflow)", alert.get("kind"))

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued within `timeout` seconds, then stop the thread."""
        thread = self._thread
        if thread is None:
            return
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        thread.join(timeout)

    def _deliver_all(self) -> None:
        while True:
            alert = self._queue.get()
            if alert is None:
                return
            if self._deliver(alert):
                self.delivered += 1
            else:
                self.failed += 1

    def _deliver(self, alert: dict[str, Any]) -> bool:
        assert self.url
        body = json.dumps(alert).encode()
        for attempt in range(ATTEMPTS):
            request = urllib.request.Request(  # noqa: S310 (the operator's own URL)
                self.url, data=body, method="POST", headers={"content-type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:  # noqa: S310
                    if 200 <= answer.status < 300:
                        return True
                    error = f"HTTP {answer.status}"
            except urllib.error.HTTPError as exc:
                error = f"HTTP {exc.code}"
                if 400 <= exc.code < 500 and exc.code not in (408, 429):
                    break  # the receiver refuses this alert: retrying changes nothing
            except (OSError, ValueError) as exc:
                error = str(exc)
            if attempt < ATTEMPTS - 1:
                time.sleep(self.backoff_s[min(attempt, len(self.backoff_s) - 1)])
        log.warning(
            "alert webhook failed after %d tries (%s): %s alert not delivered; it stays recorded in MLflow",
            attempt + 1,
            error,
            alert.get("kind"),
        )
        return False
