# realtime: `make run` and `make test` work on a fresh machine; they build what is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SOURCE ?=
ARGS ?=
PYTEST_ARGS ?=

.PHONY: run test test-fast system-deps venv clean help

help:
	@echo "make run [SOURCE=0|file|url] [ARGS='--headless ...']   run the live pipeline"
	@echo "make test                                            create the environment and run every test"

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

# Debian packages the tests drive for real (Xvfb, ffmpeg, an RTSP server, Chromium, mosquitto).
system-deps:
	@bash scripts/install_system_deps.sh

run: $(VENV)/.installed
	$(PY) -m realtime $(if $(SOURCE),--source $(SOURCE)) $(ARGS)

test: $(VENV)/.installed system-deps
	$(PY) -m pytest -m "not detectron2" $(PYTEST_ARGS)

test-fast: $(VENV)/.installed
	$(PY) -m pytest -m "not detectron2 and not slow and not rtsp and not browser and not gui and not mqtt" $(PYTEST_ARGS)

-include make/*.mk

clean:
	rm -rf $(VENV) .pytest_cache
