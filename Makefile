# The two commands a fresh machine needs: `make render` and `make test`. Each bootstraps .venv
# from pyproject.toml on first use; nothing else has to be installed by hand.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: render test nodepools bench-gateway clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## Render and validate every profile in values/, refresh kaito/, run helm lint, print summaries.
render: $(STAMP)
	$(PY) scripts/render.py

## Run the test suite (real Helm engine, real CRD schemas from ../shared/crds).
test: $(STAMP)
	$(PY) -m pytest

## Print the `az aks nodepool add` commands for the aks-mode profile.
nodepools: $(STAMP)
	$(PY) scripts/nodepools.py values/spot-batch-aks.yaml

## Latency the gateway adds over calling the upstream directly (prints a table; not a test).
bench-gateway: $(STAMP)
	cd scripts && ../$(PY) bench_gateway.py

clean:
	rm -rf build .pytest_cache
