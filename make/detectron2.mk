# Detectron2 pose backend: its own Python 3.10 environment, .venv-d2 (included by the Makefile).
# Detectron2 is not on PyPI; the one installable build, sal-detectron2, is a cp310 wheel built
# against torch 2.3, so it cannot share the main Python 3.11 .venv (pyproject.toml's markers pick
# torch 2.3.1 on Python 3.10).

D2_PYTHON ?= $(shell PYENV_VERSION=3.10.13 pyenv which python 2>/dev/null || echo python3.10)
D2_VENV ?= .venv-d2
D2_PY := $(D2_VENV)/bin/python

.PHONY: setup-detectron2 test-detectron2 clean-detectron2

setup-detectron2: $(D2_VENV)/.installed

# The stamp is written last, so an interrupted install is redone on the next run.
# MoveNet's weights package is not installed here: it needs Python 3.11, and this environment is for Detectron2.
$(D2_VENV)/.installed: pyproject.toml requirements-detectron2.txt
	test -x $(D2_PY) || $(D2_PYTHON) -m venv $(D2_VENV)
	$(D2_PY) -m pip install $(PIP_FLAGS) -r requirements-detectron2.txt
	$(D2_PY) -c "import detectron2, mediapipe, cv2, realtime.pose.detectron2_backend"
	touch $@

test-detectron2: $(D2_VENV)/.installed
	$(D2_PY) -m pytest -m detectron2 tests/test_detectron2.py $(PYTEST_ARGS)

clean-detectron2:
	rm -rf $(D2_VENV)
