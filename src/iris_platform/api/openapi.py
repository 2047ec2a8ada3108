"""The OpenAPI document: FastAPI's, with the serving model's features as /predict's request body.

Which features /predict takes depends on the model that serves (a CSV's columns, not only Iris), so
the document names them, each a finite number (or a text, for a text feature), all required and no other:
a client generated from it, or a fuzzer, sends what the server accepts. Without a model the body is any
object of numbers.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from iris_platform.service import IrisService

_NUMBER = {"type": "number", "minimum": -sys.float_info.max, "maximum": sys.float_info.max}


def _text_schema(name: str, categories: list[str], blanks_allowed: bool) -> dict[str, Any]:
    # Any text is taken: one the training never had is ignored by the model and named in the answer.
    shown = ", ".join(repr(c) for c in categories[:20]) + (", ..." if len(categories) > 20 else "")
    schema: dict[str, Any] = {
        "type": "string",
        "pattern": r"\S",  # not blank
        "description": f"The text feature '{name}': one of {shown} (another text is ignored and named in the answer)",
    }
    if blanks_allowed:  # "" or null: the blank category
        return {
            "anyOf": [schema, {"type": "null"}, {"type": "string", "maxLength": 0}],
            "description": schema["description"],
        }
    return schema


def features_schema(
    feature_names: list[str], blanks_allowed: bool = False, categories: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    # A model that imputes takes null for a feature it is not given a value of: it fills in the median.
    kind = {"type": ["number", "null"]} if blanks_allowed else {}
    blank = " (null: filled in with the training median)" if blanks_allowed else ""
    categories = categories or {}
    return {
        "type": "object",
        "properties": {
            name: (
                _text_schema(name, categories[name], blanks_allowed)
                if name in categories
                else {**_NUMBER, **kind, "description": f"The feature '{name}'{blank}"}
            )
            for name in feature_names
        },
        "required": list(feature_names),
        "additionalProperties": False,
        "example": {name: categories[name][-1] if name in categories else 1.0 for name in feature_names},
    }


def with_features(
    document: dict[str, Any],
    feature_names: list[str],
    blanks_allowed: bool = False,
    categories: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    document = copy.deepcopy(document)
    body = document["paths"]["/predict"]["post"]["requestBody"]
    for media in body["content"].values():
        media["schema"] = features_schema(feature_names, blanks_allowed, categories)
    body["description"] = f"The serving model's features: {', '.join(feature_names)}."
    return document


def errors_as_json(document: dict[str, Any]) -> dict[str, Any]:
    """A route answering CSV or a file answers its errors as JSON all the same (FastAPI documents them
    under the route's own media type)."""
    for operations in document["paths"].values():
        for operation in operations.values():
            for status, response in operation["responses"].items():
                content = response.get("content", {})
                if int(status) >= 400 and "application/json" not in content:
                    response["content"] = {"application/json": next(iter(content.values()))}
    return document


def install(app: FastAPI, service: IrisService) -> None:
    """Serve the document for the model that serves now (rebuilt only when its features change)."""
    fastapi_document: Callable[[], dict[str, Any]] = app.openapi  # builds once and caches

    def generate() -> dict[str, Any]:
        return errors_as_json(fastapi_document())

    built: dict[tuple[tuple[str, ...], bool, str], dict[str, Any]] = {}

    def document() -> dict[str, Any]:
        predictor = service.predictor
        features = tuple(predictor.feature_names) if predictor is not None else ()
        categories = predictor.layout.categories if predictor is not None else {}
        key = (features, predictor is not None and predictor.imputes_blanks, repr(sorted(categories.items())))
        if key not in built:
            built.clear()
            built[key] = with_features(generate(), list(features), key[1], categories) if features else generate()
        return built[key]

    app.openapi = document  # type: ignore[method-assign]
