"""The import rules of docs/ARCHITECTURE.md, checked on the source: a forbidden import fails here."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "iris_platform"

# part -> the parts of iris_platform it may import (tracking.names, the contract's names, and metrics, what
# every part records through, are open to all).
ALLOWED = {
    "errors": set(),
    "timestamps": set(),
    "batch_statistics": set(),
    "drift": set(),
    "alerts": set(),
    "metrics": set(),
    "config": {"web_origins"},
    "web_origins": set(),
    "redaction": set(),
    "memory": set(),
    "header_timeout": set(),
    "tracking": {"tracking", "errors", "timestamps", "batch_statistics", "drift", "alerts", "redaction"},
    "ml": {"ml", "errors", "batch_statistics", "drift"},
    "champion": {"ml", "tracking", "redaction"},
    "tuning": {"ml", "timestamps", "redaction"},
    "trainer": {"ml", "tracking", "config", "errors", "timestamps", "memory"},
    "training_process": {"trainer", "ml", "tracking", "config", "errors", "redaction"},
    "service": {
        "service",
        "champion",
        "tuning",
        "trainer",
        "training_process",
        "config",
        "errors",
        "timestamps",
        "ml",
        "tracking",
        "batch_statistics",
        "drift",
        "alerts",
        "redaction",
        "memory",
    },
    "api": {"api", "service", "training_process", "config", "errors", "redaction", "web_origins"},
    "server": {"config", "api", "training_process", "redaction", "header_timeout"},
    # The Spark batch: the champion fetched and its run written as the service does, scored by Spark.
    "spark": {
        "spark",
        "champion",
        "ml",
        "tracking",
        "config",
        "errors",
        "timestamps",
        "batch_statistics",
        "drift",
        "alerts",
    },
    "cli": {"cli", "api", "service", "server", "spark", "config", "errors", "redaction", "tracking"},
    "__main__": {"server"},
    "__init__": set(),
}


def part_of(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "__init__"


def is_module(dotted: str) -> bool:
    path = PACKAGE.parent.joinpath(*dotted.split("."))
    return path.is_dir() or path.with_suffix(".py").is_file()


def imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("iris_platform"):
            found += [
                f"{node.module}.{a.name}" if is_module(f"{node.module}.{a.name}") else node.module for a in node.names
            ]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("iris_platform")]
        elif isinstance(node, ast.ImportFrom) and node.level:
            pytest.fail(f"{path}: relative import; the package imports itself by absolute names")
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_part_has_rules():
    parts = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in MODULES}
    assert parts == set(ALLOWED), "a new part of the package needs its rules here and in docs/ARCHITECTURE.md"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_architecture(path):
    own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    for module in imports(path):
        if module in ("iris_platform", "iris_platform.tracking.names", "iris_platform.metrics"):  # open to all
            continue
        assert part_of(module) in ALLOWED[own], f"{path.relative_to(PACKAGE)} may not import {module}"


def test_the_checker_sees_a_forbidden_import(tmp_path):
    # The rules above would pass vacuously if `imports` found nothing: it must see both import forms.
    module = tmp_path / "m.py"
    module.write_text("import iris_platform.api.app\nfrom iris_platform.ml.inference import Predictor\n")
    assert imports(module) == ["iris_platform.api.app", "iris_platform.ml.inference"]


@pytest.mark.parametrize("standalone", ["tracking/mlflow_pyfunc.py", "spark/partition_counts.py"])
def test_code_run_where_the_platform_is_not_installed_imports_none_of_it(standalone):
    # The MLflow model's code and Spark's executor-side counting run on machines without the platform.
    assert imports(PACKAGE / standalone) == []
