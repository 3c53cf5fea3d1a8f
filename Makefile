# sandan: every target is idempotent. `make help` lists them.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KAFKA := kafka/broker.sh
export SANDAN_KAFKA_PORT ?= 9092
DEMO_ENV := SANDAN_BROKERS=127.0.0.1:$(SANDAN_KAFKA_PORT) SANDAN_WINDOW=$${SANDAN_WINDOW:-8s}

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "sandan needs Python 3.11+"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(STAMP) kafka-jars ## create the venv, install sandan and its tools, fetch the Kafka jars

kafka-jars: ## fetch the Kafka broker jars from Maven Central (into .cache/kafka/lib)
	$(KAFKA) jars

kafka-up: kafka-jars ## start the local broker on 127.0.0.1:$SANDAN_KAFKA_PORT (default 9092)
	$(KAFKA) start

kafka-down: ## stop the local broker
	$(KAFKA) stop

topics: setup kafka-up ## create sandan's topics on the local broker
	$(DEMO_ENV) $(BIN)/sandan topics

run: setup kafka-up topics ## the main job: broker, topics, a worker, a demo load, a summary
	@set -m; log=.cache/worker.log; mkdir -p .cache; \
	$(DEMO_ENV) $(BIN)/sandan worker -l warning >$$log 2>&1 & pid=$$!; \
	trap 'kill $$pid 2>/dev/null; wait $$pid 2>/dev/null; $(KAFKA) stop' EXIT; \
	$(DEMO_ENV) $(BIN)/sandan demo; \
	echo "(worker log: $$log)"

test: setup ## unit and integration tests (starts and stops its own broker on free ports)
	$(BIN)/pytest tests/unit tests/integration

lint: setup ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup ## format the code
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

loadtest: setup kafka-up ## the sustained load test: RATE tickets/s (5100) for DURATION s (600), WORKERS (one per core), report in reports/
	$(BIN)/python -m loadtest.run --brokers 127.0.0.1:$(SANDAN_KAFKA_PORT) --rate $${RATE:-5100} --duration $${DURATION:-600} --workers $${WORKERS:-$$(nproc)}

loadtest-short: setup kafka-up ## a one-minute load test that checks correctness only
	$(BIN)/python -m loadtest.run --brokers 127.0.0.1:$(SANDAN_KAFKA_PORT) --short

throughput: setup kafka-up ## drain a backlog of TICKETS (100000) with WORKERS workers (one per core)
	$(BIN)/python -m loadtest.throughput --brokers 127.0.0.1:$(SANDAN_KAFKA_PORT) --tickets $${TICKETS:-100000} --workers $${WORKERS:-$$(nproc)}

bench: setup ## micro-benchmarks (pytest-benchmark)
	$(BIN)/pytest tests/bench --benchmark-only --benchmark-columns=min,median,mean,ops,rounds

clean: kafka-down ## remove the venv, the Kafka cache and local state
	rm -rf $(VENV) .cache data

.PHONY: help setup kafka-jars kafka-up kafka-down topics run test lint format loadtest loadtest-short throughput bench clean
