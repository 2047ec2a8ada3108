# `make run` serves the platform; `make test` runs every test. Both set up .venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: run test clean lock

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -c constraints.txt -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -c constraints.txt -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(PY) main.py

test: $(VENV)/.installed-test
	$(PY) -m pytest

# Re-pin constraints.txt to what the current .venv holds (after changing pyproject.toml).
lock: $(VENV)/.installed-test
	$(PY) -m pip freeze --exclude-editable | grep -v '^-e ' > constraints.txt

clean:
	rm -rf $(VENV)
