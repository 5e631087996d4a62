# Two commands: `make run` and `make test`. Both set up what they need from this repository.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The PostgreSQL that `make test` runs against as well as SQLite (override with DATABASE_URL);
# each test run creates and drops its own schema in it.
TEST_DATABASE_URL := $(or $(DATABASE_URL),postgresql+psycopg://postgres@127.0.0.1:5432/test)

.PHONY: run test lint typecheck pytest bench clean chromium

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

pytest: $(BIN)/dk-adapter chromium
	DATABASE_URL='$(TEST_DATABASE_URL)' $(BIN)/pytest -q

test: lint typecheck pytest

bench: $(BIN)/dk-adapter
	$(BIN)/python bench/abonnementen.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
