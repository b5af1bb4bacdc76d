# vitalstream: `make help` lists the targets. Everything installs itself on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.DEFAULT_GOAL := help
.PHONY: help venv deps kafka-up kafka-down kafka-status test test-unit test-integration lint schemas golden demo bench chaos clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ is needed"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP) ## create .venv and install the pinned packages (torch from the pip cache after the first time)

deps: venv ## also check Java 17 and Maven and fetch the Kafka jars from Maven Central
	@command -v java >/dev/null && command -v mvn >/dev/null || bash .ci/install-java.sh
	$(PY) -c 'from streamer.kafka.devbroker import LocalKafka, fetch_jars; fetch_jars(LocalKafka())'

kafka-up: deps ## start the local single-node KRaft broker on 127.0.0.1:9092
	$(VENV)/bin/vitalstream kafka up

kafka-down: ## stop the local broker
	@test -x $(VENV)/bin/vitalstream && $(VENV)/bin/vitalstream kafka down || true

kafka-status: ## is the local broker up?
	$(VENV)/bin/vitalstream kafka status

test: deps ## set everything up and run all tests (unit, agents, integration on the real broker)
	$(PY) -m pytest -q

test-unit: venv ## only the tests that need no broker
	$(PY) -m pytest -q -m "not integration"

test-integration: deps ## only the tests on the real broker
	$(PY) -m pytest -q -m integration

chaos: deps ## worker kill -9, broker restarts, rebalances on an own broker (port 29292); bench/results/chaos.json
	nice -n 10 $(PY) bench/chaos.py $(CHAOS_ARGS)

lint: venv ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

schemas: venv ## regenerate schemas/ from the wire contracts
	$(VENV)/bin/vitalstream schemas

golden: venv ## check the golden sessions (make golden-update after an intended change)
	$(VENV)/bin/vitalstream golden check

golden-update: venv ## rewrite tests/data/golden/*.expected.json from the current code (review the diff)
	$(VENV)/bin/vitalstream golden update

demo: deps ## local broker + worker + a real recording replayed; prints what happened
	$(PY) -m streamer.cli.demo

bench: deps ## run the benchmarks under bench/ (results in bench/results/; several minutes)
	$(PY) bench/ingest.py
	$(PY) bench/signals.py
	$(PY) bench/inference.py

clean: kafka-down ## stop the broker, remove .venv, .kafka and var/
	rm -rf $(VENV) .kafka var .pytest_cache .hypothesis
