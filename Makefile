# The two commands of the README: `make demo` and `make test`. Both build .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_SECONDS ?= 60

.PHONY: venv demo test lint typecheck unit faults browser-deps kafka-up kafka-down clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: venv
	$(BIN)/umh demo --seconds $(DEMO_SECONDS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check schemas solver streams tests

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest -q tests/unit tests/property

# The whole suite: unit, property, agent, integration on the embedded broker AND on Apache Kafka
# (jars fetched from Maven Central on first use; UMH_REQUIRE_KAFKA=1 makes a missing Java/Maven a
# failure, not a skip) and the browser tests in headless Chromium.
# The fault tests (3-node Kafka, kill -9 of a worker, of the leading broker, and of it during a
# market-wide move) run in a second pytest process beside the rest (they mostly wait on their
# cluster; their output follows the suite's). `make test FAULTS=0` leaves them out.
FAULTS ?= 1
FAULTS_LOG := .cache/faults.log

test: venv lint typecheck browser-deps
	@KAFKA_JARS_ONLY=1 deploy/kafka/kafka-up.sh
	@mkdir -p .cache
	@if [ "$(FAULTS)" = 1 ]; then \
		UMH_REQUIRE_KAFKA=1 UMH_FAULTS=1 $(BIN)/pytest -q -s -p no:cacheprovider -m faults \
			--basetemp=.cache/faults-tmp tests/faults >$(FAULTS_LOG) 2>&1 & faults=$$!; \
	fi; \
	UMH_REQUIRE_KAFKA=1 $(BIN)/pytest -q -m "not faults"; suite=$$?; \
	faults_rc=0; \
	if [ "$(FAULTS)" = 1 ]; then \
		wait $$faults; faults_rc=$$?; \
		echo "---- fault tests (tests/faults, beside the suite; log $(FAULTS_LOG)) ----"; \
		cat $(FAULTS_LOG); \
	fi; \
	test $$suite = 0 && test $$faults_rc = 0

# Fault tests on a 3-node Kafka cluster with two workers (kill -9 a broker, kill -9 a worker).
faults: venv
	UMH_REQUIRE_KAFKA=1 UMH_FAULTS=1 $(BIN)/pytest -q -s -m faults tests/faults

# Debian's Chromium and ChromeDriver for the browser tests (nothing downloads a browser).
browser-deps:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium and chromium-driver ..."; \
		apt-get update -qq >/dev/null && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else echo "browser tests need /usr/bin/chromium and /usr/bin/chromedriver"; fi

# A real Apache Kafka (KRaft, jars from Maven Central) on 127.0.0.1 for integration tests.
# KAFKA_NODES=1|3 (client ports 19092..), KAFKA_SECURITY=1 adds SASL 19095 / SSL 19096.
kafka-up:
	@deploy/kafka/kafka-up.sh

kafka-down:
	@deploy/kafka/kafka-down.sh

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache
