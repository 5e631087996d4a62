# Two commands: `make run` and `make test`. Both set up what they need from this repository.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The PostgreSQL that `make test` runs against as well as SQLite (override with DATABASE_URL);
# each test run creates and drops its own schema in it.
TEST_DATABASE_URL := $(or $(DATABASE_URL),postgresql+psycopg://postgres@127.0.0.1:5432/test)

.PHONY: run test lint typecheck pytest bench clean chromium xmlsec1 soap-stacks haproxy

$(BIN)/dk-adapter: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

certs/root-ca.pem: | $(BIN)/dk-adapter
	$(BIN)/dk-adapter pki init --dir certs --if-missing

# The example accounts are loaded once, when the embedded database is first created.
var/adapter.db: | $(BIN)/dk-adapter
	$(BIN)/dk-adapter accounts import conf/accounts.example.csv --quiet

run: $(BIN)/dk-adapter certs/root-ca.pem var/adapter.db
	$(BIN)/dk-adapter serve

lint: $(BIN)/dk-adapter
	$(BIN)/ruff check adapter tests bench
	$(BIN)/ruff format --check adapter tests bench

typecheck: $(BIN)/dk-adapter
	$(BIN)/mypy adapter

# The browser test drives Debian's chromium (never a browser Playwright downloads); install it
# with apt-get only when it is missing.
chromium:
	@test -x /usr/bin/chromium || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

# The receipt tests check receipts with the xmlsec1 command line tool as any party would;
# Debian's package, installed only when missing.
xmlsec1:
	@test -x /usr/bin/xmlsec1 || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y xmlsec1)

# The SOAP stacks tests/test_soap_stacks.py calls our WSDLs with besides zeep: node's `soap`
# package as pinned by its package-lock.json, and from Debian PHP's SoapClient and Java's
# JAX-WS RI (wsimport, and a JDK for javac), installed with apt-get only when missing.
tests/stacks/node/node_modules: tests/stacks/node/package.json tests/stacks/node/package-lock.json
	cd tests/stacks/node && npm ci --no-audit --no-fund --loglevel=error
	touch $@

soap-stacks: tests/stacks/node/node_modules
	@(php -m 2>/dev/null | grep -qx soap && command -v wsimport >/dev/null && command -v javac >/dev/null) || \
	  (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y php-cli php-soap jaxws default-jdk-headless)

# tests/test_two_nodes.py puts Debian's HAProxy in front of two adapter nodes; installed
# only when missing. The test starts its own HAProxy on loopback with its own configuration.
haproxy:
	@test -x /usr/sbin/haproxy || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y haproxy)

# Four pytest processes (pytest-xdist), each taking whole test files: most of an end-to-end
# test's time is a server starting, answering or stopping, so four files overlap well even on
# two cores (on a slow machine 646 s against three's 750); a file keeps its module-scoped
# servers to itself. TEST_WORKERS=0 runs in one.
# Tests marked `alone` time how the server answers under attack, so they run afterwards with
# the machine to themselves.
TEST_WORKERS ?= 4
pytest: $(BIN)/dk-adapter chromium xmlsec1 soap-stacks haproxy
	DATABASE_URL='$(TEST_DATABASE_URL)' $(BIN)/pytest -q -m 'not alone' -n $(TEST_WORKERS) --dist loadfile --durations=15
	DATABASE_URL='$(TEST_DATABASE_URL)' $(BIN)/pytest -q -m alone --durations=5

test: lint typecheck pytest

# The whole benchmark set against its baselines (bench/run.py); its own extra brings spyne,
# matplotlib and the profilers. `bench/run.py --quick` runs it with short windows.
$(VENV)/.bench-installed: setup.cfg | $(BIN)/dk-adapter
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

bench: $(VENV)/.bench-installed xmlsec1
	DATABASE_URL='$(TEST_DATABASE_URL)' $(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
