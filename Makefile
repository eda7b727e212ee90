# vaxqr: `make demo` runs the main job on the bundled example keys; `make test` runs the tests.
# Both set up everything they need first (system packages, .venv).
VENV ?= .venv
PY := $(VENV)/bin/python
VAXQR := $(VENV)/bin/vaxqr

.PHONY: setup demo test lint fuzz bench

setup:
	./scripts/bootstrap.sh

demo: setup
	./scripts/demo.sh

test: setup
	$(PY) -m pytest -n 2 -q
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

fuzz: setup
	$(PY) fuzz/run.py --seconds 60

bench: setup
	$(PY) benchmarks/run_all.py
