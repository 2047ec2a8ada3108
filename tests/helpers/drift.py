"""Drift statistics computed apart from the platform, to check its own against."""

from __future__ import annotations

from typing import Any

import numpy as np


def independent_psi(reference: dict[str, Any], values: np.ndarray) -> float:
    """PSI as Evidently computes it: proportions in the reference's bins, empty bins clipped to 0.0001."""
    edges = np.concatenate(([-np.inf], reference["bin_edges"], [np.inf]))
    counts, _ = np.histogram(values, bins=edges)  # bins closed on the left, as the platform's
    actual = np.where(counts == 0, 0.0001, counts / len(values))
    expected = np.where(np.array(reference["proportions"]) == 0, 0.0001, reference["proportions"])
    return float(np.sum((actual - expected) * np.log(actual / expected)))
