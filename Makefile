# The two commands of the README: `make demo` and `make test`. Both build .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_SECONDS ?= 60

.PHONY: venv demo test lint typecheck unit integration kafka-up kafka-down clean

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

test: venv lint typecheck
	$(BIN)/pytest -q

# A real Apache Kafka (KRaft, jars from Maven Central) on 127.0.0.1 for integration tests.
# KAFKA_NODES=1|3 (client ports 19092..), KAFKA_SECURITY=1 adds SASL 19095 / SSL 19096.
kafka-up:
	@deploy/kafka/kafka-up.sh

kafka-down:
	@deploy/kafka/kafka-down.sh

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache
