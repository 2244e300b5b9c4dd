# Conveyor developer tasks. A fresh clone needs only python3 (>= 3.11) and node/npm:
# the targets install everything else into .venv (Python) and .test-tools (Azurite).
#
#   make demo    start a server, train and track a few models, print a leaderboard
#   make test    lint, then the whole test suite (PostgreSQL on 127.0.0.1:5432 required)
#
# Installs are incremental: a stamp file records each one, and the virtual environment
# is refreshed whenever pyproject.toml changes. PYTHON picks the interpreter.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
VENV_STAMP := $(VENV)/.conveyor-installed
TOOLS := .test-tools
TOOLS_STAMP := $(TOOLS)/.conveyor-installed
AZURITE := azurite@3
LINT_PATHS := conveyor tests $(wildcard examples benchmarks)

.DEFAULT_GOAL := help
.PHONY: help venv test-tools test demo lint bench clean

help:
	@echo "make demo        start a server, track a few scikit-learn models, print a leaderboard"
	@echo "make test        ruff, then pytest (needs PostgreSQL on 127.0.0.1:5432)"
	@echo "make lint        ruff check and format check"
	@echo "make bench       tracking benchmarks"
	@echo "make venv        install Conveyor and its test tools into $(VENV) (PYTHON=$(PYTHON))"
	@echo "make test-tools  install Azurite (Azure Blob emulator) into $(TOOLS)"
	@echo "make clean       remove $(VENV), $(TOOLS) and caches (keeps .conveyor data)"

venv: $(VENV_STAMP)

$(VENV_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
		echo "Conveyor needs Python >= 3.11; '$(PYTHON)' is older. Run e.g. 'make PYTHON=python3.12 ...'." >&2; \
		exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

test-tools: $(TOOLS_STAMP)

$(TOOLS_STAMP):
	npm install --prefix $(TOOLS) --no-audit --no-fund $(AZURITE)
	touch $@

test: venv test-tools
	$(BIN)/ruff check conveyor tests examples
	$(BIN)/pytest

demo: venv
	$(BIN)/python examples/demo.py

lint: venv
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

bench: venv
	$(BIN)/python benchmarks/tracking/run.py

# Keeps ./.conveyor (the demo's and the local store's data): remove it by hand if wanted.
clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .ruff_cache build dist benchmarks/.work
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +
	find . -maxdepth 1 -name '*.egg-info' -exec rm -rf {} +
