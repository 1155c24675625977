# The web front ends (realtime/web): `make serve` for the upload app, `make test-web` for its tests.
WEB_HOST ?= 127.0.0.1
WEB_PORT ?= 8000

.PHONY: serve test-web

serve: $(VENV)/.installed
	$(PY) -m realtime serve --host $(WEB_HOST) --port $(WEB_PORT) $(ARGS)

# API, live view and the real-Chromium browser tests (needs chromium + chromium-driver: system-deps).
test-web: $(VENV)/.installed system-deps
	$(PY) -m pytest tests/test_web_api.py tests/test_web_live.py tests/test_web_browser.py $(PYTEST_ARGS)
