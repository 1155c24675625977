# Live streams: the real RTSP server tests and the soak run (see tests/test_rtsp.py, scripts/soak_rtsp.py).
SOAK_MINUTES ?= 10

.PHONY: test-rtsp soak-rtsp

test-rtsp: $(VENV)/.installed system-deps
	$(PY) -m pytest -m rtsp tests/test_rtsp.py $(PYTEST_ARGS)

soak-rtsp: $(VENV)/.installed system-deps
	$(PY) scripts/soak_rtsp.py --minutes $(SOAK_MINUTES) --untrained-classifier $(ARGS)
