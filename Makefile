# Verdict Relay developer commands. Needs only Python 3.11+ and make: the first run sets up .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# Test processes (pytest-xdist): the suite spends much of its time waiting on local servers, so two suit a
# 2-core machine; 0 runs it in one.
PYTEST_WORKERS ?= 2
ARGS ?=
# SAM CLI lives in its own environment: it is a deploy tool, not a dependency of the project.
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
SAM_CLI_VERSION := 1.170.0
# sam build needs a python3.13 on PATH, the Lambda runtime's (make bench measures on it too when there is one).
# With pyenv, PYENV_VERSION=$(SAM_PYENV_VERSION) exposes one beside 3.11, set only when pyenv has every version
# it names: otherwise pyenv's shims would fail ("version not installed") before functions/Makefile could say
# that python3.13 is missing. Override with yours (make build SAM_PYENV_VERSION=3.11.9:3.13.1), or set it
# empty to leave PYENV_VERSION alone.
SAM_PYENV_VERSION ?= 3.11.7:3.13.0
PYENV_INSTALLED := $(if $(SAM_PYENV_VERSION),$(shell command -v pyenv >/dev/null 2>&1 && pyenv versions --bare 2>/dev/null))
SAM_PYENV_MISSING := $(filter-out system $(PYENV_INSTALLED),$(subst :, ,$(SAM_PYENV_VERSION)))
RUNTIME_ENV := $(if $(and $(PYENV_INSTALLED),$(SAM_PYENV_VERSION)),$(if $(SAM_PYENV_MISSING),,PYENV_VERSION=$(SAM_PYENV_VERSION)))
ifneq ($(origin SAM_PYENV_VERSION),file)
ifneq ($(SAM_PYENV_MISSING),)
$(warning SAM_PYENV_VERSION=$(SAM_PYENV_VERSION): pyenv has no $(SAM_PYENV_MISSING); PYENV_VERSION is left alone)
endif
endif
SAM_ENV := SAM_CLI_TELEMETRY=0 $(RUNTIME_ENV)

.PHONY: setup run build deploy bench bench-smoke soak security test lint format typecheck cfn-lint unit unit-runtime schema openapi events clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install the package with its development tools

CHECKOV_VENV := .venv-checkov

$(CHECKOV_VENV)/.installed-stamp:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet checkov==3.3.30
	touch $@

security: $(CHECKOV_VENV)/.installed-stamp ## checkov on template.yaml: every finding fixed or explained in the template
	$(CHECKOV_VENV)/bin/checkov -f template.yaml --framework cloudformation --compact --quiet --skip-download

$(SAM_VENV)/.installed-stamp:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet aws-sam-cli==$(SAM_CLI_VERSION)
	touch $@

build: $(SAM_VENV)/.installed-stamp ## sam build: the arm64 python3.13 artifact in .aws-sam/build
	$(SAM_ENV) $(SAM) build
	$(SAM_ENV) python3.13 tools/check_artifact.py .aws-sam/build

deploy: build ## sam deploy --guided (needs AWS credentials)
	$(SAM_ENV) $(SAM) deploy --guided

soak: setup ## the long profiles: reliability suites (10 x 1,000 deliveries, 2,000 fuzz cases per property, 300 state-machine runs of 60 steps), schemathesis (300 per operation per phase)
	RELIABILITY_PROFILE=soak HYPOTHESIS_PROFILE=soak $(BIN)/pytest -q tests/reliability tests/e2e/test_openapi_conformance.py

bench: setup ## benchmarks against their targets (exit 1 if one is missed); figures in docs/performance.md
	$(RUNTIME_ENV) $(BIN)/python bench/run.py

bench-smoke: setup ## every benchmark with a few rounds: they still run (figures meaningless; CI runs it)
	$(RUNTIME_ENV) $(BIN)/python bench/run.py --smoke

run: setup ## the whole system locally with simulated providers; options: make run ARGS="--duration 60"
	$(BIN)/verdict-relay local --simulate $(ARGS)

lint: setup ## ruff lint and format check
	$(BIN)/ruff check functions tests tools bench
	$(BIN)/ruff format --check functions tests tools bench

format: setup
	$(BIN)/ruff check --fix functions tests tools bench
	$(BIN)/ruff format functions tests tools bench

typecheck: setup
	$(BIN)/mypy

cfn-lint: setup
	$(BIN)/cfn-lint template.yaml

unit: setup ## the test suite, in PYTEST_WORKERS processes; options: make unit PYTEST_ARGS="-k callbacks"
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

test: lint typecheck cfn-lint unit ## lint, types, cfn-lint and the tests

# The Lambda runtime's Python, in a venv of its own (a python3.13 on PATH, as make build needs; pyenv's when
# SAM_PYENV_VERSION names it). The unit tier by default: the provider adapters, the policy and the poller's logic.
RUNTIME_VENV := .venv-3.13
RUNTIME_PYTEST_ARGS ?= tests/unit

unit-runtime: ## the unit tests on python3.13, the Lambda runtime's (options: RUNTIME_PYTEST_ARGS=tests for all)
	$(RUNTIME_ENV) $(MAKE) unit PYTHON=python3.13 VENV=$(RUNTIME_VENV) PYTEST_ARGS="$(RUNTIME_PYTEST_ARGS)"

schema: setup ## regenerate docs/verdict.schema.json from the model
	$(BIN)/verdict-relay schema > docs/verdict.schema.json

openapi: setup ## regenerate docs/openapi.json from the routes
	$(BIN)/verdict-relay openapi > docs/openapi.json

events: setup ## regenerate events/api/*.json from events/providers
	$(BIN)/python tools/build_events.py

clean:
	rm -rf $(VENV) $(RUNTIME_VENV) $(SAM_VENV) $(CHECKOV_VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .aws-sam
