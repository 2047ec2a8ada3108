# `make run` serves the platform; `make test` runs every test. Both set up .venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: run serve-mlflow test test-fast reliability-report check clean lock bench

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -c constraints.txt -e .
	touch $@

# The tests score batches on a local Spark (the spark extra; Java 17 is the machine's).
# The browser tests drive Debian's Chromium (a test tool's own browser download fails offline).
$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -c constraints.txt -e '.[test,spark]'
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	command -v java >/dev/null || (apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless)
	touch $@

# ruff, mypy and pre-commit, for `make check` (with pyspark, whose types the Spark batch is checked against).
$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -c constraints.txt -e '.[dev,spark]'
	touch $@

# Flags go through ARGS: make run ARGS="--port 9000 --workers 2".
run: $(VENV)/.installed
	$(PY) main.py $(ARGS)

# Stock MLflow serving a registered model: `make serve-mlflow` serves the champion at http://127.0.0.1:5001
# (POST /invocations); `make serve-mlflow MODEL=models:/iris_classifier/3 PORT=5002` another version.
# mlflow starts `uvicorn` by name, so the venv's bin goes first on PATH (without it: "uvicorn: not found").
MODEL ?= models:/$(or $(IRIS_REGISTERED_MODEL),iris_classifier)@champion
HOST ?= 127.0.0.1
PORT ?= 5001
MLFLOW_TRACKING_URI ?= sqlite:///mlflow.db
serve-mlflow: $(VENV)/.installed
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" MLFLOW_TRACKING_URI="$(MLFLOW_TRACKING_URI)" \
		$(VENV)/bin/mlflow models serve -m "$(MODEL)" --env-manager local -h "$(HOST)" -p "$(PORT)"

# --durations: the slowest tests in CI's log, where the suite's time goes.
test: $(VENV)/.installed-test
	$(PY) -m pytest --durations=25

# Unit and API tests only: no browser, reliability or slow test (markers in pyproject.toml), under 2 minutes.
test-fast: $(VENV)/.installed-test
	$(PY) -m pytest -m "not browser and not reliability and not slow"

# The reliability suite; its complete, passing run writes test-artifacts/RELIABILITY.md (ignored by git),
# copied here to docs/RELIABILITY.md, the committed figures. `make test` never writes to docs/.
reliability-report: $(VENV)/.installed-test
	rm -f test-artifacts/RELIABILITY.md
	$(PY) -m pytest tests/reliability
	cp test-artifacts/RELIABILITY.md docs/RELIABILITY.md

# Lint, format check and type check: what CI runs before the tests (and pre-commit on each commit,
# once `.venv/bin/pre-commit install` has set up the hook).
check: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The performance benchmark (bench/README.md: every goal, about 21 minutes; `make bench BENCH_ARGS=--quick` for a smoke run).
bench: $(VENV)/.installed
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(PY) -m bench $(BENCH_ARGS)

# Re-pin constraints.txt to what the current .venv holds (after changing pyproject.toml).
lock: $(VENV)/.installed-test $(VENV)/.installed-dev
	$(PY) -m pip freeze --exclude-editable | grep -v '^-e ' > constraints.txt

clean:
	rm -rf $(VENV)
