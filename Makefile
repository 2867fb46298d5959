# Two commands (see README): `make demo` runs the main job, `make test` the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo lint docs test test-fast bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "pip==26.3"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[robots,mujoco,ros,sweep,export,dev,docs]"
	touch $(STAMP)

demo: setup
	$(BIN)/lagrax demo --out runs/demo --force

# lint runs first: ruff format --check, ruff check (with the complexity rule), and mypy
# on the public protocol modules
TYPED := src/lagrax/core src/lagrax/systems src/lagrax/models/spec.py src/lagrax/training/step.py \
	src/lagrax/training/losses.py src/lagrax/control/laws.py src/lagrax/control/online.py \
	src/lagrax/models/ensemble.py src/lagrax/training/streaming.py src/lagrax/training/parallel.py \
	src/lagrax/models/clnn.py
lint: setup
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy $(TYPED)

# the documentation site (mkdocs.yml): --strict fails on a broken link, a missing page or a
# docstring the API reference cannot render
docs: setup
	$(BIN)/mkdocs build --strict --site-dir site

test: lint docs
	$(BIN)/python -m pytest -n 2 -q

# the edit loop (< 3 min): every package's tests but those marked slow (end-to-end benchmark
# runs, training over subprocesses and devices), through JAX's persistent compilation cache
# (tests/conftest.py); `make test` runs them all
test-fast: setup
	LAGRAX_TEST_JAX_CACHE=on $(BIN)/python -m pytest -n 2 -q -m "not slow"

bench: setup
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) runs
