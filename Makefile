# Die Hard: one command to run the system, one to test it.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.13
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin

.PHONY: help install services services-down migrate run test test-unit lint format bench bench-producers clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.installed: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

.env:
	cp .env.example .env

install: $(VENV)/.installed .env services migrate ## create .venv, .env, start services, apply both schemas

services: ## start PostgreSQL, Redis and ClickHouse on 127.0.0.1 unless they already run
	scripts/services.sh up

services-down: ## stop the services that `make services` started
	scripts/services.sh down

migrate: $(VENV)/.installed .env ## apply both schemas and grant the web and relay roles their rights (idempotent)
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py database_grants
	$(BIN)/relay migrate

run: $(VENV)/.installed .env ## run services, web, relay and Celery worker in the foreground; Ctrl-C stops them
	scripts/run.sh

# Tests run in development mode and enqueue Celery tasks into a Redis database
# of their own, so a worker started by `make run` never sees them.
TEST_REDIS_URL ?= redis://127.0.0.1:6379/14

test: $(VENV)/.installed .env services ## run every test, against the real services
	DEBUG=true REDIS_URL=$(TEST_REDIS_URL) $(BIN)/pytest $(PYTEST_ARGS)

# The unit tests need no service and no .env: the settings' defaults are enough.
test-unit: $(VENV)/.installed ## run the tests that need no service (tests/unit/), in seconds
	DEBUG=true DIE_HARD_ENV_FILE=/dev/null $(BIN)/pytest tests/unit $(PYTEST_ARGS)

# mypy's Django plugin loads the settings: development mode, defaults only.
lint: $(VENV)/.installed ## ruff (lint and format check), the import contracts, mypy --strict and shellcheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	DEBUG=true DIE_HARD_ENV_FILE=/dev/null $(BIN)/mypy
	$(BIN)/shellcheck --external-sources scripts/*.sh scripts/lib/*.sh .ci/run

format: $(VENV)/.installed ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(VENV)/.installed .env services ## relay throughput vs a raw Postgres drain, and the producer cost of the wake-up
	$(BIN)/python -m benchmarks.producers
	$(BIN)/python -m benchmarks.relay

clean: ## remove the virtualenv and the tools (data under .services is kept)
	rm -rf $(VENV) $(TOOLS) .pytest_cache .ruff_cache .mypy_cache
