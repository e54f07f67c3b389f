# The two commands a fresh machine needs: `make render` and `make test`. Each bootstraps .venv
# from pyproject.toml on first use; nothing else has to be installed by hand.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: render validate test tools crossover compare nodepools bench-gateway bench-validate crds clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## Render and validate every profile in values/, refresh kaito/, run helm lint, print summaries.
render: $(STAMP)
	$(PY) scripts/render.py
	$(PY) scripts/validate.py --all-profiles --no-lint

## Validate every profile for every Kubernetes version in data/kubernetes-versions.yaml.
validate: $(STAMP)
	$(PY) scripts/validate.py --all-profiles

## Debian packages the tests use: a real Prometheus (live cost mode) and promtool (alert rules).
tools:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || { \
	  echo "installing Debian's prometheus package (prometheus, promtool)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; }

## Run the test suite (real Helm engine, real CRD schemas from ../shared/crds, real Prometheus).
test: $(STAMP) tools
	$(PY) -m pytest

## The cost model for the default workload, and its picture for the README.
crossover: $(STAMP)
	$(PY) scripts/crossover.py --workload data/workloads/default.yaml --plot docs/img/crossover-default.png

## The backends side by side on the same evaluation set (scripts/compare.py), run against local stub
## upstreams through a real gateway: the table and picture in the README.
compare: $(STAMP)
	PYTHONPATH=scripts:. $(PY) tests/compare_stubs.py --concurrency 16 --plot docs/img/compare-stubs.png

## Print the `az aks nodepool add` commands for the aks-mode profile.
nodepools: $(STAMP)
	$(PY) scripts/nodepools.py values/spot-batch-aks.yaml

## Latency the gateway adds over calling the upstream directly (prints a table; not a test).
bench-gateway: $(STAMP)
	cd scripts && ../$(PY) bench_gateway.py --pin-cpus

## Validator speed against a per-document kubernetes_validate loop (prints a table; not a test).
bench-validate: $(STAMP)
	cd scripts && ../$(PY) bench_validate.py

# Pinned upstream CRDs for machines without ../shared/crds (needs internet access to GitHub).
KAITO_REF := 056b8280b1a8debf644bc6f4399e913a1f9c7e70
KARPENTER_AZURE_REF := 352646f599290c3a6d2f9710fb535a7b288f88ed
PROM_OPERATOR_REF := 6adcebc5076c34f4f55f8f5f7b1e528929373ac7
KEDA_REF := 8b4f083ca8c8c2baf8477e322bd4d16ac4dfa09a
CSI_REF := 0aad886f70e94a6037325f4eaba4660338dde448
GH := https://raw.githubusercontent.com
crds:
	mkdir -p build/crds
	cd build/crds && \
	curl -fsSLO $(GH)/kaito-project/kaito/$(KAITO_REF)/config/crd/bases/kaito.sh_workspaces.yaml && \
	curl -fsSLO $(GH)/kaito-project/kaito/$(KAITO_REF)/config/crd/bases/kaito.sh_inferencesets.yaml && \
	curl -fsSLO $(GH)/Azure/karpenter-provider-azure/$(KARPENTER_AZURE_REF)/pkg/apis/crds/karpenter.sh_nodepools.yaml && \
	curl -fsSLO $(GH)/Azure/karpenter-provider-azure/$(KARPENTER_AZURE_REF)/pkg/apis/crds/karpenter.azure.com_aksnodeclasses.yaml && \
	for kind in servicemonitors podmonitors prometheusrules; do \
	  curl -fsSLO $(GH)/prometheus-operator/prometheus-operator/$(PROM_OPERATOR_REF)/example/prometheus-operator-crd/monitoring.coreos.com_$$kind.yaml; done && \
	curl -fsSLO $(GH)/kedacore/keda/$(KEDA_REF)/config/crd/bases/keda.sh_scaledobjects.yaml && \
	curl -fsSLO $(GH)/kubernetes-sigs/secrets-store-csi-driver/$(CSI_REF)/config/crd/bases/secrets-store.csi.x-k8s.io_secretproviderclasses.yaml

clean:
	rm -rf build .pytest_cache
