# One task runner. `make run` and `make test` work on a fresh machine: they
# install what they need first (a venv, npm packages, and for the tests
# Debian's chromium and redis-server; `make run` needs neither).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: run test lint deps bench clean

run: $(VENV)/.installed node_modules/.installed
	$(PY) -m minisio

test: deps lint
	$(PY) -m pytest
	node --test tests/js/

lint: $(VENV)/.installed
	$(PY) -m ruff check minisio tests benchmarks
	$(PY) -m ruff format --check minisio tests benchmarks
	$(PY) -m mypy minisio

deps: $(VENV)/.installed node_modules/.installed /usr/bin/chromium /usr/bin/redis-server

bench: $(VENV)/.installed node_modules/.installed
	$(PY) -m pip install -q -e '.[speed]'
	$(PY) benchmarks/run.py

$(VENV)/.installed: pyproject.toml requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt -e .
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# Debian's chromium (browser tests) and redis-server (Redis adapter tests: each
# starts its own throw-away server on a free port). One grouped rule, so one
# `apt-get update` for whichever is missing; no system Redis service stays up.
/usr/bin/chromium /usr/bin/redis-server &:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		$(if $(wildcard /usr/bin/chromium),,chromium) \
		$(if $(wildcard /usr/bin/redis-server),,redis-server)
	bash .ci/stop-system-redis

clean:
	rm -rf $(VENV) node_modules artifacts
