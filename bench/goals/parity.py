"""Goal 1, correctness: a spot check of /predict against scikit-learn (the tests own the full check)."""

from __future__ import annotations

import json

from bench.config import IRIS_RANGES
from bench.console import log
from bench.context import Context
from bench.report import Row, verdict
from bench.servers import http_json


def run(ctx: Context) -> None:
    """20 random rows over HTTP against the trained model's predict_proba in process."""
    import numpy as np
    import pandas as pd

    ours, model = ctx.our_server(), ctx.trained()
    log("goal 1: parity of /predict with scikit-learn on 20 random inputs")
    estimator = model.load_estimator()
    rng = np.random.default_rng(7)
    X = np.column_stack([rng.uniform(*IRIS_RANGES[f], 20) for f in model.feature_names]).round(2)
    expected = estimator.predict_proba(pd.DataFrame(X, columns=model.feature_names))
    columns = [int(c) for c in getattr(estimator, "classes_", range(len(model.class_names)))]
    worst, class_mismatch, failures = 0.0, 0, 0
    for row, probs in zip(X, expected, strict=False):
        body = json.dumps(dict(zip(model.feature_names, map(float, row), strict=False))).encode()
        status, answer = http_json(
            "POST", ours.url + "/predict", body, {"content-type": "application/json"}, timeout=30
        )
        if status >= 400 or not isinstance(answer, dict):
            failures += 1
            continue
        ctx.extra_predict_ok += 1  # counted by the goal-2 record check, like wrk's responses
        got = answer.get("probabilities") or {}
        for j, c in enumerate(columns):
            name = model.class_names[c] if c < len(model.class_names) else str(c)
            if name in got:
                worst = max(worst, abs(float(got[name]) - float(probs[j])))
        if answer.get("prediction") != int(columns[int(np.argmax(probs))]):
            class_mismatch += 1
    ok = failures == 0 and worst <= 1e-5 and class_mismatch == 0
    ctx.add(
        Row(
            "1",
            "parity spot check, 20 random rows: largest probability difference from scikit-learn, class mismatches",
            f"{worst:.1e}, {class_mismatch} mismatches" + (f", {failures} failed" if failures else ""),
            target="≤ 1e-5, 0",
            result=verdict(ok),
        )
    )
