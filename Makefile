# Berth: `make demo` provisions a throwaway local VPS end to end; `make test` runs the whole suite.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export PYTHONPATH := $(CURDIR)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_FORCE_COLOR ?= $(if $(CI),0,1)

DEMO_HOST := berth-demo
DEMO_INDEX := 1
LOCAL_INVENTORY := inventory/local/hosts.yml
TESTVPS := tests/vps/testvps

.PHONY: help demo demo-down venv system-deps model vps provision teardown demo-check lint role-docs test test-unit test-system bench

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

demo: model vps provision demo-check ## Provision a local throwaway VPS end to end and ask it for a prediction

demo-down: system-deps venv ## Remove the demo VPS
	$(BIN)/python -m berth vps down $(DEMO_HOST)

$(VENV)/.installed: requirements/control.txt | system-deps
	@echo "==> Installing the control-node tooling into $(VENV) (1-2 minutes the first time)"
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --progress-bar off --requirement requirements/control.txt \
	  | grep -E '^(Collecting|Successfully)' || true
	$(BIN)/python -c "import ansible, dvc, sklearn, fastapi" # the install above may only warn
	touch $@

venv: $(VENV)/.installed ## Install the control-node tooling into .venv

system-deps: ## Install the apt packages the throwaway VPS needs (root)
	@scripts/install-system-deps.sh

model: venv ## Train, evaluate and export the example model (dvc repro)
	@echo "==> Training and exporting the model (dvc repro)"
	$(BIN)/dvc repro

vps: system-deps venv ## Create (or reuse) the throwaway VPS and write inventory/local/hosts.yml
	@echo "==> Starting the throwaway VPS $(DEMO_HOST) (the base image is built once, about 2 minutes)"
	$(BIN)/python -m berth vps up $(DEMO_HOST) --index $(DEMO_INDEX)

provision: venv ## Run site.yml against the local inventory (berth up)
	@echo "==> Provisioning with berth up (site.yml)"
	$(BIN)/python -m berth up

teardown: venv ## Remove Berth from the local inventory's hosts, hardening kept (berth down --yes)
	$(BIN)/python -m berth down --yes

demo-check: venv ## Ask the demo VPS for a prediction through nginx
	$(BIN)/python -m berth try --host $(DEMO_HOST)

lint: venv ## ruff, mypy, yamllint, ansible-lint, syntax check
	@echo "==> Lint"
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app ml berth
	$(BIN)/yamllint --strict .
	$(BIN)/ansible-lint
	$(BIN)/python -m berth.roledocs --check
	$(BIN)/ansible-playbook -i inventory/example --syntax-check site.yml playbooks/*.yml

role-docs: venv ## Regenerate roles/*/README.md from meta/argument_specs.yml
	$(BIN)/python -m berth.roledocs

test: lint system-deps model ## The whole test suite (lint, unit, API, system tests on fresh VPS hosts, molecule)
	@echo "==> Tests"
	$(BIN)/python -m pytest
	@echo "==> Role scenarios (molecule, each on a fresh VPS)"
	scripts/molecule-all.sh -q

test-unit: venv ## Only the tests that need no VPS
	$(BIN)/python -m pytest -m "not system"

bench: system-deps model ## Serving benchmark on loopback: nginx -> gunicorn -> API vs a constant-JSON floor (figures)
	$(BIN)/python -m bench.serving
