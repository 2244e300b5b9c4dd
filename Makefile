# Conveyor developer tasks. A fresh clone needs only python3 (>= 3.11) and node/npm:
# the targets install everything else into .venv (Python) and .test-tools (Azurite).
#
#   make demo    run the example pipeline twice (the second time from the cache), register
#                its best model and promote it under a second person's approval, track a
#                few models on a server and print a leaderboard, then serve the champion,
#                send it requests over both protocols and shifted traffic, run the
#                monitor and show the drift alert firing
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
# Prefect and Metaflow for `make bench-pipelines`, kept out of $(VENV) so that their pins
# never decide Conveyor's dependencies.
BENCH_VENV := .bench-venv-pipelines
BENCH_STAMP := $(BENCH_VENV)/.conveyor-installed
BENCH_REQUIREMENTS := benchmarks/pipelines/requirements.txt
# Evidently for `make bench-monitoring`, likewise in a virtual environment of its own.
MONITORING_VENV := .bench-venv-monitoring
MONITORING_STAMP := $(MONITORING_VENV)/.conveyor-installed
MONITORING_REQUIREMENTS := benchmarks/monitoring/requirements.txt
LINT_PATHS := conveyor tests $(wildcard examples benchmarks)
# The demo keeps its data in ./.conveyor whatever the shell says, as examples/demo.py does.
DEMO_ENV := env -u CONVEYOR_DATABASE_URL -u CONVEYOR_ARTIFACT_ROOT -u CONVEYOR_TRACKING_URI \
	CONVEYOR_HOME=.conveyor
DEMO_CONVEYOR := $(DEMO_ENV) $(BIN)/conveyor

.DEFAULT_GOAL := help
.PHONY: help venv test-tools test demo lint bench bench-pipelines bench-monitoring clean

help:
	@echo "make demo        run the example pipeline twice, register and promote its best model,"
	@echo "                 track a few models, serve the champion, monitor it (drift alert)"
	@echo "make test        ruff, then pytest (needs PostgreSQL on 127.0.0.1:5432)"
	@echo "make lint        ruff check and format check"
	@echo "make bench       tracking benchmarks"
	@echo "make bench-pipelines  pipeline engine vs Prefect 3 and Metaflow (installs them into $(BENCH_VENV))"
	@echo "make bench-monitoring drift vs Evidently (installs it into $(MONITORING_VENV))"
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

# The registry demo promotes the pipeline's best model to @champion; the serving demo,
# last because it keeps serving until Ctrl-C, serves models:/breast-cancer@champion.
# `conveyor server` afterwards shows every run the demo tracked (data in ./.conveyor).
demo: venv
	$(DEMO_CONVEYOR) pipeline run examples/pipeline.py --executor process
	$(DEMO_CONVEYOR) pipeline run examples/pipeline.py --executor process
	$(DEMO_CONVEYOR) pipeline runs --pipeline breast_cancer --limit 5
	$(DEMO_ENV) $(BIN)/python examples/registry_demo.py
	$(BIN)/python examples/demo.py --no-wait
	$(DEMO_ENV) $(BIN)/python examples/serving_demo.py

lint: venv
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

bench: venv
	$(BIN)/python benchmarks/tracking/run.py

$(BENCH_STAMP): $(BENCH_REQUIREMENTS)
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet -r $(BENCH_REQUIREMENTS)
	touch $@

bench-pipelines: venv $(BENCH_STAMP)
	$(BIN)/python benchmarks/pipelines/run.py

$(MONITORING_STAMP): $(MONITORING_REQUIREMENTS)
	test -x $(MONITORING_VENV)/bin/python || $(PYTHON) -m venv $(MONITORING_VENV)
	$(MONITORING_VENV)/bin/python -m pip install --quiet -r $(MONITORING_REQUIREMENTS)
	touch $@

bench-monitoring: venv $(MONITORING_STAMP)
	$(BIN)/python benchmarks/monitoring/run.py

# Keeps ./.conveyor (the demo's and the local store's data): remove it by hand if wanted.
clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .ruff_cache build dist benchmarks/.work
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +
	find . -maxdepth 1 -name '*.egg-info' -exec rm -rf {} +
