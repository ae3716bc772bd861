# kube-baseline: every routine task is a target here. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= api
PYTEST_ARGS ?=

##@ Setup

.PHONY: venv
venv: $(VENV)/.installed ## Create .venv and install the project with its dev dependencies

$(VENV)/.installed: pyproject.toml
	@command -v python3 >/dev/null || { echo "error: python3 (>= 3.11) is required" >&2; exit 1; }
	python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "error: Python >= 3.11 is required")'
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

.PHONY: controlplane
controlplane: ## Build (or reuse from cache) etcd, kube-apiserver, controllers, kubectl and kwok
	hack/build-controlplane

##@ Quality

.PHONY: lint
lint: venv ## ruff, ruff format --check, mypy (strict), import boundaries, hadolint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/hadolint Dockerfile

.PHONY: fmt
fmt: venv ## Format and autofix with ruff
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

.PHONY: crds
crds: venv ## Regenerate crds/ from the pydantic models
	$(PY) hack/gen_crd.py > crds/securitybaselines.yaml

.PHONY: docs
docs: venv ## Regenerate docs/securitybaseline-reference.md from the models
	$(PY) hack/gen_reference.py > docs/securitybaseline-reference.md

##@ Tests

.PHONY: test
test: venv lint controlplane image-tools browser ## The test command: install everything, lint, unit + integration + e2e + image tests
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: browser
browser: ## Install a headless Chromium for the HTML report check when missing (root + apt-get), else say how
	hack/browser

.PHONY: unit
unit: venv ## Unit tests only (no cluster)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

##@ Image

.PHONY: image
image: ## Build the operator image (docker or podman) and save it to build/image/ (hack/image)
	hack/image build

.PHONY: image-tools
image-tools: ## Install podman, runc and mmdebstrap when missing (root + apt-get), else say how
	hack/image tools

##@ Demo

.PHONY: demo
demo: venv controlplane ## Start a local control plane + operator, apply samples and weak workloads, show drift
	hack/demo up

.PHONY: demo-down
demo-down: ## Stop the demo operator and its control plane
	hack/demo down

##@ Benchmarks

N ?= 1000
# The benchmarked operator runs as it ships: runtime dependencies only (no test libraries that
# Kopf would import at start-up), the project installed editable so it is always this tree.
OPERATOR_VENV := bench/out/operator-venv

.PHONY: bench
bench: venv controlplane $(OPERATOR_VENV)/.installed ## Operator vs a bare PATCH loop, as ServiceAccounts and APF-exempt admin, guard off, guard on, reports on (N=1000; N=10000 opt-in)
	$(PY) -m bench.operator_bench -n $(N) --operator $(OPERATOR_VENV)/bin/kube-baseline
	$(PY) -m bench.operator_bench -n $(N) --guard --operator $(OPERATOR_VENV)/bin/kube-baseline
	$(PY) -m bench.operator_bench -n $(N) --reports --operator $(OPERATOR_VENV)/bin/kube-baseline
	$(PY) -m bench.placement_memory -n 10000

$(OPERATOR_VENV)/.installed: pyproject.toml
	test -x $(OPERATOR_VENV)/bin/python || python3 -m venv $(OPERATOR_VENV)
	$(OPERATOR_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(OPERATOR_VENV)/bin/python -m pip install --quiet -e .
	touch $@

.PHONY: bench-admission
bench-admission: venv controlplane ## Admission cost of the generated policies: 1,000 Deployment creates with vs without (bench/README.md)
	$(PY) bench/admission_bench.py -n 1000

.PHONY: bench-cli
bench-cli: venv ## Benchmark `kube-baseline check` against the YAML parse floor and checkov (bench/README.md)
	$(PY) bench/cli_bench.py

##@ Local control plane

.PHONY: cluster-up
cluster-up: venv controlplane ## Start the local control plane (PROFILE=api|full)
	hack/cluster up --profile $(PROFILE)

.PHONY: cluster-down
cluster-down: ## Stop the local control plane and remove its state
	hack/cluster down

.PHONY: cluster-status
cluster-status: ## Show whether the local control plane runs
	hack/cluster status

##@ Help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*##"} /^##@/ {printf "\n%s\n", substr($$0, 5)} /^[a-zA-Z_-]+:.*?##/ {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
