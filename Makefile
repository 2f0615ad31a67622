# contiguity-operator — developer entry points. `make help` lists them.
SHELL := /bin/bash
CARGO ?= cargo
TOOLS := target/control-plane

.PHONY: help demo demo-down test lint generate tools bench bench-sandbox build

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

demo: ## Quickstart: local control plane + sandbox + operator, examples applied, left running
	@bash hack/demo.sh up

demo-down: ## Stop everything `make demo` started
	@bash hack/demo.sh down

test: tools ## Run every test (unit, client/sandbox, CRD drift, e2e on the real control plane)
	$(CARGO) test --all-targets --locked --no-fail-fast

lint: ## cargo fmt --check and clippy with warnings denied
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

generate: ## Regenerate crds/, the chart's crds/ and docs/crds.md from src/crd
	$(CARGO) run --quiet --locked --bin contiguity-operator -- crdgen --out crds --chart-out charts/contiguity-operator/crds --docs-out docs/crds.md
	bash deploy/generate.sh

tools: ## Build (or reuse) the test control plane and helm from Go modules
	@bash tests/control-plane/build.sh

build: ## Build the release binaries
	$(CARGO) build --release --locked --bins

bench: tools ## Converge benchmark against the API server's own floor (figures printed, never asserted)
	$(CARGO) bench --bench converge -- $(BENCH_ARGS)

bench-sandbox: ## Throughput of the Contiguity sandbox on loopback
	$(CARGO) run --release --locked --bin bench-sandbox
