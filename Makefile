# sre.incident: the two commands a new user needs are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
PYTEST_ARGS ?=
PYTEST_WORKERS ?= 2

.PHONY: help setup stack-up stack-down stack-up-shop stack-down-shop demo test unit integration lint sanity units-ansible-test changelog-lint bench bench-quick bench-shop molecule compat test-static test-containers staging-up staging-down drill clean

help:
	@echo "make demo        set up, break the local reference stack, recover it with p0_recover.yml"
	@echo "make test        set up and run every test (lint, sanity, molecule, compat, unit, integration)"
	@echo "make molecule    one Molecule scenario per role, against a managed-host container and a stack copy"
	@echo "make compat      the newest ansible-core on Python 3.12 (the oldest supported is .venv itself)"
	@echo "make setup       install Docker/compose/debootstrap if missing, base image, .venv/"
	@echo "make stack-up    build and start the reference stack (project recsys)"
	@echo "make stack-down  stop the reference stack, keep its volumes"
	@echo "make stack-up-shop / stack-down-shop   the same for the second example stack (project shop)"
	@echo "make bench       the benchmarks, side by side with their baselines (bench-quick: check they run)"
	@echo "make bench-shop  the recovery and diagnostics benchmarks on the second example stack (project shop)"
	@echo "make drill       two staging hosts over SSH, then every fault of the drill catalogue (FAULT=name for one)"

setup:
	@bash scripts/setup.sh

stack-up: setup
	@bash scripts/stack.sh up

stack-down:
	@bash scripts/stack.sh down

stack-up-shop: setup
	@STACK=shop bash scripts/stack.sh up

stack-down-shop:
	@STACK=shop bash scripts/stack.sh down

demo: stack-up
	@bash scripts/demo.sh

unit: setup
	$(BIN)/pytest -q tests/unit $(PYTEST_ARGS)

integration: stack-up stack-up-shop
	$(BIN)/pytest -q tests/integration $(PYTEST_ARGS)

lint: setup
	$(BIN)/ansible-lint --profile production

changelog-lint: setup
	$(BIN)/antsibull-changelog lint

sanity: setup
	@bash scripts/ansible-test.sh sanity

# the unit tests once more, the way ansible-test runs them (its own venv, the collection layout)
units-ansible-test: setup
	@bash scripts/ansible-test.sh units

# The reference stack (inventories/local, or SRE_TEST_INVENTORY for a copy). bench_recover.py ends with
# a Markdown table for the README's speed section; the alert chain uses loopback ports 19190-19195
# and 5011 (SRE_BENCH_*_PORT). docs/testing.md, "Benchmarks".
bench: stack-up
	$(BIN)/python bench/bench_recover.py
	$(BIN)/python bench/bench_diagnose.py
	$(BIN)/python bench/bench_fleet.py

# The second example stack (inventories/local-shop, or SRE_TEST_SHOP_INVENTORY for a copy).
bench-shop: stack-up-shop
	$(BIN)/python bench/bench_recover.py --stack shop
	$(BIN)/python bench/bench_diagnose.py --stack shop

# Part of make test: the crash once for each contender, diagnostics once (no alert chain, no chat variant).
bench-quick: stack-up
	$(BIN)/python bench/bench_recover.py --quick
	$(BIN)/python bench/bench_diagnose.py --quick
	$(BIN)/python bench/bench_fleet.py --quick

# One scenario per role (molecule/<role>/), against its own stack copy (made and removed here); docs/testing.md.
molecule: setup
	@bash scripts/molecule.sh

# Python 3.12 + the newest ansible-core (cached venv .venv-newest/): the API-facing unit tests, ansible-doc of
# every module and diagnose.yml against the reference stack. The oldest supported pair is .venv itself.
compat: stack-up
	@bash scripts/test-oldest-newest.sh newest

# Everything, with one pytest summary line at the end (read by CI). First the static checks (CPU)
# beside molecule, the benchmarks' quick run and compat (mostly waiting on containers): two chains at
# once, each step saying how long it took ("==> sanity: 109 s"), each chain's output printed when it ends.
# Then two pytest workers: the tests of the reference stack run in order on one; the tests of the second
# example stack (shop) and the drills (tests/integration/test_drills.py, their own staging hosts and
# stacks) on the other; the unit tests fill in (the scheduler in tests/integration/conftest.py).
# PYTEST_WORKERS=0 runs everything in one process.
timed = @for step in $(1); do start=$$SECONDS; $(MAKE) --no-print-directory $$step || exit $$?; \
	  echo "==> $$step: $$((SECONDS - start)) s"; done

test: stack-up stack-up-shop
	@$(MAKE) --no-print-directory -j2 --output-sync=target test-static test-containers
	$(BIN)/pytest tests/unit tests/integration -q -p no:randomly -n $(PYTEST_WORKERS) --durations=15 $(PYTEST_ARGS)

test-static:
	$(call timed,lint changelog-lint sanity units-ansible-test)

# the reference stack's benchmarks and compat, and molecule's own stack copies
test-containers:
	$(call timed,molecule bench-quick compat)

# Drills (docs/drills.md): two SSH-managed staging hosts, each with its own copy of the stack (stg1, stg2);
# they need the base image and the stack's images, not the local stack itself.
staging-up: setup
	@bash scripts/staging.sh up

staging-down:
	@bash scripts/staging.sh down

drill: staging-up
	$(BIN)/ansible-playbook playbooks/drill.yml -i inventories/staging-local -e drill_fault=$${FAULT:-all}

clean:
	rm -rf tests/output .pytest_cache
