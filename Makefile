# Verdict Relay developer commands. Needs only Python 3.11+ and make: the first run sets up .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
ARGS ?=

.PHONY: setup run test lint format typecheck cfn-lint unit schema openapi events clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install the package with its development tools

run: setup ## the whole system locally with simulated providers; options: make run ARGS="--duration 60"
	$(BIN)/verdict-relay local --simulate $(ARGS)

lint: setup ## ruff lint and format check
	$(BIN)/ruff check functions tests tools
	$(BIN)/ruff format --check functions tests tools

format: setup
	$(BIN)/ruff check --fix functions tests tools
	$(BIN)/ruff format functions tests tools

typecheck: setup
	$(BIN)/mypy

cfn-lint: setup
	$(BIN)/cfn-lint template.yaml

unit: setup
	$(BIN)/pytest -q $(PYTEST_ARGS)

test: lint typecheck cfn-lint unit ## everything CI runs

schema: setup ## regenerate docs/verdict.schema.json from the model
	$(BIN)/verdict-relay schema > docs/verdict.schema.json

openapi: setup ## regenerate docs/openapi.json from the routes
	$(BIN)/verdict-relay openapi > docs/openapi.json

events: setup ## regenerate events/api/*.json from events/providers
	$(BIN)/python tools/build_events.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .aws-sam
