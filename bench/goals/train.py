"""Goal 4: POST /train (default Iris, 100 trees, everything logged); it leaves the model the other goals use."""

from __future__ import annotations

import time
import urllib.error
from pathlib import Path

from bench.config import CLASSES, FEATURES
from bench.console import log
from bench.context import Context, TrainedModel
from bench.report import Row, faster, fmt_s, median, verdict
from bench.servers import http_json


def run(ctx: Context) -> None:
    ours = ctx.our_server()
    log(f"goal 4: POST /train (default Iris, 100 trees) x{ctx.cfg.train_reps}")
    times: list[float] = []
    errors: list[str] = []
    response: dict | None = None
    for i in range(ctx.cfg.train_reps):
        start = time.perf_counter()
        try:
            status, body = http_json(
                "POST",
                ours.url + "/train",
                body=b"",
                timeout=120,
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
        except (OSError, urllib.error.URLError) as exc:
            errors.append(str(exc))
            continue
        elapsed = time.perf_counter() - start
        if status != 200 or not isinstance(body, dict):
            errors.append(f"HTTP {status}: {str(body)[:200]}")
            continue
        times.append(elapsed)
        response = body
        log(f"  train {i + 1}: {elapsed:.2f} s, accuracy {body.get('accuracy')}")
    m = median(times)
    if errors:
        ctx.note(f"POST /train failed {len(errors)} time(s): {errors[0]}")
    ctx.add(
        Row(
            "4",
            f"POST /train, default Iris, 100 trees, everything logged (median of {len(times)})",
            fmt_s(m),
            target="≤ 2 s",
            result=verdict(None if m is None else m <= 2.0),
        )
    )
    ctx.details.append(f"training times: {', '.join(f'{t:.2f}' for t in times)} s")
    if times:
        # Issue 15: the first request after start-up (the startup goal has just seen /health answer),
        # against the warm trainings that follow it in the same run.
        warm = median(times[1:])
        ctx.add(
            Row(
                "15",
                "the first POST /train right after start-up (GET /health just answered; anchor: the warm median)",
                fmt_s(times[0]),
                fmt_s(warm),
                faster(times[0], warm),
                target="≤ 2 s",
                result=verdict(times[0] <= 2.0),
            )
        )
    if response is None:
        raise RuntimeError("no model could be trained; the remaining goals need one")
    ctx.model = _trained_model(response, ctx.work())
    runtime = (ctx.health() or {}).get("runtime", "not reported")
    ctx.add(Row("1", "serving runtime of the trained model (GET /health `runtime`)", str(runtime)))


def _trained_model(response: dict, workdir: Path) -> TrainedModel:
    meta = response.get("model_metadata") or {}
    model_path = Path(response.get("model_path", ""))
    return TrainedModel(
        uri=meta.get("mlflow_model_uri"),
        class_names=[str(c) for c in meta.get("class_names") or CLASSES],
        feature_names=list(meta.get("feature_names") or FEATURES),
        file=model_path if model_path.is_absolute() else workdir / model_path,
    )
