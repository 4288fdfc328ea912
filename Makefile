# graphblocks build helper. `make inspect` and `make test` are the README quick start.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SOURCES := graphblocks trainers tests bench fixtures

.PHONY: setup inspect test lint golden bench-startup zoo clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' -c constraints.txt
	touch $(STAMP)

inspect: $(STAMP)
	$(VENV)/bin/graphblocks inspect resnet50

test: $(STAMP) lint
	$(PY) -m pytest -n 2 -q

lint: $(STAMP)
	$(VENV)/bin/ruff check $(SOURCES)
	$(VENV)/bin/ruff format --check $(SOURCES)
	$(VENV)/bin/mypy

golden: $(STAMP)
	$(PY) fixtures/make_golden.py

bench-startup: $(STAMP)
	$(PY) bench/startup.py

zoo: $(STAMP)
	$(VENV)/bin/graphblocks zoo --source all --jobs 2 --resume -o bench/results/zoo.csv
	$(VENV)/bin/graphblocks zoo-report bench/results/zoo.csv -o docs/zoo.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
