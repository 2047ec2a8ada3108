"""Issue 11: what the cross-site guard (Host and origin checks) adds to every request, against /predict.

The guard cannot be switched off in a server, so its cost is measured where it runs: in this process,
the guard with the server's default settings in front of an ASGI app that answers nothing, against
that app alone, on the headers a /predict carries (wrk's, and a browser page's with `Origin` and
`Sec-Fetch-Site`). The anchor is the /predict p50 at one connection measured in this run (goal 1).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.console import log
from bench.context import Context
from bench.report import Row, median, verdict

CALLS = 50_000
REPEATS = 7
SHARE_LIMIT = 0.02  # of a /predict: well inside the run-to-run noise of the load rows
WRK_HEADERS = [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"), (b"content-length", b"82")]
BROWSER_HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) Chrome/142.0"),
    (b"accept", b"*/*"),
    (b"content-type", b"application/json"),
    (b"content-length", b"82"),
    (b"origin", b"http://127.0.0.1:8000"),
    (b"sec-fetch-site", b"same-origin"),
    (b"sec-fetch-mode", b"cors"),
    (b"referer", b"http://127.0.0.1:8000/"),
]


async def _nothing(scope: Any, receive: Any, send: Any) -> None:
    return None


async def _time_calls(app: Any, headers: list[tuple[bytes, bytes]]) -> float:
    """Seconds per call of `app` on a POST /predict scope."""
    scope = {"type": "http", "method": "POST", "path": "/predict", "root_path": "", "headers": headers}
    start = time.perf_counter()
    for _ in range(CALLS):
        await app(scope, None, None)
    return (time.perf_counter() - start) / CALLS


def _cost_us(headers: list[tuple[bytes, bytes]]) -> float | None:
    from iris_platform.api.middleware.cross_site import CrossSiteGuard
    from iris_platform.web_origins import AllowedHosts, AllowedOrigins

    guard = CrossSiteGuard(_nothing, AllowedHosts.from_setting((), bind_host="127.0.0.1"), AllowedOrigins(()))
    differences = []
    for _ in range(REPEATS):  # alternated, so a change in the machine's load hits both
        bare = asyncio.run(_time_calls(_nothing, headers))
        guarded = asyncio.run(_time_calls(guard, headers))
        differences.append((guarded - bare) * 1e6)
    return median(differences)


def run(ctx: Context) -> None:
    log(f"edge guard: {CALLS:,} calls × {REPEATS}, with and without the cross-site guard")
    wrk_us, browser_us = _cost_us(WRK_HEADERS), _cost_us(BROWSER_HEADERS)
    p50_ms = ctx.our_p50_1
    worst = max(wrk_us or 0.0, browser_us or 0.0)
    share = None if not p50_ms else worst / 1000 / p50_ms
    ctx.add(
        Row(
            "11",
            "cross-site guard per request (Host and origin checks, in process, median of "
            f"{REPEATS}×{CALLS:,}): wrk's headers / a browser page's; share of /predict p50 at 1 connection",
            f"{wrk_us:.2f} µs / {browser_us:.2f} µs" if wrk_us is not None and browser_us is not None else "n/a",
            "—" if not p50_ms else f"/predict p50 {p50_ms * 1000:.0f} µs",
            "n/a" if share is None else f"{share:.1%}",
            f"≤ {SHARE_LIMIT:.0%} of a /predict",
            verdict(None if share is None else share <= SHARE_LIMIT),
        )
    )
