# The project's verbs. Everything installs into .venv; nothing is needed but Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install dev test lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## Embedded PostgreSQL + Redis (unless DATABASE_URL / REDIS_URL are set), migrations, every service on :8000.
dev: install
	$(BIN)/reliefhub dev

## The whole suite, on embedded servers (or DATABASE_URL / REDIS_URL when set).
test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Benchmarks: print tables and write them under bench/results/.
bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .reliefhub .pytest_cache .mypy_cache .ruff_cache
