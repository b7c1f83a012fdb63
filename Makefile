# oiap: `make run` serves the app on a demo data set; `make test` runs every test.
VENV ?= .venv
PY := $(VENV)/bin/python
FLASK := $(VENV)/bin/flask
PORT ?= 5000
# Worker processes x threads: two processes per CPU (at most 8), two threads each. One process
# runs Python on one core at a time (the GIL); the write lock and login limits hold across them.
WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); w=$$((n * 2)); [ $$w -gt 8 ] && w=8; echo $$w)
THREADS ?= 2

.PHONY: run test test-fast lint format bench setup-run setup-dev browser clean-venv

$(VENV)/bin/python:
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Stamp files: reinstall only when a requirements file changes.
$(VENV)/.run-installed: requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-train.txt requirements-cluster.txt requirements-dev.txt | $(VENV)/bin/python
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@ $(VENV)/.run-installed

setup-run: $(VENV)/.run-installed
setup-dev: $(VENV)/.dev-installed

# --no-control-socket: gunicorn 27 opens one control socket per user (~/.gunicorn), which
# servers started side by side (tests, benchmarks, a second instance) would share.
run: setup-run
	$(FLASK) oiap init-db
	$(FLASK) oiap demo --if-empty
	$(FLASK) oiap user ensure-admin
	$(VENV)/bin/gunicorn -k app.gunicorn_worker.TimedThreadWorker -w $(WORKERS) --threads $(THREADS) \
	  --no-control-socket -b 0.0.0.0:$(PORT) "app:create_app()"

# Debian's chromium for the browser tests; installed when missing and we are root.
browser:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing: install Debian's chromium package (sudo apt-get install chromium)"; exit 1; fi; \
	fi

test: setup-dev browser
	$(PY) -m pytest $(PYTEST_ARGS)

# Everything but the browser tests and those marked slow (Ray, training rounds, soak, fuzz), for a quick loop.
test-fast: setup-dev
	$(PY) -m pytest -m "not browser and not slow" $(PYTEST_ARGS)

lint: setup-dev
	$(VENV)/bin/ruff check app scripts tests
	$(VENV)/bin/ruff format --check app scripts tests
	$(VENV)/bin/lint-imports --no-cache

format: setup-dev
	$(VENV)/bin/ruff format app scripts tests
	$(VENV)/bin/ruff check --fix app scripts tests

bench: setup-dev
	@for s in scripts/bench_*.py; do echo "== $$s"; $(PY) $$s || exit 1; done

clean-venv:
	rm -rf $(VENV)
