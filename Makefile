# vaxqr: `make demo` runs the main job on the bundled example keys; `make test` runs the tests.
# Both set up everything they need first (system packages, .venv).
VENV ?= .venv
PY := $(VENV)/bin/python
VAXQR := $(VENV)/bin/vaxqr

.PHONY: setup demo test lint fuzz bench native

setup:
	./scripts/bootstrap.sh

native: setup  # rebuild the mypyc extensions (make setup builds them when out of date)
	$(PY) scripts/build_native.py --force

demo: setup
	./scripts/demo.sh

test: setup
	$(PY) -m pytest -n 2 -q
	@# the same suite on the pure-Python modules (what runs where nothing could be compiled)
	VAXQR_PURE=1 $(PY) -m pytest -n 2 -q
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

fuzz: setup
	$(PY) fuzz/run.py --seconds 60

bench: setup
	$(PY) benchmarks/run_all.py
