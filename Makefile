# vitalstream: `make help` lists the targets. Everything installs itself on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.DEFAULT_GOAL := help
.PHONY: help venv deps browser screenshots kafka-up kafka-down kafka-status test test-unit test-integration chaos lint schemas golden demo bench bench-fleet fuzz clean

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

browser: ## headless Chromium and chromedriver from Debian's packages (for the ward-view browser test)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || bash .ci/install-browser.sh

kafka-up: deps ## start the local single-node KRaft broker on 127.0.0.1:9092
	$(VENV)/bin/vitalstream kafka up

kafka-down: ## stop the local broker
	@test -x $(VENV)/bin/vitalstream && $(VENV)/bin/vitalstream kafka down || true

kafka-status: ## is the local broker up?
	$(VENV)/bin/vitalstream kafka status

test: deps browser ## set everything up and run all tests (unit, agents, integration on the real broker, browser)
	$(PY) -m pytest -q

test-unit: venv ## only the tests that need no broker
	$(PY) -m pytest -q -m "not integration"

test-integration: deps browser ## only the tests on the real broker
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

bench-fleet: deps ## fleet ladder: how many real-time wearables one worker follows (bench/results/fleet.json; ~10 min)
	$(PY) bench/fleet.py
screenshots: deps browser ## redraw docs/ward.png (browser test) and docs/report_*.png (MIT-BIH 203)
	VITALS_WARD_SCREENSHOT=$(CURDIR)/docs/ward.png $(PY) -m pytest -q tests/ward/test_ward_browser.py
	@mkdir -p var
	$(VENV)/bin/vitalstream import wfdb ../shared/data/mitdb/203 -o var/mitdb203.jsonl.gz
	$(VENV)/bin/vitalstream analyze var/mitdb203.jsonl.gz --json > var/mitdb203.analysis.json
	$(VENV)/bin/vitalstream report var/mitdb203.jsonl.gz --analysis var/mitdb203.analysis.json -o var/mitdb203.html
	cp var/mitdb203.png docs/report_mitdb203.png
	chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,1100 \
	  --virtual-time-budget=15000 --screenshot=$(CURDIR)/docs/report_interactive.png file://$(CURDIR)/var/mitdb203.html
fuzz: deps ## 100,000 hostile inputs through validate() and 3,000 through a real worker (bench/results/fuzz.json)
	$(PY) bench/fuzz.py --cases 100000 --broker-cases 3000

clean: kafka-down ## stop the broker, remove .venv, .kafka and var/
	rm -rf $(VENV) .kafka var .pytest_cache .hypothesis
