# Die Hard: one command to run the system, one to test it.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# A Python 3.13 for .venv: empty means python3.13 on PATH, else one uv installs
# (where GitHub, which serves uv's builds, is reachable); scripts/python.sh.
PYTHON ?=
export PYTHON
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
PROMETHEUS := $(TOOLS)/bin/prometheus

.PHONY: help install image image-test test-tools browser cluster-tools deploy-tools secrets services services-down cluster-up cluster-down pg-cluster-up pg-cluster-down migrate run test test-unit screenshots lint format bench bench-guard chaos soak clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(UV): scripts/python.sh
	scripts/python.sh uv

# Two sets of Python packages: what running needs (the project's dependencies
# and honcho for `make run`), and with it the tools to test, lint and benchmark
# (the dev and bench groups: chdb, Playwright, mypy, ... over 1 GB). The first
# never removes the second (--inexact).
$(VENV)/.installed: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --inexact --no-default-groups --group run --python "$$(scripts/python.sh find)"
	@touch $@

$(VENV)/.dev-installed: $(VENV)/.installed
	$(UV) sync --frozen
	@touch $@

.env:
	cp .env.example .env

# Prometheus and promtool (from Debian's package) check, unit-test and run the alert rules.
$(PROMETHEUS): scripts/prometheus.sh | $(UV)
	scripts/prometheus.sh

install: $(VENV)/.installed .env services migrate ## what running needs: .venv (no test tools), .env, PostgreSQL, Redis, ClickHouse, both schemas

test-tools: $(VENV)/.dev-installed $(PROMETHEUS) browser cluster-tools deploy-tools ## what only the tests need: test and lint packages, promtool, Chromium and axe-core, ZooKeeper, systemd-analyze (make test installs them)

deploy-tools: ## install systemd-analyze, which checks deploy/systemd/'s units (unless present)
	scripts/packages.sh systemd

cluster-tools: ## install ZooKeeper and the ClickHouse server package for the cluster (unless present)
	scripts/packages.sh zookeeper clickhouse-server

browser: ## install Debian's Chromium and axe-core for the browser tests (unless present)
	scripts/browser.sh

secrets: ## write each secret `docker compose up` requires (random, URL-safe) into .env, once; never overwrites
	scripts/secrets.sh

# The local services' lifecycle is Python (devservices/, the standard library
# only); installing what they run on is scripts/packages.sh.
services: $(VENV)/.installed ## start PostgreSQL, Redis and ClickHouse on 127.0.0.1 unless they already run
	$(BIN)/python -m devservices up

services-down: $(VENV)/.installed ## stop the services that `make services` started
	$(BIN)/python -m devservices down

cluster-up: $(VENV)/.installed ## start ZooKeeper and two ClickHouse replicas (cluster die_hard, HTTP 8123 and 8124) unless they run
	$(BIN)/python -m devservices cluster up

cluster-down: $(VENV)/.installed ## stop what `make cluster-up` started (the cluster's data is kept)
	$(BIN)/python -m devservices cluster down

# A PostgreSQL pair of its own (never the machine's server on 5432): data under
# .services/pg-cluster/, ports PG_CLUSTER_PORTS (default "5433 5434").
pg-cluster-up: $(VENV)/.installed ## start a PostgreSQL primary (5433) with a synchronous standby (5434) unless they run; prints DATABASE_URL
	$(BIN)/python -m tests.chaos.pg_cluster up

pg-cluster-down: $(VENV)/.installed ## stop what `make pg-cluster-up` started (the pair's data is kept)
	$(BIN)/python -m tests.chaos.pg_cluster down

migrate: $(VENV)/.installed .env ## apply both schemas as their owners (DATABASE_ADMIN_URL, CLICKHOUSE_ADMIN_USER) and grant the web and relay roles their rights (idempotent)
	$(BIN)/python manage.py migrate --database owner --no-input
	$(BIN)/python manage.py database_grants --database owner
	$(BIN)/relay migrate

run: $(VENV)/.installed .env ## run services, web, relay and Celery worker in the foreground; Ctrl-C stops them
	scripts/run.sh

# Tests run in development mode and enqueue Celery tasks into a Redis database
# of their own, so a worker started by `make run` never sees them.
TEST_REDIS_URL ?= redis://127.0.0.1:6379/14

test: test-tools .env services ## run every test, against the real services
	DEBUG=true REDIS_URL=$(TEST_REDIS_URL) $(BIN)/pytest $(PYTEST_ARGS)

# The production image, built with podman (scripts/image.sh: on a base made
# from Debian's packages when no registry is reachable), then run as containers
# against the local services by tests/image/ (skipped by `make test`).
IMAGE ?= die-hard:local

