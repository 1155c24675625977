# Live streams: the real RTSP server tests and the soak run (tests/test_rtsp.py, `realtime benchmark soak`).
SOAK_MINUTES ?= 10

.PHONY: test-rtsp soak-rtsp

test-rtsp: $(VENV)/.installed system-deps
	$(PY) -m pytest -m rtsp tests/test_rtsp.py $(PYTEST_ARGS)

soak-rtsp: $(VENV)/.installed system-deps
	$(PY) -m realtime benchmark soak --minutes $(SOAK_MINUTES) $(ARGS)
