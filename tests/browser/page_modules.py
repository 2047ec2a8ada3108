"""The page's own ES modules, read from a test through the open page.

The tests expect what the page shows to be the server's values written by the page's own formatter
(static/js/format.js), not by a Python copy of it: the values still come from the API or MLflow, so a
wrong number on the page fails, while how a number is written is the page's choice alone.
The page must be open on the server (a module is imported by its /static/js/... URL).
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page

FORMAT = "/static/js/format.js"
CONTRACT = "/static/js/contract.js"
RUNS = "/static/js/runs.js"


def exports(page: Page, module: str) -> dict[str, Any]:
    """The module's exported values that are not functions (constants; frozen arrays come back as lists)."""
    return page.evaluate(
        """path => import(path).then(m => Object.fromEntries(
            Object.entries(m).filter(([, value]) => typeof value !== 'function')))""",
        module,
    )


def exported_functions(page: Page, module: str) -> list[str]:
    return page.evaluate(
        "path => import(path).then(m => Object.keys(m).filter(name => typeof m[name] === 'function'))", module
    )


def call(page: Page, module: str, function: str, *args: Any) -> Any:
    """`function(...args)` of the module, in the page (None arrives as null)."""
    return page.evaluate(
        "([path, name, args]) => import(path).then(m => m[name](...args))", [module, function, list(args)]
    )


def formatted(page: Page, function: str, *args: Any) -> str:
    """What format.js's `function` writes for these values."""
    return call(page, FORMAT, function, *args)


def percent(page: Page, value: float | None) -> str:
    """A fraction as the page shows it (accuracy, confidence, probability)."""
    return formatted(page, "formatPercent", value)


def detail(page: Page, value: Any) -> str:
    """A param or metric value as the run popup and the comparison table show it."""
    return formatted(page, "formatDetail", value)


def missing(page: Page) -> str:
    """What the page shows for a value that is not there."""
    return exports(page, FORMAT)["MISSING"]
