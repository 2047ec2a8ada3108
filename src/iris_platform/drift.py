"""Drift against the training data: the reference profile a training writes, and the statistics of
many predictions (a batch file, a window of single predictions) compared with it.

The ML core builds the profile; the batch path and the tracking worker compute reports; neither needs
the other. Per feature: the population stability index (PSI) over the profile's 10 quantile bins and
the two-sample Kolmogorov-Smirnov test against the training sample; for a text feature, PSI over its
categories (and one bin for texts the training never had) and the chi-square test of their counts;
for the predictions, the chi-square test of the predicted class counts against the training class priors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PROFILE_FORMAT = 1
N_BINS = 10
# The training values kept per feature for the KS test: enough for its power, small as a JSON artifact.
SAMPLE_SIZE = 2000
# Up to this many rows a report keeps the values and runs scipy's ks_2samp itself (its exact method
# below 10,000); beyond, the KS distance is computed from counts at the training sample's points.
KEEP_VALUES = 10_000
# An empty bin on either side would make PSI infinite; proportions are clipped to this, as Evidently does.
PSI_EPSILON = 1e-4
CONFIDENCE_EDGES = [i / N_BINS for i in range(1, N_BINS)]
# A text feature's code for a text its training never had (text_features.UNSEEN is this one).
UNSEEN_CODE = -1


@dataclass(frozen=True)
class DriftThresholds:
    psi_warn: float = 0.1
    psi_alert: float = 0.2
    p_value: float = 0.05


def _proportions(values: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.searchsorted(cuts, values, side="right"), minlength=len(cuts) + 1)
    return counts / max(len(values), 1)


def _feature_profile(values: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
    # Inner quantile cuts of 10 equal-mass bins; repeated values (a measured-to-0.1-cm feature) merge bins.
    cuts = np.unique(np.quantile(values, np.linspace(0, 1, N_BINS + 1)[1:-1]))
    sample = values if len(values) <= SAMPLE_SIZE else rng.choice(values, SAMPLE_SIZE, replace=False)
    return {
        "bin_edges": [float(c) for c in cuts],
        "proportions": [float(p) for p in _proportions(values, cuts)],
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        "min": float(values.min()),
        "max": float(values.max()),
        "sample": [float(v) for v in np.sort(sample)],
    }


def _category_counts(codes: np.ndarray, n_categories: int) -> np.ndarray:
    """Counts per category, then of unseen texts (UNSEEN_CODE, -1) in the last bin."""
    counts = np.bincount(np.asarray(codes, dtype=np.int64) - UNSEEN_CODE, minlength=n_categories + 1)
    return np.concatenate((counts[1:], counts[:1]))


def _text_feature_profile(codes: np.ndarray, categories: Sequence[str]) -> dict[str, Any]:
    counts = _category_counts(codes, len(categories))
    return {
        "kind": "text",
        "categories": [str(c) for c in categories],
        "proportions": [float(p) for p in counts / max(len(codes), 1)],  # the last: unseen texts (0 here)
    }


def reference_profile(
    features: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    class_indexes: np.ndarray,
    test_confidences: np.ndarray,
    random_state: int = 0,
    categories: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """The profile of a training: per feature its bins, proportions, moments and a sample (a text
    feature, given in `categories`: its values are codes, and its proportions are per category); the
    class priors of the training labels; the model's confidence on the held-out split."""
    rng = np.random.default_rng(random_state)
    priors = np.bincount(class_indexes, minlength=len(class_names)) / max(len(class_indexes), 1)
    confidences = np.asarray(test_confidences, dtype=float)
    categories = categories or {}
    return {
        "format": PROFILE_FORMAT,
        "n_rows": int(len(class_indexes)),
        "features": {
            str(f): (
                _text_feature_profile(v, categories[f])
                if f in categories
                else _feature_profile(np.asarray(v, dtype=float), rng)
            )
            for f, v in features.items()
        },
        "class_priors": {str(c): float(p) for c, p in zip(class_names, priors, strict=True)},
        "confidence": {
            "bin_edges": CONFIDENCE_EDGES,
            "proportions": [float(p) for p in _proportions(confidences, np.array(CONFIDENCE_EDGES))],
            "mean": float(confidences.mean()) if len(confidences) else None,
            "n_rows": int(len(confidences)),
        },
    }


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two proportion vectors over the same bins."""
    e = np.clip(np.asarray(expected, dtype=float), PSI_EPSILON, None)
    a = np.clip(np.asarray(actual, dtype=float), PSI_EPSILON, None)
    return float(np.sum((a - e) * np.log(a / e)))


def ks_pvalue_from_distance(distance: float, n: int, m: int) -> float:
    """scipy's asymptotic two-sided p-value of a two-sample KS distance (ks_2samp, method='asymp')."""
    from scipy.stats import kstwo

    en = n * m / (n + m)
    return float(np.clip(kstwo.sf(distance, np.round(en)), 0.0, 1.0))


