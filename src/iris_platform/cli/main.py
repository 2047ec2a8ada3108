"""The commands of `iris-platform`. Each acts on the local store, or on the server at --url (IRIS_URL).

Exit status: 0 done, 1 failed (its reason on stderr, in the API's words), 2 bad usage. Answers go to
stdout, as tables or, with --json, as the API's JSON; progress goes to stderr.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from contextlib import closing
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from iris_platform.config import Settings
from iris_platform.tracking import names

app = typer.Typer(
    name="iris-platform",
    help="The Iris ML platform: serve it, or train, predict and read its MLflow records from the command line.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
TUNING_POLL_S = 0.5

Url = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="IRIS_URL",
        help="A running server (http://host:port); without it, the local store and folders the IRIS_* and "
        "MLFLOW_TRACKING_URI variables name, as `serve` uses them",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON answer, for scripts")]


def _pairs(given: list[str] | None, option: str) -> dict[str, str]:
    """name=value options as a mapping; a malformed one is bad usage (exit status 2)."""
    pairs: dict[str, str] = {}
    for item in given or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"{item!r} is not name=value", param_hint=option)
        pairs[name.strip()] = value
    return pairs


def _settings() -> Settings:
    try:
        # A command trains here, in its own process: no training process to spawn for one training.
        return Settings.from_env(training_process=False)
    except ValueError as exc:  # a malformed variable: bad usage
        raise typer.BadParameter(str(exc), param_hint="the environment") from None


def _run(
    url: str | None, as_json: bool, act: Callable[[Any], dict[str, Any]], show: Callable[[dict[str, Any]], None]
) -> None:
    """Connect, act, print the answer; a failure prints its reason on stderr and exits with status 1."""
    from iris_platform.cli.platforms import CommandError, connect  # the service's imports: only when acting

    try:
        with closing(connect(url, _settings())) as platform:
            answer = act(platform)
    except CommandError as exc:
        err.print(exc.detail, markup=False, highlight=False)
        raise typer.Exit(1) from None
    if as_json:
        sys.stdout.write(json.dumps(answer, indent=2, default=str) + "\n")
    else:
        show(answer)


# Progress is drawn on a terminal only: elsewhere (a pipe, a log) it would leave a blank line on stderr,
# and a failure's reason is one line there.
def _spinner(what: str) -> Progress:
    return Progress(
        TextColumn(what), BarColumn(), TimeElapsedColumn(), console=err, transient=True, disable=not err.is_terminal
    )


def _metrics_line(metrics: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items()) if isinstance(v, int | float))


# -- serve ---------------------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default 127.0.0.1; env IRIS_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000; env IRIS_PORT)")] = None,
    workers: Annotated[int | None, typer.Option(help="Serving processes behind the port (env IRIS_WORKERS)")] = None,
) -> None:
    """Start the server (as `python main.py`)."""
    from iris_platform.server import main as serve_main

    argv = [f"--{name}={value}" for name, value in (("host", host), ("port", port), ("workers", workers)) if value]
    serve_main(argv)


# -- training ------------------------------------------------------------------------------------


@app.command()
def train(
    csv: Annotated[
        Path | None,
        typer.Argument(exists=True, dir_okay=False, readable=True, help="A CSV to train on; none: the Iris data"),
    ] = None,
    model_type: Annotated[str | None, typer.Option(help="random_forest (default), extra_trees, svc, ...")] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="A hyperparameter, name=value (repeat it)")
    ] = None,
    test_size: Annotated[float | None, typer.Option(help="Fraction held out for the metrics (0.2)")] = None,
    cv_folds: Annotated[int | None, typer.Option(help="Cross-validation folds (0: none)")] = None,
    target_column: Annotated[str | None, typer.Option(help="The CSV's class column (default: its last)")] = None,
    keep_columns: Annotated[str | None, typer.Option(help="Comma-separated columns never dropped")] = None,
    impute: Annotated[str | None, typer.Option(help="median (default) or none")] = None,
    url: Url = None,
    as_json: AsJson = False,
) -> None:
    """Train a model, register it and make it the champion."""
    options = {
        "model_type": model_type,
        "test_size": test_size,
        "cv_folds": cv_folds,
        "target_column": target_column,
        "keep_columns": keep_columns,
        "impute": impute,
    }
    fields = {name: str(value) for name, value in options.items() if value is not None}
    fields.update(_pairs(param, "--param"))

    def act(platform: Any) -> dict[str, Any]:
        with _spinner("training") as progress:
            progress.add_task("training", total=None)
            return platform.train(csv, fields)

    def show(answer: dict[str, Any]) -> None:
        table = Table(show_header=False, box=None)
        table.add_row("model version", f"{answer['model_version']} (champion)")
        table.add_row("model type", str(answer.get("model_type")))
        table.add_row("served by", str(answer.get("runtime")))
        table.add_row("MLflow run", str(answer.get("run_id")))
        table.add_row("metrics", _metrics_line({k: answer[k] for k in (names.M_ACCURACY, names.M_F1) if k in answer}))
        table.add_row("model file", str(answer.get("model_path")))
        out.print(table)

    _run(url, as_json, act, show)


@app.command()
def predict(
    feature: Annotated[list[str], typer.Option("--feature", "-f", help="A feature, name=value (repeat it)")],
    url: Url = None,
    as_json: AsJson = False,
) -> None:
    """Predict one sample with the champion (recorded in MLflow like every prediction)."""
    features = _pairs(feature, "--feature")

    def show(answer: dict[str, Any]) -> None:
        confidence, version = answer["confidence"], answer["model_version"]
        out.print(f"{answer['class_name']} (confidence {confidence:.3f}), model version {version}", highlight=False)
        for name, p in answer.get("probabilities", {}).items():
            out.print(f"  {name}: {p:.3f}", highlight=False)
        for what in ("out_of_range_features", "unseen_categories"):
            if answer.get(what):
                out.print(f"  {what.replace('_', ' ')}: {answer[what]}", highlight=False)
        out.print(f"  prediction id {answer['prediction_id']}", highlight=False)

    _run(url, as_json, lambda platform: platform.predict(features), show)


class Engine(StrEnum):
    local = "local"
    spark = "spark"


@app.command()
def batch(
    table: Annotated[
        str,
        typer.Argument(
            help="The rows to score: a CSV file (--engine local); a Parquet or CSV file or folder, on any store "
            "Spark reads, such as hdfs:// or s3a:// (--engine spark)",
            show_default=False,
        ),
    ],
    output: Annotated[
        str | None,
        typer.Option(
            help="Where the predictions go: a CSV file (local; by default only in the run's artifact), or a new "
            "folder, Parquet, or CSV if it ends in .csv (spark; by default <input>_predictions beside the input)"
        ),
    ] = None,
    engine: Annotated[
        Engine, typer.Option(help="local: one process, streamed; spark: Spark, on the --master's cores")
    ] = Engine.local,
    master: Annotated[
        str, typer.Option(help="The Spark master URL with --engine spark: local[*], spark://host:7077, yarn, ...")
    ] = "local[*]",
    url: Url = None,
    as_json: AsJson = False,
) -> None:
    """Predict every row of a table with the champion, as one MLflow batch run."""
    if engine is Engine.spark and url:
        raise typer.BadParameter(
            "--engine spark scores here, with Spark, not on a server: leave out --url (and unset IRIS_URL), "
            "and set MLFLOW_TRACKING_URI to the tracking server the model and the run are on",
            param_hint="--url",
        )

    def act(platform: Any) -> dict[str, Any]:
        if engine is Engine.spark:
            with _spinner("{task.description}") as progress:
                task = progress.add_task("starting")
                return platform.spark_batch(table, output, master, lambda what: progress.update(task, description=what))
        path = Path(table)
        if not path.is_file():
            from iris_platform.cli.platforms import CommandError

            what = "is a folder" if path.is_dir() else "does not exist"
            raise CommandError(f"'{table}' {what}: give a CSV file (or a Parquet or CSV folder with --engine spark).")
        columns = [TextColumn("predicting"), BarColumn(), DownloadColumn(), TimeElapsedColumn()]
        with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as progress:
            task = progress.add_task("predicting", total=path.stat().st_size if url else None)
            return platform.batch(path, Path(output) if output else None, lambda n: progress.advance(task, n))

    def show(answer: dict[str, Any]) -> None:
        statistics = answer.get("batch_statistics") or {}
        version, run_id = answer["model_version"], answer["run_id"]
        out.print(f"{answer['total_samples']:,} samples, model version {version}, run {run_id}", highlight=False)
        for name, count in (statistics.get("prediction_distribution") or {}).items():
            out.print(f"  {name}: {count:,}", highlight=False)
        drift = answer.get("drift") or {}
        if drift:
            out.print(f"  drift detected: {drift.get('drift_detected')}", highlight=False)
        written = answer.get("output_path") or output
        if written is not None:
            out.print(f"  predictions written to {written}", highlight=False)

    _run(url, as_json, act, show)


# -- records and models --------------------------------------------------------------------------


class RunType(StrEnum):
    training = "training"
    inference = "inference"


# What a runs table shows of each run's metrics: a training's quality, an inference run's size and confidence.
SHOWN_METRICS = (
    names.M_ACCURACY,
    names.M_F1,
    names.M_TOTAL_SAMPLES,
    names.M_AVG_CONFIDENCE,
    names.M_PREDICTION_CONFIDENCE,
)


@app.command()
def runs(
    run_type: Annotated[RunType | None, typer.Option("--type", help="One kind only")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="The newest N runs")] = 20,
    url: Url = None,
    as_json: AsJson = False,
) -> None:
    """The newest runs MLflow holds (trainings, predictions, or both)."""

    def show(answer: dict[str, Any]) -> None:
        table = Table("started (UTC)", "run", "type", "status", "metrics")
        table.columns[1].overflow = "fold"
        for run in answer["runs"]:
            metrics = _metrics_line({k: v for k, v in run["metrics"].items() if k in SHOWN_METRICS})
            started = (run["start_time"] or "")[:19].replace("T", " ")
            table.add_row(started, run["run_name"], run["run_type"], run["status"], metrics)
        out.print(table)
        out.print(f"{len(answer['runs'])} of {answer['total']:,}", highlight=False)

    _run(url, as_json, lambda platform: platform.runs(run_type.value if run_type else None, limit), show)


@app.command()
def models(url: Url = None, as_json: AsJson = False) -> None:
    """The registered versions, which one is champion and which one this store serves."""

    def show(answer: dict[str, Any]) -> None:
        table = Table("version", "aliases", "accuracy", "path")
        for model in answer["models"]:
            accuracy = (model.get("metrics") or {}).get("accuracy")
            table.add_row(
                str(model.get("version") or "-"),
                ", ".join(model.get("aliases") or []),
                "" if accuracy is None else f"{accuracy:.4f}",
                str(model.get("path")),
            )
        out.print(table)
        if answer.get("registry_error"):
            err.print(f"the registry did not answer: {answer['registry_error']}", markup=False)

    _run(url, as_json, lambda platform: platform.models(), show)


def _show_loaded(answer: dict[str, Any]) -> None:
    out.print(
        f"champion: version {answer['model_version']} (was {answer.get('previous_version') or 'none'}), "
        f"served by {answer.get('runtime')}",
        highlight=False,
    )


@app.command()
def promote(
    version: Annotated[int, typer.Argument(min=1, help="A registered version (see `models`)")],
    url: Url = None,
    as_json: AsJson = False,
) -> None:
    """Make a registered version the champion."""
    _run(url, as_json, lambda platform: platform.promote(version), _show_loaded)


@app.command()
def rollback(url: Url = None, as_json: AsJson = False) -> None:
    """Move the champion back to the version it named before its last move."""
    _run(url, as_json, lambda platform: platform.rollback(), _show_loaded)


# -- tuning --------------------------------------------------------------------------------------


@app.command()
def tune(
    model_type: Annotated[str, typer.Option(help="The model type to tune")],
    space: Annotated[
        str, typer.Option(help='The values to try, as JSON: \'{"n_estimators": [50, 100], "max_depth": [3, null]}\'')
    ],
    search: Annotated[str, typer.Option(help="grid or random")] = "grid",
    n_trials: Annotated[int | None, typer.Option(help="Trials of a random search")] = None,
    metric: Annotated[str, typer.Option(help="The metric the trials are ranked by")] = "accuracy",
    cv_folds: Annotated[int, typer.Option(help="Cross-validation folds (0: a held-out split)")] = 0,
    test_size: Annotated[float, typer.Option(help="Fraction held out")] = 0.2,
    promote: Annotated[bool, typer.Option(help="Make the best trial's version the champion")] = False,
    url: Url = None,
    as_json: AsJson = False,
) -> None:
    """Tune a model type on the Iris data: a parent MLflow run with a child run per trial; waits for it."""
    try:
        parsed = json.loads(space)
    except ValueError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="--space") from None
    request = {
        "model_type": model_type,
        "space": parsed,
        "search": search,
        "n_trials": n_trials,
        "metric": metric,
        "cv_folds": cv_folds,
        "test_size": test_size,
        "promote": promote,
    }

    def act(platform: Any) -> dict[str, Any]:
        started: dict[str, Any] = platform.tune(request)
        columns = [TextColumn("tuning"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as progress:
            task = progress.add_task("tuning", total=started["n_trials"])
            current = started
            try:
                while current["status"] in ("running", "cancelling"):
                    time.sleep(TUNING_POLL_S)
                    current = platform.tuning(started["tuning_id"])
                    progress.update(task, completed=current["trials_done"])
            except KeyboardInterrupt:  # the finished trials stay; the tuning ends after the current one
                platform.cancel_tuning(started["tuning_id"])
                raise
        return current

    def show(answer: dict[str, Any]) -> None:
        best = answer.get("best") or {}
        out.print(
            f"tuning {answer['tuning_id']}: {answer['status']}, {answer['trials_done']} of {answer['n_trials']} trials",
            highlight=False,
        )
        if best:
            out.print(
                f"  best: trial {best.get('trial')} {best.get('hyperparameters')}, "
                f"{answer['scored_by']} {best.get('score')}",
                highlight=False,
            )
        if answer.get("model_version"):
            out.print(f"  registered as version {answer['model_version']}", highlight=False)

    _run(url, as_json, act, show)


def main(argv: list[str] | None = None) -> None:
    """`iris-platform`; given no command but the server's flags (`iris-platform --port 8000`), it serves,
    as it did before it had commands."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0].startswith("-") and args[0] not in ("--help", "-h"):
        from iris_platform.server import main as serve_main

        serve_main(args)
        return
    app(args=args, prog_name="iris-platform")
