# Two commands for a newcomer: `make demo` and `make test`.
# Both create .venv with what they need (once) and are safe to run again.
# `make demo` installs only the demo's extras (local, demo); `make test`, `make lint` and
# `make bench` add the dev tools and the packages the benchmarks compare with (dev, bench).
PYTHON ?= python3
DEMO_ARGS ?=  # e.g. make demo DEMO_ARGS="--rotations 1" (see secretswitch demo --help)
VENV   ?= .venv
BIN     = $(VENV)/bin
DEMO_STAMP = $(VENV)/.installed-demo
STAMP      = $(VENV)/.installed

.PHONY: demo test lint bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "secretswitch needs Python 3.11 or newer; set PYTHON=python3.11 (or newer)")'
	$(PYTHON) -m venv $(VENV)

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[local,demo]'
	@touch $(DEMO_STAMP)

$(STAMP): $(DEMO_STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[local,demo,dev,bench]'
	@touch $(STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/secretswitch demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/cfn-lint deploy/template.yaml

test: lint
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
