# oiap: `make run` serves the app on a demo data set; `make test` runs every test.
VENV ?= .venv
PY := $(VENV)/bin/python
FLASK := $(VENV)/bin/flask
PORT ?= 5000
# One gunicorn process (DESIGN.md: the write lock, sessions and login limits live in it) with
# THREADS threads: enough that a slow request (an image decode) never holds up a team's ratings.
THREADS ?= 8

.PHONY: run test test-fast lint format bench setup-run setup-dev browser dlib-data clean-venv

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
	$(VENV)/bin/gunicorn -k app.gunicorn_worker.TimedThreadWorker -w 1 --threads $(THREADS) \
	  --no-control-socket -b 0.0.0.0:$(PORT) "app:create_app()"

# Debian's chromium for the browser tests; installed when missing and we are root.
browser:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing: install Debian's chromium package (sudo apt-get install chromium)"; exit 1; fi; \
	fi

# Debian's libdlib-data for the dlib predictor tests (dlib's 68-point .dat, never shipped by us);
# installed when missing and we are root.
DLIB_DAT := /usr/share/dlib/shape_predictor_68_face_landmarks.dat
dlib-data:
	@if [ ! -f $(DLIB_DAT) ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libdlib-data >/dev/null; \
	  else echo "$(DLIB_DAT) is missing: install Debian's libdlib-data package (sudo apt-get install libdlib-data)"; exit 1; fi; \
	fi

test: setup-dev browser dlib-data
	$(PY) -m pytest $(PYTEST_ARGS)

# Everything but the browser tests and those marked slow (Ray, training rounds, soak, fuzz), for a quick loop.
test-fast: setup-dev dlib-data
	$(PY) -m pytest -m "not browser and not slow" $(PYTEST_ARGS)

lint: setup-dev
	$(VENV)/bin/ruff check app scripts tests
	$(VENV)/bin/ruff format --check app scripts tests
	$(VENV)/bin/lint-imports --no-cache

format: setup-dev
	$(VENV)/bin/ruff format app scripts tests
	$(VENV)/bin/ruff check --fix app scripts tests

bench: setup-dev dlib-data
	@for s in scripts/bench_*.py; do echo "== $$s"; $(PY) $$s || exit 1; done

clean-venv:
	rm -rf $(VENV)
