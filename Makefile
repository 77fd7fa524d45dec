# labkit: two commands. `make lab` opens the lab, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8888

.PHONY: lab test lint typecheck bench bench-quick samples clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[lab,test,dev]'
	touch $(STAMP)

lab: $(STAMP)
	$(BIN)/labkit lab --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(BIN)/ruff check labkit tests benchmarks notebooks
	$(BIN)/mypy
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check labkit tests benchmarks notebooks
	$(BIN)/ruff format --check labkit tests benchmarks notebooks

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m benchmarks

bench-quick: $(STAMP)
	$(BIN)/python -m benchmarks --quick

# Regenerate the committed sample runs in data/samples (seeded; see data/README.md).
samples: $(STAMP)
	$(BIN)/python -m labkit.samples --out data/samples --seed 7

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
