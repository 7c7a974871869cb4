# Jupyter Kernel Controller — developer entry points.
# `make run` and `make test` do all their own set-up on a fresh machine (Python 3.11+ and Go).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VENV_PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
CLUSTER_DIR := .cluster
LOCALCLUSTER := PYTHONPATH=hack $(VENV_PY) -m localcluster
NODE_DIR := .localnode
LOCALNODE_DAEMON := PYTHONPATH=src:hack $(VENV_PY) -m localnode.daemon

.PHONY: help venv controlplane cluster-up cluster-down cluster-status node-up node-down run down crd kernel-launch-config image kernel-image container-tools docs docs-tools manifests lint typecheck test test-unit bench-informer bench bench-pool clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	test -x $(VENV_PY) || $(PYTHON) -m venv $(VENV)
	$(VENV_PY) -m pip install --quiet --upgrade pip
	$(VENV_PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP) ## create .venv/ with the project and its dev tools

controlplane: ## build kube-apiserver, kube-controller-manager, etcd if missing; print where
	@hack/k8s/build.sh

cluster-up: venv controlplane ## start the local control plane in the background (reused if running)
	@$(LOCALCLUSTER) up --dir $(CLUSTER_DIR)

cluster-down: venv ## stop the local control plane started by cluster-up
	@$(LOCALCLUSTER) down --dir $(CLUSTER_DIR)

cluster-status: venv ## is the local control plane running?
	@$(LOCALCLUSTER) status --dir $(CLUSTER_DIR)

node-up: cluster-up ## run kernel Pods as local processes: a local node in the background (reused if running)
	@$(LOCALNODE_DAEMON) up --dir $(NODE_DIR) --kubeconfig $(CLUSTER_DIR)/kubeconfig

node-down: venv ## stop the local node started by node-up (the Node object stays)
	@$(LOCALNODE_DAEMON) down --dir $(NODE_DIR)

run: venv ## run the controller: against $$KUBECONFIG if set, else locally with a sample kernel
	@hack/run.sh

down: venv ## stop what `make run` started locally: controller, local node, control plane
	@hack/run.sh --down

crd: venv controlplane ## regenerate config/crd/bases/ from the API server's OpenAPI (temporary control plane)
	$(VENV_PY) hack/crd/generate.py

kernel-launch-config: ## copy kernel_launch/ scripts into config/kernel-launch/ (kustomize reads them there)
	hack/sync-kernel-launch.sh

IMAGE ?= kernel-controller:latest
image: ## build the controller image with podman (IMAGE=kernel-controller:latest; `docker build -t IMAGE .` works too)
	hack/image/build.sh controller $(IMAGE)

KERNEL_IMAGE ?= kernel-py:dev
kernel-image: ## build the kernel image with podman (KERNEL_IMAGE=kernel-py:dev; or `docker build -t IMAGE kernel_launch/`)
	hack/image/build.sh kernel $(KERNEL_IMAGE)

container-tools: ## install podman, buildah, runc, iptables and mmdebstrap from Debian's packages (root or sudo)
	hack/image/install-tools.sh

docs: venv ## build the documentation site into site/ (mkdocs --strict: broken links fail)
	$(VENV_PY) hack/docs/api_reference.py
	$(VENV_PY) hack/docs/fetch_mermaid.py
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

docs-tools: ## install Chromium from Debian's packages, for the docs site test (root or sudo)
	hack/docs/install-browser.sh

manifests: venv ## print everything config/default installs (kubectl kustomize config/default)
	$(VENV)/bin/kubectl kustomize config/default

lint: venv ## ruff, formatting and the layering contracts
	$(VENV)/bin/ruff check src hack tests kernel_launch bench
	$(VENV)/bin/ruff format --check src hack tests kernel_launch bench
	$(VENV)/bin/lint-imports

typecheck: venv ## mypy --strict
	$(VENV)/bin/mypy src hack/localcluster hack/crd hack/localnode hack/kernel_connect.py hack/docs bench kernel_launch

test-unit: venv ## unit tests only (no cluster)
	$(VENV)/bin/pytest tests/unit

test: lint typecheck controlplane ## lint, type-check and run every test (starts its own control plane)
	$(VENV)/bin/pytest

bench-informer: venv controlplane ## informer benchmark: sync time and memory per object (10,000 Pods)
	$(VENV_PY) bench/informer_bench.py

bench: venv controlplane ## controller benchmark (~18 min): 1,000-Kernel burst vs baseline and floor, API cost, memory at 10,000
	PYTHONPATH=src:hack $(VENV_PY) bench/controller_bench.py

bench-pool: venv controlplane ## warm pool benchmark (~4 min): 20 Kernels at once with a pool of 20 and without, to Ready and to the first reply
	PYTHONPATH=src:hack $(VENV_PY) bench/pool_bench.py

clean: ## remove the venv and caches (not the control plane binaries)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