image: ## build the container image (docker/Dockerfile) with podman; its base from Debian's packages unless present
	IMAGE=$(IMAGE) scripts/image.sh build

image-test: $(VENV)/.dev-installed .env services image ## run migrate, web, relay, worker and beat from the image against the local services, and test them
	DEBUG=true $(BIN)/pytest tests/image --image $(IMAGE) -s $(PYTEST_ARGS)

# The unit tests need no service and no .env: the settings' defaults are enough.
test-unit: $(VENV)/.dev-installed $(PROMETHEUS) deploy-tools ## run the tests that need no service (tests/unit/), in seconds
	DEBUG=true DIE_HARD_ENV_FILE=/dev/null $(BIN)/pytest tests/unit -n auto $(PYTEST_ARGS)

screenshots: $(VENV)/.dev-installed .env browser services ## refresh docs/screenshots/ from the browser tests
	DEBUG=true REDIS_URL=$(TEST_REDIS_URL) $(BIN)/pytest tests/integration/browser --screenshots docs/screenshots

# mypy's Django plugin loads the settings: development mode, defaults only.
lint: $(VENV)/.dev-installed ## ruff (lint and format check), the import contracts, mypy --strict and shellcheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	DEBUG=true DIE_HARD_ENV_FILE=/dev/null $(BIN)/mypy
	$(BIN)/shellcheck --external-sources scripts/*.sh scripts/lib/*.sh .ci/run

format: $(VENV)/.dev-installed ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# `make bench` writes each benchmark's JSON line here, then draws the charts
# (docs/img/) and the results section of docs/BENCHMARKS.md from them.
BENCH_RESULTS ?= docs/results

bench: $(VENV)/.dev-installed .env services ## latency, throughput and scale-out, the archive's and poison's cost, producer cost, 1 server vs a quorum of 2, the activity page and erasure at 1 M and 10 M events; charts into docs/img/
	$(BIN)/python -m benchmarks.producers --seconds 20 --runs 3 --json $(BENCH_RESULTS)/producers.json
	$(BIN)/python -m benchmarks.relay --json $(BENCH_RESULTS)/relay.json
	$(BIN)/python -m benchmarks.completeness --json $(BENCH_RESULTS)/completeness.json
	$(BIN)/python -m benchmarks.latency --json $(BENCH_RESULTS)/latency.json
	$(BIN)/python -m benchmarks.cluster --json $(BENCH_RESULTS)/cluster.json
	$(BIN)/python -m benchmarks.readside --json $(BENCH_RESULTS)/readside.json
	$(BIN)/python -m benchmarks.report $(BENCH_RESULTS)

# Floors far from today's figures in these short runs, so that machine noise
# does not fail them and a real regression does: the producers' server CPU per
# transaction with the site's wake-up is about 0.99 of what it is without one
# (a NOTIFY per commit reads about 0.56, the old trigger 0.8); the relay drains
# at 0.8-0.9 of a drain running the same statement on a quiet machine (0.6-0.8
# on a saturated one; 50,000 events are only 2.5 batches, so these short runs
# read lower); an idle relay holds about 61 MB as deployed, also after draining
# a backlog (a leak, or memory a burst never gave back, passes 70); a quorum of
# two replicas takes 0.6-0.7 of one server's rate (a cluster of its own, on free ports).
bench-guard: $(VENV)/.installed .env services cluster-tools ## short benchmarks that fail when a ratio or the relay's memory regresses (CI)
	$(BIN)/python -m benchmarks.producers --seconds 5 --slice 0.5 --runs 3 --variants after_commit --min-ratio 0.75
	$(BIN)/python -m benchmarks.relay --events 50000 --rounds 3 --relays 1 --no-naive --min-ratio 0.5 --max-rss-mb 70
	$(BIN)/python -m benchmarks.cluster --events 50000 --rounds 2 --min-ratio 0.4

# The chaos suite and the soak start servers of their own (a scratch PostgreSQL
# cluster, a private ClickHouse, a TCP proxy) on free ports; they never touch
# the services above, and stop everything they started, even when interrupted.
chaos: $(VENV)/.dev-installed ## fault scenarios with Jepsen-style accounting; last line JSON, non-zero on any loss
	scripts/packages.sh clickhouse-server
	$(BIN)/python -m tests.chaos $(CHAOS_ARGS)

soak: $(VENV)/.dev-installed ## >= 1M events over >= 20 min with random faults; lag, backlog and RSS over time, a PNG plot
	scripts/packages.sh clickhouse-server
	$(BIN)/python -m tests.chaos.soak $(SOAK_ARGS)

clean: ## remove the virtualenv and the tools (data under .services is kept)
	rm -rf $(VENV) $(TOOLS) .pytest_cache .ruff_cache .mypy_cache
