# realtime: `make run`, `make test` and `make lint` work on a fresh machine; they build what is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_FLAGS := --quiet --disable-pip-version-check
SOURCE ?=
ARGS ?=
PYTEST_ARGS ?=

.PHONY: run test test-fast lint format system-deps venv clean help

help:
	@echo "make run [SOURCE=0|file|url] [ARGS='--headless ...']   run the live pipeline (no camera or display: the demo clip)"
	@echo "make test                                            create the environment and run every test"
	@echo "make lint                                            ruff (lint + format check) and mypy"
	@echo "make format                                          apply ruff's safe fixes and its formatting"
	@echo "make serve [WEB_PORT=8000]                           the web app: upload a video, teach an action"
	@echo "make test-fast                                       the suite without the slow and end-to-end tests"
	@echo "make test-rtsp | test-web | test-cluster | test-detectron2   one area's tests"
	@echo "make soak-rtsp [SOAK_MINUTES=10] | bench-cluster      long runs that measure (docs/streams.md, docs/cluster.md)"

venv: $(VENV)/.installed

# The pins are in pyproject.toml; requirements.txt names the extras. The stamp is written last, so an
# interrupted install is redone on the next run.
$(VENV)/.installed: pyproject.toml requirements.txt requirements-no-deps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) -r requirements.txt
	$(PY) -m pip install $(PIP_FLAGS) --no-deps -r requirements-no-deps.txt
	touch $@

# Debian packages the tests drive for real (Xvfb, ffmpeg, an RTSP server, Chromium, mosquitto).
system-deps:
	@bash scripts/install_system_deps.sh

# Without SOURCE, a machine with no webcam or no display gets the demo clip (realtime/demo.py).
run: $(VENV)/.installed
	$(PY) -m realtime $(if $(SOURCE),--source '$(SOURCE)',--demo-if-no-camera) $(ARGS)

# The whole suite: the main environment's tests, then Detectron2's in its own (make/detectron2.mk).
test: $(VENV)/.installed system-deps
	$(PY) -m pytest -m "not detectron2" $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-detectron2

test-fast: $(VENV)/.installed
	$(PY) -m pytest -m "not detectron2 and not slow and not rtsp and not browser and not gui and not mqtt" $(PYTEST_ARGS)

# All three run even when one fails, so one CI run shows every finding; settings in pyproject.toml.
lint: $(VENV)/.installed
	status=0; \
	$(PY) -m ruff check . || status=1; \
	$(PY) -m ruff format --check . || status=1; \
	$(PY) -m mypy realtime/ || status=1; \
	exit $$status

# Safe fixes only; what is left is printed and needs a hand.
format: $(VENV)/.installed
	$(PY) -m ruff check --fix --exit-zero .
	$(PY) -m ruff format .

-include make/*.mk

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
