# axline: two commands for a fresh machine.
#   make demo   - the virtual factory, collected, stored, analysed and shown at http://127.0.0.1:8000
#   make test   - lint and the whole test suite against real peers (OPC UA server, headless Chromium)
#   make bench  - rerun every benchmark; each writes benchmarks/NAME.json and the page rendered from it
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: demo test lint services clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev,train]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/axline demo $(ARGS)

services:
	bash scripts/ensure-services.sh

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests

test: $(VENV)/.installed-dev services lint
	$(BIN)/pytest -q -ra $(ARGS)

bench: $(VENV)/.installed-dev services
	$(BIN)/axline bench cwru --json benchmarks/cwru.json --table benchmarks/cwru.md
	$(BIN)/axline bench cmapss --json benchmarks/cmapss.json --table benchmarks/cmapss.md
	$(BIN)/axline bench skab --json benchmarks/skab.json --table benchmarks/skab.md
	$(BIN)/axline bench alarms --json benchmarks/alarms.json --table benchmarks/alarms.md
	$(BIN)/axline bench vfactory --json benchmarks/vfactory.json --table benchmarks/vfactory.md
	$(BIN)/axline bench inspect --json benchmarks/inspect.json --table benchmarks/inspect.md
	$(BIN)/axline bench ingest --json benchmarks/ingest.json --table benchmarks/ingest.md

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
