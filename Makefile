# The project's verbs. Everything installs into .venv; nothing is needed but Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install dev test lint size format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## Embedded PostgreSQL + Redis (unless DATABASE_URL / REDIS_URL are set), migrations, every service on :8000
## (`make dev PORT=8080` for another port).
dev: install
	$(BIN)/reliefhub dev $(if $(PORT),--port $(PORT))

## The whole suite, on embedded servers (or DATABASE_URL / REDIS_URL when set), in TEST_WORKERS parallel
## processes (each with servers of its own; `make test TEST_WORKERS=1` for one process).
TEST_WORKERS ?= 2
test: install
	$(BIN)/python -m pytest $(if $(filter-out 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile)

## ruff (format and lint) over everything; mypy: strict for application code, checking tests/ and bench/ too;
## the size limits of `make size`.
lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m tools.code_size

## Application code's size limits: no function of complexity above 20 (radon), no module over 700 lines.
size: install
	$(BIN)/python -m tools.code_size

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Benchmarks: print tables and write them under bench/results/.
bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .reliefhub .pytest_cache .mypy_cache .ruff_cache
