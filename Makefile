# The two commands: `make demo` (the main job) and `make test`. Each creates .venv on first use
# from pyproject.toml + constraints.txt; nothing else needs installing by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   ?=
export OMP_NUM_THREADS ?= 2

.PHONY: demo test test-slow lint bench venv clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel -c constraints.txt
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,export,imagenet]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/dsntpose demo $(if $(DATA),--data.root $(DATA),)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts experiments
	$(BIN)/ruff format --check src tests benchmarks scripts experiments
	$(BIN)/mypy src/dsntpose

# one OpenMP thread: the suite is many small ops, and spinning threads on a shared 2-core
# machine made small convolutions 25-50x slower than one thread (measured)
test: lint
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q

test-slow: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/ops.py
	$(BIN)/python benchmarks/data.py
	$(BIN)/python benchmarks/precision.py --markdown docs/bench_precision.md
	$(BIN)/dsntpose bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
