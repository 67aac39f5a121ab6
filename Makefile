# Two entry points for a fresh clone: `make demo` and `make test`.
# Each creates .venv and installs the pinned dependencies when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint format dev clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/revops demo

test: $(STAMP) lint
	$(BIN)/pytest -q -n 2 --dist loadfile

# `dg check defs` loads the code location as Dagster would and validates it.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/sqlfluff lint revops_pipelines/sql
	VIRTUAL_ENV=$(abspath $(VENV)) $(BIN)/dg check defs

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
	$(BIN)/sqlfluff fix revops_pipelines/sql

dev: $(STAMP)
	$(BIN)/revops dev

clean:
	rm -rf $(VENV) data
