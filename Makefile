# `make run` serves the platform; `make test` runs every test. Both set up .venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: run test clean lock bench

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -c constraints.txt -e .
	touch $@

# The browser tests drive Debian's Chromium (a test tool's own browser download fails offline).
$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -c constraints.txt -e '.[test]'
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	touch $@

run: $(VENV)/.installed
	$(PY) main.py

test: $(VENV)/.installed-test
	$(PY) -m pytest

# The performance benchmark of issue 3 (about 4 minutes; `make bench BENCH_ARGS=--quick` for a 2-minute smoke run).
bench: $(VENV)/.installed
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(PY) bench/bench.py $(BENCH_ARGS)

# Re-pin constraints.txt to what the current .venv holds (after changing pyproject.toml).
lock: $(VENV)/.installed-test
	$(PY) -m pip freeze --exclude-editable | grep -v '^-e ' > constraints.txt

clean:
	rm -rf $(VENV)
