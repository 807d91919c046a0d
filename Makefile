# The two commands: `make demo` and `make test`. Both create .venv and install what they need; `make test`
# also installs the services the tests use (ZooKeeper, libvirt's build deps, Chromium) from Debian.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test lint typecheck services clean venv

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/tropic demo

# System services and libraries for the integration tests (idempotent, quick when already present).
services: $(TEST_STAMP)
	bash scripts/install-zookeeper.sh >/dev/null
	bash scripts/install-libvirt.sh $(VENV) >/dev/null
	bash scripts/install-chromium.sh >/dev/null

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests benchmarks examples scripts
	$(BIN)/ruff format --check src tests benchmarks examples scripts

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

test: $(TEST_STAMP) services lint typecheck
	TROPIC_NO_SKIP=1 TROPIC_REQUIRE_ZOOKEEPER=1 $(BIN)/pytest -q

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
