# sre.incident: the two commands a new user needs are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
PYTEST_ARGS ?=

.PHONY: help setup stack-up stack-down demo test unit integration lint sanity changelog-lint clean

help:
	@echo "make demo        set up, break the local reference stack, recover it with p0_recover.yml"
	@echo "make test        set up and run every test (unit, integration, lint, sanity)"
	@echo "make setup       install Docker/compose/debootstrap if missing, base image, .venv/"
	@echo "make stack-up    build and start the reference stack (project recsys)"
	@echo "make stack-down  stop the reference stack, keep its volumes"

setup:
	@bash scripts/setup.sh

stack-up: setup
	@bash scripts/stack.sh up

stack-down:
	@bash scripts/stack.sh down

demo: stack-up
	@bash scripts/demo.sh

unit: setup
	$(BIN)/pytest -q tests/unit $(PYTEST_ARGS)

integration: stack-up
	$(BIN)/pytest -q tests/integration $(PYTEST_ARGS)

lint: setup
	$(BIN)/ansible-lint --profile production

changelog-lint: setup
	$(BIN)/antsibull-changelog lint

sanity: setup
	@bash scripts/sanity.sh

# Everything, with one pytest summary line at the end (read by CI).
test: stack-up
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory changelog-lint
	$(MAKE) --no-print-directory sanity
	$(BIN)/pytest tests/unit tests/integration -q -p no:randomly $(PYTEST_ARGS)

clean:
	rm -rf tests/output .pytest_cache
