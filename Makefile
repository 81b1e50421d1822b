# The single entry point: CI, people and docs all call these targets.
UV := .tools/bin/uv
PYTEST := $(UV) run --frozen pytest

.PHONY: setup run test lint format typecheck test-quick bench clean

setup:  ## install uv, system packages and the locked environment (idempotent)
	@./scripts/bootstrap.sh

run: setup  ## the whole stack on this machine; Ctrl+C stops it
	$(UV) run --frozen whisp up

test: setup lint typecheck  ## everything CI runs: lint, types, unit, integration, e2e, bench
	$(PYTEST) -m "" tests

test-quick: setup  ## the fast loop: no e2e, no bench
	$(PYTEST) -m "not e2e and not bench" tests

bench: setup  ## benchmarks only; JSON and PNG land in tests/bench/results/
	$(PYTEST) -m bench tests/bench -s

lint: setup
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

format: setup
	$(UV) run --frozen ruff check --fix .
	$(UV) run --frozen ruff format .

typecheck: setup
	$(UV) run --frozen mypy shared/src recorder/src audio-service/src transcription-service/src agent-service/src gateway/src cli/src

clean:
	rm -rf .venv .tools .mypy_cache .ruff_cache .pytest_cache tests/bench/results