@dataclass
class _FeatureCounts:
    cuts: np.ndarray
    sample: np.ndarray  # sorted training values
    points: np.ndarray  # the sample's distinct values
    bins: np.ndarray = field(init=False)
    below: np.ndarray = field(init=False)  # per point: current values < point
    at_or_below: np.ndarray = field(init=False)  # per point: current values <= point
    kept: list[np.ndarray] = field(default_factory=list)
    n: int = 0  # values counted: a blank cell (NaN, imputed by the model) is not one

    def __post_init__(self) -> None:
        self.bins = np.zeros(len(self.cuts) + 1, dtype=np.int64)
        self.below = np.zeros(len(self.points), dtype=np.int64)
        self.at_or_below = np.zeros(len(self.points), dtype=np.int64)

    def add_bins(self, ordered: np.ndarray) -> None:
        """Bins closed on the left, as `_proportions` counts them; `ordered` is sorted."""
        under = np.searchsorted(ordered, self.cuts, side="left")  # values below each cut
        self.bins += np.diff(np.concatenate(([0], under, [len(ordered)])))

    def count(self, ordered: np.ndarray) -> None:
        # Looking the few points up in the sorted values is far cheaper than the values in the points.
        self.below += np.searchsorted(ordered, self.points, side="left")
        self.at_or_below += np.searchsorted(ordered, self.points, side="right")

    def ks_distance(self, n: int) -> float:
        """sup |F_train - F_current|: both are steps, F_train's only at its sample's points, so the
        supremum is reached at a point or just below one."""
        below = self.below / n  # F_current just below each point
        at = self.at_or_below / n  # F_current at each point
        ranks = np.searchsorted(self.sample, self.points, side="right") / len(self.sample)
        before = np.concatenate(([0.0], ranks[:-1]))
        return float(max(np.max(np.abs(at - ranks)), np.max(np.abs(below - before))))


@dataclass
class _TextCounts:
    """A text feature's counts per category, then of unseen texts."""

    counts: np.ndarray
    n: int = 0

    def add(self, codes: np.ndarray) -> None:
        self.counts += _category_counts(codes, len(self.counts) - 1)
        self.n += len(codes)


def chi2_pvalue(counts: np.ndarray, proportions: np.ndarray) -> float:
    """Chi-square test of counts against proportions over the categories training had; any count where
    the training had none (an unseen text) is a difference no sample explains: p = 0."""
    from scipy.stats import chisquare

    seen = proportions > 0
    if counts[~seen].any():
        return 0.0
    observed = counts[seen]
    if seen.sum() < 2 or observed.sum() == 0:
        return 1.0
    return float(chisquare(observed, proportions[seen] / proportions[seen].sum() * observed.sum()).pvalue)


@dataclass(frozen=True)
class DriftReport:
    n: int
    psi: dict[str, float]
    ks_pvalue: dict[str, float]
    class_drift_pvalue: float | None
    drifted_features: list[str]
    warned_features: list[str]
    class_drift: bool
    drift_detected: bool
    class_shares: dict[str, float]
    confidence_mean: float | None
    # Text features' test (KS does not apply to categories).
    chi2_pvalue: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "psi": dict(self.psi),
            "ks_pvalue": dict(self.ks_pvalue),
            "chi2_pvalue": dict(self.chi2_pvalue),
            "class_drift_pvalue": self.class_drift_pvalue,
            "drifted_features": list(self.drifted_features),
            "warned_features": list(self.warned_features),
            "class_drift": self.class_drift,
            "drift_detected": self.drift_detected,
            "class_shares": dict(self.class_shares),
            "confidence_mean": self.confidence_mean,
        }


