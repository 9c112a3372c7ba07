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

# Two makes at once (say two `make demo` on a fresh clone) must not build one .venv together. The
# outer make takes a lock ($(VENV).lock; fcntl through Python, as flock(1) is not on every system)
# and runs a second make inside it, which looks at the stamps again: whoever waited finds the .venv
# made and installs nothing.
define VENV_LOCK_PY
import fcntl, signal, subprocess, sys
lock = open(sys.argv[1], "a")
try:
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    print(f"waiting for the other make that is installing {sys.argv[1][:-5]} ...", file=sys.stderr, flush=True)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
    except KeyboardInterrupt:
        sys.exit(130)
signal.signal(signal.SIGINT, lambda *_: None)  # the inner make gets Ctrl-C itself; wait for it, holding the lock
sys.exit(subprocess.call(sys.argv[2:]))
endef
export VENV_LOCK_PY

ifeq ($(SECRETSWITCH_VENV_LOCKED),)
$(DEMO_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "secretswitch needs Python 3.11 or newer; set PYTHON=python3.11 (or newer)")'
	@$(PYTHON) -c "$$VENV_LOCK_PY" $(VENV).lock $(MAKE) --no-print-directory SECRETSWITCH_VENV_LOCKED=1 $@

$(STAMP): $(DEMO_STAMP)
	@$(PYTHON) -c "$$VENV_LOCK_PY" $(VENV).lock $(MAKE) --no-print-directory SECRETSWITCH_VENV_LOCKED=1 $@
else
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[local,demo]'
	@touch $(DEMO_STAMP)

$(STAMP): $(DEMO_STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[local,demo,dev,bench]'
	@touch $(STAMP)
endif

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
	rm -rf $(VENV) $(VENV).lock .pytest_cache .mypy_cache .ruff_cache
