# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench-ingest bench-detectors bench-cycle clean

$(BIN)/tidewatch: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch pinned here: its CPU build is on local disk, a looser pin downloads a CUDA build
	$(BIN)/pip install --quiet torch==2.13.0 -e '.[dev]'
	touch $@

demo: $(BIN)/tidewatch
	DO_NOT_TRACK=1 $(BIN)/tidewatch demo

lint: $(BIN)/tidewatch
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	DO_NOT_TRACK=1 $(BIN)/python -m pytest

bench-ingest: $(BIN)/tidewatch
	$(BIN)/python benchmarks/ingest.py

bench-detectors: $(BIN)/tidewatch
	DO_NOT_TRACK=1 $(BIN)/python benchmarks/detectors.py

bench-cycle: $(BIN)/tidewatch
	DO_NOT_TRACK=1 $(BIN)/python benchmarks/cycle.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
