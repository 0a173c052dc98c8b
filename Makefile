# The two commands of the README: `make demo` and `make test`. Both set up .venv first.
# `make dist` builds the two distributions, tidewatch-client and tidewatch-server, into dist/.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint dist bench-ingest bench-load bench-detectors bench-cycle clean

$(BIN)/tidewatch: pyproject.toml collectors/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch pinned here: its CPU build is on local disk, a looser pin downloads a CUDA build.
	# The client (collectors/) is installed first, editable: the server requires it.
	$(BIN)/pip install --quiet torch==2.13.0 -e ./collectors -e '.[dev]'
	touch $@

# The OIDC tests' identity provider, in its own environment (see tests/oidc-provider.txt)
OIDC_PROVIDER := .venv-oidc-provider/bin/oidc-provider-mock
$(OIDC_PROVIDER): tests/oidc-provider.txt
	$(PYTHON) -m venv .venv-oidc-provider
	.venv-oidc-provider/bin/pip install --quiet -r tests/oidc-provider.txt
	touch $@

demo: $(BIN)/tidewatch
	DO_NOT_TRACK=1 $(BIN)/tidewatch demo

lint: $(BIN)/tidewatch
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	# the client runs on older Pythons (mypy checks 3.10 at the oldest; a test runs it on 3.9)
	$(BIN)/mypy --python-version 3.10 -p collectors

dist: $(BIN)/tidewatch
	rm -rf dist
	$(BIN)/python -m build --outdir dist collectors
	$(BIN)/python -m build --outdir dist .
	rm -rf build collectors/build *.egg-info collectors/*.egg-info
	@ls -l dist

test: lint $(OIDC_PROVIDER)
	DO_NOT_TRACK=1 $(BIN)/python -m pytest

bench-ingest: $(BIN)/tidewatch
	$(BIN)/python benchmarks/ingest.py

bench-load: $(BIN)/tidewatch
	DO_NOT_TRACK=1 $(BIN)/python benchmarks/load.py

bench-detectors: $(BIN)/tidewatch
	DO_NOT_TRACK=1 $(BIN)/python benchmarks/detectors.py

bench-cycle: $(BIN)/tidewatch
	DO_NOT_TRACK=1 $(BIN)/python benchmarks/cycle.py

clean:
	rm -rf $(VENV) .venv-oidc-provider .pytest_cache .mypy_cache .ruff_cache .hypothesis dist build collectors/build
