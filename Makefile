# The README's two commands, `make run` and `make test`, set themselves up in .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test check format clean

# setup.py builds the one C extension (src/accounts/arena_cache.py says why).
# constraints.txt pins every package to the versions the tests last passed with, pip
# and the build's setuptools included; scripts/lock.sh renews it (docs/decisions.md,
# "Installs are pinned"). A venv that has the bench's packages gets them re-pinned too.
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt
PIP_INSTALL := $(PIP) --build-constraint constraints.txt
$(STAMP): pyproject.toml setup.py src/accounts/_arena_cache.c constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required")'
	$(PYTHON) -m venv $(VENV)
	$(PIP) pip setuptools
	extras=dev; [ -f $(BENCH_STAMP) ] && extras=dev,bench; $(PIP_INSTALL) -e ".[$$extras]"
	@touch $(STAMP)

install: $(STAMP)

## Serve on 127.0.0.1:8000 with the embedded SQLite database (./accounts.db).
run: $(STAMP)
	$(BIN)/accounts serve

## Run every test, on SQLite and on a throwaway PostgreSQL (see scripts/test.sh).
test: $(STAMP)
	scripts/test.sh $(PYTEST_ARGS)

## Lint, format check, strict typing and the layering contracts.
check: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy
	$(BIN)/lint-imports

## Benchmarks (bench/README.md): BENCH_PROFILE=short (default, ~10 min) or full (1M users).
BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(STAMP)
	$(PIP_INSTALL) -e '.[dev,bench]'
	@touch $(BENCH_STAMP)

.PHONY: bench
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.run --profile $${BENCH_PROFILE:-short}

format: $(STAMP)
	$(BIN)/ruff check --fix src tests
	$(BIN)/ruff format src tests

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache build \
		src/accounts.egg-info src/accounts/_arena_cache.*.so
