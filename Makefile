# trio-controller: one entry point for set-up, tests, the demo and benchmarks.
# Build caches live outside the clone so a fresh checkout on a warm machine is quick.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CACHE ?= $(HOME)/.cache/trio-controller
export CARGO_TARGET_DIR ?= $(CACHE)/target
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup native testenv test lint test-rust test-python test-install test-soak soak sim demo bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(VENV)/.deps: requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

# Build the Rust extension into the package in place (release: it is the hot path).
native: $(VENV)/.deps
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(BIN)):$$PATH $(BIN)/maturin develop --release -q

setup: native

testenv:
	bash testenv/build.sh

lint: setup
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m mypy.stubtest trio_controller._native
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile

test-rust:
	cargo test -q

test-python: setup testenv
	$(BIN)/python -m pytest -q

# The Dockerfile's install steps without Docker: wheel, fresh venv, installed commands.
test-install: setup
	bash scripts/check-install.sh

# The chaos soak on the real apiserver (issue 11; soak/run.py): writers churn pods under
# proxy resets, half-closes, stalls, slow reads, apiserver kill -9, real 410s and 429s and
# controller restarts; one verdict line, exit 1 on failure. `make soak` is the long one
# (SOAK_SECONDS, default 30 min; SOAK_ARGS=--seed N --keep), test-soak CI's 60 s of churn.
SOAK_SECONDS ?= 1800
soak: setup testenv
	$(BIN)/python -m soak --seconds $(SOAK_SECONDS) $(SOAK_ARGS)

test-soak: setup testenv
	$(BIN)/python -m soak --seconds 60

# The deterministic simulation (issue 11; tests/sim/): SIM_SEEDS seeds of the reflector,
# queue and controller against the in-process model apiserver under seeded faults; a
# failing seed prints its one-line reproducer. CI runs a fixed set in tests/test_simulation.py.
# The sharded mode (issue 16; tests/sim/sharded.py, CI: tests/test_simulation_sharded.py):
# `make sim SIM_ARGS=--sharded SIM_SEEDS=1000` (add `--objects 100000` for the full size).
SIM_SEEDS ?= 10000
sim: setup
	$(BIN)/python -m tests.sim.run --seeds $(SIM_SEEDS) $(SIM_ARGS)

# The one command that runs every test (CI runs exactly this).
test: lint test-rust test-python test-install test-soak

demo: setup testenv
	$(BIN)/python scripts/demo.py

# Benchmarks against client-go's example and the Python clients (not part of CI).
# BENCH_ARGS=--quick for a short run; see bench/README.md.
bench: setup testenv
	$(BIN)/pip install -q -r bench/requirements.txt
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) testenv/bin
