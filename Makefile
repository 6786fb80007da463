# The two commands of the README: `make demo` and `make test`. Both install first.
PYTHON ?= python3
export PPL_MODELS_DATA ?= $(abspath ../shared/data)

.PHONY: setup demo test lint format

setup:
	PYTHON=$(PYTHON) scripts/setup

demo: setup
	$(PYTHON) -m ppl_models demo --out runs/demo

test: setup
	$(PYTHON) -m pytest

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

format:
	$(PYTHON) -m ruff format .
	$(PYTHON) -m ruff check --fix .
