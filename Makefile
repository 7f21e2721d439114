# pairgan: `make demo` and `make test` each set everything up on a fresh machine, then run.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# This machine has a local CPU build of exactly this torch; GPU users bring their own CUDA build
# (any torch>=2.3 that is already importable in the venv is kept).
TORCH_PIN ?= torch==2.13.0

# Tests never read the user's caches: each test run points every cache pairgan reads (weights,
# FID features, torch.hub, pip, Hugging Face, XDG) at a fresh, empty folder, removed afterwards.
# tests/conftest.py does the same for a plain `pytest`.
EMPTY_CACHES = root=$$(mktemp -d "$${TMPDIR:-/tmp}/pairgan-test-caches-XXXXXX") && trap 'rm -rf "$$root"' EXIT && \
	PAIRGAN_WEIGHTS=$$root/weights PAIRGAN_CACHE=$$root/pairgan-cache TORCH_HOME=$$root/torch \
	XDG_CACHE_HOME=$$root/xdg-cache HF_HOME=$$root/huggingface PIP_CACHE_DIR=$$root/pip

.PHONY: setup demo test test-fast clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/pairgan demo $(DEMO_ARGS)

test: setup
	$(EMPTY_CACHES) $(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: setup
	$(EMPTY_CACHES) $(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) runs demo_out .pytest_cache
