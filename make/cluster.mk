# The Ray cluster: its tests on a real two-node cluster on 127.0.0.1, and the cost measurement (docs/cluster.md).
.PHONY: test-cluster bench-cluster

test-cluster: $(VENV)/.installed system-deps
	$(PY) -m pytest -m cluster tests/test_cluster.py $(PYTEST_ARGS)

bench-cluster: $(VENV)/.installed
	$(PY) -m realtime.bench.cluster $(ARGS)
