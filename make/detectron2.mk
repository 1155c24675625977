# Detectron2 pose backend: its own Python 3.10 environment, .venv-d2.
# The one installable detectron2 build (sal-detectron2, not on PyPI as "detectron2") is a cp310
# wheel built against torch 2.3, so it cannot live in the main 3.11 .venv. Included by the Makefile.

D2_PYTHON ?= $(shell PYENV_VERSION=3.10.13 pyenv which python 2>/dev/null || echo python3.10)
D2_VENV ?= .venv-d2
D2_STAMP := $(D2_VENV)/.installed

.PHONY: setup-detectron2 test-detectron2

setup-detectron2: $(D2_STAMP)

# The stamp is written last, so an interrupted install is redone on the next run.
$(D2_STAMP): requirements-detectron2.txt setup.py
	$(D2_PYTHON) -m venv $(D2_VENV)
	$(D2_VENV)/bin/python -m pip install -r requirements-detectron2.txt
	$(D2_VENV)/bin/python -m pip install -e . --no-deps
	$(D2_VENV)/bin/python -c "import detectron2, mediapipe, cv2, realtime.pose.detectron2_backend"
	touch $@

test-detectron2: $(D2_STAMP)
	$(D2_VENV)/bin/python -m pytest -m detectron2 tests
