"""Goal 6: start-up in an empty directory, against `mlflow models serve` (timed by the load goal)."""

from __future__ import annotations

from bench.console import log
from bench.context import Context
from bench.report import Row, faster, fmt_s, verdict
from bench.servers import our_server


def run(ctx: Context) -> None:
    log("goal 6: starting our server in an empty directory")
    ctx.workdir = ctx.mkdtemp("iris-bench-")
    ctx.ours = ctx.launch(our_server(ctx.workdir, "ours"))
    try:
        ctx.startup_s = ctx.ours.wait_ready(60)
    except RuntimeError as exc:
        ctx.startup_s = None
        ctx.add(
            Row(
                "6",
                "start-up in an empty directory until GET /health is 200",
                "did not start",
                target="≤ 8 s",
                result="FAIL",
            )
        )
        raise RuntimeError(f"our server did not start: {exc}") from exc
    log(f"  /health answered {ctx.startup_s:.2f} s after spawn")


def add_row(ctx: Context) -> None:
    """The row comes last: the anchor's start-up is known only after the load goal started it."""
    s = ctx.startup_s
    if s is None:
        return
    ctx.add(
        Row(
            "6",
            "start-up in an empty directory until GET /health is 200 (anchor: mlflow models serve until /ping is 200)",
            fmt_s(s),
            fmt_s(ctx.anchor_startup_s),
            faster(s, ctx.anchor_startup_s),
            "≤ 8 s",
            verdict(s <= 8),
        )
    )
