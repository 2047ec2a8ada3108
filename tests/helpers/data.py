"""The Iris data as the tests send it: sample flowers, frames, CSV bytes; and JSON files read back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# Well inside the Iris clusters: every reasonable forest predicts these classes.
SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
VERSICOLOR = {"sepal_length": 6.0, "sepal_width": 2.9, "petal_length": 4.5, "petal_width": 1.5}
VIRGINICA = {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.8, "petal_width": 2.3}
IRIS_FEATURES = list(SETOSA)
IRIS_CLASSES = ["setosa", "versicolor", "virginica"]
SKLEARN_HEADERS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


def iris_frame(headers: list[str] | None = None, labels: str = "names", target: str = "species") -> pd.DataFrame:
    """The Iris data as a table: `labels` is "names" (setosa), "prefixed" (Iris-setosa) or "integers"."""
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    frame = iris.data.copy()
    frame.columns = headers or IRIS_FEATURES
    codes = iris.target.to_numpy()
    if labels == "integers":
        frame[target] = codes
    else:
        prefix = "Iris-" if labels == "prefixed" else ""
        frame[target] = [f"{prefix}{iris.target_names[c]}" for c in codes]
    return frame


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def samples_csv(samples: list[dict[str, float]], **extra_columns: list[Any]) -> bytes:
    frame = pd.DataFrame(samples)
    for column, values in extra_columns.items():
        frame[column] = values
    return csv_bytes(frame)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


PENGUIN_BLANKS = 10


# Where each species lives (as in the Palmer penguins data): Adelie on every island, the others on one.
PENGUIN_ISLANDS = {"Adelie": ["Biscoe", "Dream", "Torgersen"], "Chinstrap": ["Dream"], "Gentoo": ["Biscoe"]}


# The platform's default random_state (Settings.random_state) and test_size: its split, made again here.
PLATFORM_RANDOM_STATE = 42
PLATFORM_TEST_SIZE = 0.2


def training_split(table: pd.DataFrame, target: str = "species") -> pd.DataFrame:
    """The rows of `table` the platform trains on: its stratified split, made here again with scikit-learn."""
    from sklearn.model_selection import train_test_split

    y = np.unique(table[target].to_numpy(), return_inverse=True)[1]
    rows, *_ = train_test_split(table, y, test_size=PLATFORM_TEST_SIZE, random_state=PLATFORM_RANDOM_STATE, stratify=y)
    return rows


def penguins(rows: int = 150, seed: int = 0, island: bool = False) -> pd.DataFrame:
    """A penguins-style table: three measurements, a year that never changes, ten blank bill lengths;
    with `island`, a text column `island` first (where the penguin lives)."""
    rng = np.random.default_rng(seed)
    species = np.array(["Adelie", "Chinstrap", "Gentoo"])[np.arange(rows) % 3]
    bill = {"Adelie": 38.8, "Chinstrap": 48.8, "Gentoo": 47.5}
    depth = {"Adelie": 18.3, "Chinstrap": 18.4, "Gentoo": 15.0}
    flipper = {"Adelie": 190.0, "Chinstrap": 196.0, "Gentoo": 217.0}
    frame = pd.DataFrame(
        {
            "bill_length_mm": [round(bill[s] + rng.normal(0, 1.5), 1) for s in species],
            "bill_depth_mm": [round(depth[s] + rng.normal(0, 0.6), 1) for s in species],
            "flipper_length_mm": [round(flipper[s] + rng.normal(0, 4), 0) for s in species],
            "year": 2007,
            "species": species,
        }
    )
    frame.loc[rng.choice(rows, PENGUIN_BLANKS, replace=False), "bill_length_mm"] = np.nan
    if island:
        frame.insert(0, "island", [PENGUIN_ISLANDS[s][i // 3 % len(PENGUIN_ISLANDS[s])] for i, s in enumerate(species)])
    return frame
