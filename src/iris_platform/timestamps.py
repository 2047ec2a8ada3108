"""Times as the platform writes them: UTC, and the `<timestamp>` part of run and model file names."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def run_stamp(moment: datetime) -> str:
    """The `<timestamp>` part of run names and model file names."""
    return moment.strftime("%Y%m%d_%H%M%S_%f")


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def iso_from_ms(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()
