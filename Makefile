# The two commands a newcomer needs: `make run` (embedded server) and `make test` (the suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test bench clean

# pip -qq shows errors only: no progress, no warnings from pip or from building the editable install.
$(STAMP): setup.cfg pyproject.toml
	@echo "Installing Tocsin and its dependencies into $(VENV) (once; silent unless something fails)"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -qq --upgrade pip
	@$(BIN)/pip install -qq -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	@$(BIN)/tocsin serve

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python tests/benchmarks/bench_ingest.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var
