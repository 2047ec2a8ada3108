"""What the tests share besides fixtures, one concern a module.

- `contract`: the MLflow names of the platform's contract, spelled out on purpose.
- `data`: the Iris data as frames and CSV bytes, sample flowers, JSON files read back.
- `platform`: the app in process on a temporary store (`settings_for`, `Platform`, `open_platform`).
- `api`: requests that must succeed (`train`, `predict`, ...), `assert_error`, `wait_for_writer`.
- `mlflow_reads`: runs and artifacts read back from the store, and the checks made on them.
- `journal`: inference records as the app journals them, and a journal a crashed process left.
- `server_process`: the real server (`main.py`) as a subprocess, with an environment of the test's own.
"""
