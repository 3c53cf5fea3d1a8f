# sandan: every target is idempotent. `make help` lists them.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KAFKA := kafka/broker.sh
CHROMEDRIVER := /usr/bin/chromedriver
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

run: setup kafka-up topics ## the main job: broker, topics, a worker, the gateway, a demo load, a summary; KEEP=1 keeps them and the dashboard up until Ctrl-C
	@set -m; mkdir -p .cache; log=.cache/worker.log; glog=.cache/gateway.log; \
	dlog=.cache/dashboard.log; keys=.cache/demo-keys.json; echo '{"keys": []}' >$$keys; \
	dashboard=http://127.0.0.1:$${SANDAN_DASHBOARD_PORT:-8090}/; \
	$(DEMO_ENV) $(BIN)/sandan worker -l warning >$$log 2>&1 & pid=$$!; \
	$(DEMO_ENV) SANDAN_GATEWAY_KEYS=$$keys $(BIN)/sandan gateway >$$glog 2>&1 & gpid=$$!; \
	dpid=; if [ -n "$(KEEP)" ]; then $(DEMO_ENV) $(BIN)/sandan dashboard >$$dlog 2>&1 & dpid=$$!; fi; \
	trap 'kill $$pid $$gpid $$dpid 2>/dev/null; wait $$pid $$gpid $$dpid 2>/dev/null; $(KAFKA) stop' EXIT; \
	$(DEMO_ENV) SANDAN_GATEWAY_KEYS=$$keys $(BIN)/python -m loadtest.demo \
		--gateway http://127.0.0.1:$${SANDAN_GATEWAY_PORT:-8080}; \
	echo "(worker log: $$log, gateway log: $$glog)"; \
	if [ -z "$(KEEP)" ]; then \
		echo "To watch it on the dashboard: make run KEEP=1, then open $$dashboard"; \
	else \
		echo "Dashboard: $$dashboard (log: $$dlog); worker: http://127.0.0.1:$${SANDAN_WEB_PORT:-6066}/metrics"; \
		echo "The broker, the worker, the gateway and the dashboard stay up: Ctrl-C stops them."; \
		trap 'exit 0' INT; wait $$pid; \
	fi

browser: ## install chromium and chromedriver (Debian packages) for the dashboard's browser test, once
	@test -x $(CHROMEDRIVER) || { echo "installing chromium and chromium-driver (apt-get)"; \
		apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; }

test: setup browser ## unit and integration tests (starts and stops its own broker on free ports)
	$(BIN)/pytest tests/unit tests/integration

unit: setup ## the unit tests alone: no broker, no browser (tests/unit mirrors the source tree)
	$(BIN)/pytest -q tests/unit

dashboard: setup ## the live status page of the local broker's workers, on http://127.0.0.1:8090 (SANDAN_DASHBOARD_PORT)
	SANDAN_BROKERS=127.0.0.1:$(SANDAN_KAFKA_PORT) $(BIN)/sandan dashboard

lint: setup ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup ## format the code
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

loadtest: setup kafka-up ## the sustained load test: RATE tickets/s (5100) for DURATION s (600), WORKERS (one per core), report in reports/
	$(BIN)/python -m loadtest.run --brokers 127.0.0.1:$(SANDAN_KAFKA_PORT) --rate $${RATE:-5100} --duration $${DURATION:-600} --workers $${WORKERS:-$$(nproc)}

overload: setup kafka-up ## offered load far above capacity: RATE tickets/s (10000) for DURATION s (40), window 10 s, WORKERS (one per core); every decision checked, report in reports/
	$(BIN)/python -m loadtest.run --brokers 127.0.0.1:$(SANDAN_KAFKA_PORT) --rate $${RATE:-10000} --duration $${DURATION:-40} --workers $${WORKERS:-$$(nproc)} --window 10 --ceiling-limit 20

loadtest-short: setup kafka-up ## a one-minute load test that checks correctness only
	$(BIN)/python -m loadtest.run --brokers 127.0.0.1:$(SANDAN_KAFKA_PORT) --short

loadtest-http: setup kafka-up ## the load test through the gateway: RATE tickets/s (1417) for DURATION s (60) straight to Kafka, then in requests of 1 and of 100 documents
	$(BIN)/python -m loadtest.http --brokers 127.0.0.1:$(SANDAN_KAFKA_PORT) --rate $${RATE:-1417} --duration $${DURATION:-60}

chaos: setup kafka-jars ## the chaos run on a broker of its own (NODES=3: a 3-node KRaft cluster, replication 3, one node restarted at a time): KILLS (100) worker SIGKILLs and BROKER_RESTARTS (4) under RATE tickets/s (40) for DURATION s (600), checked exactly; report in reports/
	$(BIN)/python -m loadtest.chaos --rate $${RATE:-40} --duration $${DURATION:-600} --kills $${KILLS:-100} --broker-restarts $${BROKER_RESTARTS:-4} --nodes $${NODES:-1}

throughput: setup kafka-up ## drain a backlog of TICKETS (100000) with WORKERS workers (one per core)
	$(BIN)/python -m loadtest.throughput --brokers 127.0.0.1:$(SANDAN_KAFKA_PORT) --tickets $${TICKETS:-100000} --workers $${WORKERS:-$$(nproc)}

throughput-garbage: setup kafka-up ## the same backlog of TICKETS (100000) clean and with GARBAGE (0.1) of its records malformed, ROUNDS (2) each; report in reports/
	$(BIN)/python -m loadtest.throughput --brokers 127.0.0.1:$(SANDAN_KAFKA_PORT) --tickets $${TICKETS:-100000} --workers $${WORKERS:-$$(nproc)} --garbage $${GARBAGE:-0.1} --rounds $${ROUNDS:-2} --report reports/garbage-throughput.md

metrics-cost: setup kafka-up ## the same backlog of TICKETS (100000) with the workers' metrics off, and on with the dashboard scraping, ROUNDS (2) each; report in reports/
	$(BIN)/python -m loadtest.throughput --brokers 127.0.0.1:$(SANDAN_KAFKA_PORT) --tickets $${TICKETS:-100000} --workers $${WORKERS:-$$(nproc)} --metrics-cost --rounds $${ROUNDS:-2} --report reports/metrics-cost.md

page-load: setup kafka-up browser ## the dashboard's page load with OPEN_TICKETS (1000000) open tickets on one worker: LOADS (10) loads in headless chromium, plain GETs, the worker's /metrics; report in reports/
	$(BIN)/python -m loadtest.pageload --brokers 127.0.0.1:$(SANDAN_KAFKA_PORT) --open-tickets $${OPEN_TICKETS:-1000000} --loads $${LOADS:-10}

fuzz: setup ## the decoders' fuzzer: INPUTS (1000000) hostile inputs from SEED (1) through the intake path, report in reports/
	$(BIN)/python -m loadtest.fuzz --inputs $${INPUTS:-1000000} --seed $${SEED:-1} --report reports/fuzz-decoders.md

bench: setup ## micro-benchmarks (pytest-benchmark)
	$(BIN)/pytest tests/bench --benchmark-only --benchmark-columns=min,median,mean,ops,rounds

clean: kafka-down ## remove the venv, the Kafka cache and local state
	rm -rf $(VENV) .cache data

.PHONY: help setup kafka-jars kafka-up kafka-down topics run browser test unit dashboard lint format loadtest loadtest-short loadtest-http chaos throughput throughput-garbage metrics-cost page-load fuzz bench clean
