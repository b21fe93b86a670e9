# axline: two commands for a fresh machine.
#   make demo   - the virtual factory, collected, stored, analysed, its parts inspected by the AI camera,
#                 and shown at http://127.0.0.1:8000 (no torch: the vision model trains on ONNX Runtime)
#   make test   - lint and the whole test suite against real peers (OPC UA server, headless Chromium)
#   make bench  - rerun the benchmarks named in BENCHES (all by default); each writes benchmarks/NAME.json
#                 and its page
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=
BENCHES ?= cwru cmapss skab alarms vfactory inspect ingest ui knowhow faults tep tep_frontier furnace

.PHONY: demo test lint services bench clean

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

$(VENV)/.installed-bench: pyproject.toml $(VENV)/.installed-dev
	$(BIN)/pip install -q -e '.[dev,train,bench]'
	touch $@

bench: $(VENV)/.installed-bench services
	for b in $(BENCHES); do \
	  $(BIN)/axline bench $$b --json benchmarks/$$b.json --table benchmarks/$$b.md || exit 1; \
	done

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