class DriftAccumulator:
    """Predictions' inputs and classes, added chunk by chunk, compared with a profile at the end.

    `feature_names` are the columns in the order `add` receives them (a text feature's as codes,
    text_features.FeatureLayout); features the profile lacks are skipped (a model trained before
    profiles existed has none).
    """

    def __init__(self, profile: Mapping[str, Any], feature_names: Sequence[str]):
        self.profile = profile
        self.class_names = list(profile["class_priors"])
        self.features: dict[int, tuple[str, _FeatureCounts]] = {}
        self.texts: dict[int, tuple[str, _TextCounts]] = {}
        self.feature_names = list(feature_names)
        for i, name in enumerate(feature_names):
            spec = profile["features"].get(name)
            if spec is None:
                continue
            if spec.get("kind") == "text":
                self.texts[i] = (name, _TextCounts(np.zeros(len(spec["proportions"]), dtype=np.int64)))
                continue
            sample = np.sort(np.asarray(spec["sample"], dtype=float))
            counts = _FeatureCounts(np.asarray(spec["bin_edges"], dtype=float), sample, np.unique(sample))
            self.features[i] = (name, counts)
        self.class_counts = np.zeros(len(self.class_names), dtype=np.int64)
        self.confidence_sum = 0.0
        self.n = 0

    def matrix(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Feature values by name (a text feature's as its text) as the matrix `add` takes: text as codes."""
        X = np.full((len(rows), len(self.feature_names)), np.nan)
        for i, name in enumerate(self.feature_names):
            if i in self.texts:
                lookup = {c: k for k, c in enumerate(self.profile["features"][name]["categories"])}
                X[:, i] = [lookup.get(str(r.get(name)), UNSEEN_CODE) for r in rows]
            else:
                X[:, i] = [_number(r.get(name)) for r in rows]
        return X

    def add(self, X: np.ndarray, class_indexes: np.ndarray, confidences: np.ndarray | None = None) -> None:
        X = np.asarray(X, dtype=float)
        if len(X) == 0:
            return
        keeping = self.n + len(X) <= KEEP_VALUES
        for i, (_, text_counts) in self.texts.items():
            text_counts.add(X[:, i])
        for i, (_, counts) in self.features.items():
            values = X[:, i]
            if np.isnan(values).any():
                values = values[~np.isnan(values)]
            ordered = np.sort(values)
            counts.n += len(ordered)
            counts.add_bins(ordered)
            if keeping:
                counts.kept.append(ordered)
            else:
                for kept in counts.kept:  # past the bound: from now on, counts only
                    counts.count(kept)
                counts.kept.clear()
                counts.count(ordered)
        self.class_counts += np.bincount(np.asarray(class_indexes), minlength=len(self.class_names))[
            : len(self.class_names)
        ]
        if confidences is not None:
            self.confidence_sum += float(np.sum(confidences))
        self.n += len(X)

    def partition_spec(self) -> dict[str, Any]:
        """What an engine that counts partition by partition (spark/partition_counts.py) must count of
        each feature: its column (named as the feature), the profile's bin cuts and sample points, or a
        text feature's categories."""
        return {
            "numbers": [
                {"column": name, "cuts": c.cuts.tolist(), "points": c.points.tolist()}
                for name, c in self.features.values()
            ],
            "texts": [
                {"column": name, "categories": list(self.profile["features"][name]["categories"])}
                for name, _ in self.texts.values()
            ],
        }

    def add_counts(self, counts: Mapping[str, Any], class_counts: Sequence[int], confidence_sum: float) -> None:
        """Add a whole batch counted elsewhere (partition_spec's counts, summed): its KS p-values are then
        the asymptotic ones, which a batch of more than KEEP_VALUES rows gets here too."""
        for name, c in self.features.values():
            given = counts["numbers"][name]
            c.n += int(given["n"])
            c.bins += np.asarray(given["bins"], dtype=np.int64)
            c.below += np.asarray(given["below"], dtype=np.int64)
            c.at_or_below += np.asarray(given["at_or_below"], dtype=np.int64)
        for name, t in self.texts.values():
            given = counts["texts"][name]
            t.n += int(given["n"])
            t.counts += np.asarray(given["counts"], dtype=np.int64)
        self.class_counts += np.asarray(class_counts, dtype=np.int64)
        self.confidence_sum += float(confidence_sum)
        self.n += int(sum(class_counts))

    def report(self, thresholds: DriftThresholds) -> DriftReport:
        from scipy.stats import chisquare, ks_2samp

        psis: dict[str, float] = {}
        pvalues: dict[str, float] = {}
        n = self.n
        for name, counts in self.features.values():
            if counts.n == 0:  # no filled value of this feature (every one blank, or no rows)
                continue
            expected = np.asarray(self.profile["features"][name]["proportions"], dtype=float)
            psis[name] = psi(expected, counts.bins / counts.n)
            if counts.kept:
                pvalues[name] = float(ks_2samp(np.concatenate(counts.kept), counts.sample).pvalue)
            else:
                pvalues[name] = ks_pvalue_from_distance(counts.ks_distance(counts.n), counts.n, len(counts.sample))
        chi2: dict[str, float] = {}
        for name, text_counts in self.texts.values():
            if text_counts.n == 0:
                continue
            expected = np.asarray(self.profile["features"][name]["proportions"], dtype=float)
            psis[name] = psi(expected, text_counts.counts / text_counts.n)
            chi2[name] = chi2_pvalue(text_counts.counts, expected)
        priors = np.asarray(list(self.profile["class_priors"].values()), dtype=float)
        class_p: float | None = None
        seen = priors > 0
        if n and seen.sum() > 1:
            observed = self.class_counts[seen]
            expected_counts = priors[seen] / priors[seen].sum() * observed.sum()
            class_p = float(chisquare(observed, expected_counts).pvalue)
            if self.class_counts[~seen].any():  # a class the training data never had
                class_p = 0.0
        tested = {**pvalues, **chi2}
        drifted = [f for f in psis if psis[f] >= thresholds.psi_alert and tested.get(f, 1.0) < thresholds.p_value]
        warned = [f for f in psis if psis[f] >= thresholds.psi_warn and f not in drifted]
        class_drift = class_p is not None and class_p < thresholds.p_value
        return DriftReport(
            n=n,
            psi=psis,
            ks_pvalue=pvalues,
            class_drift_pvalue=class_p,
            drifted_features=drifted,
            warned_features=warned,
            class_drift=class_drift,
            drift_detected=bool(drifted) or class_drift,
            class_shares={c: float(k / max(n, 1)) for c, k in zip(self.class_names, self.class_counts, strict=True)},
            confidence_mean=self.confidence_sum / n if n else None,
            chi2_pvalue=chi2,
        )


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
