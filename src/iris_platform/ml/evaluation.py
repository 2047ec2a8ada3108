"""Training evidence: the confusion matrix and per-class metrics of the held-out split, and for a
two-class target its ROC and precision-recall curves, as JSON artifacts the run's popup charts."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from iris_platform.tracking import names

# A curve is thinned to this many points: enough to draw, small enough to log with every run.
MAX_CURVE_POINTS = 200


@dataclass
class Evidence:
    artifacts: dict[str, bytes]  # artifact path in the run -> JSON
    metrics: dict[str, float] = field(default_factory=dict)  # roc_auc, average_precision (two classes)


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=1).encode()


def _thin(*columns: np.ndarray) -> list[list[float]]:
    """At most MAX_CURVE_POINTS points, always keeping both ends."""
    n = len(columns[0])
    keep: list[int] = np.unique(np.linspace(0, n - 1, min(n, MAX_CURVE_POINTS)).round().astype(int)).tolist()
    return [[float(c[i]) for i in keep] for c in columns]


def evidence(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    class_names: list[str],
    report: dict[str, Any],
    matrix: list[list[int]],
) -> Evidence:
    """What the held-out split shows; `report` and `matrix` are scikit-learn's for the same rows."""
    artifacts = {
        names.CONFUSION_MATRIX_ARTIFACT: _json(
            {"labels": class_names, "matrix": matrix, "rows": "true class", "columns": "predicted class"}
        ),
        names.PER_CLASS_METRICS_ARTIFACT: _json(
            {
                "classes": {
                    c: {k: float(v) for k, v in report[c].items()}
                    for c in class_names
                    if isinstance(report.get(c), dict)
                },
                "n_test": int(len(y_true)),
            }
        ),
    }
    metrics: dict[str, float] = {}
    if len(class_names) == 2 and len(np.unique(y_true)) == 2:  # both classes held out: the curves exist
        from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

        score = probabilities[:, 1]
        positive = class_names[1]
        fpr, tpr, roc_thresholds = roc_curve(y_true, score)
        precision, recall, pr_thresholds = precision_recall_curve(y_true, score)
        metrics[names.M_ROC_AUC] = float(roc_auc_score(y_true, score))
        metrics[names.M_AVERAGE_PRECISION] = float(average_precision_score(y_true, score))
        roc_thresholds = np.minimum(roc_thresholds, 1.0)  # scikit-learn starts at +inf, not JSON
        false_positive, true_positive, thresholds = _thin(fpr, tpr, roc_thresholds)
        artifacts[names.ROC_CURVE_ARTIFACT] = _json(
            {
                "positive_class": positive,
                "false_positive_rate": false_positive,
                "true_positive_rate": true_positive,
                "thresholds": thresholds,
                "auc": metrics[names.M_ROC_AUC],
            }
        )
        # scikit-learn's last point (recall 0, precision 1) has no threshold.
        precision_points, recall_points = _thin(precision, recall)
        artifacts[names.PR_CURVE_ARTIFACT] = _json(
            {
                "positive_class": positive,
                "precision": precision_points,
                "recall": recall_points,
                "thresholds": _thin(pr_thresholds)[0] if len(pr_thresholds) else [],
                "average_precision": metrics[names.M_AVERAGE_PRECISION],
            }
        )
    return Evidence(artifacts, metrics)
