"""A tuning's search space: checked against the model type's hyperparameters, then turned into the
list of trials (every combination of a grid, or `n_trials` random draws)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from iris_platform.errors import InputError
from iris_platform.ml.model_types import Hyperparameter, ModelType, check_names, resolve_hyperparameters

MAX_TRIALS = 50  # a tuning trains at most this many models
SEARCHES = ("grid", "random")
TUNING_METRICS = ("accuracy", "precision", "recall", "f1_score")


def _values(model_type: ModelType, h: Hyperparameter, given: Any) -> list[Any]:
    if not isinstance(given, list) or not given:
        raise InputError(
            f"space.{h.name} must be a non-empty list of values ({h.allowed()}), "
            f'or for a random search an object {{"low": ..., "high": ...}}; got {str(given)[:60]}.'
        )
    return [h.check(model_type.name, v) for v in given]


def _range(model_type: ModelType, h: Hyperparameter, given: Mapping[str, Any]) -> tuple[float, float, bool]:
    unknown = sorted(set(given) - {"low", "high", "log"})
    if h.choices or unknown or "low" not in given or "high" not in given:
        shape = "a list of values" if h.choices else '{"low": ..., "high": ...} (and "log": true or false)'
        raise InputError(f"space.{h.name} must be {shape} ({h.allowed()}); got {str(dict(given))[:80]}.")
    low, high = h.check(model_type.name, given["low"]), h.check(model_type.name, given["high"])
    log = given.get("log", False)
    if not isinstance(log, bool):
        raise InputError(f"space.{h.name}.log must be true or false, got {log!r}.")
    if low is None or high is None or low > high:
        raise InputError(f"space.{h.name} needs low <= high, got low={low!r}, high={high!r}.")
    if log and low <= 0:
        raise InputError(f"space.{h.name} with log: true needs low above 0, got {low!r}.")
    return float(low), float(high), log


def trials(
    model_type: ModelType, space: Mapping[str, Any], search: str, n_trials: int | None, seed: int
) -> list[dict[str, Any]]:
    """The hyperparameters of each trial (the model type's defaults for what the space leaves out)."""
    if search not in SEARCHES:
        raise InputError(f"search must be one of {', '.join(map(repr, SEARCHES))}, got {str(search)[:40]!r}.")
    if not space:
        takes = ", ".join(h.name for h in model_type.hyperparameters)
        raise InputError(
            f"space is empty: give values for at least one of {model_type.name}'s hyperparameters ({takes})."
        )
    check_names(model_type, space)
    names = list(space)
    if search == "grid":
        if n_trials is not None:
            raise InputError(
                "n_trials applies to a random search; a grid search tries every combination: leave it out."
            )
        lists = []
        for name in names:
            h = model_type.hyperparameter(name)
            assert h is not None
            lists.append(_values(model_type, h, space[name]))
        size = math.prod(len(v) for v in lists)
        if size > MAX_TRIALS:
            raise InputError(
                f"The grid has {size} combinations, more than the {MAX_TRIALS} a tuning may train: "
                "give fewer values, or use search 'random' with n_trials."
            )
        chosen = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*lists)]
    else:
        if (
            n_trials is None
            or isinstance(n_trials, bool)
            or not isinstance(n_trials, int)
            or not 1 <= n_trials <= MAX_TRIALS
        ):
            raise InputError(
                f"n_trials must be an integer between 1 and {MAX_TRIALS} for a random search, got {n_trials!r}."
            )
        rng = np.random.default_rng(seed)
        draws: dict[str, list[Any]] = {}
        for name in names:
            h = model_type.hyperparameter(name)
            assert h is not None
            given = space[name]
            if isinstance(given, Mapping):
                low, high, log = _range(model_type, h, given)
                if h.kind is int:
                    values = (
                        rng.integers(int(low), int(high) + 1, size=n_trials)
                        if not log
                        else np.round(np.exp(rng.uniform(math.log(low), math.log(high), size=n_trials)))
                    )
                    draws[name] = [int(v) for v in values]
                else:
                    raw = (
                        np.exp(rng.uniform(math.log(low), math.log(high), size=n_trials))
                        if log
                        else rng.uniform(low, high, size=n_trials)
                    )
                    draws[name] = [h.check(model_type.name, float(v)) for v in raw]
            else:
                listed = _values(model_type, h, given)
                draws[name] = [listed[i] for i in rng.integers(0, len(listed), size=n_trials)]
        chosen = [{name: draws[name][i] for name in names} for i in range(n_trials)]
    return [resolve_hyperparameters(model_type, c) for c in chosen]


def check_metric(metric: str) -> str:
    if metric not in TUNING_METRICS:
        raise InputError(f"metric must be one of {', '.join(map(repr, TUNING_METRICS))}, got {str(metric)[:40]!r}.")
    return metric
