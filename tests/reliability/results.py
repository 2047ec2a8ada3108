"""What the reliability tests tried and what happened, and the report made from it.

The report is written to test-artifacts/RELIABILITY.md; `make reliability-report` copies it to docs/RELIABILITY.md.

Tests append records through the `results` fixture (see conftest.py); nothing in the document is
typed by hand: every figure comes from a record of this run.
"""

from __future__ import annotations

import os
import platform
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class Results:
    bad_inputs: list[dict[str, Any]] = field(default_factory=list)
    fuzzing: list[dict[str, Any]] = field(default_factory=list)
    properties: list[dict[str, Any]] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)
    load: list[dict[str, Any]] = field(default_factory=list)

    # -- recording ----------------------------------------------------------------------------

    def bad_input(
        self, *, group: str, case: str, route: str, sent_as: str, expected: int, status: int, detail: str
    ) -> None:
        self.bad_inputs.append(
            dict(group=group, case=case, route=route, sent_as=sent_as, expected=expected, status=status, detail=detail)
        )

    def fuzzed(self, *, operation: str, examples: int, statuses: Counter, notes: str = "") -> None:
        self.fuzzing.append(dict(operation=operation, examples=examples, statuses=statuses, notes=notes))

    def property(self, *, name: str, examples: int, outcomes: Counter) -> None:
        self.properties.append(dict(name=name, examples=examples, outcomes=outcomes))

    def fault(
        self,
        *,
        fault: str,
        injected: str,
        answers: str,
        acknowledged: int | None = None,
        found_once: int | None = None,
        lost: int | None = None,
        duplicated: int | None = None,
        survived: str = "",
    ) -> None:
        self.faults.append(
            dict(
                fault=fault,
                injected=injected,
                answers=answers,
                acknowledged=acknowledged,
                found_once=found_once,
                lost=lost,
                duplicated=duplicated,
                survived=survived,
            )
        )

    def load_held(self, **figures: Any) -> None:
        self.load.append(figures)

    # -- the document ---------------------------------------------------------------------------

    def markdown(self, duration_s: float, tests: int) -> str:
        now = datetime.now(UTC)
        out = [
            "# Reliability figures",
            "",
            f"Written by the reliability tests (`tests/reliability/`, run by `make reliability-report`) on "
            f"{now:%Y-%m-%d %H:%M} UTC: {tests} tests, all passed, in "
            f"{duration_s:.0f} s (Python {platform.python_version()}, {platform.system()} {platform.machine()}, "
            f"{os.cpu_count()} cores). Do not edit by hand: every figure below is a record of that run; "
            "`make reliability-report` runs the folder again and copies its report here.",
            "",
        ]
        out += self._bad_input_section()
        out += self._fuzzing_section()
        out += self._property_section()
        out += self._fault_section()
        out += self._load_section()
        return "\n".join(out).rstrip() + "\n"

    def _bad_input_section(self) -> list[str]:
        rows = self.bad_inputs
        if not rows:
            return []
        server_errors = sum(r["status"] >= 500 for r in rows)
        by_group: dict[str, list[dict]] = defaultdict(list)
        for r in rows:
            by_group[r["group"]].append(r)
        accepted = sum(r["expected"] < 400 for r in rows)
        out = [
            "## Bad input",
            "",
            f"{len(rows)} requests were sent: {len(rows) - accepted} mistakes and {accepted} borderline inputs "
            f"that are accepted (extra columns, 1e308, negative measurements, ...), in {len(by_group)} groups; "
            f"{server_errors} answered 5xx. Every answer had the expected status, every refusal a `detail` "
            "string naming the problem. After each request to the app: no MLflow run was left `RUNNING`, a "
            "run the request had started had ended `FAILED` with a `failure_reason` tag, the models folder "
            "held the same complete models and nothing else (no temporary or partial file), and the current "
            "model (`GET /models` and a fixed prediction's answer) was unchanged. The requests sent to the "
            "real server over raw sockets were checked for an unchanged models folder and no `RUNNING` run.",
            "",
            "| group | requests | statuses |",
            "|---|---:|---|",
        ]
        for group, items in by_group.items():
            out.append(f"| {group} | {len(items)} | {_statuses(Counter(r['status'] for r in items))} |")
        out.append(f"| **all** | **{len(rows)}** | {_statuses(Counter(r['status'] for r in rows))} |")
        out += [
            "",
            "<details><summary>Every request and its answer</summary>",
            "",
            "| group | case | route | sent as | expected | got | detail (start) |",
            "|---|---|---|---|---:|---:|---|",
        ]
        for r in rows:
            detail = r["detail"].replace("|", "\\|").replace("\n", " ")
            detail = detail if len(detail) <= 110 else detail[:107] + "..."
            out.append(
                f"| {r['group']} | {r['case']} | `{r['route']}` | {r['sent_as']} | {r['expected']} | "
                f"{r['status']} | {detail} |"
            )
        out += ["", "</details>", ""]
        return out

    def _fuzzing_section(self) -> list[str]:
        if not self.fuzzing:
            return []
        total = sum(r["examples"] for r in self.fuzzing)
        server_errors = sum(n for r in self.fuzzing for s, n in r["statuses"].items() if s >= 500)
        out = [
            "## Generated input (Schemathesis)",
            "",
            f"Schemathesis generated {total} requests from the app's own OpenAPI schema, in process, with a "
            f"trained model loaded ({len(self.fuzzing)} operations, inputs that fit the schema and inputs "
            f"that do not); {server_errors} answered 5xx.",
            "",
            "| operation | requests | statuses | note |",
            "|---|---:|---|---|",
        ]
        for r in self.fuzzing:
            out.append(f"| `{r['operation']}` | {r['examples']} | {_statuses(r['statuses'])} | {r['notes']} |")
        return out + [""]

    def _property_section(self) -> list[str]:
        if not self.properties:
            return []
        out = [
            "## Properties (Hypothesis)",
            "",
            "| property | examples | outcomes |",
            "|---|---:|---|",
        ]
        for r in self.properties:
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items()))
            out.append(f"| {r['name']} | {r['examples']} | {outcomes} |")
        return out + [""]

    def _fault_section(self) -> list[str]:
        if not self.faults:
            return []
        acknowledged = sum(r["acknowledged"] or 0 for r in self.faults)
        lost = sum(r["lost"] or 0 for r in self.faults)
        duplicated = sum(r["duplicated"] or 0 for r in self.faults)
        out = [
            "## Faults injected",
            "",
            f"{len(self.faults)} faults; {acknowledged} predictions acknowledged during them, "
            f"{lost} lost, {duplicated} recorded twice.",
            "",
            "| fault | how it was injected | answers during the fault | predictions acknowledged | "
            "in MLflow exactly once | lost | twice | what survived |",
            "|---|---|---|---:|---:|---:|---:|---|",
        ]
        for r in self.faults:
            out.append(
                f"| {r['fault']} | {r['injected']} | {r['answers']} | {_n(r['acknowledged'])} | "
                f"{_n(r['found_once'])} | {_n(r['lost'])} | {_n(r['duplicated'])} | {r['survived']} |"
            )
        return out + [""]

    def _load_section(self) -> list[str]:
        if not self.load:
            return []
        out = ["## Concurrency", ""]
        for r in self.load:
            out += [
                f"{r['predictions']} single predictions ({r['in_flight']} in flight at once, in {r['waves']} "
                f"wave(s)) against the real server (uvicorn, one process, on this {r['cores']}-core machine) "
                f"while {r['trainings']} trainings ran, in {r['seconds']:.1f} s.",
                "",
                "| figure | value |",
                "|---|---:|",
                f"| predictions answered 200 | {r['ok']} of {r['predictions']} |",
                f"| trainings answered 200 | {r['trainings_ok']} of {r['trainings']} |",
                f"| unique prediction ids | {r['unique_ids']} |",
                f"| recorded in MLflow exactly once | {r['found_once']} |",
                f"| lost / recorded twice | {r['lost']} / {r['duplicated']} |",
                f"| MLflow runs holding them (single / window) | {r['single_runs']} / {r['window_runs']} |",
                f"| models that answered | {r['models_served']} |",
                f"| answers that differ from their model_path's model | {r['mixed']} |",
                f"| answers mentioning 'database is locked' | {r['locked']} |",
                f"| latency p50 / p99 / max | {r['p50_ms']:.0f} / {r['p99_ms']:.0f} / {r['max_ms']:.0f} ms |",
                "",
                "The latencies are those of a whole wave seen by the test's own Python client (httpx2), which "
                "shares the cores with the server: they measure that the load was held, not the server's speed "
                "(`make bench` measures that).",
                "",
            ]
        return out


def _statuses(counter: Counter) -> str:
    return ", ".join(f"{status} \u00d7{n}" for status, n in sorted(counter.items()))


def _n(value: int | None) -> str:
    return "-" if value is None else str(value)
